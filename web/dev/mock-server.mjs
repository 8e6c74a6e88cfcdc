#!/usr/bin/env node
// A stand-in for `flagpost serve` that follows docs/CONTRACT.md §5 closely enough to develop
// and test the dashboard without Dovecot or PostgreSQL: in-memory folders, messages, ACLs,
// sessions (cookie), the event log with SSE (Last-Event-ID / ?after=), and the test harness's
// control endpoint (POST /store, GET /flags, GET /acl, POST /restart-flagpost, GET /fixture,
// POST /receiver + GET /receiver/requests), plus mock-only POST /append and POST /expire-sessions.
// Service admins (`boss`) also get webhooks (signed deliveries with retries, ping, replay) and
// integration tokens.
//
//   node dev/mock-server.mjs [--port 8080] [--control-port 8081] [--big 10000] [--dist dist]
//
// Prints one JSON line {"url","control","users"} when listening. Not shipped; not the server.
import { createServer } from 'node:http';
import { readFileSync, existsSync, statSync } from 'node:fs';
import { join, extname, resolve } from 'node:path';
import { createHmac, randomBytes } from 'node:crypto';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const PORT = Number(args.port ?? process.env.PORT ?? 8080);
const CONTROL_PORT = Number(args['control-port'] ?? 0);
const BIG = Number(args.big ?? 10000);
const DIST = resolve(args.dist ?? new URL('../dist', import.meta.url).pathname);
const SESSION_TTL_MS = Number(process.env.MOCK_SESSION_TTL_MS ?? 8 * 3600_000);

const USERS = {
  agent: { username: 'agent', password: 'agent-pass', admin: false },
  reader: { username: 'reader', password: 'reader-pass', admin: false },
  // Holds `a` on the folders, like the real fixture's admin, but is no service admin.
  admin: { username: 'admin', password: 'admin-pass', admin: false },
  service_admin: { username: 'boss', password: 'boss-pass', admin: true },
};
const USER_BY_NAME = Object.fromEntries(Object.values(USERS).map((u) => [u.username, u]));
const ORDER = 'lrswipkxtea';

// ---------- data
let seq = 0;
const nextId = () => String(++seq);
let modseq = 1;
const folders = [];
const messages = new Map(); // id -> message
const events = [];
let eventSeq = 0;

const SUBJECTS = ['Cannot log in', 'Invoice question', 'Refund request', 'Password reset', 'Delivery delayed', 'Feature request', 'Bug report', 'Account locked', 'Change of address', 'Wrong item shipped'];
const NAMES = [['Ada Lovelace', 'ada@example.org'], ['Grace Hopper', 'grace@example.net'], ['Alan Turing', 'alan@example.com'], ['Linus T', 'linus@example.org'], ['Barbara Liskov', 'barbara@example.com'], ['Ken Thompson', null]];

function addFolder(name, imap_name, acl, count, opts = {}) {
  const f = { id: nextId(), name, imap_name, acl: { ...acl }, uidnext: 1, sync: { state: opts.sync ?? 'live', last_synced_at: new Date().toISOString(), error: opts.error ?? null } };
  folders.push(f);
  const now = Date.now();
  for (let i = 0; i < count; i++) {
    const age = ((count - i) / count) * (opts.spanMs ?? 3 * 86400_000) + 60_000;
    const flags = [];
    const r = (i * 7919) % 100;
    if (r < 35) flags.push('\\Answered');
    if (r % 9 === 0) flags.push('\\Flagged');
    if (r % 3 === 0) flags.push('\\Seen');
    makeMessage(f, {
      subject: `${SUBJECTS[i % SUBJECTS.length]} #${i + 1}`,
      from: NAMES[i % NAMES.length],
      received: new Date(now - age).toISOString(),
      flags,
    });
  }
  return f;
}

function statusOf(flags) {
  if (flags.includes('\\Deleted')) return 'deleted';
  if (flags.includes('\\Answered')) return 'answered';
  return 'pending';
}

