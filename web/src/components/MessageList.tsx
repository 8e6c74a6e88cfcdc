/**
 * Virtualised message list: only the rows in view (plus a margin) are in the DOM, so a folder
 * of 10k+ messages scrolls smoothly. It is an ARIA listbox whose active option is the selected
 * message; the next keyset page loads as the view nears the end of what is loaded. When rows are
 * inserted or removed above the view, the scroll position follows the row at the top, so live
 * changes never move what the user is reading.
 */
import { signal } from '@preact/signals';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { Message } from '../api/types';
import { folderById } from '../state/app';
import { hasMore, listError, listLoading, listLoadingMore, listVersion, loadMore, newIds, retry, rows, clearNew } from '../state/list';
import { setView, view } from '../state/view';
import { ageBand, formatDuration, formatDurationLong, formatFull, formatShort, now } from '../lib/time';

export const ROW_HEIGHT = 44;
/** On narrow screens (styles.css: max-width 760px) each row is a two-line card. */
export const ROW_HEIGHT_COMPACT = 64;
const OVERSCAN = 8;

const compact = typeof matchMedia === 'function' ? matchMedia('(max-width: 760px)') : null;
/** The height of a row now; follows the viewport across the breakpoint. */
const rowHeight = signal(compact?.matches ? ROW_HEIGHT_COMPACT : ROW_HEIGHT);
compact?.addEventListener('change', (e) => {
  rowHeight.value = e.matches ? ROW_HEIGHT_COMPACT : ROW_HEIGHT;
});

let listEl: HTMLDivElement | null = null;

/** Scrolls row `i` into view (minimal movement); `top` puts it at the top. */
export function scrollToIndex(i: number, top = false): void {
  const el = listEl;
  if (!el || i < 0) return;
  const h = rowHeight.value;
  const y = i * h;
  if (top || y < el.scrollTop) el.scrollTop = y;
  else if (y + h > el.scrollTop + el.clientHeight) el.scrollTop = y + h - el.clientHeight;
}

export function focusList(): void {
  listEl?.focus({ preventScroll: true });
}

function waitingMs(m: Message, t: number): number {
  const received = Date.parse(m.received_at);
  if (m.status === 'answered' && m.answered_at) return Date.parse(m.answered_at) - received;
  return t - received;
}

function StatusCell({ m, t }: { m: Message; t: number }) {
  if (m.status === 'deleted') return <span class="chip chip-deleted">Deleted</span>;
  const ms = waitingMs(m, t);
  if (m.status === 'answered') {
    return (
      <span class="chip chip-answered" title={m.answered_at ? `Answered after ${formatDurationLong(ms)}` : 'Answered'}>
        <span aria-hidden="true">✓ </span>Answered
      </span>
    );
  }
  return (
    <span class={`chip wait wait-${ageBand(ms)}`} title={`Waiting ${formatDurationLong(ms)}`} data-waiting={ms}>
      <span class="sr-only">Pending, waiting </span>
      {formatDuration(ms)}
    </span>
  );
}

function Row({
  m,
  index,
  selected,
  isNew,
  showFolder,
  t,
  setsize,
}: {
  m: Message;
  index: number;
  selected: boolean;
  isNew: boolean;
  showFolder: boolean;
  t: number;
  setsize: number;
}) {
  const sender = m.from?.name || m.from?.address || '(unknown sender)';
  const folder = showFolder ? folderById.value.get(m.folder_id)?.name : null;
  return (
    <div
      role="option"
      id={`msg-${m.id}`}
      class={`row${selected ? ' selected' : ''}${m.seen ? '' : ' unseen'}${isNew ? ' is-new' : ''} st-${m.status}`}
      style={{ transform: `translateY(${index * rowHeight.value}px)` }}
      aria-selected={selected}
      aria-posinset={index + 1}
      aria-setsize={setsize}
      data-id={m.id}
      data-uid={m.uid}
      data-folder-id={m.folder_id}
      data-status={m.status}
      data-flagged={String(m.flagged)}
      data-seen={String(m.seen)}
      onClick={() => {
        if (isNew) clearNew([m.id]);
        setView({ selected: m.id, open: true });
        focusList();
      }}
    >
      <span class="c-status">
        <StatusCell m={m} t={t} />
      </span>
      <span class="c-flag">
        {m.flagged ? (
          <span class="flag-mark" title="Flagged">
            <span aria-hidden="true">⚑</span>
            <span class="sr-only">Flagged</span>
          </span>
        ) : null}
      </span>
      <span class="c-from" title={m.from?.address ?? undefined}>
        {sender}
      </span>
      <span class="c-subject">
        {isNew && <span class="new-pill">New</span>}
        {!m.seen && <span class="sr-only">Unread, </span>}
        {m.subject || <em class="muted">(no subject)</em>}
      </span>
      {showFolder && <span class="c-folder">{folder}</span>}
      <span class="c-time">
        <time dateTime={m.received_at} title={formatFull(m.received_at)}>
          {formatShort(m.received_at, t)}
        </time>
      </span>
    </div>
  );
}

