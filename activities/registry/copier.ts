/**
 * The OCI copier: resolve a reference to a digest, copy an image (a single
 * manifest, or an index with every platform or a chosen few) from one
 * repository to another, and check that a registry holds a digest.
 *
 * Order of a copy: read the manifest (and each manifest of an index), copy
 * every blob they reference (a bounded number at a time), push the platform
 * manifests by digest, then the top manifest by tag (or digest). Manifests go
 * out byte for byte, so the target's digest is the source's. Failures are
 * ApplicationFailures typed as in errors.ts.
 */
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { formatImageRef, ImageRefError, parseImageRef, type ImageRef } from '../../model/image.ts';
import { RegistryFailure, registryHost } from '../../model/registry.ts';
import { pullScope, pushScope } from './auth.ts';
import { BlobCopier, SourceReadError, type BlobSettings, type RepoRef } from './blobs.ts';
import { refSuffix, registryFailure, toRegistryFailure, type Where } from './errors.ts';
import type { RegistryClient } from './http.ts';
import {
  blobsOf,
  filterIndex,
  formatPlatform,
  isImageType,
  MANIFEST_ACCEPT,
  ManifestError,
  parseManifest,
  sha256Digest,
  type Descriptor,
  type Manifest,
} from './manifest.ts';
import type { RegistryPool } from './pool.ts';
import type {
  CheckImageInput,
  CheckImageResult,
  CopyImageInput,
  CopyImageResult,
  CopyProgress,
  ResolvedImage,
  UploadSession,
} from './types.ts';

export interface CopierSettings extends BlobSettings {
  /** Blobs copied at the same time. */
  parallelBlobs: number;
}

/** Measured on the local stack (bench/copier.ts): within noise of each other from 2 to 6 blobs and 4 to 64 MiB. */
export const defaultCopierSettings: CopierSettings = {
  parallelBlobs: 6,
  chunkSize: 32 * 1024 * 1024,
  monolithicMax: 32 * 1024 * 1024,
};

export interface CopyOptions {
  /** Uploads an earlier attempt left (from its last heartbeat): resumed instead of restarted. */
  resume?: UploadSession[];
  /** Bytes earlier attempts uploaded (carried into the result). */
  uploadedBefore?: number;
  attempt?: number;
  signal?: AbortSignal;
  /** Called after each acknowledged chunk or finished blob; awaited, so a slow consumer holds the copy back. */
  onProgress?: (p: CopyProgress) => void | Promise<void>;
}

const MAX_MANIFEST = 4 * 1024 * 1024;

interface Fetched {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  manifest: Manifest;
}

function invalid(message: string): Error {
  return registryFailure(RegistryFailure.InvalidReference, message, {
    registry: '',
    operation: 'parse reference',
  });
}

function parseRef(ref: string, what: string): ImageRef {
  try {
    return parseImageRef(ref);
  } catch (err) {
    if (err instanceof ImageRefError) throw invalid(`${what}: ${err.message}`);
    throw err;
  }
}