function makeMessage(f, { subject, from, received, flags = [] }) {
  const uid = f.uidnext++;
  const id = nextId();
  const m = {
    id,
    folder_id: f.id,
    uid,
    message_id: `<${id}.${uid}@mock.example>`,
    subject,
    from: { name: from?.[0] ?? null, address: from?.[1] ?? null },
    to: [{ name: 'Support', address: 'support@example.com' }],
    date: received,
    received_at: received,
    size: 1000 + ((uid * 37) % 9000),
    flags: [...flags],
    status: statusOf(flags),
    flagged: flags.includes('\\Flagged'),
    seen: flags.includes('\\Seen'),
    etag: `"${modseq++}"`,
    first_seen_at: received,
    answered_at: flags.includes('\\Answered') ? new Date(Date.parse(received) + 1800_000).toISOString() : null,
    updated_at: received,
  };
  messages.set(id, m);
  return m;
}

const ACL = { agent: 'lrsw', reader: 'lr', admin: 'lrswipkxtea', 'flagpost': 'lra' };
addFolder('Queue', 'shared/support/Queue', ACL, 60);
addFolder('Billing', 'shared/support/Billing', ACL, 25, { sync: 'polling' });
addFolder('Big queue', 'shared/support/Big', ACL, BIG, { spanMs: 30 * 86400_000 });
addFolder('Escalations', 'shared/support/Escalations', { admin: 'lrswipkxtea', agent: 'lrs' }, 8, { sync: 'error', error: 'IMAP connection refused (retrying)' });

function rightsOf(user, f) {
  const acl = f.acl;
  let r = new Set();
  for (const [id, rights] of Object.entries(acl)) {
    if (id === user || id === 'anyone' || id === 'authenticated') for (const c of rights) r.add(c);
  }
  for (const [id, rights] of Object.entries(acl)) if (id === `-${user}`) for (const c of rights) r.delete(c);
  return [...ORDER].filter((c) => r.has(c)).join('');
}
const isAdmin = (user) => !!USER_BY_NAME[user]?.admin;
// Service admins read every watched folder (CONTRACT §2).
const canRead = (user, f) => { if (isAdmin(user)) return true; const r = rightsOf(user, f); return r.includes('l') && r.includes('r'); };

function counts(f) {
  const c = { total: 0, pending: 0, answered: 0, flagged: 0, deleted: 0 };
  for (const m of messages.values()) {
    if (m.folder_id !== f.id) continue;
    if (m.status === 'deleted') c.deleted++;
    else {
      c[m.status]++;
      if (m.flagged) c.flagged++;
    }
  }
  c.total = c.pending + c.answered;
  return c;
}
// Counts are cached per folder and invalidated on change (the big folder makes them costly).
const countCache = new Map();
const folderJson = (f, user) => {
  if (!countCache.has(f.id)) countCache.set(f.id, counts(f));
  return { id: f.id, name: f.name, imap_name: f.imap_name, counts: countCache.get(f.id), my_rights: rightsOf(user, f), sync: f.sync };
};

// ---------- events + SSE
const streams = new Set(); // {res, user}
function emit(type, folder_id, message_id, data) {
  const ev = { id: ++eventSeq, type, at: new Date().toISOString(), folder_id, message_id: message_id ?? null, data };
  events.push(ev);
  countCache.delete(folder_id);
  for (const s of streams) sendEvent(s, ev);
  queueWebhooks(ev);
  return ev;
}
function visible(user, ev) {
  const f = folders.find((x) => x.id === ev.folder_id);
  return !f || canRead(user, f);
}
function sendEvent(s, ev) {
  if (!visible(s.user, ev)) return;
  s.res.write(`id: ${ev.id}\nevent: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`);
}

