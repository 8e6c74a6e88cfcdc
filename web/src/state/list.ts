/**
 * The message list: keyset-paged from /messages, kept current by events.
 *
 * With the default status filter ("pending + answered") the list is two keyset segments
 * queried one after the other, pending first, so the work still to do is always on top.
 * Rows are only ever a loaded prefix of the full ordering; a live message that sorts past the
 * loaded prefix is left for paging to bring (paging dedupes by id), one that sorts inside it is
 * inserted in place and counted in the "N new" marker.
 */
import { computed, signal } from '@preact/signals';
import { api, ApiError } from '../api/client';
import type { FlagpostEvent, Message, MessageStatus, MessageUpdatedData } from '../api/types';
import { view } from './view';

/** First page small, so the first paint after login is fast even in a 10k-message folder. */
const FIRST_PAGE = 100;
const PAGE = 500;

interface Segment {
  status: MessageStatus;
  cursor: string | null;
  done: boolean;
}

export const rows = signal<Message[]>([]);
export const listLoading = signal(false);
export const listLoadingMore = signal(false);
export const listError = signal<string | null>(null);
export const hasMore = signal(false);
export const newIds = signal<ReadonlySet<string>>(new Set());
export const newCount = computed(() => newIds.value.size);
/** Rows whose etag is outdated (changed by an event): refetched before acting on them. */
export const staleIds = new Set<string>();
/** Bumped on every reload: the list view scrolls back to the top. */
export const listVersion = signal(0);

let segments: Segment[] = [];
let generation = 0;
let abort: AbortController | null = null;
/** Events received while the first page is loading, replayed on top of it. */
let queued: FlagpostEvent[] | null = null;
let queryKey = '';

interface Query {
  folder: string | null;
  status: 'any' | MessageStatus;
  flagged: boolean | null;
  q: string;
  sort: 'oldest' | 'newest';
}

function currentQuery(): Query {
  const v = view.value;
  return { folder: v.folder, status: v.status, flagged: v.flagged, q: v.q.trim(), sort: v.sort };
}

export function keyOf(q: Query): string {
  return JSON.stringify(q);
}

/** Reloads when the folder or a filter changed (or when forced: resync, reset, re-login). */
export function reloadIfChanged(): Promise<void> {
  const k = keyOf(currentQuery());
  return k !== queryKey ? reload() : Promise.resolve();
}

export async function reload(): Promise<void> {
  const q = currentQuery();
  queryKey = keyOf(q);
  generation++;
  moreInFlight = null;
  listLoadingMore.value = false;
  abort?.abort();
  abort = new AbortController();
  const statuses: MessageStatus[] = q.status === 'any' ? ['pending', 'answered'] : [q.status];
  segments = statuses.map((status) => ({ status, cursor: null, done: false }));
  queued = [];
  staleIds.clear();
  newIds.value = new Set();
  listError.value = null;
  listLoading.value = true;
  hasMore.value = true;
  listVersion.value++;
  const gen = generation;
  const page = await fetchNext(gen, FIRST_PAGE, true);
  if (gen !== generation) return;
  listLoading.value = false;
  if (page === null) {
    queued = null;
    return;
  }
  rows.value = page;
  const replay = queued ?? [];
  queued = null;
  for (const ev of replay) applyEvent(ev);
}

/** Fetches the next non-empty page across segments; null on error. */
async function fetchNext(gen: number, limit: number, first: boolean): Promise<Message[] | null> {
  const q = currentQuery();
  const out: Message[] = [];
  try {
    for (const seg of segments) {
      if (seg.done) continue;
      const res = await api.messages(
        { folder: q.folder, status: seg.status, flagged: q.flagged, q: q.q, sort: q.sort, limit, cursor: seg.cursor },
        abort?.signal,
      );
      if (gen !== generation) return null;
      seg.cursor = res.next_cursor ?? null;
      seg.done = !res.next_cursor;
      out.push(...res.messages);
      if (out.length > 0 && !(first && seg.done && out.length < limit)) break;
    }
  } catch (e) {
    if ((e as Error).name === 'AbortError' || gen !== generation) return null;
    if (!(e instanceof ApiError && e.status === 401)) listError.value = (e as Error).message;
    listLoading.value = false;
    return null;
  }
  hasMore.value = segments.some((s) => !s.done);
  return out;
}

let moreInFlight: Promise<void> | null = null;

/** Loads the next page; concurrent callers share the request in flight. */
export function loadMore(): Promise<void> {
  if (moreInFlight) return moreInFlight;
  if (listLoading.value || !hasMore.value || listError.value) return Promise.resolve();
  const gen = generation;
  listLoadingMore.value = true;
  moreInFlight = (async () => {
    try {
      const page = await fetchNext(gen, PAGE, false);
      if (gen !== generation || !page || page.length === 0) return;
      const have = new Set(rows.value.map((m) => m.id));
      const fresh = page.filter((m) => !have.has(m.id));
      if (fresh.length) rows.value = rows.value.concat(fresh);
    } finally {
      if (gen === generation) listLoadingMore.value = false;
      moreInFlight = null;
    }
  })();
  return moreInFlight;
}

export function retry(): void {
  listError.value = null;
  if (rows.value.length === 0) void reload();
  else void loadMore();
}

// --- ordering and filters --------------------------------------------------------------------

function rank(m: Message, q: Query): number {
  return q.status === 'any' && m.status !== 'pending' ? 1 : 0;
}

