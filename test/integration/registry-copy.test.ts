/**
 * The OCI copier against the stack's real registries (Debian docker-registry
 * 2.8): what each copy leaves in the target is read back with skopeo.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRegistryActivities } from '../../activities/registry/activities.ts';
import { Copier, defaultCopierSettings } from '../../activities/registry/copier.ts';
import { RegistryPool } from '../../activities/registry/pool.ts';
import type { CopyProgress } from '../../activities/registry/types.ts';
import { fault, stackOptions } from '../../stack/index.ts';
import { blobsOf, inspect, pushTestImage, registryHost, stackRegistries } from '../support/registries.ts';

const stack = inject('stack');
const log = pino({ level: 'silent' });
const registries = stackRegistries(stack);
const central = registryHost(stack, 'central');
const regional = stack.registries.filter((r) => r.name !== 'central').map((r) => r.host);
const run = randomUUID().slice(0, 8);
const MiB = 1024 * 1024;

let work: string;
let pool: RegistryPool;
beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'registry-copy-'));
  pool = new RegistryPool(registries, {}, log);
});
afterAll(async () => {
  await pool.close(1_000);
  rmSync(work, { recursive: true, force: true });
});

const digestOf = async (ref: string) => (await inspect(ref)).Digest as string;

async function sha256Of(host: string, repo: string, digest: string): Promise<string> {
  const res = await fetch(`http://${host}/v2/${repo}/blobs/${digest}`);
  expect(res.status).toBe(200);
  return `sha256:${createHash('sha256')
    .update(Buffer.from(await res.arrayBuffer()))
    .digest('hex')}`;
}

/** Runs an activity in a mock activity context, typed. */
const runIn = <I, O>(env: MockActivityEnvironment, fn: (input: I) => Promise<O>, input: I): Promise<O> =>
  env.run(fn, input) as Promise<O>;

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected a failure');
}

describe('copying between the stack registries', () => {
  it('copies a single image to every regional registry with the same digest', async () => {
    const copier = new Copier(pool);
    const src = `${central}/demo/web:v1`;
    const srcDigest = await digestOf(src);
    const results = await Promise.all(
      regional.map((host) => copier.copy({ source: src, target: `${host}/copy-${run}/web` })),
    );
    for (const [i, host] of regional.entries()) {
      const r = results[i]!;
      expect(r.digest).toBe(srcDigest);
      expect(r.target).toBe(`${host}/copy-${run}/web@${srcDigest}`);
      expect(r.targetTag).toBe(`${host}/copy-${run}/web:v1`);
      expect(r.filtered).toBe(false);
      expect(r.blobs).toEqual({ total: 4, copied: 4, skipped: 0, mounted: 0 });
      expect(await digestOf(`${host}/copy-${run}/web:v1`)).toBe(srcDigest);
      expect(await digestOf(r.target)).toBe(srcDigest);
    }
  });

  it('copies the multi-architecture index with every platform and the same digest', async () => {
    const copier = new Copier(pool);
    const src = `${central}/demo/web:multi`;
    const srcRaw = await inspect(src, { raw: true });
    const srcDigest = await digestOf(src);
    const results = await Promise.all(
      regional.map((host) => copier.copy({ source: src, target: `${host}/multi-${run}/web` })),
    );
    for (const [i, host] of regional.entries()) {
      const r = results[i]!;
      expect(r).toMatchObject({
        digest: srcDigest,
        platforms: ['linux/amd64', 'linux/arm64/v8'],
        manifests: 3,
        filtered: false,
      });
      expect(await inspect(`${host}/multi-${run}/web:multi`, { raw: true })).toEqual(srcRaw);
      expect(await digestOf(`${host}/multi-${run}/web:multi`)).toBe(srcDigest);
      const arm = await inspect(`${host}/multi-${run}/web:multi`, { arch: 'arm64' });
      expect(arm.Architecture).toBe('arm64');
    }
  });

  it('copies only the platforms asked for, as a new index that says so', async () => {
    const copier = new Copier(pool);
    const target = regional[0]!;
    const r = await copier.copy({
      source: `${central}/demo/web:multi`,
      target: `${target}/arm-${run}/web:arm`,
      platforms: ['linux/arm64'],
    });
    expect(r.filtered).toBe(true);
    expect(r.platforms).toEqual(['linux/arm64/v8']);
    expect(r.digest).not.toBe(r.sourceDigest);
    const raw = (await inspect(`${target}/arm-${run}/web:arm`, { raw: true })) as {
      manifests: { platform: { architecture: string } }[];
    };
    expect(raw.manifests.map((m) => m.platform.architecture)).toEqual(['arm64']);
    expect((await inspect(`${target}/arm-${run}/web:arm`, { arch: 'arm64' })).Digest).toBe(r.digest);
    const missing = await failureOf(
      copier.copy({ source: `${central}/demo/web:multi`, target, platforms: ['linux/s390x'] }),
    );
    expect(missing.type).toBe('ImageNotFound');
    expect(missing.message).toContain('platform linux/s390x not in the index');
  });

  it('a second copy transfers no blob, and a copy within a registry mounts', async () => {
    const copier = new Copier(pool);
    const target = `${regional[1]!}/again-${run}/web`;
    const first = await copier.copy({ source: `${central}/demo/web:v2`, target });
    expect(first.blobs.copied).toBe(4);
    const second = await copier.copy({ source: `${central}/demo/web:v2`, target });
    expect(second.blobs).toEqual({ total: 4, copied: 0, skipped: 4, mounted: 0 });
    expect(second.bytes.uploaded).toBe(0);
    expect(second.bytes.skipped).toBe(second.bytes.total);
    expect(second.digest).toBe(first.digest);

    const mounted = await copier.copy({
      source: `${central}/demo/web:v2`,
      target: `${central}/mounted-${run}/web`,
    });
    expect(mounted.blobs).toEqual({ total: 4, copied: 0, skipped: 0, mounted: 4 });
    expect(mounted.bytes.uploaded).toBe(0);
    expect(await digestOf(`${central}/mounted-${run}/web:v2`)).toBe(first.digest);
  });

  it('names a missing image', async () => {
    const copier = new Copier(pool);
    const f = await failureOf(copier.copy({ source: `${central}/demo/nope:v1`, target: regional[0]! }));
    expect(f.type).toBe('ImageNotFound');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain(`${central}/demo/nope:v1`);
  });
});

