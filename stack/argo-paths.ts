/** Where Argo Rollouts' controller and its resource definitions are cached (scripts/env.sh). */
import { execFileSync } from 'node:child_process';
import { repoRoot } from './config.ts';

export interface ArgoPaths {
  version: string;
  bin: string;
  crds: string;
}

let cached: ArgoPaths | undefined;
/** ARGO_ROLLOUTS_VERSION, ARGO_ROLLOUTS_BIN, ARGO_ROLLOUTS_CRDS from the environment, else from scripts/env.sh. */
export function argoPaths(): ArgoPaths {
  if (cached) return cached;
  let { ARGO_ROLLOUTS_VERSION: version, ARGO_ROLLOUTS_BIN: bin, ARGO_ROLLOUTS_CRDS: crds } = process.env;
  if (!version || !bin || !crds) {
    const out = execFileSync(
      'bash',
      [
        '-c',
        'source scripts/env.sh && printf "%s\\n" "$ARGO_ROLLOUTS_VERSION" "$ARGO_ROLLOUTS_BIN" "$ARGO_ROLLOUTS_CRDS"',
      ],
      { cwd: repoRoot, encoding: 'utf8' },
    );
    [version, bin, crds] = out.trim().split('\n');
  }
  cached = { version: version!, bin: bin!, crds: crds! };
  return cached;
}
