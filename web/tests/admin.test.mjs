// Browser tests of the service-admin area (webhooks and integration tokens) against a real
// `flagpost serve`. Needs FLAGPOST_USERS.service_admin (a user in FLAGPOST_ADMINS; agent, reader
// and admin are not service admins), the control endpoint's POST /receiver and GET
// /receiver/requests, and webhook URLs on 127.0.0.1 allowed (FLAGPOST_WEBHOOK_ALLOW_PRIVATE).
// See ./lib/harness.mjs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { SKIP, URL_, USERS, apiGet, axeSerious, closeBrowser, control, login, newPage, waitFor } from './lib/harness.mjs';

const EVENT_TYPES = [
  'message.added',
  'message.updated',
  'message.removed',
  'folder.added',
  'folder.removed',
  'folder.reset',
  'folder.acl_changed',
  'folder.sync_changed',
];

/** Standard Webhooks: `v1,<base64 HMAC-SHA256(secret bytes, "{id}.{timestamp}.{body}")>`, space-separated. */
function signatureValid(secret, req) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const id = req.headers['webhook-id'];
  const ts = req.headers['webhook-timestamp'];
  const want = createHmac('sha256', key).update(`${id}.${ts}.${req.body}`).digest('base64');
  return String(req.headers['webhook-signature'] ?? '')
    .split(' ')
    .some((s) => s === `v1,${want}`);
}

const parse = (body) => {
  try {
    return JSON.parse(body);
  } catch {
    return null;
  }
};

async function received(run) {
  const { requests } = await control('GET', '/receiver/requests');
  return requests.filter((r) => String(r.path).includes(run));
}

const activeId = (page) => page.evaluate(() => document.activeElement?.id ?? null);
const activeText = (page) => page.evaluate(() => document.activeElement?.textContent?.trim() ?? null);