describe('a large blob interrupted in the middle', () => {
  const settings = { ...defaultCopierSettings, chunkSize: 8 * MiB, monolithicMax: 8 * MiB };

  it('resumes from the offset the registry holds once the registry is back (not from zero)', async () => {
    const target = stack.registries.find((r) => r.name === 'cn-south')!;
    const repo = `resume-${run}/big`;
    const img = await pushTestImage(work, central, repo, { layers: 1, layerSizeKiB: 40 * 1024 });
    const [config, layer] = await blobsOf(img.ref);
    const copier = new Copier(pool, settings);
    const opts = stackOptions(stack);
    let last: CopyProgress | undefined;
    let down = false;
    try {
      const f = await failureOf(
        copier.copy(
          { source: img.ref, target: target.host },
          {
            onProgress: async (p) => {
              last = p;
              // Stop the target registry between two chunks, once 16 MiB of the layer are in.
              if (!down && p.uploads.some((u) => u.offset >= 16 * MiB)) {
                down = true;
                await fault('registry-down', target.name, opts);
              }
            },
          },
        ),
      );
      expect(f.type).toBe('RegistryUnreachable');
      expect(f.nonRetryable).toBe(false);
      expect(f.message).toContain(target.host);
    } finally {
      await fault('registry-up', target.name, opts);
    }
    const held = last!.uploads.find((u) => u.digest === layer!.digest)!;
    expect(held.offset).toBeGreaterThanOrEqual(16 * MiB);
    const sentBefore = last!.bytes.uploaded;

    // The next attempt, as Temporal would run it: the last heartbeat in its info.
    const env = new MockActivityEnvironment({ heartbeatDetails: last, attempt: 2 });
    const acts = createRegistryActivities({
      registries,
      credentials: {},
      logger: log,
      pool,
      copier: settings,
    });
    const r = await runIn(env, acts.copyImage, { source: img.ref, target: target.host });
    expect(r.resumed).toEqual([{ digest: layer!.digest, offset: held.offset }]);
    expect(r.restarted).toEqual([]);
    expect(r.attempt).toBe(2);
    expect(r.bytes.uploaded).toBe(layer!.size - held.offset);
    expect(r.uploadedBefore).toBe(sentBefore);
    // Sent in all: the image once, not once plus the part before the outage.
    expect(r.uploadedBefore + r.bytes.uploaded).toBe(config!.size + layer!.size);
    expect(await digestOf(`${target.host}/${repo}:v1`)).toBe(img.digest);
    expect(await sha256Of(target.host, repo, layer!.digest)).toBe(layer!.digest);
  });

  it('starts again from zero when the registry cannot resume, and stops when cancelled', async () => {
    const target = stack.registries.find((r) => r.name === 'ap-east')!;
    const repo = `restart-${run}/big`;
    const img = await pushTestImage(work, central, repo, { layers: 1, layerSizeKiB: 24 * 1024 });
    const [, layer] = await blobsOf(img.ref);
    const acts = createRegistryActivities({
      registries,
      credentials: {},
      logger: log,
      pool,
      copier: settings,
    });

    // Cancelled after two chunks: the activity stops and its heartbeats hold the upload.
    const beats: CopyProgress[] = [];
    const env1 = new MockActivityEnvironment();
    env1.on('heartbeat', (d: CopyProgress) => {
      if (!d) return;
      beats.push(d);
      if (d.uploads.some((u) => u.offset >= 16 * MiB)) env1.cancel();
    });
    await expect(
      runIn(env1, acts.copyImage, { source: img.ref, target: target.host }),
    ).rejects.toBeInstanceOf(CancelledFailure);
    const sessions = beats.flatMap((b) => b.uploads).filter((u) => u.digest === layer!.digest);
    const stale = sessions.find((u) => u.offset === 8 * MiB)!;
    expect(stale).toBeDefined();

    // An upload state older than what the registry holds (as after a PATCH cut in the middle):
    // docker-registry cancels such an upload, so the copier starts the blob again.
    const env2 = new MockActivityEnvironment({
      heartbeatDetails: { ...beats.at(-1)!, uploads: [stale] },
      attempt: 2,
    });
    const r = await runIn(env2, acts.copyImage, { source: img.ref, target: target.host });
    expect(r.restarted).toEqual([layer!.digest]);
    expect(r.resumed).toEqual([]);
    expect(r.bytes.uploaded).toBe(layer!.size);
    expect(await digestOf(`${target.host}/${repo}:v1`)).toBe(img.digest);
    expect(await sha256Of(target.host, repo, layer!.digest)).toBe(layer!.digest);
  });
});

