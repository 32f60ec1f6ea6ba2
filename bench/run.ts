/**
 * `npm run bench -- <name>` runs bench/<name>.ts: one script per figure. Benchmarks
 * print figures (and write reports/bench-<name>.json); they never fail on a time.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = import.meta.dirname;
const available = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => f.slice(0, -3));
const name = process.argv[2];
if (!name || !/^[a-z0-9-]+$/.test(name) || !existsSync(path.join(dir, `${name}.ts`))) {
  console.error(`usage: npm run bench -- <name>   (one of: ${available.join(', ')})`);
  process.exit(2);
}
const mod = (await import(pathToFileURL(path.join(dir, `${name}.ts`)).href)) as {
  main?: (args: string[]) => Promise<void>;
};
if (typeof mod.main !== 'function') {
  console.error(`bench/${name}.ts exports no main()`);
  process.exit(2);
}
await mod.main(process.argv.slice(3));
