/**
 * Helm and Kustomize, built from the Go module proxy by scripts/build-binaries.sh
 * and cached per version like the stack's other binaries (HELM_BIN and
 * KUSTOMIZE_BIN from scripts/env.sh). Helm gets its cache, config and data homes
 * in a folder of the stack's data dir, so it never reads or writes a $HOME
 * config and never needs the internet (no repositories are added; charts come
 * from the stack's registries over OCI, `--plain-http`).
 *
 *   import { runHelm, runKustomize } from './stack/tools.ts';
 *   await runHelm(stack.dataDir, ['template', 'web', 'oci://127.0.0.1:27010/charts/web', '--version', '0.1.0', '--plain-http']);
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './config.ts';

const run = promisify(execFile);

export interface Tools {
  helm: string;
  kustomize: string;
}

let cached: Tools | undefined;
/** The tool paths scripts/env.sh exports (asked from env.sh itself when not in the environment). */
export function toolPaths(): Tools {
  if (cached) return cached;
  let { HELM_BIN: helm, KUSTOMIZE_BIN: kustomize } = process.env;
  if (!helm || !kustomize) {
    const out = execFileSync(
      'bash',
      ['-c', 'source scripts/env.sh && printf "%s\\n" "$HELM_BIN" "$KUSTOMIZE_BIN"'],
      { cwd: repoRoot, encoding: 'utf8' },
    );
    [helm, kustomize] = out.trim().split('\n');
  }
  cached = { helm: helm!, kustomize: kustomize! };
  return cached;
}

/** Throws, saying how to build it, when a tool is not built yet. */
export function requireTool(name: keyof Tools): string {
  const file = toolPaths()[name];
  if (!existsSync(file))
    throw new Error(`${name} is not built: ${file} is missing (run scripts/build-binaries.sh)`);
  return file;
}

/** Helm's environment: its homes under `<dataDir>/helm` (created), nothing from $HOME. */
export function helmEnv(dataDir: string): NodeJS.ProcessEnv {
  const home = path.join(path.resolve(dataDir), 'helm');
  const dirs = {
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_DATA_HOME: path.join(home, 'data'),
  };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  return {
    ...process.env,
    ...dirs,
    HELM_REGISTRY_CONFIG: path.join(dirs.HELM_CONFIG_HOME, 'registry', 'config.json'),
    HELM_REPOSITORY_CONFIG: path.join(dirs.HELM_CONFIG_HOME, 'repositories.yaml'),
    HELM_REPOSITORY_CACHE: path.join(dirs.HELM_CACHE_HOME, 'repository'),
    HELM_PLUGINS: path.join(dirs.HELM_DATA_HOME, 'plugins'),
  };
}

export interface ToolRun {
  stdout: string;
  stderr: string;
}

/** Runs helm with the stack's Helm homes; rejects with helm's own words on failure. */
export async function runHelm(
  dataDir: string,
  args: string[],
  opts: { cwd?: string } = {},
): Promise<ToolRun> {
  return runTool(requireTool('helm'), args, { env: helmEnv(dataDir), cwd: opts.cwd });
}

export async function runKustomize(args: string[], opts: { cwd?: string } = {}): Promise<ToolRun> {
  return runTool(requireTool('kustomize'), args, { env: process.env, cwd: opts.cwd });
}

async function runTool(
  bin: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; cwd?: string | undefined },
): Promise<ToolRun> {
  try {
    const r = await run(bin, args, {
      env: opts.env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      timeout: 120_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`${path.basename(bin)} ${args[0]} failed: ${e.stderr?.trim() || e.message}`, {
      cause: err,
    });
  }
}
