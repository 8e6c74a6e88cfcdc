// The dashboard ships at most 150 KB of JavaScript, gzipped. Measured on what the server
// serves (FLAGPOST_URL) when set, else on web/dist (after `npm run build`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const BUDGET = 150 * 1024;
const base = process.env.FLAGPOST_URL?.replace(/\/$/, '');
const dist = new URL('../dist/', import.meta.url);

async function get(path) {
  if (base) {
    const res = await fetch(base + path);
    assert.equal(res.status, 200, `GET ${path}`);
    return { body: Buffer.from(await res.arrayBuffer()), type: res.headers.get('content-type') ?? '' };
  }
  return { body: readFileSync(new URL('.' + path.replace(/^\/$/, '/index.html'), dist)), type: '' };
}

test('JS shipped by the dashboard is at most 150 KB gzipped', { skip: !base && !existsSync(new URL('index.html', dist)) && 'no FLAGPOST_URL and no web/dist' }, async () => {
  const html = (await get('/')).body.toString('utf8');
  assert.match(html, /<div id="app">/, 'the dashboard page');
  const seen = new Set();
  const queue = [...html.matchAll(/<(?:script|link)[^>]+(?:src|href)="(\/assets\/[^"]+\.js)"/g)].map((m) => m[1]);
  assert.ok(queue.length > 0, 'the page loads JS from /assets/');
  let total = 0;
  while (queue.length) {
    const path = queue.shift();
    if (seen.has(path)) continue;
    seen.add(path);
    const { body, type } = await get(path);
    if (base) assert.match(type, /javascript/, `${path} served as JavaScript`);
    total += gzipSync(body, { level: 9 }).length;
    // Follow static and dynamic imports of other chunks.
    for (const m of body.toString('utf8').matchAll(/["'`](?:\.\/|\/assets\/)([\w.-]+\.js)["'`]/g)) queue.push(`/assets/${m[1]}`);
  }
  console.log(`dashboard JS: ${(total / 1024).toFixed(1)} KB gzipped in ${seen.size} file(s)`);
  assert.ok(total <= BUDGET, `${(total / 1024).toFixed(1)} KB gzipped > 150 KB`);
});

test('the dashboard is served with its assets', { skip: !base && 'FLAGPOST_URL not set' }, async () => {
  const res = await fetch(base + '/');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/html/);
  const html = await res.text();
  for (const m of html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)) {
    const a = await fetch(base + m[1]);
    assert.equal(a.status, 200, m[1]);
  }
});
