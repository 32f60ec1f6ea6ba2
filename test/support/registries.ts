/**
 * Registry helpers for the registry and Harbor tests (and the copier bench):
 * the stack's registries as an inventory, test images built and pushed with
 * skopeo, `skopeo inspect` to read back what a registry holds, and throwaway
 * docker-registry processes of a test's own (stopped by pid).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { stringify as toYaml } from 'yaml';
import type { Registry } from '../../model/registry.ts';
import { buildDemoImages, type BuiltImage } from '../../stack/images.ts';
import type { StackInfo } from '../../stack/types.ts';

const run = promisify(execFile);

/** The stack's registries as inventory entries (plain HTTP on loopback). */
export function stackRegistries(stack: StackInfo): Registry[] {
  return stack.registries.map((r) => ({
    name: r.name,
    host: r.host,
    region: r.region,
    type: 'oci',
    tls: 'none',
  }));
}

export function registryHost(stack: StackInfo, name: string): string {
  const r = stack.registries.find((x) => x.name === name);
  if (!r) throw new Error(`no registry ${name} in the stack`);
  return r.host;
}

export async function skopeo(args: string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await run('skopeo', args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** `skopeo inspect --tls-verify=false` (with --creds when given): digest and, with `raw`, the manifest. */
export async function inspect(
  ref: string,
  opts: { raw?: boolean; creds?: string; arch?: string } = {},
): Promise<Record<string, unknown>> {
  const args = [
    'inspect',
    '--tls-verify=false',
    ...(opts.raw ? ['--raw'] : []),
    ...(opts.creds ? ['--creds', opts.creds] : []),
  ];
  if (opts.arch) args.push('--override-arch', opts.arch);
  return JSON.parse(await skopeo([...args, `docker://${ref}`])) as Record<string, unknown>;
}

/**
 * Builds an image of seeded bytes as an OCI layout (stack/images.ts: the bytes
 * depend on repository and tag, so pick a unique repository for unique blobs)
 * and pushes it with skopeo. Returns its digest and the blobs' digests and sizes.
 */
export async function pushTestImage(
  workDir: string,
  host: string,
  repository: string,
  opts: { layers?: number; layerSizeKiB?: number; tag?: string } = {},
): Promise<BuiltImage & { ref: string; layout: string }> {
  const tag = opts.tag ?? 'v1';
  const layout = path.join(workDir, 'oci', repository.replace(/\//g, '_'));
  const [img] = buildDemoImages(layout, {
    repository,
    tags: [tag],
    layers: opts.layers ?? 2,
    layerSizeKiB: opts.layerSizeKiB ?? 256,
  });
  const ref = `${host}/${repository}:${tag}`;
  // prettier-ignore
  await skopeo(['copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', '--preserve-digests', `oci:${layout}:${tag}`, `docker://${ref}`], 300_000);
  return { ...img!, ref, layout };
}

/** The blobs (config first, then layers) of an image manifest in a registry, read with skopeo. */
export async function blobsOf(ref: string): Promise<{ digest: string; size: number }[]> {
  const m = (await inspect(ref, { raw: true })) as {
    config: { digest: string; size: number };
    layers: { digest: string; size: number }[];
  };
  return [m.config, ...m.layers].map((d) => ({ digest: d.digest, size: d.size }));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface OwnRegistry {
  host: string;
  dir: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** A docker-registry of the test's own (extra config such as `auth` merged in), stopped by its pid. */
export async function startRegistry(dir: string, auth?: Record<string, unknown>): Promise<OwnRegistry> {
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = {
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: path.join(dir, 'data') }, delete: { enabled: true } },
    http: { addr: host, secret: randomBytes(16).toString('hex') },
    ...(auth ? { auth } : {}),
  };
  const file = path.join(dir, 'config.yml');
  writeFileSync(file, toYaml(config));
  const proc = spawn('docker-registry', ['serve', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
    const ok = await fetch(`http://${host}/v2/`).then(
      (r) => r.status === 200 || r.status === 401,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`docker-registry on ${host} did not answer: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    dir,
    proc,
    stop: () => stopChild(proc),
  };
}

/** SIGTERM, SIGKILL after 5 s; resolves once the process is gone. */
export async function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(timer);
}
