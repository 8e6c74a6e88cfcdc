// Shared helpers for the browser tests (node:test + playwright-core + axe-core).
//
// The Rust test harness starts Dovecot, PostgreSQL and `flagpost serve`, then runs
// `node --test web/tests/` with:
//   FLAGPOST_URL      base URL of flagpost serve, e.g. http://127.0.0.1:PORT
//   FLAGPOST_USERS    {"agent":{"username","password"},"reader":{…},"admin":{…},"service_admin":{…}}
//                     agent: l r s w (at least) on the watched folders; reader: only l r; admin: has a;
//                     service_admin: in FLAGPOST_ADMINS (the others are not), for the admin area
//   FLAGPOST_CONTROL  base URL of the harness's control endpoint ("another IMAP client"):
//                     POST /store {user, folder_imap_name, uid, change}  e.g. change "+FLAGS (\\Flagged)"
//                     GET  /flags?folder_imap_name=&uid=                 → {flags:[…]}
//                     GET  /acl?folder_imap_name=                        → {entries:[[identifier, rights], …]}
//                     POST /restart-flagpost                             → answers once it listens again
//                     GET  /fixture → {folders:[{imap_name, name, messages:[{uid, subject}]}]}
//                     POST /receiver → {url}: a local webhook receiver (started once) that
//                                      records every request and answers 200
//                     GET  /receiver/requests → {requests:[{method, path, headers:{name: value}, body}]}
//                     (the server must allow webhook URLs on 127.0.0.1: FLAGPOST_WEBHOOK_ALLOW_PRIVATE)
//   CHROMIUM          optional, default /usr/bin/chromium
// Without FLAGPOST_URL the server tests are skipped (the bundle test then checks web/dist).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

export const URL_ = process.env.FLAGPOST_URL?.replace(/\/$/, '') ?? null;
export const CONTROL = process.env.FLAGPOST_CONTROL?.replace(/\/$/, '') ?? null;
export const USERS = process.env.FLAGPOST_USERS ? JSON.parse(process.env.FLAGPOST_USERS) : null;
export const SKIP = !URL_ || !CONTROL || !USERS ? 'FLAGPOST_URL, FLAGPOST_CONTROL and FLAGPOST_USERS are not all set' : false;

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

let browser = null;
export async function getBrowser() {
  browser ??= await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // No background traffic: this machine's network is closed (and watched).
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return browser;
}
export async function closeBrowser() {
  await browser?.close();
  browser = null;
}

/** A fresh context (own cookies) and page; console errors of the app are collected. */
export async function newPage({ width = 1400, height = 1000 } = {}) {
  const b = await getBrowser();
  // bypassCSP: axe is injected as a script; the app itself is unaffected.
  const context = await b.newContext({ viewport: { width, height }, bypassCSP: true });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  return { context, page };
}

