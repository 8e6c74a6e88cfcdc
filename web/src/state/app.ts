/** Session, folders and notices: the app-wide state. */
import { computed, signal } from '@preact/signals';
import { api, ApiError, setUnauthorizedHandler } from '../api/client';
import type { Folder, Me } from '../api/types';

export type AuthState = 'checking' | 'anonymous' | 'expired' | 'authenticated';

export const auth = signal<AuthState>('checking');
export const me = signal<Me | null>(null);

export const folders = signal<Folder[]>([]);
export const foldersLoaded = signal(false);
export const foldersError = signal<string | null>(null);
export const folderById = computed(() => new Map(folders.value.map((f) => [f.id, f])));

export interface Notice {
  id: number;
  kind: 'info' | 'success' | 'error' | 'warning';
  text: string;
}
export const notices = signal<Notice[]>([]);
let noticeSeq = 0;
export function notify(kind: Notice['kind'], text: string, ms = kind === 'error' || kind === 'warning' ? 9000 : 4000): void {
  const id = ++noticeSeq;
  notices.value = [...notices.value.slice(-3), { id, kind, text }];
  setTimeout(() => dismiss(id), ms);
}
export function dismiss(id: number): void {
  notices.value = notices.value.filter((n) => n.id !== id);
}

const sessionListeners: Array<(s: AuthState) => void> = [];
export function onAuthChange(fn: (s: AuthState) => void): void {
  sessionListeners.push(fn);
}
function setAuth(s: AuthState): void {
  if (auth.value === s) return;
  auth.value = s;
  for (const fn of sessionListeners) fn(s);
}

setUnauthorizedHandler(() => {
  if (auth.value === 'authenticated') setAuth('expired');
});

export async function checkSession(): Promise<void> {
  try {
    me.value = await api.me(true);
    setAuth('authenticated');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) setAuth('anonymous');
    else {
      // Server unreachable: show the login form with the reason rather than a blank page.
      setAuth('anonymous');
      notify('error', (e as Error).message);
    }
  }
}

let expiryTimer: ReturnType<typeof setTimeout> | null = null;
/** Ask the server once the session should have ended: a 401 then shows the login form. */
function watchExpiry(expiresAt: string | null): void {
  if (expiryTimer) clearTimeout(expiryTimer);
  expiryTimer = null;
  const ms = expiresAt ? Date.parse(expiresAt) - Date.now() + 1000 : NaN;
  if (Number.isFinite(ms) && ms > 0 && ms < 2 ** 31 - 1) expiryTimer = setTimeout(verifySession, ms);
}
function verifySession(): void {
  if (auth.value === 'authenticated') api.me(false).catch(() => {});
}
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') verifySession();
});

export async function login(username: string, password: string): Promise<void> {
  const res = await api.login(username, password);
  watchExpiry(res.expires_at);
  me.value = { username: res.user.username, admin: res.user.admin, scopes: [] };
  // /me carries scopes; not needed to proceed, so fetch it without blocking the first paint.
  api.me(true).then((m) => (me.value = m), () => {});
  setAuth('authenticated');
}

export async function logout(): Promise<void> {
  try {
    await api.logout();
  } catch {
    /* the session may already be gone; logging out locally is what matters */
  }
  watchExpiry(null);
  me.value = null;
  folders.value = [];
  foldersLoaded.value = false;
  setAuth('anonymous');
}

let foldersTimer: ReturnType<typeof setTimeout> | null = null;
let foldersInFlight: Promise<void> | null = null;
let foldersAgain = false;

export function loadFolders(): Promise<void> {
  if (foldersInFlight) {
    foldersAgain = true;
    return foldersInFlight;
  }
  foldersInFlight = (async () => {
    try {
      const res = await api.folders();
      folders.value = res.folders;
      foldersError.value = null;
      foldersLoaded.value = true;
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) foldersError.value = (e as Error).message;
    } finally {
      foldersInFlight = null;
      if (foldersAgain) {
        foldersAgain = false;
        void loadFolders();
      }
    }
  })();
  return foldersInFlight;
}

/** Counts follow events: refetch /folders, coalescing bursts. */
export function scheduleFolders(delay = 250): void {
  if (foldersTimer) return;
  foldersTimer = setTimeout(() => {
    foldersTimer = null;
    void loadFolders();
  }, delay);
}
