import './styles.css';
import { effect, signal } from '@preact/signals';
import { render } from 'preact';
import { App } from './components/App';
import { installKeyboard } from './keyboard';
import { auth, checkSession, folders, foldersLoaded, loadFolders, notify, onAuthChange } from './state/app';
import { closeDetail, detail, loadDetail } from './state/detail';
import { hasMore, indexOf, loadMore, reload, reloadIfChanged, rows } from './state/list';
import { scrollToIndex } from './components/MessageList';
import { startLive, stopLive } from './state/live';
import { folderFromUrl, setView, view } from './state/view';
import { aclOpen, helpOpen } from './state/ui';

let firstFolders = true;
/** True once the lists of this login are loaded; until then the view effect leaves them alone. */
const ready = signal(false);

async function enter(): Promise<void> {
  ready.value = false;
  const hadDetail = detail.peek()?.id ?? null;
  // Stream first: events that arrive while the lists load are queued and replayed on top.
  startLive();
  // A folder already chosen (in the URL, or kept across a re-login) loads its list alongside
  // the folders rather than after them: one round trip less before the first rows.
  const early = view.peek().folder ? reload() : null;
  await loadFolders();
  if (auth.value !== 'authenticated') return;
  const list = folders.value;
  const v = view.value;
  if (firstFolders && !folderFromUrl && !v.folder && list.length === 1) setView({ folder: list[0].id });
  firstFolders = false;
  if (early) {
    await early;
    // The folder may have turned out unavailable (the view then changed): load what is shown now.
    await reloadIfChanged();
  } else await reload();
  ready.value = true; // the view effect loads the detail of a selected, open message
  if (hadDetail && detail.peek()?.id === hadDetail) void loadDetail(hadDetail, true);
  // Back to the selected row (after a reload or a re-login), paging to it if need be.
  const sel = view.value.selected;
  if (sel) {
    for (let i = 0; i < 20 && indexOf(sel) < 0 && hasMore.value; i++) await loadMore();
    requestAnimationFrame(() => scrollToIndex(indexOf(sel)));
  }
}

onAuthChange((s) => {
  if (s === 'authenticated') void enter();
  else if (s === 'expired') {
    // Keep everything (folder, filters, selection, loaded rows) for after the new login.
    ready.value = false;
    stopLive(false);
    helpOpen.value = false;
    aclOpen.value = false;
  } else if (s === 'anonymous') {
    ready.value = false;
    stopLive(true);
    rows.value = [];
    closeDetail();
    helpOpen.value = false;
    aclOpen.value = false;
  }
});

// Folder or filter changed: reload the list. Selection opened: load its detail.
effect(() => {
  const v = view.value;
  if (auth.value !== 'authenticated' || !ready.value) return;
  void reloadIfChanged();
  if (v.open && v.selected) {
    if (detail.peek()?.id !== v.selected) void loadDetail(v.selected);
  } else if (detail.peek()) closeDetail();
});

// The current folder disappeared (removed, or access revoked).
effect(() => {
  const f = view.value.folder;
  if (!foldersLoaded.value || !f) return;
  if (!folders.value.some((x) => x.id === f)) {
    notify('warning', 'That folder is not available (removed, or you no longer have access).');
    setView({ folder: null, selected: null, open: false });
  }
});

installKeyboard();
render(<App />, document.getElementById('app')!);
void checkSession();
