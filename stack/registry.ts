/**
 * Registries: Debian's docker-registry (distribution 2.8) with our own config
 * (its packaged one turns on htpasswd on :5000): plain HTTP on loopback, no
 * auth, deletes enabled, storage under the data dir. `central` gets the demo
 * images; regional registries start empty (replication is Flotilla's job).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { stringify as toYaml } from 'yaml';
import type { FleetRegistry, StackConfig } from './config.ts';
import { ports } from './config.ts';
import type { BuiltImage } from './images.ts';
import { buildDemoImages, MT } from './images.ts';
import { assertPortFree, httpRequest } from './net.ts';
import type { ProcRecord } from './process.ts';
import { isAlive, readState, startProcess, stopProcess, waitFor } from './process.ts';

const run = promisify(execFile);
export const REGISTRY_BIN = process.env.FLOTILLA_REGISTRY_BIN ?? 'docker-registry';
export const registryPart = (name: string) => `registry/${name}`;

export function registryInfo(cfg: StackConfig, r: FleetRegistry) {
  const index = cfg.fleet.registries.findIndex((x) => x.name === r.name);
  const host = `127.0.0.1:${ports.registry(cfg.portBase, index)}`;
  return { name: r.name, region: r.region, host, url: `http://${host}` };
}

export async function registryHealthy(host: string, timeoutMs = 1000): Promise<boolean> {
  const res = await httpRequest(`http://${host}/v2/`, { timeoutMs }).catch(() => undefined);
  return res?.status === 200;
}

function writeConfig(dir: string, host: string): string {
  const file = path.join(dir, 'config.yml');
  const secretFile = path.join(dir, 'http-secret');
  if (!existsSync(secretFile)) writeFileSync(secretFile, randomBytes(24).toString('hex'), { mode: 0o600 });
  const config = {
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: path.join(dir, 'data') },
      delete: { enabled: true },
      cache: { blobdescriptor: 'inmemory' },
    },
    http: {
      addr: host,
      secret: readFileSync(secretFile, 'utf8').trim(),
      headers: { 'X-Content-Type-Options': ['nosniff'] },
    },
  };
  writeFileSync(file, toYaml(config));
  return file;
}

export async function registryUp(
  cfg: StackConfig,
  r: FleetRegistry,
  log: (line: string) => void,
): Promise<ProcRecord> {
  const info = registryInfo(cfg, r);
  const part = registryPart(r.name);
  const existing = readState(cfg.dataDir)?.processes[part];
  if (existing && isAlive(existing)) {
    await waitFor(part, () => registryHealthy(info.host), { timeoutMs: 15_000, rec: existing });
    log(`${part}: already running`);
    return existing;
  }
  await assertPortFree(Number(info.host.split(':')[1]), part);
  const dir = path.join(cfg.dataDir, 'registries', r.name);
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  const file = writeConfig(dir, info.host);
  const rec = startProcess(cfg.dataDir, cfg.portBase, {
    name: part,
    command: REGISTRY_BIN,
    args: ['serve', file],
    cwd: dir,
  });
  await waitFor(part, () => registryHealthy(info.host), { timeoutMs: 30_000, rec, intervalMs: 100 });
  log(`${part}: up at ${info.url}`);
  return rec;
}

export function registryDown(cfg: StackConfig, name: string): Promise<boolean> {
  return stopProcess(cfg.dataDir, cfg.portBase, registryPart(name));
}

/** The digest the registry holds for repo:tag, or undefined. */
export async function manifestDigest(host: string, repo: string, tag: string): Promise<string | undefined> {
  const res = await httpRequest(`http://${host}/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    headers: {
      accept: [
        MT.manifest,
        MT.index,
        'application/vnd.docker.distribution.manifest.v2+json',
        'application/vnd.docker.distribution.manifest.list.v2+json',
      ].join(', '),
    },
  });
  return res.status === 200 ? (res.headers['docker-content-digest'] as string | undefined) : undefined;
}

/** Builds the demo images and pushes each tag the registry does not already hold at the expected digest. */
export async function pushDemoImages(
  cfg: StackConfig,
  host: string,
  log: (line: string) => void,
): Promise<BuiltImage[]> {
  const images = { ...cfg.fleet.images };
  if (process.env.FLOTILLA_DEMO_LAYER_KIB) images.layerSizeKiB = Number(process.env.FLOTILLA_DEMO_LAYER_KIB);
  const layout = path.join(cfg.dataDir, 'images', 'oci');
  const built = buildDemoImages(layout, images);
  const pushed: string[] = [];
  await Promise.all(
    built.map(async (img) => {
      if ((await manifestDigest(host, images.repository, img.tag)) === img.digest) return;
      const multi = img.mediaType === MT.index;
      // prettier-ignore
      const args = ['copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', '--preserve-digests', '--retry-times', '2',
        ...(multi ? ['--all'] : []), `oci:${layout}:${img.tag}`, `docker://${host}/${images.repository}:${img.tag}`];
      await run('skopeo', args, { timeout: 120_000 });
      const got = await manifestDigest(host, images.repository, img.tag);
      if (got !== img.digest)
        throw new Error(
          `pushed ${images.repository}:${img.tag} to ${host} but it reports ${got}, expected ${img.digest}`,
        );
      pushed.push(img.tag);
    }),
  );
  log(
    `images: ${images.repository}:{${built.map((b) => b.tag).join(',')}} in ${host}${pushed.length ? ` (pushed ${pushed.join(', ')})` : ' (already there)'}`,
  );
  return built;
}
