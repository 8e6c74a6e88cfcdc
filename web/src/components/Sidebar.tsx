import type { Folder, FolderCounts } from '../api/types';
import { folders, foldersError, foldersLoaded, me } from '../state/app';
import { adminSection } from '../state/ui';
import { setView, view, type AdminSection } from '../state/view';
import { formatFull } from '../lib/time';
import { focusList } from './MessageList';

function Counts({ c }: { c: FolderCounts }) {
  return (
    <span class="counts">
      <span class="count pending" data-count="pending">
        <b>{c.pending}</b> pending
      </span>
      <span class="count answered" data-count="answered">
        <b>{c.answered}</b> answered
      </span>
      <span class="count flagged" data-count="flagged">
        <b>{c.flagged}</b> flagged
      </span>
    </span>
  );
}

const SYNC_TEXT: Record<string, string> = {
  live: 'live',
  polling: 'polling',
  connecting: 'connecting',
  error: 'error',
};

function SyncBadge({ f }: { f: Folder }) {
  const state = f.sync?.state ?? 'connecting';
  const when = f.sync?.last_synced_at ? `last synced ${formatFull(f.sync.last_synced_at)}` : 'not synced yet';
  return (
    <span class={`sync sync-${state}`} data-sync={state} title={`IMAP sync: ${state}, ${when}`}>
      <span class="sr-only">sync </span>
      {SYNC_TEXT[state] ?? state}
    </span>
  );
}

function sum(list: Folder[]): FolderCounts {
  const c: FolderCounts = { total: 0, pending: 0, answered: 0, flagged: 0, deleted: 0 };
  for (const f of list) {
    c.total += f.counts.total;
    c.pending += f.counts.pending;
    c.answered += f.counts.answered;
    c.flagged += f.counts.flagged;
    c.deleted += f.counts.deleted;
  }
  return c;
}

const ADMIN_SECTIONS: Array<[AdminSection, string]> = [
  ['webhooks', 'Webhooks'],
  ['tokens', 'Integration tokens'],
];

/** Opens an admin section and moves focus to its heading (rendered by the shell at once). */
export function openAdmin(section: AdminSection): void {
  setView({ admin: section });
  requestAnimationFrame(() => document.getElementById('admin-title')?.focus());
}

export function Sidebar() {
  const list = folders.value;
  const section = adminSection.value;
  // On an admin screen no folder is the current page.
  const current = section ? undefined : view.value.folder;
  const pick = (id: string | null) => {
    if (section) {
      setView({ folder: id, admin: null, ...(id !== view.value.folder ? { selected: null, open: false } : {}) });
      // The list mounts with this render: focus it once it is there.
      requestAnimationFrame(() => document.getElementById('message-list')?.focus({ preventScroll: true }));
      return;
    }
    if (id !== view.value.folder) setView({ folder: id, selected: null, open: false });
    // Straight on to the list, so j / k / Enter work at once.
    focusList();
  };
  return (
    <div class="sidebar">
      <nav aria-label="Folders">
        <h2 class="side-title">Folders</h2>
        {foldersError.value && (
          <p class="banner error small" role="alert">
            Folders could not be loaded: {foldersError.value}
          </p>
        )}
        {!foldersLoaded.value && !foldersError.value && <p class="muted pad">Loading folders…</p>}
        {foldersLoaded.value && list.length === 0 && (
          <p class="muted pad">No shared folder is readable with your account.</p>
        )}
        <ul class="folders">
          {list.length > 1 && (
            <li>
              <button
                type="button"
                class="folder"
                data-folder-id=""
                aria-current={current === null ? 'page' : undefined}
                onClick={() => pick(null)}
              >
                <span class="folder-name">All folders</span>
                <Counts c={sum(list)} />
              </button>
            </li>
          )}
          {list.map((f) => (
            <li key={f.id}>
              <button
                type="button"
                class="folder"
                data-folder-id={f.id}
                data-imap-name={f.imap_name}
                aria-current={current === f.id ? 'page' : undefined}
                onClick={() => pick(f.id)}
              >
                <span class="folder-row">
                  <span class="folder-name" title={f.imap_name}>
                    {f.name}
                  </span>
                  <SyncBadge f={f} />
                </span>
                <Counts c={f.counts} />
                {f.sync?.state === 'error' && f.sync.error && (
                  <span class="sync-reason" data-sync-error="">
                    {f.sync.error}
                  </span>
                )}
              </button>
            </li>
          ))}
        </ul>
      </nav>
      {me.value?.admin && (
        <nav class="admin-nav" aria-label="Administration">
          <h2 class="side-title">Administration</h2>
          <ul class="folders">
            {ADMIN_SECTIONS.map(([id, label]) => (
              <li key={id}>
                <button
                  type="button"
                  class="nav-item"
                  data-admin-section={id}
                  aria-current={section === id ? 'page' : undefined}
                  onClick={() => openAdmin(id)}
                >
                  <span class="folder-name">{label}</span>
                </button>
              </li>
            ))}
          </ul>
        </nav>
      )}
    </div>
  );
}
