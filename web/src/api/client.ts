/**
 * Thin fetch wrapper over `/api/v1`: same-origin cookie auth (never a stored token),
 * problem+json errors surfaced as ApiError with the server's `detail`, and one hook that fires
 * on any 401 so the app can show the login form without dropping its view state.
 */
import type {
  Acl,
  Delivery,
  DeliveryList,
  FlagpostEvent,
  Folder,
  FolderList,
  Me,
  Message,
  MessageDetail,
  MessagePage,
  MessagePatch,
  Ping,
  Problem,
  SessionResponse,
  SortOrder,
  StatusFilter,
  TokenCreate,
  TokenCreated,
  TokenList,
  Webhook,
  WebhookCreate,
  WebhookCreated,
  WebhookList,
  WebhookPatch,
} from './types';

export const BASE = '/api/v1';

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem | null;
  readonly retryAfter: number | null;
  constructor(status: number, problem: Problem | null, message: string, retryAfter: number | null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

let onUnauthorized: (() => void) | null = null;
/** Called on any 401 outside the login call itself (expired or revoked session). */
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

interface RequestOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Do not treat 401 as "session expired" (login form). */
  allow401?: boolean;
}

async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers };
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(BASE + path, {
      method: opts.method ?? 'GET',
      headers,
      body,
      credentials: 'same-origin',
      cache: 'no-store',
      signal: opts.signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, null, 'Flagpost cannot be reached. Check your connection and try again.', null);
  }
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('Content-Type') ?? '';
  const isJson = type.includes('json');
  const payload: unknown = isJson ? await res.json().catch(() => null) : await res.text().catch(() => '');
  if (res.ok) return payload as T;

  const problem = isJson && payload && typeof payload === 'object' ? (payload as Problem) : null;
  const retry = Number(res.headers.get('Retry-After'));
  const message =
    problem?.detail || problem?.title || (typeof payload === 'string' && payload.trim()) || `${res.status} ${res.statusText}`;
  const err = new ApiError(res.status, problem, String(message), Number.isFinite(retry) && retry > 0 ? retry : null);
  if (res.status === 401 && !opts.allow401) onUnauthorized?.();
  throw err;
}

export interface MessageQuery {
  folder?: string | null;
  status?: StatusFilter;
  flagged?: boolean | null;
  q?: string;
  sort?: SortOrder;
  limit?: number;
  cursor?: string | null;
}

/** Builds the query string with exactly the parameters the API knows (unknown ones are a 400). */
export function messageQueryString(q: MessageQuery): string {
  const p = new URLSearchParams();
  if (q.folder) p.append('folder', q.folder);
  if (q.status) p.set('status', q.status);
  if (q.flagged !== null && q.flagged !== undefined) p.set('flagged', String(q.flagged));
  if (q.q && q.q.trim()) p.set('q', q.q.trim());
  if (q.sort) p.set('sort', q.sort);
  if (q.limit) p.set('limit', String(q.limit));
  if (q.cursor) p.set('cursor', q.cursor);
  return p.toString();
}

const enc = encodeURIComponent;

export const api = {
  login: (username: string, password: string) =>
    request<SessionResponse>('/session', { method: 'POST', body: { username, password }, allow401: true }),
  logout: () => request<void>('/session', { method: 'DELETE', allow401: true }),
  me: (allow401 = true) => request<Me>('/me', { allow401 }),
  folders: () => request<FolderList>('/folders'),
  folder: (id: string) => request<Folder>(`/folders/${enc(id)}`),
  messages: (q: MessageQuery, signal?: AbortSignal) =>
    request<MessagePage>(`/messages?${messageQueryString(q)}`, { signal }),
  message: (id: string, signal?: AbortSignal) => request<MessageDetail>(`/messages/${enc(id)}`, { signal }),
  patchMessage: (id: string, etag: string, patch: MessagePatch) =>
    request<Message>(`/messages/${enc(id)}`, { method: 'PATCH', body: patch, headers: { 'If-Match': etag } }),
  acl: (folderId: string) => request<Acl>(`/folders/${enc(folderId)}/acl`),
  setAcl: (folderId: string, identifier: string, rights: string) =>
    request<unknown>(`/folders/${enc(folderId)}/acl/${enc(identifier)}`, { method: 'PUT', body: { rights } }),
  deleteAcl: (folderId: string, identifier: string) =>
    request<unknown>(`/folders/${enc(folderId)}/acl/${enc(identifier)}`, { method: 'DELETE' }),
  events: (after: string | number, limit = 500) =>
    request<{ events: FlagpostEvent[]; next_after: number | string }>(
      `/events?after=${enc(String(after))}&limit=${limit}`,
    ),
  // Service admins only (the admin area).
  webhooks: () => request<WebhookList>('/webhooks'),
  createWebhook: (body: WebhookCreate) => request<WebhookCreated>('/webhooks', { method: 'POST', body }),
  patchWebhook: (id: string, body: WebhookPatch) => request<Webhook>(`/webhooks/${enc(id)}`, { method: 'PATCH', body }),
  deleteWebhook: (id: string) => request<void>(`/webhooks/${enc(id)}`, { method: 'DELETE' }),
  deliveries: (id: string) => request<DeliveryList>(`/webhooks/${enc(id)}/deliveries`),
  replay: (id: string, deliveryId: string) =>
    request<Delivery>(`/webhooks/${enc(id)}/deliveries/${enc(deliveryId)}/replay`, { method: 'POST' }),
  ping: (id: string) => request<Ping>(`/webhooks/${enc(id)}/ping`, { method: 'POST' }),
  tokens: () => request<TokenList>('/tokens'),
  createToken: (body: TokenCreate) => request<TokenCreated>('/tokens', { method: 'POST', body }),
  revokeToken: (id: string) => request<void>(`/tokens/${enc(id)}`, { method: 'DELETE' }),
};