function cmpId(a: string, b: string): number {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
  return a < b ? -1 : a > b ? 1 : 0;
}

function compare(a: Message, b: Message, q: Query): number {
  const r = rank(a, q) - rank(b, q);
  if (r) return r;
  const ta = Date.parse(a.received_at);
  const tb = Date.parse(b.received_at);
  const t = q.sort === 'oldest' ? ta - tb : tb - ta;
  if (t) return t;
  return q.sort === 'oldest' ? cmpId(a.id, b.id) : cmpId(b.id, a.id);
}

function statusMatches(status: MessageStatus, q: Query): boolean {
  return q.status === 'any' ? status !== 'deleted' : status === q.status;
}

export function matches(m: Message, q: Query = currentQuery()): boolean {
  if (q.folder && m.folder_id !== q.folder) return false;
  if (!statusMatches(m.status, q)) return false;
  if (q.flagged !== null && m.flagged !== q.flagged) return false;
  if (q.q) {
    const needle = q.q.toLowerCase();
    const hay = `${m.subject ?? ''}\n${m.from?.name ?? ''}\n${m.from?.address ?? ''}`.toLowerCase();
    if (!hay.includes(needle)) return false;
  }
  return true;
}

// --- live changes ----------------------------------------------------------------------------

export function indexOf(id: string | null): number {
  if (!id) return -1;
  const list = rows.value;
  for (let i = 0; i < list.length; i++) if (list[i].id === id) return i;
  return -1;
}

/** Replaces a row with a fresher copy of the message (after PATCH or a reload of it). */
export function replaceMessage(m: Message): void {
  const i = indexOf(m.id);
  staleIds.delete(m.id);
  if (i < 0) return;
  const next = rows.value.slice();
  next[i] = m;
  rows.value = next;
}

function insertLive(m: Message, markNew: boolean): void {
  const q = currentQuery();
  if (!matches(m, q)) return;
  const list = rows.value;
  const existing = indexOf(m.id);
  if (existing >= 0) {
    replaceMessage(m);
    return;
  }
  let pos = list.length;
  for (let i = list.length - 1; i >= 0; i--) {
    if (compare(m, list[i], q) >= 0) break;
    pos = i;
  }
  const seg = segments.find((s) => s.status === m.status);
  const laterSegmentsLoaded = list.slice(pos).some((r) => rank(r, q) > rank(m, q));
  const beyond = pos === list.length && seg && !seg.done && !laterSegmentsLoaded;
  if (!beyond) {
    const next = list.slice();
    next.splice(pos, 0, m);
    rows.value = next;
  } // else: past the loaded prefix; paging brings it (still counted as new below)
  if (markNew) {
    const s = new Set(newIds.value);
    s.add(m.id);
    newIds.value = s;
  }
}

function removeRow(id: string): void {
  clearNew([id]);
  staleIds.delete(id);
  const i = indexOf(id);
  if (i < 0) return;
  const next = rows.value.slice();
  next.splice(i, 1);
  rows.value = next;
}

export function applyEvent(ev: FlagpostEvent): void {
  if (queued) {
    queued.push(ev);
    return;
  }
  const q = currentQuery();
  const data = (ev.data ?? {}) as Record<string, unknown>;
  switch (ev.type) {
    case 'message.added': {
      const m = data.message as Message | undefined;
      if (m) insertLive(m, true);
      break;
    }
    case 'message.updated': {
      const id = ev.message_id;
      const d = data as unknown as MessageUpdatedData;
      if (!id || !d.after) break;
      const i = indexOf(id);
      if (i >= 0) {
        const next = rows.value.slice();
        next[i] = { ...next[i], flags: d.after.flags, status: d.after.status, flagged: d.after.flagged, seen: d.after.seen };
        rows.value = next;
        staleIds.add(id);
      } else if (
        (!q.folder || ev.folder_id === q.folder) &&
        statusMatches(d.after.status, q) &&
        (q.flagged === null || d.after.flagged === q.flagged)
      ) {
        // It now belongs in this view (e.g. unanswered again): fetch it and place it.
        const gen = generation;
        api.message(id).then(
          (m) => gen === generation && insertLive(m, true),
          () => {},
        );
      }
      break;
    }
    case 'message.removed':
      if (ev.message_id) removeRow(ev.message_id);
      break;
    case 'folder.reset':
    case 'folder.removed':
      if (!q.folder || q.folder === ev.folder_id) void reload();
      break;
    case 'folder.added':
      if (!q.folder) void reload();
      break;
    case 'resync':
      void reload();
      break;
  }
}

export function clearNew(ids?: Iterable<string>): void {
  if (!ids) {
    if (newIds.value.size) newIds.value = new Set();
    return;
  }
  const s = new Set(newIds.value);
  let changed = false;
  for (const id of ids) changed = s.delete(id) || changed;
  if (changed) newIds.value = s;
}

export function firstNewIndex(): number {
  const ids = newIds.value;
  if (!ids.size) return -1;
  return rows.value.findIndex((m) => ids.has(m.id));
}

/** Index of the first new row, loading further pages when new ones lie past what is loaded. */
export async function loadToFirstNew(): Promise<number> {
  for (let pages = 0; pages < 100; pages++) {
    const i = firstNewIndex();
    if (i >= 0 || !hasMore.value || !newIds.value.size) return i;
    await loadMore();
    if (listError.value) return -1;
  }
  return firstNewIndex();
}