export async function login(page, who, { hash = '' } = {}) {
  const u = USERS[who];
  await page.goto(`${URL_}/${hash}`);
  await page.getByLabel('User name').fill(u.username);
  await page.getByLabel('Password').fill(u.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.shell').waitFor();
  await page.locator('[data-folder-id]').first().waitFor();
}

/** JSON from the API with the page's own session cookie. */
export async function apiGet(page, path) {
  const res = await page.request.get(`${URL_}/api/v1${path}`);
  if (!res.ok()) throw new Error(`GET ${path}: ${res.status()} ${await res.text()}`);
  return res.json();
}

export async function control(method, path, body) {
  const res = await fetch(`${CONTROL}${path}`, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) {
    const err = new Error(`control ${method} ${path}: ${res.status} ${text}`);
    err.status = res.status;
    throw err;
  }
  return text ? JSON.parse(text) : null;
}

/** Polls `fn` until it returns a truthy value or `ms` pass; returns the value or throws the last error. */
export async function waitFor(fn, ms = 3000, what = 'condition') {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = new Error(`timed out after ${ms} ms waiting for ${what}`);
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw last;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Selects a folder in the sidebar by its IMAP name and waits for its list. */
export async function openFolder(page, imapName) {
  await page.locator(`.folder[data-imap-name="${cssEscape(imapName)}"]`).click();
  await page.locator(`.folder[data-imap-name="${cssEscape(imapName)}"][aria-current="page"]`).waitFor();
  await waitFor(
    () => page.evaluate(() => !document.querySelector('#message-list[aria-busy="true"]')),
    5000,
    'the message list to load',
  );
}

export function cssEscape(s) {
  return String(s).replace(/["\\]/g, '\\$&');
}

/** Scrolls the virtualised list until the row of `uid` is rendered; returns its locator. */
export async function rowByUid(page, uid, { timeout = 5000 } = {}) {
  const sel = `#message-list [role="option"][data-uid="${uid}"]`;
  await waitFor(
    async () => {
      if (await page.locator(sel).count()) return true;
      await page.evaluate(() => {
        const el = document.getElementById('message-list');
        if (el.scrollTop + el.clientHeight >= el.scrollHeight - 2) el.scrollTop = 0;
        else el.scrollTop += el.clientHeight;
      });
      return false;
    },
    timeout,
    `row uid ${uid}`,
  );
  return page.locator(sel);
}

export async function rowState(page, uid) {
  return page.evaluate((u) => {
    const el = document.querySelector(`#message-list [role="option"][data-uid="${u}"]`);
    return el ? { status: el.dataset.status, flagged: el.dataset.flagged === 'true', seen: el.dataset.seen === 'true' } : null;
  }, uid);
}

export async function sidebarCounts(page, folderId) {
  return page.evaluate((id) => {
    const b = document.querySelector(`.folder[data-folder-id="${id}"]`);
    if (!b) return null;
    const n = (k) => Number(b.querySelector(`[data-count="${k}"] b`)?.textContent ?? NaN);
    return { pending: n('pending'), answered: n('answered'), flagged: n('flagged'), sync: b.querySelector('[data-sync]')?.dataset.sync };
  }, folderId);
}

/** Runs axe-core on the page; returns the serious and critical violations. */
export async function axeSerious(page, { exclude = [] } = {}) {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.addScriptTag({ content: AXE_SOURCE });
  const result = await page.evaluate(
    (ex) => window.axe.run(ex.length ? { exclude: ex.map((s) => [s]) } : document, { resultTypes: ['violations'] }),
    exclude,
  );
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
}

/**
 * Picks the test folder: a watched folder (from the harness fixture) readable by agent, where
 * agent may write, with the fewest messages but at least `min` pending ones.
 */
export async function pickFolder(page, { min = 2 } = {}) {
  const fixture = await control('GET', '/fixture');
  const { folders } = await apiGet(page, '/folders');
  const byImap = new Map(folders.map((f) => [f.imap_name, f]));
  const candidates = fixture.folders
    .map((fx) => ({ fx, f: byImap.get(fx.imap_name) }))
    .filter(({ f }) => f && f.my_rights.includes('w') && f.counts.pending >= min)
    .sort((a, b) => a.f.counts.total - b.f.counts.total);
  if (!candidates.length) throw new Error('no fixture folder with enough pending messages where agent has w');
  return candidates[0];
}

const used = new Set();
/** A pending message of folder `f` not used by an earlier test (by the API's current state). */
export async function pendingMessage(page, f, { flagged = false } = {}) {
  const q = `/messages?folder=${encodeURIComponent(f.id)}&status=pending&flagged=${flagged}&sort=oldest&limit=200`;
  const { messages } = await apiGet(page, q);
  const m = messages.find((x) => !used.has(x.id));
  if (!m) throw new Error(`folder ${f.imap_name} has no unused pending${flagged ? ' flagged' : ''} message left`);
  used.add(m.id);
  return m;
}