function setFlags(m, flags, actor) {
  const before = [...m.flags];
  m.flags = [...new Set(flags)];
  const wasAnswered = before.includes('\\Answered');
  m.status = statusOf(m.flags);
  m.flagged = m.flags.includes('\\Flagged');
  m.seen = m.flags.includes('\\Seen');
  m.etag = `"${modseq++}"`;
  m.updated_at = new Date().toISOString();
  if (!wasAnswered && m.flags.includes('\\Answered')) m.answered_at = m.updated_at;
  if (!m.flags.includes('\\Answered')) m.answered_at = null;
  emit('message.updated', m.folder_id, m.id, { before: { flags: before }, after: { flags: m.flags, status: m.status, flagged: m.flagged, seen: m.seen }, actor });
}

// ---------- webhooks (Standard Webhooks signatures, retries, 410 disables) and tokens
const EVENT_TYPES = ['message.added', 'message.updated', 'message.removed', 'folder.added', 'folder.removed', 'folder.reset', 'folder.acl_changed', 'folder.sync_changed'];
const webhooks = new Map(); // id -> {…, secret, deliveries: []}
const tokens = new Map(); // id -> {…, secret}
const RETRY_MS = Number(process.env.MOCK_WEBHOOK_RETRY_MS ?? 500);
const hookJson = ({ secret: _s, deliveries: _d, ...w }) => w;
const deliveryJson = ({ event: _e, ...d }) => d;

async function post(hook, ev) {
  const body = JSON.stringify(ev);
  const ts = Math.floor(Date.now() / 1000);
  const key = Buffer.from(hook.secret.slice('whsec_'.length), 'base64');
  const sig = createHmac('sha256', key).update(`${ev.id}.${ts}.${body}`).digest('base64');
  const t0 = Date.now();
  try {
    const r = await fetch(hook.url, {
      method: 'POST',
      redirect: 'manual',
      signal: AbortSignal.timeout(5000),
      headers: { 'Content-Type': 'application/json', 'webhook-id': String(ev.id), 'webhook-timestamp': String(ts), 'webhook-signature': `v1,${sig}` },
      body,
    });
    const text = await r.text().catch(() => '');
    return { ok: r.status >= 200 && r.status < 300, status: r.status, body: text.slice(0, 1024), error: r.ok ? null : `HTTP ${r.status}`, ms: Date.now() - t0 };
  } catch (e) {
    return { ok: false, status: null, body: null, error: String(e.cause?.message ?? e.message), ms: Date.now() - t0 };
  }
}

async function attempt(hook, d) {
  if (!webhooks.has(hook.id) || !hook.enabled) return;
  const r = await post(hook, d.event);
  d.attempt++;
  d.at = new Date().toISOString();
  d.response_status = r.status;
  d.response_body = r.body;
  d.error = r.error;
  d.duration_ms = r.ms;
  if (r.ok) {
    d.status = 'delivered';
    d.next_attempt_at = null;
  } else if (r.status === 410) {
    d.status = 'failed';
    d.next_attempt_at = null;
    hook.enabled = false;
    hook.disabled_reason = 'the receiver answered 410 Gone';
  } else if (d.attempt >= 3) {
    d.status = 'failed';
    d.next_attempt_at = null;
  } else {
    const wait = RETRY_MS * 2 ** d.attempt;
    d.next_attempt_at = new Date(Date.now() + wait).toISOString();
    setTimeout(() => void attempt(hook, d), wait);
  }
}

function deliver(hook, ev) {
  const d = { id: nextId(), event_id: ev.id, attempt: 0, status: 'pending', response_status: null, response_body: null, error: null, duration_ms: null, at: null, next_attempt_at: new Date().toISOString(), event: ev };
  hook.deliveries.unshift(d);
  hook.deliveries.length = Math.min(hook.deliveries.length, 100);
  setTimeout(() => void attempt(hook, d), 20);
  return d;
}

function queueWebhooks(ev) {
  const f = folders.find((x) => x.id === ev.folder_id);
  for (const hook of webhooks.values()) {
    if (!hook.enabled || (hook.events && !hook.events.includes(ev.type))) continue;
    if (hook.folders && !hook.folders.includes(ev.folder_id)) continue;
    if (f && !canRead(hook.identity, f)) continue;
    deliver(hook, ev);
  }
}

