#!/usr/bin/env node
// Takes the README's dashboard screenshot (docs/dashboard.png, 1280×800): logs in to a running
// `flagpost demo` as the agent `alice` in headless Chromium and captures the live view.
//
//   node web/scripts/screenshot.mjs                 # starts `flagpost demo` itself, then stops it
//   FLAGPOST_URL=http://127.0.0.1:8080 node web/scripts/screenshot.mjs   # a demo already running
//
// Environment: FLAGPOST_BIN (default: target/release/flagpost, else target/debug/flagpost),
// CHROMIUM (default /usr/bin/chromium), OUT (default docs/dashboard.png). Build the dashboard and
// the binary first (README: Build). Needs playwright-core from web/node_modules (npm ci).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = resolve(repo, process.env.OUT ?? 'docs/dashboard.png');
const user = { username: 'alice', password: 'demo' };

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Starts `flagpost demo` on a free port; resolves once it prints that it is running. */
async function startDemo() {
  const bin =
    process.env.FLAGPOST_BIN ??
    ['target/release/flagpost', 'target/debug/flagpost'].map((p) => resolve(repo, p)).find(existsSync);
  if (!bin) throw new Error('no flagpost binary: build it first (cargo build --release -p flagpost)');
  const listen = `127.0.0.1:${await freePort()}`;
  const child = spawn(bin, ['demo'], {
    env: { ...process.env, FLAGPOST_LISTEN: listen },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`flagpost demo did not start in 120 s:\n${output}`)), 120_000);
    child.stdout.on('data', (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
      if (output.includes('Flagpost demo is running')) {
        clearTimeout(timer);
        ok();
      }
    });
    child.on('exit', (code) => fail(new Error(`flagpost demo exited (${code}):\n${output}`)));
  });
  child.stdout.resume();
  return {
    url: `http://${listen}`,
    stop: () =>
      new Promise((ok) => {
        child.on('exit', ok);
        child.kill('SIGINT');
      }),
  };
}

const demo = process.env.FLAGPOST_URL ? { url: process.env.FLAGPOST_URL.replace(/\/$/, ''), stop: async () => {} } : await startDemo();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1, colorScheme: 'light' });
  const page = await context.newPage();
  await page.goto(`${demo.url}/`);
  await page.getByLabel('User name').fill(user.username);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('.shell').waitFor();
  await page.locator('[data-folder-id]').first().waitFor();
  await page.locator('[data-status]').first().waitFor();
  // Let the simulated team do something, so the live view shows fresh activity.
  await page.waitForTimeout(8_000);
  mkdirSync(dirname(out), { recursive: true });
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await demo.stop();
}