export function MessageList({ label }: { label: string }) {
  const ref = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);
  const anchor = useRef<{ id: string; offset: number } | null>(null);
  const list = rows.value;
  const selected = view.value.selected;
  const showFolder = view.value.folder === null;
  const t = now.value;
  const fresh = newIds.value;
  const more = hasMore.value;
  const rh = rowHeight.value;

  useEffect(() => {
    listEl = ref.current;
    const el = ref.current!;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    setHeight(el.clientHeight);
    return () => {
      ro.disconnect();
      if (listEl === el) listEl = null;
    };
  }, []);

  // A new query starts at the top.
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.scrollTop = 0;
    anchor.current = null;
    setScrollTop(0);
  }, [listVersion.value]);

  // Keep the row at the top of the view in place when rows change above it.
  useLayoutEffect(() => {
    const el = ref.current;
    const a = anchor.current;
    if (!el || !a) return;
    let i = -1;
    for (let k = 0; k < list.length; k++) if (list[k].id === a.id) { i = k; break; }
    if (i < 0) return;
    const want = i * rh + a.offset;
    if (Math.abs(el.scrollTop - want) >= 1) {
      el.scrollTop = want;
      setScrollTop(el.scrollTop);
    }
  }, [list]);

  function onScroll() {
    const el = ref.current!;
    const st = el.scrollTop;
    setScrollTop(st);
    const i = Math.floor(st / rh);
    anchor.current = st > 0 && list[i] ? { id: list[i].id, offset: st - i * rh } : null;
  }

  const count = list.length;
  const start = Math.max(0, Math.floor(scrollTop / rh) - OVERSCAN);
  const end = Math.min(count, Math.ceil((scrollTop + height) / rh) + OVERSCAN);

  useEffect(() => {
    if (more && end >= count - 60) void loadMore();
  }, [end, count, more]);

  const items = [];
  for (let i = start; i < end; i++) {
    const m = list[i];
    items.push(
      <Row key={m.id} m={m} index={i} selected={m.id === selected} isNew={fresh.has(m.id)} showFolder={showFolder} t={t} setsize={more ? -1 : count} />,
    );
  }
  const selIndex = selected ? list.findIndex((m) => m.id === selected) : -1;
  const activeRendered = selIndex >= start && selIndex < end;
  const totalHeight = (count + (more ? 1 : 0)) * rh;

  let empty: preact.ComponentChildren = null;
  if (listLoading.value && count === 0) empty = <p class="empty">Loading messages…</p>;
  else if (listError.value && count === 0)
    empty = (
      <div class="empty" role="alert">
        <p>Messages could not be loaded: {listError.value}</p>
        <button class="btn" type="button" onClick={retry}>
          Try again
        </button>
      </div>
    );
  else if (count === 0)
    empty = (
      <p class="empty">
        {view.value.status === 'pending' && !view.value.q ? 'Nothing pending — all caught up.' : 'No messages match these filters.'}
      </p>
    );

  return (
    <div class={`list-wrap${showFolder ? ' with-folder' : ''}`}>
      <div class="list-head" aria-hidden="true">
        <span class="c-status">Status</span>
        <span class="c-flag" />
        <span class="c-from">From</span>
        <span class="c-subject">Subject</span>
        {showFolder && <span class="c-folder">Folder</span>}
        <span class="c-time">Received</span>
      </div>
      <div
        ref={ref}
        id="message-list"
        class="list"
        role="listbox"
        tabIndex={0}
        aria-label={label}
        aria-busy={listLoading.value}
        aria-activedescendant={activeRendered ? `msg-${selected}` : undefined}
        onScroll={onScroll}
      >
        <div class="list-inner" style={{ height: `${totalHeight}px` }}>
          {items}
        </div>
      </div>
      {empty && <div class="list-empty">{empty}</div>}
      <div class="list-foot" aria-live="polite">
        {listLoadingMore.value ? 'Loading more…' : listError.value && count > 0 ? (
          <span>
            Loading more failed: {listError.value}{' '}
            <button class="btn small" type="button" onClick={retry}>
              Try again
            </button>
          </span>
        ) : count > 0 ? (
          `${count.toLocaleString()}${more ? '+' : ''} message${count === 1 ? '' : 's'}`
        ) : (
          ''
        )}
      </div>
    </div>
  );
}