async function adminApi(req, res, method, path, user) {
  if (!isAdmin(user)) return problem(res, 403, 'Forbidden', 'Only service admins manage webhooks and tokens.');
  let m;
  if (path === '/webhooks' && method === 'GET') return json(res, 200, { webhooks: [...webhooks.values()].map(hookJson) });
  if (path === '/webhooks' && method === 'POST') {
    const b = await body(req);
    if (!b || typeof b.url !== 'string') return problem(res, 400, 'Bad Request', 'url is required');
    let u;
    try { u = new URL(b.url); } catch { return problem(res, 400, 'Bad Request', `webhook URL refused: ${JSON.stringify(b.url)} is not a URL`); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return problem(res, 400, 'Bad Request', 'webhook URL refused: only http and https URLs are allowed');
    const bad = (b.events ?? []).find((e) => !EVENT_TYPES.includes(e));
    if (bad) return problem(res, 400, 'Bad Request', `unknown event type "${bad}" (known: ${EVENT_TYPES.join(', ')})`);
    const hook = {
      id: nextId(), url: u.toString(), identity: b.identity || user, events: b.events ?? null, folders: b.folders ?? null,
      enabled: true, disabled_reason: null, created_at: new Date().toISOString(),
      secret: `whsec_${randomBytes(24).toString('base64')}`, deliveries: [],
    };
    webhooks.set(hook.id, hook);
    return json(res, 201, { ...hookJson(hook), secret: hook.secret });
  }
  if ((m = /^\/webhooks\/([^/]+)(\/.*)?$/.exec(path))) {
    const hook = webhooks.get(decodeURIComponent(m[1]));
    if (!hook) return problem(res, 404, 'Not Found', 'no such webhook');
    const rest = m[2] ?? '';
    if (!rest && method === 'GET') return json(res, 200, hookJson(hook));
    if (!rest && method === 'PATCH') {
      const b = await body(req);
      if (!b) return problem(res, 400, 'Bad Request', 'JSON body expected');
      if (typeof b.enabled === 'boolean') {
        hook.enabled = b.enabled;
        if (b.enabled) hook.disabled_reason = null;
      }
      if ('events' in b) hook.events = b.events;
      if ('folders' in b) hook.folders = b.folders;
      if (typeof b.url === 'string') hook.url = b.url;
      return json(res, 200, hookJson(hook));
    }
    if (!rest && method === 'DELETE') {
      webhooks.delete(hook.id);
      res.writeHead(204);
      return res.end();
    }
    if (rest === '/deliveries' && method === 'GET') return json(res, 200, { deliveries: hook.deliveries.map(deliveryJson) });
    if (rest === '/ping' && method === 'POST') {
      const r = await post(hook, { id: `ping_${randomBytes(12).toString('hex')}`, type: 'webhook.ping', at: new Date().toISOString(), data: { webhook_id: hook.id } });
      return json(res, 200, { delivered: r.ok, response_status: r.status, error: r.error, duration_ms: r.ms });
    }
    const dm = /^\/deliveries\/([^/]+)\/replay$/.exec(rest);
    if (dm && method === 'POST') {
      const old = hook.deliveries.find((d) => d.id === decodeURIComponent(dm[1]));
      if (!old) return problem(res, 404, 'Not Found', 'no such delivery');
      return json(res, 202, deliveryJson(deliver(hook, old.event)));
    }
  }
  if (path === '/tokens' && method === 'GET') return json(res, 200, { tokens: [...tokens.values()].reverse().map(({ secret: _s, ...t }) => t) });
  if (path === '/tokens' && method === 'POST') {
    const b = await body(req);
    if (!b || !b.name || !b.identity) return problem(res, 400, 'Bad Request', 'name and identity are required');
    if (!Array.isArray(b.scopes) || !b.scopes.length || b.scopes.some((x) => !['read', 'write', 'acl'].includes(x)))
      return problem(res, 400, 'Bad Request', 'scopes must be a non-empty list of read, write, acl');
    const t = { id: nextId(), name: b.name, identity: b.identity, scopes: b.scopes, created_at: new Date().toISOString(), last_used_at: null, expires_at: b.expires_at ?? null };
    const secret = `fpt_${randomBytes(24).toString('base64url')}`;
    tokens.set(t.id, { ...t, secret });
    return json(res, 201, { ...t, token: secret });
  }
  if ((m = /^\/tokens\/([^/]+)$/.exec(path)) && method === 'DELETE') {
    if (!tokens.delete(decodeURIComponent(m[1]))) return problem(res, 404, 'Not Found', 'no such live token');
    res.writeHead(204);
    return res.end();
  }
  return problem(res, 404, 'Not Found', `No route ${method} ${path}`);
}

// A receiver for webhook deliveries (control: POST /receiver, GET /receiver/requests).
let receiver = null;
const received = [];
function startReceiver() {
  if (receiver) return Promise.resolve(receiver.url);
  return new Promise((ok) => {
    const srv = createServer(async (req, res) => {
      let b = '';
      for await (const c of req) b += c;
      received.push({ method: req.method, path: req.url, headers: req.headers, body: b });
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok');
    });
    srv.listen(0, '127.0.0.1', () => {
      receiver = { srv, url: `http://127.0.0.1:${srv.address().port}/hook` };
      ok(receiver.url);
    });
  });
}

// ---------- http helpers
const sessions = new Map(); // token -> {user, exp}
function problem(res, status, title, detail, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'application/problem+json', ...headers });
  res.end(JSON.stringify({ type: 'about:blank', title, status, detail }));
}
function json(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}
async function body(req) {
  let s = '';
  for await (const c of req) s += c;
  try { return s ? JSON.parse(s) : {}; } catch { return null; }
}
function auth(req) {
  const cookie = req.headers.cookie ?? '';
  const m = /(?:^|;\s*)flagpost_session=([^;]+)/.exec(cookie);
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  const token = bearer?.[1] ?? m?.[1];
  const t = bearer && [...tokens.values()].find((x) => x.secret === token);
  if (t) return { user: t.identity, scopes: t.scopes, token };
  const s = token && sessions.get(token);
  if (!s || s.exp < Date.now()) return null;
  return { ...s, token };
}

