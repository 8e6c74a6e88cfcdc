import { useEffect } from 'preact/hooks';
import { has } from '../lib/rights';
import { auth, folderById, logout, me } from '../state/app';
import { detail } from '../state/detail';
import { view } from '../state/view';
import { aclOpen, helpOpen } from '../state/ui';
import { AclDialog } from './AclDialog';
import { Detail } from './Detail';
import { HelpDialog } from './HelpDialog';
import { LiveIndicator, NewBar } from './Live';
import { Login } from './Login';
import { MessageList } from './MessageList';
import { Notices } from './Notices';
import { Sidebar } from './Sidebar';
import { Toolbar } from './Toolbar';

function Shell() {
  const v = view.value;
  const folder = v.folder ? folderById.value.get(v.folder) : undefined;
  const title = folder ? folder.name : 'All folders';
  const canAdmin = !!folder && has(folder.my_rights, 'a');
  const user = me.value;
  useEffect(() => {
    document.title = `${title} — Flagpost`;
  }, [title]);
  return (
    <div class={`shell${v.open && detail.value ? ' with-detail' : ''}`}>
      <a class="skip" href="#message-list">
        Skip to messages
      </a>
      <header class="topbar">
        <span class="logo" aria-hidden="true">
          <svg viewBox="0 0 32 32" width="24" height="24">
            <rect width="32" height="32" rx="7" fill="#1d4ed8" />
            <path d="M10 6v20" stroke="#fff" stroke-width="3" stroke-linecap="round" />
            <path d="M11 7h12l-3 5 3 5H11z" fill="#fbbf24" />
          </svg>
        </span>
        <h1 class="app-name">Flagpost</h1>
        <LiveIndicator />
        <span class="spacer" />
        <span class="user" data-username={user?.username}>
          <span class="sr-only">Signed in as </span>
          {user?.username}
          {user?.admin && <span class="tag">admin</span>}
        </span>
        <button type="button" class="btn ghost" onClick={() => (helpOpen.value = true)} aria-keyshortcuts="?">
          Shortcuts <kbd aria-hidden="true">?</kbd>
        </button>
        <button type="button" class="btn ghost" onClick={() => void logout()} data-testid="logout">
          Sign out
        </button>
      </header>
      <Sidebar />
      <main class="main" id="main">
        <Toolbar title={title} onAcl={canAdmin ? () => (aclOpen.value = true) : null} />
        <NewBar />
        <MessageList label={`Messages in ${title}`} />
      </main>
      {v.open && detail.value && <Detail />}
      {helpOpen.value && <HelpDialog onClose={() => (helpOpen.value = false)} />}
      {aclOpen.value && folder && canAdmin && <AclDialog folder={folder} onClose={() => (aclOpen.value = false)} />}
    </div>
  );
}

export function App() {
  const a = auth.value;
  return (
    <>
      {a === 'checking' ? (
        <main class="splash" id="main" aria-busy="true">
          <p class="muted">Loading Flagpost…</p>
        </main>
      ) : a === 'authenticated' ? (
        <Shell />
      ) : (
        <Login expired={a === 'expired'} />
      )}
      <Notices />
    </>
  );
}
