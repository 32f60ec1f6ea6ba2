import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

/** The Temporal CLI that scripts/build-binaries.sh put in the cache (building it if missing). */
export function temporalBinary(): string {
  const bin = process.env.TEMPORAL_BIN;
  if (bin && existsSync(bin)) return bin;
  const out = execFileSync('bash', ['-c', 'source scripts/env.sh && bash scripts/build-binaries.sh >&2 && echo "$TEMPORAL_BIN"'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return out.trim();
}