const MIME = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.json': 'application/json' };
function serveStatic(req, res, path) {
  const file = path === '/' ? join(DIST, 'index.html') : join(DIST, path);
  if (!file.startsWith(DIST) || !existsSync(file) || statSync(file).isDirectory()) return problem(res, 404, 'Not Found', 'no such file');
  res.writeHead(200, {
    'Content-Type': MIME[extname(file)] ?? 'application/octet-stream',
    'Cache-Control': path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
    'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(readFileSync(file));
}

function encodeCursor(m) { return Buffer.from(JSON.stringify([m.received_at, m.id])).toString('base64url'); }
function decodeCursor(c) { try { return JSON.parse(Buffer.from(c, 'base64url').toString()); } catch { return null; } }
const cmpId = (a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);

async function api(req, res, url, path) {
  const method = req.method;
  if (path === '/session' && method === 'POST') {
    const b = await body(req);
    const u = b && USER_BY_NAME[b.username];
    if (!u || u.password !== b.password) return problem(res, 401, 'Unauthorized', 'Wrong user name or password.');
    const token = randomBytes(18).toString('base64url');
    const exp = Date.now() + SESSION_TTL_MS;
    sessions.set(token, { user: u.username, exp });
    return json(res, 200, { token, expires_at: new Date(exp).toISOString(), user: { username: u.username, admin: u.admin } }, {
      'Set-Cookie': `flagpost_session=${token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${Math.floor(SESSION_TTL_MS / 1000)}`,
    });
  }
  const s = auth(req);
  if (!s) return problem(res, 401, 'Unauthorized', 'Sign in first: the session is missing or expired.');
  const user = s.user;
  if (path === '/session' && method === 'DELETE') {
    sessions.delete(s.token);
    res.writeHead(204, { 'Set-Cookie': 'flagpost_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0' });
    return res.end();
  }
  if (path === '/me') return json(res, 200, { username: user, admin: isAdmin(user), scopes: s.scopes ?? ['read', 'write', 'acl'] });
  if (path === '/folders') return json(res, 200, { folders: folders.filter((f) => canRead(user, f)).map((f) => folderJson(f, user)) });
  let m;
  if ((m = /^\/folders\/([^/]+)$/.exec(path))) {
    const f = folders.find((x) => x.id === decodeURIComponent(m[1]));
    if (!f || !canRead(user, f)) return problem(res, 404, 'Not Found', 'No such folder.');
    return json(res, 200, folderJson(f, user));
  }
  if ((m = /^\/folders\/([^/]+)\/acl(?:\/(.+))?$/.exec(path))) {
    const f = folders.find((x) => x.id === decodeURIComponent(m[1]));
    if (!f || !canRead(user, f)) return problem(res, 404, 'Not Found', 'No such folder.');
    if (!rightsOf(user, f).includes('a') && !isAdmin(user)) return problem(res, 403, 'Forbidden', 'You need the “a” right on this folder.');
    const entries = () => Object.entries(f.acl).map(([identifier, rights]) => ({ identifier, rights }));
    if (!m[2] && method === 'GET') return json(res, 200, { entries: entries(), my_rights: rightsOf(user, f) });
    const ident = decodeURIComponent(m[2] ?? '');
    if (method === 'PUT') {
      const b = await body(req);
      if (!b || typeof b.rights !== 'string' || [...b.rights].some((c) => !ORDER.includes(c))) return problem(res, 400, 'Bad Request', 'rights must use letters of lrswipkxtea');
      f.acl[ident] = [...ORDER].filter((c) => b.rights.includes(c)).join('');
      emit('folder.acl_changed', f.id, null, { identifier: ident, rights: f.acl[ident] });
      return json(res, 200, { entries: entries(), my_rights: rightsOf(user, f) });
    }
    if (method === 'DELETE') {
      delete f.acl[ident];
      emit('folder.acl_changed', f.id, null, { identifier: ident, rights: null });
      res.writeHead(204);
      return res.end();
    }
  }
  if (path === '/messages' && method === 'GET') {
    const allowed = new Set(['folder', 'status', 'flagged', 'q', 'sort', 'limit', 'cursor']);
    for (const k of url.searchParams.keys()) if (!allowed.has(k)) return problem(res, 400, 'Bad Request', `unknown parameter ${k}`);
    const fids = url.searchParams.getAll('folder');
    for (const id of fids) {
      const f = folders.find((x) => x.id === id);
      if (!f || !canRead(user, f)) return problem(res, 404, 'Not Found', 'No such folder.');
    }
    const readable = new Set(folders.filter((f) => canRead(user, f)).map((f) => f.id));
    const status = url.searchParams.get('status') ?? 'any';
    const flagged = url.searchParams.get('flagged');
    const q = (url.searchParams.get('q') ?? '').toLowerCase();
    const sort = url.searchParams.get('sort') ?? 'oldest';
    const limit = Math.min(500, Math.max(1, Number(url.searchParams.get('limit') ?? 50)));
    const cursor = url.searchParams.get('cursor');
    const after = cursor ? decodeCursor(cursor) : null;
    let list = [...messages.values()].filter((x) => readable.has(x.folder_id) && (!fids.length || fids.includes(x.folder_id)));
    list = list.filter((x) => (status === 'any' ? x.status !== 'deleted' : x.status === status));
    if (flagged !== null) list = list.filter((x) => x.flagged === (flagged === 'true'));
    if (q) list = list.filter((x) => `${x.subject}\n${x.from?.name}\n${x.from?.address}`.toLowerCase().includes(q));
    const dir = sort === 'newest' ? -1 : 1;
    const cmp = (a, b) => dir * (Date.parse(a.received_at) - Date.parse(b.received_at) || cmpId(a.id, b.id));
    list.sort(cmp);
    if (after) {
      const pivot = { received_at: after[0], id: after[1] };
      list = list.filter((x) => cmp(x, pivot) > 0);
    }
    const page = list.slice(0, limit);
    const more = list.length > limit;
    if (process.env.MOCK_DELAY_MS) await new Promise((r) => setTimeout(r, Number(process.env.MOCK_DELAY_MS)));
    return json(res, 200, { messages: page, next_cursor: more ? encodeCursor(page[page.length - 1]) : null });
  }
  if ((m = /^\/messages\/([^/]+)$/.exec(path))) {
    const msg = messages.get(decodeURIComponent(m[1]));
    const f = msg && folders.find((x) => x.id === msg.folder_id);
    if (!msg || !canRead(user, f)) return problem(res, 404, 'Not Found', 'No such message.');
    if (method === 'GET') return json(res, 200, { ...msg, history: events.filter((e) => e.message_id === msg.id) }, { ETag: msg.etag });
    if (method === 'PATCH') {
      const b = await body(req);
      if (!b) return problem(res, 400, 'Bad Request', 'JSON body expected');
      const rights = rightsOf(user, f);
      if (('answered' in b || 'flagged' in b) && !rights.includes('w')) return problem(res, 403, 'Forbidden', 'Changing answered or flagged needs the “w” right on this folder.');
      if ('seen' in b && !rights.includes('s')) return problem(res, 403, 'Forbidden', 'Changing seen needs the “s” right on this folder.');
      const im = req.headers['if-match'];
      if (im && im !== msg.etag) return problem(res, 412, 'Precondition Failed', 'The message changed since you loaded it.');
      const flags = new Set(msg.flags);
      const set = (flag, on) => (on ? flags.add(flag) : flags.delete(flag));
      if ('answered' in b) set('\\Answered', b.answered);
      if ('flagged' in b) set('\\Flagged', b.flagged);
      if ('seen' in b) set('\\Seen', b.seen);
      setFlags(msg, [...flags], user);
      return json(res, 200, msg, { ETag: msg.etag });
    }
  }
  if (path === '/events/stream') {
    const after = Number(url.searchParams.get('after') ?? req.headers['last-event-id'] ?? eventSeq);
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no', Connection: 'keep-alive' });
    res.write('retry: 1000\n: hello\n\n');
    const st = { res, user };
    for (const ev of events) if (ev.id > after) sendEvent(st, ev);
    streams.add(st);
    const ka = setInterval(() => res.write(': keep-alive\n\n'), 15000);
    req.on('close', () => {
      clearInterval(ka);
      streams.delete(st);
    });
    return;
  }
  if (path.startsWith('/webhooks') || path.startsWith('/tokens')) return adminApi(req, res, method, path, user);
  if (path === '/events') {
    const after = Number(url.searchParams.get('after') ?? 0);
    const limit = Number(url.searchParams.get('limit') ?? 100);
    const list = events.filter((e) => e.id > after && visible(user, e)).slice(0, limit);
    return json(res, 200, { events: list, next_after: list.length ? list[list.length - 1].id : after });
  }
  return problem(res, 404, 'Not Found', `No route ${method} ${path}`);
}

// ---------- servers
let server = null;
let boundPort = null; // a restart comes back on the same port
const sockets = new Set();
function handler(req, res) {
  const url = new URL(req.url, 'http://x');
  const path = url.pathname;
  if (path.startsWith('/api/v1/')) return api(req, res, url, path.slice(7)).catch((e) => problem(res, 500, 'Internal', String(e)));
  if (path === '/livez' || path === '/readyz') return json(res, 200, { ok: true });
  if (req.method === 'GET' && (path === '/' || path.startsWith('/assets/'))) return serveStatic(req, res, path);
  return problem(res, 404, 'Not Found', 'no route');
}
function listen() {
  return new Promise((ok) => {
    server = createServer(handler);
    server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
    server.listen(boundPort ?? PORT, '127.0.0.1', () => ok((boundPort = server.address().port)));
  });
}
async function restart() {
  for (const st of streams) st.res.destroy();
  streams.clear();
  await new Promise((ok) => { server.close(() => ok()); for (const s of sockets) s.destroy(); });
  await new Promise((r) => setTimeout(r, Number(process.env.MOCK_RESTART_DOWN_MS ?? 1500)));
  await listen();
}

const control = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  const f = (name) => folders.find((x) => x.imap_name === name);
  try {
    if (req.method === 'POST' && url.pathname === '/store') {
      const b = await body(req);
      const folder = f(b.folder_imap_name);
      const msg = folder && [...messages.values()].find((x) => x.folder_id === folder.id && x.uid === Number(b.uid));
      if (!msg) return json(res, 404, { error: 'no such message' });
      const mm = /^([+-]?)FLAGS(?:\.SILENT)? \(([^)]*)\)$/i.exec(b.change.trim());
      if (!mm) return json(res, 400, { error: 'bad change' });
      const given = mm[2].split(/\s+/).filter(Boolean);
      const flags = new Set(mm[1] ? msg.flags : []);
      for (const g of given) (mm[1] === '-' ? flags.delete(g) : flags.add(g));
      setTimeout(() => setFlags(msg, [...flags], null), Number(process.env.MOCK_IMAP_DELAY_MS ?? 50));
      return json(res, 200, { ok: true });
    }
    if (req.method === 'POST' && url.pathname === '/append') {
      const b = await body(req);
      const folder = f(b.folder_imap_name);
      if (!folder) return json(res, 404, { error: 'no such folder' });
      const msg = makeMessage(folder, { subject: b.subject ?? 'New message', from: [b.from_name ?? 'Customer', b.from ?? 'customer@example.org'], received: new Date().toISOString(), flags: [] });
      emit('message.added', folder.id, msg.id, { message: msg });
      return json(res, 200, { uid: msg.uid });
    }
    if (req.method === 'GET' && url.pathname === '/flags') {
      const folder = f(url.searchParams.get('folder_imap_name'));
      const msg = folder && [...messages.values()].find((x) => x.folder_id === folder.id && x.uid === Number(url.searchParams.get('uid')));
      if (!msg) return json(res, 404, { error: 'no such message' });
      return json(res, 200, { flags: msg.flags });
    }
    if (req.method === 'GET' && url.pathname === '/acl') {
      const folder = f(url.searchParams.get('folder_imap_name'));
      if (!folder) return json(res, 404, { error: 'no such folder' });
      return json(res, 200, { entries: Object.entries(folder.acl) });
    }
    if (req.method === 'POST' && url.pathname === '/restart-flagpost') {
      await restart();
      return json(res, 200, { ok: true });
    }
    if (req.method === 'POST' && url.pathname === '/receiver') return json(res, 200, { url: await startReceiver() });
    if (req.method === 'GET' && url.pathname === '/receiver/requests') return json(res, 200, { requests: received });
    if (req.method === 'POST' && url.pathname === '/expire-sessions') {
      for (const s of sessions.values()) s.exp = 0;
      return json(res, 200, { ok: true });
    }
    if (req.method === 'GET' && url.pathname === '/fixture') {
      return json(res, 200, {
        folders: folders.map((x) => ({
          imap_name: x.imap_name,
          name: x.name,
          messages: [...messages.values()].filter((m) => m.folder_id === x.id).map((m) => ({ uid: m.uid, subject: m.subject })),
        })),
      });
    }
    json(res, 404, { error: 'no route' });
  } catch (e) {
    json(res, 500, { error: String(e) });
  }
});

const port = await listen();
control.listen(CONTROL_PORT, '127.0.0.1', () => {
  const users = Object.fromEntries(Object.entries(USERS).map(([k, u]) => [k, { username: u.username, password: u.password }]));
  console.log(JSON.stringify({ url: `http://127.0.0.1:${port}`, control: `http://127.0.0.1:${control.address().port}`, users }));
});
process.on('SIGTERM', () => process.exit(0));