/** `host`, `host/repo` or `host/repo:tag`; the tag defaults to the source's. */
export function parseTarget(
  target: string,
  source: ImageRef,
): { registry: string; repository: string; tag?: string } {
  if (!target.includes('/')) {
    if (!registryHost.safeParse(target).success)
      throw invalid(`target "${target}" is not host[:port] or host/repository[:tag]`);
    return { registry: target, repository: source.repository, ...(source.tag ? { tag: source.tag } : {}) };
  }
  const t = parseRef(target, 'target');
  if (t.digest) throw invalid(`target "${target}" has a digest: the digest of a copy is the source's`);
  if (t.registry === 'docker.io' && !/^docker\.io\//.test(target))
    throw invalid(
      `target "${target}" names no registry host (it would mean Docker Hub): write host/repository`,
    );
  const lastSegment = target.slice(target.lastIndexOf('/') + 1);
  const tag = lastSegment.includes(':') ? t.tag : source.tag;
  return { registry: t.registry, repository: t.repository, ...(tag ? { tag } : {}) };
}

export class Copier {
  private readonly pool: RegistryPool;
  private readonly settings: CopierSettings;
  private readonly log: Logger | undefined;

  constructor(pool: RegistryPool, settings: CopierSettings = defaultCopierSettings, log?: Logger) {
    this.pool = pool;
    this.settings = settings;
    this.log = log;
  }

  /** GET of a manifest, checked against the digest it was asked by (or the registry's Docker-Content-Digest). */
  private async fetchManifest(
    c: RegistryClient,
    repo: string,
    reference: string,
    signal?: AbortSignal,
  ): Promise<Fetched> {
    const where: Where = {
      registry: c.host,
      repository: repo,
      reference,
      operation: 'read manifest',
      notFoundIsImage: true,
    };
    try {
      const res = await c.request({
        method: 'GET',
        path: `/v2/${repo}/manifests/${reference}`,
        headers: { accept: MANIFEST_ACCEPT },
        scopes: [pullScope(repo)],
        expect: [200],
        ...(signal ? { signal } : {}),
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_MANIFEST) {
          res.body.destroy();
          throw registryFailure(
            RegistryFailure.RegistryRejected,
            `${c.host}/${repo}${refSuffix(reference)}: manifest larger than 4 MiB`,
            where,
          );
        }
        chunks.push(chunk);
      }
      const bytes = Buffer.concat(chunks);
      const digest = sha256Digest(bytes);
      const said = res.headers['docker-content-digest'];
      const expected = reference.startsWith('sha256:')
        ? reference
        : typeof said === 'string' && said.startsWith('sha256:')
          ? said
          : undefined;
      if (expected && expected !== digest)
        throw registryFailure(
          RegistryFailure.DigestMismatch,
          `manifest ${c.host}/${repo}${refSuffix(reference)}: content does not match its digest: expected ${expected}, got ${digest}`,
          { ...where, expected, actual: digest },
        );
      const ct = res.headers['content-type'];
      const manifest = parseManifest(bytes, Array.isArray(ct) ? ct[0] : ct);
      return { bytes, digest, mediaType: manifest.mediaType, manifest };
    } catch (err) {
      if (err instanceof ManifestError)
        throw registryFailure(
          RegistryFailure.RegistryRejected,
          `${c.host}/${repo}${refSuffix(reference)}: ${err.message}`,
          where,
        );
      throw this.mapped(err, where, signal);
    }
  }

  private mapped(err: unknown, where: Where, signal?: AbortSignal): Error {
    if (signal?.aborted) return (signal.reason as Error) ?? new Error('cancelled');
    return toRegistryFailure(err, where);
  }

  /** HEAD of the manifest (GET when the registry does not say the digest): the reference pinned by digest. */
  async resolveDigest(ref: string, signal?: AbortSignal): Promise<ResolvedImage> {
    const r = parseRef(ref, 'image');
    const c = this.pool.client(r.registry);
    const reference = r.digest ?? r.tag!;
    const where: Where = {
      registry: c.host,
      repository: r.repository,
      reference,
      operation: 'resolve',
      notFoundIsImage: true,
    };
    let digest: string | undefined;
    let mediaType: string | undefined;
    let size: number | undefined;
    try {
      const res = await c.request({
        method: 'HEAD',
        path: `/v2/${r.repository}/manifests/${reference}`,
        headers: { accept: MANIFEST_ACCEPT },
        scopes: [pullScope(r.repository)],
        expect: [200],
        ...(signal ? { signal } : {}),
      });
      await res.body.dump();
      const d = res.headers['docker-content-digest'];
      const ct = res.headers['content-type'];
      digest = typeof d === 'string' ? d : undefined;
      mediaType = (Array.isArray(ct) ? ct[0] : ct)?.split(';')[0];
      size = Number(res.headers['content-length']);
    } catch (err) {
      throw this.mapped(err, where, signal);
    }
    if (!digest || !mediaType || !Number.isFinite(size) || (r.digest && digest !== r.digest)) {
      const f = await this.fetchManifest(c, r.repository, reference, signal);
      ({ digest, mediaType } = f);
      size = f.bytes.length;
    }
    return {
      ref,
      pinned: formatImageRef({ registry: r.registry, repository: r.repository, digest }),
      digest,
      mediaType,
      size: size!,
    };
  }

  async copy(input: CopyImageInput, opts: CopyOptions = {}): Promise<CopyImageResult> {
    const t0 = Date.now();
    const src = parseRef(input.source, 'source');
    const dst = parseTarget(input.target, src);
    if (input.platforms !== undefined && input.platforms.length === 0)
      throw invalid('platforms: name at least one, or leave it out for all');
    const sc = this.pool.client(src.registry);
    const tc = this.pool.client(dst.registry);
    const s: RepoRef = { client: sc, repo: src.repository };
    const t: RepoRef = { client: tc, repo: dst.repository };
    const signal = opts.signal;
    const reference = src.digest ?? src.tag!;
    const log = this.log?.child({ source: input.source, target: `${dst.registry}/${dst.repository}` });

    const progress: CopyProgress = {
      phase: 'manifests',
      blobs: { total: 0, copied: 0, skipped: 0, mounted: 0 },
      bytes: { total: 0, uploaded: 0, skipped: 0, mounted: 0 },
      bytesDone: 0,
      uploads: [],
      uploadedBefore: opts.uploadedBefore ?? 0,
    };
    // Uploads an earlier attempt left stay in the progress until this attempt settles them, so an
    // attempt that fails early (the registry still down) hands them on to the next one.
    const sessions = new Map<string, UploadSession>((opts.resume ?? []).map((x) => [x.digest, { ...x }]));
    let copiedBytes = 0; // blobs whose upload finished
    const report = async () => {
      progress.uploads = [...sessions.values()].map((x) => ({ ...x }));
      let acked = 0;
      for (const x of sessions.values()) acked += x.offset;
      progress.bytesDone = progress.bytes.skipped + progress.bytes.mounted + copiedBytes + acked;
      await opts.onProgress?.(structuredClone(progress));
    };

    // Manifests.
    const top = await this.fetchManifest(sc, src.repository, reference, signal);
    let topBytes = top.bytes;
    let digest = top.digest;
    let filtered = false;
    let platforms: string[] | undefined;
    const children: { desc: Descriptor; fetched: Fetched }[] = [];
    if (top.manifest.kind === 'index') {
      let descs = top.manifest.manifests;
      if (input.platforms) {
        try {
          const f = filterIndex(top.manifest, input.platforms);
          descs = f.manifests;
          topBytes = f.bytes;
          digest = sha256Digest(topBytes);
          filtered = true;
        } catch (err) {
          throw registryFailure(
            RegistryFailure.ImageNotFound,
            `${sc.host}/${src.repository}${refSuffix(reference)}: ${(err as Error).message}`,
            { registry: sc.host, repository: src.repository, reference, operation: 'select platforms' },
          );
        }
      }
      platforms = descs.map((d) => (d.platform ? formatPlatform(d.platform) : 'unknown'));
      const fetched = await Promise.all(
        descs.map((d) => this.fetchManifest(sc, src.repository, d.digest, signal)),
      );
      fetched.forEach((f, i) => {
        if (!isImageType(f.mediaType))
          throw registryFailure(
            RegistryFailure.RegistryRejected,
            `${sc.host}/${src.repository}@${descs[i]!.digest}: an index inside an index is not supported`,
            {
              registry: sc.host,
              repository: src.repository,
              reference: descs[i]!.digest,
              operation: 'read manifest',
            },
          );
        children.push({ desc: descs[i]!, fetched: f });
      });
    } else if (input.platforms) {
      log?.info(
        { platforms: input.platforms },
        'platforms asked for a single-platform image: copied as it is',
      );
    }

    // Blobs, each digest once.
    const blobs = new Map<string, Descriptor>();
    const images = top.manifest.kind === 'image' ? [top.manifest] : children.map((c) => c.fetched.manifest);
    for (const m of images)
      if (m.kind === 'image') for (const b of blobsOf(m)) if (!blobs.has(b.digest)) blobs.set(b.digest, b);
    progress.phase = 'blobs';
    progress.blobs.total = blobs.size;
    progress.bytes.total = [...blobs.values()].reduce((a, b) => a + b.size, 0);
    for (const d of sessions.keys()) if (!blobs.has(d)) sessions.delete(d); // left by a copy of something else
    await report();

    const resume = new Map((opts.resume ?? []).map((x) => [x.digest, x]));
    const resumed: { digest: string; offset: number }[] = [];
    const restarted: string[] = [];
    const copier = new BlobCopier(
      this.settings,
      {
        onUploaded: async (d, bytes, session) => {
          progress.bytes.uploaded += bytes;
          if (session) sessions.set(d, session);
          else sessions.delete(d);
          await report();
        },
      },
      signal,
    );
    const limit = pLimit(Math.max(1, this.settings.parallelBlobs));
    const mismatchFor = (b: Descriptor) => (what: string, got?: string) =>
      registryFailure(
        RegistryFailure.DigestMismatch,
        `blob ${b.digest} of ${sc.host}/${src.repository} (copying to ${tc.host}/${dst.repository}): ${what}` +
          (got ? `: expected ${b.digest}, got ${got}` : ''),
        {
          registry: sc.host,
          repository: src.repository,
          reference: b.digest,
          operation: 'verify blob',
          target: `${tc.host}/${dst.repository}`,
          expected: b.digest,
          ...(got ? { actual: got } : {}),
        },
      );
    const results = await Promise.allSettled(
      [...blobs.values()].map((b) =>
        limit(async () => {
          if (signal?.aborted) throw signal.reason;
          try {
            const out = await copier.copy(s, t, b, resume.get(b.digest), mismatchFor(b));
            sessions.delete(b.digest);
            if (out.how === 'skipped') {
              progress.blobs.skipped++;
              progress.bytes.skipped += b.size;
            } else if (out.how === 'mounted') {
              progress.blobs.mounted++;
              progress.bytes.mounted += b.size;
            } else {
              progress.blobs.copied++;
              copiedBytes += b.size;
              if (out.resumedFrom !== undefined) resumed.push({ digest: b.digest, offset: out.resumedFrom });
              if (out.restarted) restarted.push(b.digest);
            }
            await report();
          } catch (err) {
            if (err instanceof SourceReadError)
              throw this.mapped(
                err.cause ?? err,
                {
                  registry: sc.host,
                  repository: src.repository,
                  reference: b.digest,
                  operation: `read blob (copying to ${tc.host}/${dst.repository})`,
                  notFoundIsImage: true,
                },
                signal,
              );
            throw this.mapped(
              err,
              {
                registry: tc.host,
                repository: dst.repository,
                reference: b.digest,
                operation: `upload blob (from ${sc.host}/${src.repository})`,
              },
              signal,
            );
          }
        }),
      ),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      limit.clearQueue();
      const err = failed.reason as Error;
      // Keep what a retry needs to resume (the activity's last heartbeat holds it too).
      progress.uploads = [...sessions.values()];
      (err as { uploads?: UploadSession[] }).uploads = progress.uploads;
      throw err;
    }

    // Manifests: platforms first (an index may only name manifests the registry holds), then the top one.
    progress.phase = 'push';
    await report();
    await Promise.all(
      children.map((c) => this.pushManifest(t, c.fetched.digest, c.fetched, c.fetched.digest, signal)),
    );
    const topRef = dst.tag ?? digest;
    await this.pushManifest(t, topRef, { ...top, bytes: topBytes }, digest, signal);
    progress.phase = 'done';
    progress.uploads = [];
    await report();

    const result: CopyImageResult = {
      source: formatImageRef({ registry: src.registry, repository: src.repository, digest: top.digest }),
      target: formatImageRef({ registry: dst.registry, repository: dst.repository, digest }),
      ...(dst.tag
        ? { targetTag: formatImageRef({ registry: dst.registry, repository: dst.repository, tag: dst.tag }) }
        : {}),
      digest,
      sourceDigest: top.digest,
      mediaType: top.mediaType,
      ...(platforms ? { platforms } : {}),
      filtered,
      manifests: 1 + children.length,
      blobs: progress.blobs,
      bytes: progress.bytes,
      resumed,
      restarted,
      uploadedBefore: opts.uploadedBefore ?? 0,
      attempt: opts.attempt ?? 1,
      durationMs: Date.now() - t0,
    };
    log?.info(
      { digest, blobs: result.blobs, bytes: result.bytes, resumed, restarted, durationMs: result.durationMs },
      'image copied',
    );
    return result;
  }

  private async pushManifest(
    t: RepoRef,
    reference: string,
    m: { bytes: Buffer; mediaType: string },
    digest: string,
    signal?: AbortSignal,
  ): Promise<void> {
    const where: Where = {
      registry: t.client.host,
      repository: t.repo,
      reference,
      operation: 'push manifest',
    };
    try {
      const res = await t.client.request({
        method: 'PUT',
        path: `/v2/${t.repo}/manifests/${reference}`,
        headers: { 'content-type': m.mediaType },
        body: m.bytes,
        scopes: [pushScope(t.repo)],
        expect: [200, 201, 204],
        ...(signal ? { signal } : {}),
      });
      await res.body.dump();
      const said = res.headers['docker-content-digest'];
      if (typeof said === 'string' && said !== digest)
        throw registryFailure(
          RegistryFailure.DigestMismatch,
          `push manifest ${t.client.host}/${t.repo}${refSuffix(reference)}: the registry stored digest ${said}, expected ${digest}`,
          { ...where, expected: digest, actual: said },
        );
    } catch (err) {
      throw this.mapped(err, where, signal);
    }
  }

  /** Whether `ref`'s repository holds `digest` (an index with each of its manifests). */
  async check(input: CheckImageInput, signal?: AbortSignal): Promise<CheckImageResult> {
    const r = parseRef(input.ref, 'image');
    if (!/^sha256:[a-f0-9]{64}$/.test(input.digest))
      throw invalid(`digest "${input.digest}" is not sha256:<64 hex>`);
    const c = this.pool.client(r.registry);
    const pinned = formatImageRef({ registry: r.registry, repository: r.repository, digest: input.digest });
    const head = async (reference: string) => {
      const where: Where = { registry: c.host, repository: r.repository, reference, operation: 'check' };
      try {
        const res = await c.request({
          method: 'HEAD',
          path: `/v2/${r.repository}/manifests/${reference}`,
          headers: { accept: MANIFEST_ACCEPT },
          scopes: [pullScope(r.repository)],
          expect: [200, 404],
          ...(signal ? { signal } : {}),
        });
        await res.body.dump();
        if (res.statusCode === 404) return undefined;
        const d = res.headers['docker-content-digest'];
        return typeof d === 'string' ? d : reference;
      } catch (err) {
        throw this.mapped(err, where, signal);
      }
    };
    const missing = (what: string) =>
      registryFailure(RegistryFailure.ImageNotFound, `${pinned}: ${what}`, {
        registry: c.host,
        repository: r.repository,
        reference: input.digest,
        operation: 'check',
      });
    if (!(await head(input.digest))) throw missing(`registry ${c.host} does not hold it`);
    const f = await this.fetchManifest(c, r.repository, input.digest, signal);
    if (f.manifest.kind === 'index') {
      const absent: string[] = [];
      await Promise.all(
        f.manifest.manifests.map(async (m) => ((await head(m.digest)) ? undefined : absent.push(m.digest))),
      );
      if (absent.length) throw missing(`the index is there but not its manifests ${absent.join(', ')}`);
    }
    let tagMatches: boolean | undefined;
    if (r.tag && !r.digest && /:[^/]+$/.test(input.ref)) tagMatches = (await head(r.tag)) === input.digest;
    return {
      pinned,
      digest: input.digest,
      mediaType: f.mediaType,
      size: f.bytes.length,
      ...(tagMatches !== undefined ? { tagMatches } : {}),
    };
  }
}