describe('a blob that does not match its digest', () => {
  it('fails for good, names the blob, the repository and both digests, and leaves no blob in the target', async () => {
    const repo = `corrupt-${run}/web`;
    const img = await pushTestImage(work, central, repo, { layers: 1, layerSizeKiB: 2 * 1024 });
    const [, layer] = await blobsOf(img.ref);
    const hex = layer!.digest.slice('sha256:'.length);
    const file = path.join(
      stack.dataDir,
      'registries',
      'central',
      'data',
      'docker',
      'registry',
      'v2',
      'blobs',
      'sha256',
      hex.slice(0, 2),
      hex,
      'data',
    );
    const original = readFileSync(file);
    const bad = Buffer.from(original);
    const mid = Math.floor(bad.length / 2);
    for (let i = mid; i < mid + 64; i++) bad[i] = bad[i]! ^ 0xff; // same size, other bytes
    const badDigest = `sha256:${createHash('sha256').update(bad).digest('hex')}`;
    writeFileSync(file, bad);
    try {
      // 1 MiB chunks: the 2 MiB layer goes chunked, so the check holds back the last chunk.
      const copier = new Copier(pool, { ...defaultCopierSettings, chunkSize: MiB, monolithicMax: MiB });
      const target = regional[2]!;
      const f = await failureOf(copier.copy({ source: img.ref, target }));
      expect(f.type).toBe('DigestMismatch');
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toContain(layer!.digest);
      expect(f.message).toContain(`${central}/${repo}`);
      expect(f.message).toContain(`expected ${layer!.digest}, got ${badDigest}`);
      const head = await fetch(`http://${target}/v2/${repo}/blobs/${layer!.digest}`, { method: 'HEAD' });
      expect(head.status).toBe(404);
    } finally {
      writeFileSync(file, original);
    }
  });
});

describe('the activities', () => {
  it('resolve a tag to its digest, check presence, and heartbeat progress', async () => {
    const acts = createRegistryActivities({ registries, credentials: {}, logger: log, pool });
    const env = new MockActivityEnvironment();
    const beats: CopyProgress[] = [];
    env.on('heartbeat', (d: CopyProgress) => d && beats.push(d));
    const resolved = await runIn(env, acts.resolveImage, { ref: `${central}/demo/web:v3` });
    expect(resolved.digest).toBe(await digestOf(`${central}/demo/web:v3`));
    expect(resolved.pinned).toBe(`${central}/demo/web@${resolved.digest}`);
    const target = `${regional[0]!}/acts-${run}/web`;
    const r = await runIn(env, acts.copyImage, { source: resolved.pinned, target: `${target}:v3` });
    expect(r.digest).toBe(resolved.digest);
    expect(beats.at(-1)).toMatchObject({ phase: 'done', bytesDone: r.bytes.total });
    expect(await runIn(env, acts.checkImage, { ref: `${target}:v3`, digest: r.digest })).toMatchObject({
      digest: r.digest,
      tagMatches: true,
    });
    const absent = await failureOf(
      runIn(env, acts.checkImage, { ref: `${regional[1]!}/acts-${run}/web`, digest: r.digest }),
    );
    expect(absent.type).toBe('ImageNotFound');
    expect(absent.message).toContain(`${regional[1]!}/acts-${run}/web@${r.digest}`);
    const bad = await failureOf(runIn(env, acts.copyImage, { source: 'not a ref', target: regional[0]! }));
    expect(bad.type).toBe('InvalidReference');
  });
});
