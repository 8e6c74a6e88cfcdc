// Prints the gzipped size of what the dashboard ships and fails above the budget
// (JS ≤ 150 KB gzipped, from the issue). Usage: node scripts/size.mjs [distDir]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const dist = process.argv[2] ?? new URL('../dist', import.meta.url).pathname;
const BUDGET_JS = 150 * 1024;
let js = 0;
let all = 0;
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else {
      const gz = gzipSync(readFileSync(p), { level: 9 }).length;
      all += gz;
      if (p.endsWith('.js')) js += gz;
      console.log(`${(gz / 1024).toFixed(1).padStart(7)} KB gz  ${p.slice(dist.length + 1)}`);
    }
  }
};
walk(dist);
console.log(`JS total: ${(js / 1024).toFixed(1)} KB gzipped (budget ${BUDGET_JS / 1024} KB); everything: ${(all / 1024).toFixed(1)} KB`);
if (js > BUDGET_JS) {
  console.error('JS over budget');
  process.exit(1);
}