describe('admin area', { skip: SKIP || (!USERS.service_admin && 'FLAGPOST_USERS has no service_admin') }, () => {
  const contexts = [];
  const open = async (opts) => {
    const x = await newPage(opts);
    contexts.push(x.context);
    return x;
  };
  let receiverUrl;

  before(async () => {
    ({ url: receiverUrl } = await control('POST', '/receiver'));
    assert.match(receiverUrl, /^http:\/\/127\.0\.0\.1:\d+\//, 'the control endpoint starts a local receiver');
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await closeBrowser();
  });

  test('a service admin creates a webhook, sees its secret once, pings it, and sees deliveries of a change', async () => {
    const { page, context } = await open();
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: URL_ });
    await login(page, 'service_admin');
    assert.equal((await apiGet(page, '/me')).admin, true, 'service_admin is a service admin');
    const run = `run${Date.now()}`;
    const hookUrl = `${receiverUrl.replace(/\/?$/, '/')}${run}`;

    const nav = page.getByRole('navigation', { name: 'Administration' });
    await nav.getByRole('button', { name: 'Webhooks' }).click();
    await page.getByRole('heading', { level: 2, name: 'Webhooks' }).waitFor();
    await waitFor(async () => (await activeId(page)) === 'admin-title', 2000, 'focus on the Webhooks heading');
    assert.equal(await nav.getByRole('button', { name: 'Webhooks' }).getAttribute('aria-current'), 'page');
    assert.equal(await page.locator('#message-list').count(), 0, 'the admin screen replaces the message list');

    await page.getByRole('button', { name: /New webhook/ }).click();
    const form = page.getByRole('form', { name: 'New webhook' });
    await form.waitFor();
    await waitFor(async () => (await activeId(page)) === 'wh-url', 2000, 'focus in the URL field');
    assert.equal(await form.getByLabel('Identity').inputValue(), USERS.service_admin.username, 'identity defaults to the caller');
    for (const t of EVENT_TYPES) assert.equal(await form.getByRole('checkbox', { name: t, exact: true }).isChecked(), true, t);
    assert.deepEqual(await axeSerious(page), [], 'axe on the webhook form');

    // A URL the server refuses: the form shows the problem's detail.
    const bad = await page.request.post(`${URL_}/api/v1/webhooks`, { data: { url: 'ftp://example.org/hook' } });
    assert.equal(bad.status(), 400);
    const detail = (await bad.json()).detail;
    await form.getByLabel('Receiver URL').fill('ftp://example.org/hook');
    await form.getByRole('button', { name: 'Create webhook' }).click();
    await waitFor(async () => (await form.getByRole('alert').textContent().catch(() => '')) === detail, 5000, `the alert "${detail}"`);

    // Only message.updated, so the folder's other events do not get in the way.
    for (const t of EVENT_TYPES) if (t !== 'message.updated') await form.getByRole('checkbox', { name: t, exact: true }).uncheck();
    await form.getByLabel('Receiver URL').fill(hookUrl);
    await form.getByRole('button', { name: 'Create webhook' }).click();

    // The secret, once, with the warning and a copy button.
    const once = page.locator('[data-once]');
    await once.waitFor();
    await waitFor(async () => (await activeId(page)) === 'once-title', 2000, 'focus on the new secret');
    const secret = await once.getByLabel('Signing secret').inputValue();
    assert.match(secret, /^whsec_[A-Za-z0-9+/=]+$/);
    assert.match(await once.textContent(), /will not be shown again/);
    assert.deepEqual(await axeSerious(page), [], 'axe with the secret shown');
    await once.getByRole('button', { name: /^Copy/ }).click();
    await waitFor(async () => /Copied/.test(await once.getByRole('status').textContent()), 3000, '"Copied"');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret, 'the clipboard holds the secret');
    await once.getByRole('button', { name: 'Done' }).click();
    await once.waitFor({ state: 'detached' });
    assert.ok(/New webhook/.test(await activeText(page)), 'focus back on "New webhook…"');

    const { webhooks } = await apiGet(page, '/webhooks');
    const hook = webhooks.find((w) => w.url === hookUrl);
    assert.ok(hook, `the webhook to ${hookUrl} exists`);
    assert.deepEqual(hook.events, ['message.updated']);
    assert.ok(!JSON.stringify(webhooks).includes(secret), 'the list never carries the secret');
    const item = page.locator(`li[data-webhook-id="${hook.id}"]`);
    await item.waitFor();
    assert.equal(await item.getByRole('heading', { level: 3 }).textContent(), hookUrl);
    assert.match(await item.textContent(), /message\.updated/);
    assert.ok(!(await page.content()).includes(secret), 'the secret is gone from the page');

    // Ping: the receiver gets a signed webhook.ping, the UI says what it answered.
    await item.getByRole('button', { name: /^Ping/ }).click();
    await item.locator('.ping-result[data-ping="true"]').waitFor({ timeout: 10000 });
    assert.match(await item.locator('.ping-result').textContent(), /Ping delivered: the receiver answered 200/);
    const ping = (await received(run)).find((r) => parse(r.body)?.type === 'webhook.ping');
    assert.ok(ping, 'the receiver got the ping');
    assert.ok(ping.headers['webhook-signature'], 'with a webhook-signature header');
    assert.ok(signatureValid(secret, ping), 'signed with the secret shown once');

    // Deliveries: another IMAP client flags a message; its delivery shows up in the list.
    const toggle = item.locator('[data-action="deliveries"]');
    assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
    await item.getByRole('button', { name: /^Show deliveries/ }).click();
    assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
    await item.getByRole('heading', { name: 'Recent deliveries' }).waitFor();

    const fixture = await control('GET', '/fixture');
    const { folders } = await apiGet(page, '/folders');
    const f = folders
      .filter((x) => fixture.folders.some((fx) => fx.imap_name === x.imap_name) && x.counts.answered > 0)
      .sort((a, b) => a.counts.total - b.counts.total)[0];
    assert.ok(f, 'a fixture folder with an answered message');
    // An answered message: the dashboard tests use pending ones.
    const { messages } = await apiGet(page, `/messages?folder=${encodeURIComponent(f.id)}&status=answered&flagged=false&limit=1`);
    const m = messages[0];
    assert.ok(m, `an answered, unflagged message in ${f.imap_name}`);
    await control('POST', '/store', { user: USERS.agent.username, folder_imap_name: f.imap_name, uid: m.uid, change: '+FLAGS (\\Flagged)' });
    const got = await waitFor(
      async () => (await received(run)).find((r) => parse(r.body)?.type === 'message.updated' && parse(r.body)?.message_id === m.id),
      15000,
      'the receiver to get message.updated',
    );
    assert.ok(signatureValid(secret, got), 'the event is signed with the secret');
    const eventId = got.headers['webhook-id'];
    const row = item.locator(`tr[data-event-id="${eventId}"][data-status="delivered"]`);
    await row.waitFor({ timeout: 10000 });
    assert.match(await row.textContent(), /Delivered/);
    assert.match(await row.textContent(), /200/);
    assert.deepEqual(await axeSerious(page), [], 'axe on the webhook list with deliveries');

    // Replay: a new delivery of the same event, with the same webhook-id.
    await row.getByRole('button', { name: `Replay event ${eventId}` }).click();
    await waitFor(async () => (await item.locator(`tr[data-event-id="${eventId}"]`).count()) >= 2, 10000, 'the replayed delivery in the list');
    await waitFor(async () => (await received(run)).filter((r) => r.headers['webhook-id'] === eventId).length >= 2, 10000, 'the replay at the receiver');

    // Disable, then enable again (PATCH {enabled}).
    const sw = item.getByRole('switch', { name: /Deliver events/ });
    assert.equal(await sw.isChecked(), true);
    await sw.uncheck();
    await waitFor(async () => (await apiGet(page, '/webhooks')).webhooks.find((w) => w.id === hook.id)?.enabled === false, 5000, 'disabled');
    await page.locator(`li[data-webhook-id="${hook.id}"][data-enabled="false"]`).waitFor();
    assert.match(await item.textContent(), /Disabled/);
    await item.getByRole('switch', { name: /Deliver events/ }).check();
    await waitFor(async () => (await apiGet(page, '/webhooks')).webhooks.find((w) => w.id === hook.id)?.enabled === true, 5000, 'enabled again');

    await control('POST', '/store', { user: USERS.agent.username, folder_imap_name: f.imap_name, uid: m.uid, change: '-FLAGS (\\Flagged)' });

    // Delete, after a confirmation that takes focus; the later tests get no deliveries.
    await item.getByRole('button', { name: /^Delete/ }).click();
    const yes = item.getByRole('button', { name: `Yes, delete the webhook to ${hookUrl}` });
    await yes.waitFor();
    await waitFor(async () => (await activeText(page)) === `Yes, delete the webhook to ${hookUrl}`, 2000, 'focus on the confirmation');
    await yes.click();
    await item.waitFor({ state: 'detached', timeout: 5000 });
    assert.ok(!(await apiGet(page, '/webhooks')).webhooks.some((w) => w.id === hook.id), 'deleted');
    assert.deepEqual(page.errors, []);
  });

  test('a service admin creates and revokes an integration token, by keyboard', async () => {
    const { page } = await open();
    await login(page, 'service_admin');
    const name = `CRM sync ${Date.now()}`;
    await page.locator('[data-admin-section="tokens"]').focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 2, name: 'Integration tokens' }).waitFor();
    await waitFor(async () => (await activeId(page)) === 'admin-title', 2000, 'focus on the heading');
    const newButton = page.getByRole('button', { name: /New token/ });
    await newButton.waitFor();
    await page.keyboard.press('Tab');
    assert.match(await activeText(page), /New token/);
    await page.keyboard.press('Enter');
    await page.getByRole('form', { name: 'New integration token' }).waitFor();
    await waitFor(async () => (await activeId(page)) === 'tk-name', 2000, 'focus in the name field');
    assert.deepEqual(await axeSerious(page), [], 'axe on the token form');
    await page.keyboard.type(name);
    await page.keyboard.press('Tab');
    assert.equal(await activeId(page), 'tk-identity');
    await page.keyboard.type(USERS.agent.username);
    await page.keyboard.press('Tab');
    assert.equal(await activeId(page), 'tk-scope-read');
    await page.keyboard.press('Tab');
    assert.equal(await activeId(page), 'tk-scope-write');
    await page.keyboard.press('Space');
    await page.keyboard.press('Tab');
    assert.equal(await activeId(page), 'tk-scope-acl');
    await page.keyboard.press('Tab');
    assert.equal(await activeText(page), 'Create token');
    await page.keyboard.press('Enter');

    const once = page.locator('[data-once]');
    await once.waitFor();
    await waitFor(async () => (await activeId(page)) === 'once-title', 2000, 'focus on the new token');
    const token = await once.getByLabel('Token', { exact: true }).inputValue();
    assert.ok(token.length >= 20, 'a token');
    assert.match(await once.textContent(), /will not be shown again/);
    assert.deepEqual(await axeSerious(page), [], 'axe with the token shown');

    // It works, as agent, with the scopes chosen.
    const meRes = await fetch(`${URL_}/api/v1/me`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(meRes.status, 200);
    const me = await meRes.json();
    assert.equal(me.username, USERS.agent.username);
    assert.deepEqual([...me.scopes].sort(), ['read', 'write']);

    await page.keyboard.press('Tab');
    assert.equal(await activeId(page), 'once-value');
    await page.keyboard.press('Tab');
    assert.match(await activeText(page), /^Copy/);
    await page.keyboard.press('Tab');
    assert.equal(await activeText(page), 'Done');
    await page.keyboard.press('Enter');
    await once.waitFor({ state: 'detached' });
    assert.ok(!(await page.content()).includes(token), 'the token is gone from the page');

    const row = page.locator(`tr[data-name="${name}"]`);
    await row.waitFor();
    assert.match(await row.textContent(), new RegExp(USERS.agent.username));
    assert.match(await row.textContent(), /read, write/);
    assert.deepEqual(await axeSerious(page), [], 'axe on the token list');

    await row.getByRole('button', { name: /^Revoke/ }).focus();
    await page.keyboard.press('Enter');
    const confirm = row.getByRole('button', { name: `Yes, revoke “${name}”` });
    await confirm.waitFor();
    await waitFor(async () => (await activeText(page)) === `Yes, revoke “${name}”`, 2000, 'focus on the confirmation');
    await page.keyboard.press('Enter');
    await row.waitFor({ state: 'detached', timeout: 5000 });
    await waitFor(async () => /New token/.test((await activeText(page)) ?? ''), 2000, 'focus on "New token…"');
    const gone = await fetch(`${URL_}/api/v1/me`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(gone.status, 401, 'the revoked token stops working at once');
    const { tokens } = await apiGet(page, '/tokens');
    assert.ok(!tokens.some((t) => t.name === name));
    assert.deepEqual(page.errors, []);
  });

  test('users who are not service admins never see the admin area', async () => {
    for (const who of ['agent', 'reader', 'admin']) {
      const { page } = await open();
      const adminTraffic = [];
      page.on('request', (r) => {
        if (/\/api\/v1\/(webhooks|tokens)|\/assets\/Admin/.test(r.url())) adminTraffic.push(r.url());
      });
      await login(page, who);
      assert.equal((await apiGet(page, '/me')).admin, false, `${who} is no service admin`);
      assert.equal(await page.getByRole('navigation', { name: 'Administration' }).count(), 0, who);
      assert.equal(await page.locator('[data-admin-section], #admin').count(), 0, who);
      // Not even when the URL names an admin screen.
      await page.goto(`${URL_}/#/?folder=&admin=webhooks`);
      await page.reload();
      await page.locator('#message-list').waitFor();
      assert.equal(await page.locator('[data-admin-section], #admin').count(), 0, `${who} with #admin=webhooks`);
      assert.equal(await page.getByText('Webhooks').count(), 0);
      assert.deepEqual(adminTraffic, [], `${who} never loads admin code or data`);
      const res = await page.request.get(`${URL_}/api/v1/webhooks`);
      assert.equal(res.status(), 403, 'and the API refuses it');
    }
  });

  test('from the admin area back to the messages', async () => {
    const { page } = await open();
    await login(page, 'service_admin', { hash: '#/?folder=&admin=webhooks' });
    await page.getByRole('heading', { level: 2, name: 'Webhooks' }).waitFor();
    assert.equal(await page.getByRole('navigation', { name: 'Administration' }).getByRole('button', { name: 'Webhooks' }).getAttribute('aria-current'), 'page');
    // Shortcuts of the message list do nothing here; ? still opens the help.
    await page.locator('#admin-title').focus();
    await page.keyboard.press('j');
    await page.keyboard.press('?');
    await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
    await page.keyboard.press('Escape');
    const folder = page.locator('.folder[data-folder-id]').last();
    await folder.click();
    await page.locator('#message-list').waitFor();
    await waitFor(async () => (await activeId(page)) === 'message-list', 2000, 'focus on the list');
    assert.equal(await page.locator('#admin').count(), 0);
    assert.doesNotMatch(page.url(), /admin=/);
    assert.deepEqual(page.errors, []);
  });
});
