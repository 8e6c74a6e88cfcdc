import { liveState } from '../state/live';
import { clearNew, loadToFirstNew, newCount, rows } from '../state/list';
import { setView } from '../state/view';
import { scrollToIndex } from './MessageList';

const TEXT = {
  off: 'Offline',
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
} as const;

/** Connection indicator; announced politely when it changes. */
export function LiveIndicator() {
  const s = liveState.value;
  return (
    <div class={`live live-${s}`} role="status" aria-live="polite" data-live={s} title="Live updates from the mail server">
      <span class="dot" aria-hidden="true" />
      <span>
        <span class="sr-only">Live updates: </span>
        {TEXT[s]}
      </span>
    </div>
  );
}

/** "N new" marker: announced, never takes focus or moves the list by itself. */
export function NewBar() {
  const n = newCount.value;
  return (
    <div class="newbar-region" aria-live="polite">
      {n > 0 && (
        <button
          type="button"
          class="newbar"
          data-new-count={n}
          onClick={async () => {
            const i = await loadToFirstNew();
            if (i >= 0) {
              scrollToIndex(i, true);
              setView({ selected: rows.value[i].id });
            }
            clearNew();
          }}
        >
          {n} new message{n === 1 ? '' : 's'} — show
        </button>
      )}
    </div>
  );
}
