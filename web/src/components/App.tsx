import { signal } from '@preact/signals';
import { useEffect } from 'preact/hooks';
import { has } from '../lib/rights';
import { auth, folderById, logout, me } from '../state/app';
import { detail } from '../state/detail';
import { view, type AdminSection } from '../state/view';
import { aclOpen, adminSection, helpOpen } from '../state/ui';
import { AclDialog } from './AclDialog';
import { Detail } from './Detail';
import { HelpDialog } from './HelpDialog';
import { LiveIndicator, NewBar } from './Live';
import { Login } from './Login';
import { MessageList } from './MessageList';
import { Notices } from './Notices';
import { Sidebar } from './Sidebar';
import { Toolbar } from './Toolbar';

const ADMIN_TITLES: Record<AdminSection, string> = { webhooks: 'Webhooks', tokens: 'Integration tokens' };

// The admin area is its own chunk: only service admins ever download it.
type AdminModule = typeof import('./Admin');
const adminModule = signal<AdminModule | null>(null);
const adminLoadError = signal<string | null>(null);
let adminLoading: Promise<void> | null = null;
function loadAdmin(): void {
  adminLoading ??= import('./Admin').then(
    (m) => {
      adminModule.value = m;
      adminLoadError.value = null;
    },
    (e: Error) => {
      adminLoading = null;
      adminLoadError.value = `The admin screens could not be loaded (${e.message}). Reload the page to try again.`;
    },
  );
}

function AdminScreen({ section }: { section: AdminSection }) {
  useEffect(loadAdmin, []);
  const M = adminModule.value;
  return (
    <div class="admin" id="admin" data-admin={section}>
      <div class="toolbar">
        <h2 id="admin-title" class="folder-title" tabIndex={-1}>
          {ADMIN_TITLES[section]}
        </h2>
      </div>
      <div class="admin-body">
        {M ? (
          <M.AdminSectionView section={section} />
        ) : adminLoadError.value ? (
          <p class="banner error" role="alert">
            {adminLoadError.value}
          </p>
        ) : (
          <p class="muted">Loading…</p>
        )}
      </div>
    </div>
  );
}

function Shell() {
  const v = view.value;
  const section = adminSection.value;
  const folder = v.folder ? folderById.value.get(v.folder) : undefined;
  const title = section ? ADMIN_TITLES[section] : folder ? folder.name : 'All folders';
  const canAdmin = !section && !!folder && has(folder.my_rights, 'a');
  const user = me.value;
  const withDetail = !section && v.open && !!detail.value;
  useEffect(() => {
    document.title = `${title} — Flagpost`;
  }, [title]);
  // Service admins: fetch the admin chunk once the messages are on screen, so it opens at once.
  useEffect(() => {
    if (!user?.admin) return;
    const t = setTimeout(loadAdmin, 1500);
    return () => clearTimeout(t);
  }, [user?.admin]);
  return (
    <div class={`shell${withDetail ? ' with-detail' : ''}`}>
      <a class="skip" href={section ? '#admin-title' : '#message-list'}>
        {section ? 'Skip to the admin screen' : 'Skip to messages'}
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
        {section ? (
          <AdminScreen section={section} />
        ) : (
          <>
            <Toolbar title={title} onAcl={canAdmin ? () => (aclOpen.value = true) : null} />
            <NewBar />
            <MessageList label={`Messages in ${title}`} />
          </>
        )}
      </main>
      {withDetail && <Detail />}
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
