// Browser tests of the staff dashboard against a real `flagpost serve` (with Dovecot and
// PostgreSQL behind it), driven through Debian's chromium. Environment and control endpoint:
// see ./lib/harness.mjs. The tests share one server and change its state, so they run in
// order in this one file; the restart test comes last.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SKIP,
  USERS,
  apiGet,
  axeSerious,
  closeBrowser,
  control,
  login,
  newPage,
  openFolder,
  pendingMessage,
  pickFolder,
  rowByUid,
  rowState,
  sidebarCounts,
  waitFor,
} from './lib/harness.mjs';

const LIVE_MS = 3000; // the bound for a change made by another IMAP client

describe('dashboard', { skip: SKIP }, () => {
  let folder; // { fx: fixture folder, f: API folder } the tests act on
  const contexts = [];
  const open = async (opts) => {
    const x = await newPage(opts);
    contexts.push(x.context);
    return x.page;
  };

  before(async () => {
    const page = await open();
    await login(page, 'agent');
    // The tests use up to 8 distinct pending, unflagged messages of this folder.
    folder = await pickFolder(page, { min: 8 });
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await closeBrowser();
  });

  test('login shows every readable folder with counts equal to the server state', async () => {
    const page = await open();
    await login(page, 'agent');
    const { folders } = await apiGet(page, '/folders');
    assert.ok(folders.length > 0, 'agent reads at least one folder');
    for (const f of folders) {
      const ui = await waitFor(async () => {
        const c = await sidebarCounts(page, f.id);
        return c && c.pending === f.counts.pending && c.answered === f.counts.answered && c.flagged === f.counts.flagged && c;
      }, LIVE_MS, `sidebar counts of ${f.imap_name} to equal ${JSON.stringify(f.counts)}`);
      assert.equal(ui.sync, f.sync.state, `sync badge of ${f.imap_name}`);
    }
    const me = await apiGet(page, '/me');
    assert.equal(await page.locator('.user').getAttribute('data-username'), me.username);
    assert.deepEqual(page.errors, []);
  });

  test('message list: pending first, oldest on top, with waiting time, sender, subject and time', async () => {
    const page = await open();
    await login(page, 'agent');
    await openFolder(page, folder.f.imap_name);
    const rows = await page.evaluate(() =>
      [...document.querySelectorAll('#message-list [role="option"]')]
        .sort((a, b) => Number(a.getAttribute('aria-posinset')) - Number(b.getAttribute('aria-posinset')))
        .map((r) => ({
          status: r.dataset.status,
          time: r.querySelector('time')?.getAttribute('datetime'),
          waiting: r.querySelector('[data-waiting]')?.textContent ?? null,
          from: r.querySelector('.c-from')?.textContent,
          subject: r.querySelector('.c-subject')?.textContent,
        })),
    );
    assert.ok(rows.length > 0);
    const firstAnswered = rows.findIndex((r) => r.status !== 'pending');
    if (firstAnswered >= 0) assert.ok(rows.slice(firstAnswered).every((r) => r.status !== 'pending'), 'pending rows come first');
    const pending = rows.filter((r) => r.status === 'pending');
    for (let i = 1; i < pending.length; i++) assert.ok(Date.parse(pending[i - 1].time) <= Date.parse(pending[i].time), 'oldest pending on top');
    for (const r of pending) assert.match(r.waiting, /(\d+ [dhm])|(< 1 m)/, 'waiting time like "3 h 12 m"');
    const api = await apiGet(page, `/messages?folder=${encodeURIComponent(folder.f.id)}&status=pending&sort=oldest&limit=1`);
    if (api.messages[0]) assert.ok(rows[0].subject.includes(api.messages[0].subject ?? ''), 'first row is the oldest pending message');
  });

  test('on a phone-sized screen each message is a two-line card with sender, time and subject, and j keeps the selection in view', async () => {
    const page = await open({ width: 390, height: 844 });
    await login(page, 'agent');
    await openFolder(page, folder.f.imap_name);
    const cards = await page.evaluate(() =>
      [...document.querySelectorAll('#message-list [role="option"]')]
        .sort((a, b) => Number(a.getAttribute('aria-posinset')) - Number(b.getAttribute('aria-posinset')))
        .slice(0, 4)
        .map((r) => {
          const box = (sel) => {
            const e = r.querySelector(sel);
            const b = e?.getBoundingClientRect();
            return b && { top: b.top, bottom: b.bottom, left: b.left, right: b.right, width: b.width };
          };
          const b = r.getBoundingClientRect();
          return { top: b.top, height: b.height, from: box('.c-from'), subject: box('.c-subject'), time: box('.c-time'), width: innerWidth };
        }),
    );
    assert.ok(cards.length >= 2, 'rows are shown');
    for (const [i, c] of cards.entries()) {
      assert.ok(c.height >= 60, `row ${i} is a two-line card (height ${c.height})`);
      for (const part of ['from', 'subject', 'time']) {
        assert.ok(c[part] && c[part].width > 0 && c[part].right <= c.width + 0.5, `row ${i}: ${part} visible within the screen ${JSON.stringify(c[part])}`);
      }
      assert.ok(c.subject.top >= c.from.bottom - 1, `row ${i}: the subject is on the line under the sender`);
      assert.ok(c.subject.width > c.width * 0.6, `row ${i}: the subject gets most of the width (${c.subject.width} px)`);
      if (i > 0) assert.ok(c.top >= cards[i - 1].top + cards[i - 1].height - 0.5, `row ${i} does not overlap the row above`);
    }
    const count = await page.locator('#message-list [role="option"]').count();
    const presses = Math.min(count, 8);
    for (let i = 0; i < presses; i++) await page.keyboard.press('j');
    const inView = await waitFor(
      () =>
        page.evaluate((n) => {
          const row = document.querySelector('#message-list [aria-selected="true"]');
          if (!row || Number(row.getAttribute('aria-posinset')) !== n) return null;
          const l = document.getElementById('message-list').getBoundingClientRect();
          const r = row.getBoundingClientRect();
          return r.top >= l.top - 0.5 && r.bottom <= l.bottom + 0.5 ? { l: [l.top, l.bottom], r: [r.top, r.bottom] } : null;
        }, presses),
      5000,
      `row ${presses} selected and wholly in view after ${presses} presses of j`,
    );
    assert.ok(inView);
  });

  test('another IMAP client flags one message and answers another: rows and counts follow within 3 s, without reload', async () => {
    const page = await open();
    await login(page, 'agent');
    await openFolder(page, folder.f.imap_name);
    const a = await pendingMessage(page, folder.f);
    const b = await pendingMessage(page, folder.f);
    await rowByUid(page, a.uid);
    await page.evaluate(() => (window.__noReload = true));
    const before = await apiGet(page, `/folders/${encodeURIComponent(folder.f.id)}`);

    const t0 = Date.now();
    await control('POST', '/store', { user: USERS.agent.username, folder_imap_name: folder.f.imap_name, uid: a.uid, change: '+FLAGS (\\Flagged)' });
    await control('POST', '/store', { user: USERS.agent.username, folder_imap_name: folder.f.imap_name, uid: b.uid, change: '+FLAGS (\\Answered)' });

    await waitFor(async () => (await rowState(page, a.uid))?.flagged === true, LIVE_MS, `row ${a.uid} flagged`);
    await rowByUid(page, b.uid);
    await waitFor(async () => (await rowState(page, b.uid))?.status === 'answered', LIVE_MS, `row ${b.uid} answered`);
    await waitFor(async () => {
      const c = await sidebarCounts(page, folder.f.id);
      return c.flagged === before.counts.flagged + 1 && c.pending === before.counts.pending - 1 && c.answered === before.counts.answered + 1;
    }, LIVE_MS, 'sidebar counts to follow');
    assert.ok(Date.now() - t0 < LIVE_MS + 1000);
    assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was not reloaded');
    const flagged = await page.locator(`#message-list [data-uid="${a.uid}"] .flag-mark`).count();
    assert.equal(flagged, 1, 'flagged marker shown');
  });

  test('"mark answered" in the UI sets \\Answered on the IMAP server', async () => {
    const page = await open();
    await login(page, 'agent');
    await openFolder(page, folder.f.imap_name);
    const m = await pendingMessage(page, folder.f);
    const row = await rowByUid(page, m.uid);
    await row.click();
    const button = page.locator('.detail [data-action="answered"]');
    await button.waitFor();
    assert.equal(await button.isDisabled(), false);
    assert.match(await button.textContent(), /Mark answered/);
    await button.click();
    await waitFor(async () => {
      const { flags } = await control('GET', `/flags?folder_imap_name=${encodeURIComponent(folder.f.imap_name)}&uid=${m.uid}`);
      return flags.includes('\\Answered');
    }, LIVE_MS, '\\Answered on the IMAP server');
    await waitFor(async () => (await rowState(page, m.uid))?.status === 'answered', LIVE_MS, 'row answered');
    await waitFor(async () => /Mark pending/.test(await button.textContent()), LIVE_MS, 'button to offer "Mark pending"');
  });

  test('keyboard: j / k move, Enter opens, f flags (on IMAP), / searches, ? shows help', async () => {
    const page = await open();
    await login(page, 'agent');
    await openFolder(page, folder.f.imap_name);
    const sel = () => page.evaluate(() => document.querySelector('#message-list [aria-selected="true"]')?.dataset.id ?? null);
    await page.keyboard.press('j');
    const first = await waitFor(sel, 5000, "a selected row");
    await page.keyboard.press('j');
    const second = await waitFor(async () => ((await sel()) !== first ? sel() : null), 5000, "selection to move");
    await page.keyboard.press('k');
    await waitFor(async () => (await sel()) === first, 5000, "selection to move back");
    assert.notEqual(first, second);
    await page.keyboard.press('Enter');
    await page.locator(`.detail[data-message-id="${first}"]`).waitFor({ timeout: 2000 });

    // f toggles \Flagged on the selected message (pick an unflagged pending one by search-free means)
    const m = await pendingMessage(page, folder.f);
    const row = await rowByUid(page, m.uid);
    await row.click();
    await page.keyboard.press('f');
    await waitFor(async () => {
      const { flags } = await control('GET', `/flags?folder_imap_name=${encodeURIComponent(folder.f.imap_name)}&uid=${m.uid}`);
      return flags.includes('\\Flagged');
    }, LIVE_MS, '\\Flagged on the IMAP server after f');

    await page.keyboard.press('Escape');
    await page.keyboard.press('/');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'f-q', '/ focuses search');
    await page.keyboard.press('Escape');
    await page.keyboard.press('?');
    await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
    await page.keyboard.press('Escape');
    await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor({ state: 'detached' });
  });

  test('filters: status, flagged and text narrow the list (only known parameters are sent)', async () => {
    const page = await open();
    await login(page, 'agent');
    await openFolder(page, folder.f.imap_name);
    const bad = [];
    page.on('response', (r) => {
      if (r.url().includes('/api/v1/') && r.status() === 400) bad.push(r.url());
    });
    await page.getByLabel('Status').selectOption('answered');
    await waitFor(async () => {
      const s = await page.evaluate(() => [...document.querySelectorAll('#message-list [role="option"]')].map((r) => r.dataset.status));
      return s.length > 0 && s.every((x) => x === 'answered');
    }, 3000, 'only answered rows');
    await page.getByLabel('Flag', { exact: true }).selectOption('true');
    await waitFor(async () => {
      const s = await page.evaluate(() => [...document.querySelectorAll('#message-list [role="option"]')].map((r) => r.dataset.flagged));
      return s.every((x) => x === 'true');
    }, 3000, 'only flagged rows');
    await page.getByLabel('Status').selectOption('any');
    await page.getByLabel('Flag', { exact: true }).selectOption('');
    const subject = folder.fx.messages.find((x) => x.subject && x.subject.length > 3)?.subject;
    if (subject) {
      await page.getByLabel('Search').fill(subject);
      await waitFor(async () => {
        const s = await page.evaluate(() => [...document.querySelectorAll('#message-list [role="option"] .c-subject')].map((r) => r.textContent));
        return s.length > 0 && s.every((x) => x.includes(subject));
      }, 3000, 'search results');
    }
    assert.deepEqual(bad, [], 'no 400 from the API');
  });

  test('a 412 conflict is explained ("changed by someone else — reloaded") and the message reloaded', async () => {
    const page = await open();
    // No live stream for this tab: it cannot learn of the other client's change before acting.
    await page.route('**/api/v1/events/stream**', (route) => route.abort());
    await login(page, 'agent');
    await openFolder(page, folder.f.imap_name);
    const m = await pendingMessage(page, folder.f, { flagged: false });
    const row = await rowByUid(page, m.uid);
    await row.click();
    await page.locator('.detail [data-action="flagged"]').waitFor();
    const seen = await apiGet(page, `/messages/${encodeURIComponent(m.id)}`);
    await control('POST', '/store', { user: USERS.agent.username, folder_imap_name: folder.f.imap_name, uid: m.uid, change: '+FLAGS (\\Flagged)' });
    await waitFor(async () => (await apiGet(page, `/messages/${encodeURIComponent(m.id)}`)).etag !== seen.etag, 5000, 'the mirror to see the change');
    const patches = [];
    page.on('response', (r) => r.request().method() === 'PATCH' && patches.push(r.status()));
    await page.locator('.detail [data-action="flagged"]').click(); // tab still thinks "unflagged": asks to flag
    await page.locator('.detail [data-conflict]').waitFor({ timeout: 5000 });
    assert.match(await page.locator('.detail [data-conflict]').textContent(), /changed by someone else — reloaded/i);
    assert.deepEqual(patches, [412]);
    // reloaded: the row and the button show the other client's state
    await waitFor(async () => (await rowState(page, m.uid))?.flagged === true, 3000, 'row reloaded as flagged');
    assert.match(await page.locator('.detail [data-action="flagged"]').textContent(), /Unflag/);
  });

  test('new messages appear with an "N new" marker that does not take focus (needs POST /append)', async (t) => {
    const page = await open();
    await login(page, 'agent');
    await openFolder(page, folder.f.imap_name);
    await page.locator('.live[data-live="live"]').waitFor({ timeout: 5000 });
    await page.locator('#message-list').focus();
    await page.keyboard.press('j');
    const selected = await page.evaluate(() => document.querySelector('#message-list [aria-selected="true"]')?.dataset.id);
    let uid;
    try {
      ({ uid } = await control('POST', '/append', { user: USERS.agent.username, folder_imap_name: folder.f.imap_name, subject: `Fresh ${Date.now()}` }));
    } catch (e) {
      if (e.status === 404) return t.skip('the control endpoint has no POST /append');
      throw e;
    }
    await page.locator('.newbar[data-new-count]').waitFor({ timeout: LIVE_MS });
    assert.match(await page.locator('.newbar').textContent(), /1 new message/);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'message-list', 'focus stays on the list');
    assert.equal(await page.evaluate(() => document.querySelector('#message-list [aria-selected="true"]')?.dataset.id), selected, 'selection unchanged');
    await page.locator('.newbar').click();
    await waitFor(async () => (await rowState(page, uid))?.status === 'pending', 3000, 'the new row shown');
    assert.equal(await page.locator('.newbar').count(), 0);
  });

  test('a reader with only l r sees the actions disabled, with the reason', async () => {
    const page = await open();
    await login(page, 'reader');
    const { folders } = await apiGet(page, '/folders');
    const f = folders.find((x) => x.imap_name === folder.f.imap_name) ?? folders[0];
    assert.ok(f, 'reader reads a folder');
    assert.ok(!f.my_rights.includes('w'), `reader has no w (has ${f.my_rights})`);
    await openFolder(page, f.imap_name);
    await page.locator('#message-list [role="option"]').first().click();
    const answered = page.locator('.detail [data-action="answered"]');
    const flagged = page.locator('.detail [data-action="flagged"]');
    await answered.waitFor();
    assert.equal(await answered.isDisabled(), true, 'answered disabled');
    assert.equal(await flagged.isDisabled(), true, 'flag disabled');
    if (!f.my_rights.includes('s')) assert.equal(await page.locator('.detail [data-action="seen"]').isDisabled(), true);
    const why = await page.locator('.detail [data-why]').first().textContent();
    assert.match(why, /\bw\b/, 'the explanation names the missing right');
    // The keyboard shortcut does not change anything either.
    const id = await page.locator('.detail').getAttribute('data-message-id');
    const before = await apiGet(page, `/messages/${encodeURIComponent(id)}`);
    const patches = [];
    page.on('request', (r) => { if (r.method() === 'PATCH') patches.push(r.url()); });
    await page.keyboard.press('a');
    // Keys are handled in order: once "?" has opened the help, "a" has been handled too.
    await page.keyboard.press('?');
    await page.getByRole('dialog', { name: /keyboard/i }).waitFor({ timeout: 5000 });
    await page.keyboard.press('Escape');
    assert.deepEqual(patches, [], 'no change was sent');
    const afterMsg = await apiGet(page, `/messages/${encodeURIComponent(id)}`);
    assert.deepEqual(afterMsg.flags, before.flags);
  });

  test('users without a never see the ACL editor', async () => {
    for (const who of ['agent', 'reader']) {
      const page = await open();
      await login(page, who);
      const { folders } = await apiGet(page, '/folders');
      for (const f of folders) {
        if (f.my_rights.includes('a')) continue;
        await openFolder(page, f.imap_name);
        assert.equal(await page.getByRole('button', { name: /Access rights/ }).count(), 0, `${who} on ${f.imap_name}`);
        assert.equal(await page.locator('.acl-dialog').count(), 0);
      }
    }
  });

  test('an ACL change in the editor shows in the IMAP server (GETACL)', async () => {
    const page = await open();
    await login(page, 'admin');
    const { folders } = await apiGet(page, '/folders');
    const f = folders.find((x) => x.imap_name === folder.f.imap_name && x.my_rights.includes('a')) ?? folders.find((x) => x.my_rights.includes('a'));
    assert.ok(f, 'admin holds a on a folder');
    await openFolder(page, f.imap_name);
    await page.getByRole('button', { name: /Access rights/ }).click();
    const dialog = page.getByRole('dialog', { name: /Access rights/ });
    await dialog.waitFor();
    await dialog.locator('[data-my-rights]').waitFor();
    assert.match(await dialog.locator('[data-my-rights]').getAttribute('data-my-rights'), /a/);
    // every right is a labelled checkbox
    await dialog.getByRole('checkbox', { name: /Administer \(a\)/ }).first().waitFor();

    const ident = `fptest${Date.now() % 100000}`;
    await dialog.getByLabel('User name or identifier').fill(ident);
    // new entries start with l r; add w
    await dialog.locator('#acl-new-w').check();
    await dialog.getByRole('button', { name: 'Add entry' }).click();
    const acl = async () => Object.fromEntries((await control('GET', `/acl?folder_imap_name=${encodeURIComponent(f.imap_name)}`)).entries);
    await waitFor(async () => (await acl())[ident] === 'lrw', 5000, `GETACL to show ${ident} lrw`);

    // change it in the table: drop w, save
    const row = dialog.locator(`tr[data-identifier="${ident}"]`);
    await row.waitFor();
    await row.getByRole('checkbox', { name: `Write flags (w) for ${ident}` }).uncheck();
    await row.getByRole('button', { name: /^Save/ }).click();
    await waitFor(async () => (await acl())[ident] === 'lr', 5000, `GETACL to show ${ident} lr`);

    // remove it
    await row.getByRole('button', { name: /^Remove/ }).click();
    await row.getByRole('button', { name: `Remove ${ident}` }).click();
    await waitFor(async () => !((await acl())[ident]), 5000, `GETACL without ${ident}`);

    const violations = await axeSerious(page);
    assert.deepEqual(violations, [], 'axe on the ACL editor');
  });

  test('an expired session returns to login and comes back to the same view', async () => {
    const page = await open();
    await login(page, 'agent');
    await openFolder(page, folder.f.imap_name);
    await page.getByLabel('Status').selectOption('pending');
    await page.locator('#message-list [role="option"]').first().waitFor();
    await page.locator('#message-list [role="option"]').nth(1).click();
    const id = await page.locator('.detail').getAttribute('data-message-id');
    // End the session on the server (as expiry would), then make the app talk to the API.
    await page.evaluate(() => fetch('/api/v1/session', { method: 'DELETE', credentials: 'same-origin' }));
    // The app may notice by itself (the server ends the stream of a revoked session); if it has
    // not yet, an action makes it talk to the API.
    await page.locator('.detail [data-action="flagged"]').click({ timeout: 1000 }).catch(() => {});
    await page.getByText('Your session has expired').waitFor({ timeout: 5000 });
    await page.getByLabel('Password').fill(USERS.agent.password);
    if (!(await page.getByLabel('User name').inputValue())) await page.getByLabel('User name').fill(USERS.agent.username);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('.shell').waitFor();
    await page.locator(`.folder[data-imap-name="${folder.f.imap_name}"][aria-current="page"]`).waitFor();
    assert.equal(await page.getByLabel('Status').inputValue(), 'pending');
    await page.locator(`.detail[data-message-id="${id}"]`).waitFor();
    await page.locator(`#message-list [aria-selected="true"][data-id="${id}"]`).waitFor();
  });

  test('logout ends the session', async () => {
    const page = await open();
    await login(page, 'agent');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Password').waitFor();
    const res = await page.request.get(`${process.env.FLAGPOST_URL.replace(/\/$/, '')}/api/v1/me`);
    assert.equal(res.status(), 401);
  });

  test('axe-core: no serious or critical violations on login, list, detail and help', async () => {
    const page = await open();
    await page.goto(process.env.FLAGPOST_URL);
    await page.getByLabel('Password').waitFor();
    assert.deepEqual(await axeSerious(page), [], 'login screen');
    await login(page, 'agent');
    await openFolder(page, folder.f.imap_name);
    assert.deepEqual(await axeSerious(page), [], 'message list');
    await page.locator('#message-list [role="option"]').first().click();
    await page.locator('.detail h3', { hasText: 'History' }).waitFor();
    await page.locator('.detail .history, .detail p.muted').first().waitFor();
    assert.deepEqual(await axeSerious(page), [], 'message detail');
    await page.keyboard.press('?');
    await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
    assert.deepEqual(await axeSerious(page), [], 'help dialog');
    const reader = await open();
    await login(reader, 'reader');
    await reader.locator('#message-list [role="option"]').first().click();
    await reader.locator('.detail [data-why]').first().waitFor();
    assert.deepEqual(await axeSerious(reader), [], 'detail with disabled actions');
  });

  test('a folder of 10,000 messages becomes interactive after login (time reported), and stays virtualised', async (t) => {
    // Find the big folder with an API session of its own (the browser logs in fresh below).
    const probe = await open();
    await login(probe, 'agent');
    const { folders } = await apiGet(probe, '/folders');
    const big = folders.find((f) => f.counts.total >= 10000);
    if (!big) return t.skip('the fixture has no folder with 10,000 messages');
    const page = await open();
    await page.goto(`${process.env.FLAGPOST_URL.replace(/\/$/, '')}/#/?folder=${encodeURIComponent(big.id)}`);
    await page.getByLabel('User name').fill(USERS.agent.username);
    await page.getByLabel('Password').fill(USERS.agent.password);
    const t0 = Date.now();
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#message-list [role="option"]').first().waitFor({ timeout: 5000 });
    await page.keyboard.press('j');
    await page.locator('#message-list [role="option"][aria-selected="true"]').waitFor({ timeout: 5000 });
    const elapsed = Date.now() - t0;
    t.diagnostic(`interactive after ${elapsed} ms`);
    // Speed is a benchmark figure (BENCHMARKS.md: ≤ 1 s on a quiet machine); a test sharing two
    // cores with the rest of the suite only checks that the folder becomes usable at all.
    assert.ok(elapsed <= 10000, `interactive after ${elapsed} ms`);

    // Scroll far: pages load, the DOM keeps only the rows in view. Keep scrolling to the end
    // until more than 1,000 rows are loaded, polled from here with a deadline (waitForFunction
    // would need eval in the page, which the dashboard's CSP forbids).
    // The count and the rows are read in the same evaluation: the scroll it makes starts the
    // next page, and the foot then says "Loading more…" for a moment.
    const deadline = Date.now() + 20000;
    let loaded = 0;
    let rendered = 0;
    while (Date.now() < deadline) {
      ({ loaded, rendered } = await page.evaluate(() => {
        const counts = {
          loaded: Number((document.querySelector('.list-foot')?.textContent ?? '').replace(/[^\d]/g, '')),
          rendered: document.querySelectorAll('#message-list [role="option"]').length,
        };
        const el = document.getElementById('message-list');
        if (el) el.scrollTop = el.scrollHeight;
        return counts;
      }));
      if (loaded > 1000) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(loaded > 1000, `more pages loaded while scrolling (${loaded})`);
    assert.ok(rendered < 120, `only visible rows are in the DOM (${rendered})`);
  });

  test('stream drop and restore (restart of flagpost serve) resumes with nothing missed', async () => {
    const page = await open();
    await login(page, 'agent');
    await openFolder(page, folder.f.imap_name);
    await page.locator('.live[data-live="live"]').waitFor({ timeout: 5000 });
    const a = await pendingMessage(page, folder.f, { flagged: false });
    const b = await pendingMessage(page, folder.f, { flagged: false });
    await rowByUid(page, a.uid);
    await page.evaluate(() => (window.__noReload = true));

    const restarting = control('POST', '/restart-flagpost');
    // The stream drops: the indicator says so (best effort: a very fast restart may skip it).
    await page.locator('.live[data-live="reconnecting"]').waitFor({ timeout: 5000 }).catch(() => {});
    // A change made while flagpost is down or starting must still arrive.
    await control('POST', '/store', { user: USERS.agent.username, folder_imap_name: folder.f.imap_name, uid: a.uid, change: '+FLAGS (\\Flagged)' });
    await restarting;
    await waitFor(async () => (await rowState(page, a.uid))?.flagged === true, 15000, 'the change made during the restart');
    await page.locator('.live[data-live="live"]').waitFor({ timeout: 15000 });
    // And the resumed stream carries new changes.
    await control('POST', '/store', { user: USERS.agent.username, folder_imap_name: folder.f.imap_name, uid: b.uid, change: '+FLAGS (\\Flagged)' });
    await rowByUid(page, b.uid);
    await waitFor(async () => (await rowState(page, b.uid))?.flagged === true, LIVE_MS, 'a change after the restart');
    assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was not reloaded');
    const { folders } = await apiGet(page, '/folders');
    const f = folders.find((x) => x.id === folder.f.id);
    await waitFor(async () => (await sidebarCounts(page, f.id)).flagged === f.counts.flagged, LIVE_MS, 'counts after the restart');
  });
});
