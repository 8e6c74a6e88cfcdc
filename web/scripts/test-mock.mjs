// Runs the browser tests against dev/mock-server.mjs (no Dovecot, PostgreSQL or Rust needed):
// starts the mock on free ports, sets FLAGPOST_URL / FLAGPOST_USERS / FLAGPOST_CONTROL as the
// Rust harness does, and runs `node --test` on tests/. Needs `npm run build` first.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const mock = spawn(process.execPath, [new URL('../dev/mock-server.mjs', import.meta.url).pathname, '--port', '0'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const line = await new Promise((ok, fail) => {
  createInterface({ input: mock.stdout }).once('line', ok);
  mock.once('exit', (c) => fail(new Error(`mock exited ${c}`)));
});
const cfg = JSON.parse(line);
const args = ['--test', '--test-concurrency=1', ...process.argv.slice(2)];
if (!process.argv.slice(2).some((a) => !a.startsWith('-'))) args.push(new URL('../tests/', import.meta.url).pathname);
const run = spawn(process.execPath, args, {
  stdio: 'inherit',
  env: { ...process.env, FLAGPOST_URL: cfg.url, FLAGPOST_CONTROL: cfg.control, FLAGPOST_USERS: JSON.stringify(cfg.users) },
});
const code = await new Promise((ok) => run.on('exit', ok));
mock.kill('SIGTERM');
process.exit(code ?? 1);
