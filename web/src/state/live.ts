/**
 * The one live stream per tab: EventSource on /api/v1/events/stream.
 *
 * While the stream is merely interrupted, EventSource reconnects by itself and resends
 * Last-Event-ID. When it gives up (CLOSED: a non-200 answer, e.g. while the server restarts,
 * or an expired session) we check the session, then open a new stream with `?after=<last id>`
 * so the server replays what we missed. Event ids strictly increase, so replays that overlap
 * what was already applied are dropped by id. If no id was ever seen, a reconnect cannot say
 * where it left off: the lists are reloaded instead.
 */
import { signal } from '@preact/signals';
import { api, ApiError, BASE } from '../api/client';
import type { FlagpostEvent } from '../api/types';
import { auth, scheduleFolders } from './app';
import { applyDetailEvent } from './detail';
import { applyEvent, reload } from './list';

export type LiveState = 'off' | 'connecting' | 'live' | 'reconnecting';
export const liveState = signal<LiveState>('off');
/** When the stream was last interrupted (for the indicator's text). */
export const liveSince = signal<number | null>(null);

const TYPES = [
  'message.added',
  'message.updated',
  'message.removed',
  'folder.added',
  'folder.removed',
  'folder.reset',
  'folder.acl_changed',
  'folder.sync_changed',
  'resync',
];

let es: EventSource | null = null;
let lastId: string | null = null;
let everOpened = false;
let hadError = false;
let retryTimer: ReturnType<typeof setTimeout> | null = null;
let backoff = 500;

type Listener = (ev: FlagpostEvent) => void;
const listeners: Listener[] = [];
/** Extra consumers (e.g. the ACL editor) subscribe here. */
export function onLiveEvent(fn: Listener): () => void {
  listeners.push(fn);
  return () => {
    const i = listeners.indexOf(fn);
    if (i >= 0) listeners.splice(i, 1);
  };
}

function newer(id: string, than: string | null): boolean {
  if (than === null) return true;
  if (/^\d+$/.test(id) && /^\d+$/.test(than)) return id.length > than.length || (id.length === than.length && id > than);
  return id !== than;
}

function handle(e: MessageEvent<string>): void {
  let ev: FlagpostEvent;
  try {
    ev = JSON.parse(e.data) as FlagpostEvent;
  } catch {
    return;
  }
  if (!ev.type) ev.type = e.type;
  const id = e.lastEventId || (ev.id !== undefined && ev.id !== null ? String(ev.id) : '');
  if (id) {
    if (!newer(id, lastId)) return; // already applied (replay after a reconnect)
    lastId = id;
  }
  dispatch(ev);
}

function dispatch(ev: FlagpostEvent): void {
  applyEvent(ev);
  applyDetailEvent(ev);
  scheduleFolders();
  for (const fn of listeners) fn(ev);
}

function open(): void {
  close(false);
  const url = `${BASE}/events/stream${lastId ? `?after=${encodeURIComponent(lastId)}` : ''}`;
  const src = new EventSource(url, { withCredentials: true });
  es = src;
  liveState.value = everOpened ? 'reconnecting' : 'connecting';
  src.onopen = () => {
    if (es !== src) return;
    const resumed = hadError;
    hadError = false;
    everOpened = true;
    backoff = 500;
    liveState.value = 'live';
    liveSince.value = null;
    // Counts may have changed before the stream opened. At first open the folders are still
    // loading: refresh them a little later, off the path to the first rows.
    scheduleFolders(resumed ? 0 : 250);
    // Without an event id the server cannot replay the gap: reload instead.
    if (resumed && lastId === null) void reload();
  };
  src.onerror = () => {
    if (es !== src) return;
    hadError = true;
    liveSince.value ??= Date.now();
    liveState.value = 'reconnecting';
    if (src.readyState === EventSource.CLOSED) scheduleReopen();
  };
  src.onmessage = handle;
  for (const t of TYPES) src.addEventListener(t, handle as EventListener);
}

function scheduleReopen(): void {
  if (retryTimer) return;
  const delay = backoff;
  backoff = Math.min(backoff * 2, 10_000);
  retryTimer = setTimeout(async () => {
    retryTimer = null;
    if (auth.value !== 'authenticated') return;
    try {
      await api.me(false); // a 401 here switches the app to the login form
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      // server still down: try again later
      scheduleReopen();
      return;
    }
    open();
  }, delay);
}

export function startLive(): void {
  if (es) return;
  open();
}

function close(reset: boolean): void {
  if (retryTimer && reset) {
    clearTimeout(retryTimer);
    retryTimer = null;
  }
  if (es) {
    es.onopen = es.onerror = es.onmessage = null;
    es.close();
    es = null;
  }
  if (reset) liveState.value = 'off';
}

/** Stops the stream (logout, expired session); `forget` also drops the resume position. */
export function stopLive(forget: boolean): void {
  close(true);
  if (forget) {
    lastId = null;
    everOpened = false;
  } else {
    hadError = true;
  }
}

document.addEventListener('visibilitychange', () => {
  // A tab woken from sleep may hold a dead stream; EventSource notices late, nudge it.
  if (document.visibilityState === 'visible' && es && es.readyState === EventSource.CLOSED) scheduleReopen();
});
