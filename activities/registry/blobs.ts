/**
 * Moving one blob from a source repository to a target repository:
 *
 *   1. HEAD on the target: present -> skipped;
 *   2. an upload an earlier attempt left (heartbeat details): GET its location,
 *      read the Range the registry holds, continue from there; the registry may
 *      refuse (distribution cancels an upload whose stored size differs from the
 *      offset in its `_state`, as after a PATCH cut in the middle): start again;
 *   3. same registry, other repository: mount (`POST ?mount=&from=`); a 202
 *      instead of a 201 means the registry refused and opened an upload instead;
 *   4. otherwise stream it: GET from the source -> PUT (monolithic, blobs up to
 *      `monolithicMax`) or PATCH chunks with Content-Range then PUT ?digest.
 *
 * The bytes are never held whole: each request body is a slice of the source's
 * response stream, hashed (sha256) as it passes. The last piece is held back
 * until the digest and size check out, so a blob that does not match its digest
 * never completes in the target.
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { RegistryFailure } from '../../model/registry.ts';
import { pullScope, pushScope } from './auth.ts';
import { registryFailure, RegistryHttpError } from './errors.ts';
import type { RegistryClient } from './http.ts';
import type { Descriptor } from './manifest.ts';
import type { UploadSession } from './types.ts';

export interface BlobSettings {
  /** PATCH size of a chunked upload. */
  chunkSize: number;
  /** Blobs up to this size go in one PUT; larger ones in chunks (which a retry can resume). */
  monolithicMax: number;
}

export interface RepoRef {
  client: RegistryClient;
  repo: string;
}

export interface BlobEvents {
  /** Bytes the target acknowledged (a chunk, or a whole monolithic blob). Awaited: back-pressure. */
  onUploaded(digest: string, bytes: number, session: UploadSession | undefined): Promise<void> | void;
}

export interface BlobOutcome {
  how: 'skipped' | 'mounted' | 'copied';
  uploaded?: number;
  resumedFrom?: number;
  restarted?: boolean;
}

/** Thrown when reading the source failed (so the failure names the source, not the target). */
export class SourceReadError extends Error {
  override name = 'SourceReadError';
}

/** The source's bytes of one blob, hashed as they are taken. */
class BlobSource {
  private rest: Buffer | undefined;
  private readonly hash: Hash = createHash('sha256');
  private read = 0;
  private verified = false;
  /** Set when the content does not match: a request body that failed because of it is not the target's fault. */
  failure: Error | undefined;

  private readonly body: Readable;
  private readonly it: AsyncIterator<Buffer>;
  private readonly desc: Descriptor;
  private readonly mismatch: (what: string, got?: string) => Error;

  constructor(body: Readable, desc: Descriptor, mismatch: (what: string, got?: string) => Error) {
    this.body = body;
    this.it = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    this.desc = desc;
    this.mismatch = mismatch;
  }

  private async next(): Promise<Buffer | undefined> {
    if (this.rest) {
      const r = this.rest;
      this.rest = undefined;
      return r;
    }
    let r: IteratorResult<Buffer>;
    try {
      r = await this.it.next();
    } catch (err) {
      throw new SourceReadError((err as Error).message, { cause: err });
    }
    return r.done ? undefined : r.value;
  }

  private fail(what: string, got?: string): never {
    this.failure = this.mismatch(what, got);
    throw this.failure;
  }

  /** Checks size and digest once every byte is read (before the last piece goes out). */
  private async verify(): Promise<void> {
    if (this.verified) return;
    const extra = await this.next();
    if (extra && extra.length)
      this.fail(`the source sent more than the ${this.desc.size} bytes its descriptor says`);
    const got = `sha256:${this.hash.digest('hex')}`;
    this.verified = true;
    if (got !== this.desc.digest) this.fail('content does not match its digest', got);
  }

  /** Exactly `n` bytes, as they come. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      let buf = await this.next();
      if (!buf) this.fail(`the source ended after ${this.read} of ${this.desc.size} bytes`);
      if (buf.length > left) {
        this.rest = buf.subarray(left);
        buf = buf.subarray(0, left);
      }
      this.hash.update(buf);
      this.read += buf.length;
      left -= buf.length;
      if (this.read === this.desc.size) await this.verify();
      yield buf;
    }
  }

  /** Reads (and hashes) `n` bytes without sending them: the part a resumed upload already holds. */
  async skip(n: number): Promise<void> {
    for await (const _ of this.take(n));
  }

  /** Releases the source response (a copy that failed half-way must not hold its connection). */
  close(): void {
    if (!this.body.destroyed) this.body.destroy();
  }

  async finish(): Promise<void> {
    if (this.read !== this.desc.size) this.fail(`only ${this.read} of ${this.desc.size} bytes were read`);
    await this.verify();
  }
}

const octet = 'application/octet-stream';

function withDigest(location: string, client: RegistryClient, digest: string): string {
  const u = client.url(location);
  u.searchParams.set('digest', digest);
  return u.toString();
}

/** `0-<end>` (inclusive) -> bytes held; distribution says `0-0` for an empty upload. */
export function rangeEnd(range: string | string[] | undefined): number | undefined {
  const r = Array.isArray(range) ? range[0] : range;
  const m = r?.replace(/^bytes=/, '').match(/^(\d+)-(\d+)$/);
  if (!m) return undefined;
  const end = Number(m[2]);
  return end === 0 ? 0 : end + 1;
}

const header = (res: Dispatcher.ResponseData, name: string) => {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

export class BlobCopier {
  private readonly settings: BlobSettings;
  private readonly events: BlobEvents;
  private readonly signal: AbortSignal | undefined;

  constructor(settings: BlobSettings, events: BlobEvents, signal: AbortSignal | undefined) {
    this.settings = settings;
    this.events = events;
    this.signal = signal;
  }

  private get sig() {
    return this.signal ? { signal: this.signal } : {};
  }

  async exists(t: RepoRef, digest: string): Promise<boolean> {
    const res = await t.client.request({
      method: 'HEAD',
      path: `/v2/${t.repo}/blobs/${digest}`,
      scopes: [pushScope(t.repo)],
      expect: [200, 404],
      noRedirect: true,
      ...this.sig,
    });
    await res.body.dump();
    return res.statusCode === 200;
  }

  /** The upload an earlier attempt left: where to continue and from which offset, or undefined when gone. */
  async status(
    t: RepoRef,
    session: UploadSession,
  ): Promise<{ location: string; offset: number } | undefined> {
    const res = await t.client.request({
      method: 'GET',
      path: session.location,
      scopes: [pushScope(t.repo)],
      expect: [200, 204, 400, 404],
      noRedirect: true,
      ...this.sig,
    });
    await res.body.dump();
    if (res.statusCode === 400 || res.statusCode === 404) return undefined;
    const offset = rangeEnd(res.headers.range);
    if (offset === undefined) return undefined;
    return { location: header(res, 'location') ?? session.location, offset };
  }

  /** 'mounted', an upload location when the registry refused the mount, or undefined. */
  async mount(s: RepoRef, t: RepoRef, digest: string): Promise<'mounted' | { location: string } | undefined> {
    try {
      const q = new URLSearchParams({ mount: digest, from: s.repo });
      const res = await t.client.request({
        method: 'POST',
        path: `/v2/${t.repo}/blobs/uploads/?${q}`,
        headers: { 'content-length': '0' },
        body: '',
        scopes: [pushScope(t.repo), pullScope(s.repo)],
        expect: [201, 202],
        noRedirect: true,
        ...this.sig,
      });
      await res.body.dump();
      if (res.statusCode === 201) return 'mounted';
      const location = header(res, 'location');
      return location ? { location } : undefined;
    } catch (err) {
      if (err instanceof RegistryHttpError && err.status < 500) return undefined; // refused: copy instead
      throw err;
    }
  }

  async start(t: RepoRef): Promise<string> {
    const res = await t.client.request({
      method: 'POST',
      path: `/v2/${t.repo}/blobs/uploads/`,
      headers: { 'content-length': '0' },
      body: '',
      scopes: [pushScope(t.repo)],
      expect: [202],
      noRedirect: true,
      ...this.sig,
    });
    await res.body.dump();
    const location = header(res, 'location');
    if (!location)
      throw registryFailure(
        RegistryFailure.RegistryRejected,
        `${t.client.host}/${t.repo}: upload started without a Location`,
        {
          registry: t.client.host,
          repository: t.repo,
          operation: 'start upload',
        },
      );
    return location;
  }

  private async open(
    s: RepoRef,
    desc: Descriptor,
    mismatch: (what: string, got?: string) => Error,
  ): Promise<BlobSource> {
    let res: Dispatcher.ResponseData;
    try {
      res = await s.client.request({
        method: 'GET',
        path: `/v2/${s.repo}/blobs/${desc.digest}`,
        scopes: [pullScope(s.repo)],
        expect: [200],
        ...this.sig,
      });
    } catch (err) {
      throw new SourceReadError((err as Error).message, { cause: err });
    }
    const len = header(res, 'content-length');
    if (len !== undefined && Number(len) !== desc.size) {
      await res.body.dump();
      throw mismatch(`the source serves ${len} bytes, its descriptor says ${desc.size}`);
    }
    return new BlobSource(res.body, desc, mismatch);
  }

  async copy(
    s: RepoRef,
    t: RepoRef,
    desc: Descriptor,
    resume: UploadSession | undefined,
    mismatch: (what: string, got?: string) => Error,
  ): Promise<BlobOutcome> {
    if (await this.exists(t, desc.digest)) return { how: 'skipped' };
    let location: string | undefined;
    let offset = 0;
    let restarted = false;
    if (resume) {
      const st = await this.status(t, resume);
      if (st) ({ location, offset } = st);
      else restarted = true;
    }
    if (!location && s.client === t.client && s.repo !== t.repo) {
      const m = await this.mount(s, t, desc.digest);
      if (m === 'mounted') return { how: 'mounted' };
      if (m) location = m.location;
    }
    location ??= await this.start(t);
    const source = await this.open(s, desc, mismatch);
    const cancel = async () => {
      await t.client
        .request({ method: 'DELETE', path: location!, scopes: [pushScope(t.repo)], expect: [204, 404, 400] })
        .then((r) => r.body.dump())
        .catch(() => {});
    };
    try {
      const uploaded =
        offset === 0 && desc.size <= this.settings.monolithicMax
          ? await this.monolithic(t, desc, location, source)
          : await this.chunked(t, desc, location, offset, source);
      return {
        how: 'copied',
        uploaded,
        ...(offset > 0 ? { resumedFrom: offset } : {}),
        ...(restarted ? { restarted } : {}),
      };
    } catch (err) {
      if (source.failure) {
        await cancel();
        throw source.failure;
      }
      throw err;
    } finally {
      source.close();
    }
  }

  private async monolithic(
    t: RepoRef,
    desc: Descriptor,
    location: string,
    source: BlobSource,
  ): Promise<number> {
    const res = await t.client.request({
      method: 'PUT',
      path: withDigest(location, t.client, desc.digest),
      headers: { 'content-type': octet, 'content-length': String(desc.size) },
      body: Readable.from(source.take(desc.size), { objectMode: false }),
      scopes: [pushScope(t.repo)],
      expect: [201, 204],
      noRedirect: true,
      ...this.sig,
    });
    await res.body.dump();
    await source.finish();
    await this.events.onUploaded(desc.digest, desc.size, undefined);
    return desc.size;
  }

  private async chunked(
    t: RepoRef,
    desc: Descriptor,
    location: string,
    offset: number,
    source: BlobSource,
  ): Promise<number> {
    let loc = location;
    let off = offset;
    let uploaded = 0;
    if (off > 0) await source.skip(off);
    await this.events.onUploaded(desc.digest, 0, { digest: desc.digest, location: loc, offset: off });
    while (off < desc.size) {
      const n = Math.min(this.settings.chunkSize, desc.size - off);
      const res = await t.client.request({
        method: 'PATCH',
        path: loc,
        headers: {
          'content-type': octet,
          'content-length': String(n),
          'content-range': `${off}-${off + n - 1}`,
        },
        body: Readable.from(source.take(n), { objectMode: false }),
        scopes: [pushScope(t.repo)],
        expect: [202],
        noRedirect: true,
        ...this.sig,
      });
      await res.body.dump();
      const held = rangeEnd(res.headers.range);
      if (held !== undefined && held !== off + n) {
        throw registryFailure(
          RegistryFailure.RegistryRejected,
          `upload of blob ${desc.digest} to ${t.client.host}/${t.repo}: the registry holds ${held} bytes after a chunk that ended at ${off + n}`,
          { registry: t.client.host, repository: t.repo, operation: 'upload chunk', digest: desc.digest },
        );
      }
      loc = header(res, 'location') ?? loc;
      off += n;
      uploaded += n;
      await this.events.onUploaded(desc.digest, n, { digest: desc.digest, location: loc, offset: off });
    }
    await source.finish();
    const res = await t.client.request({
      method: 'PUT',
      path: withDigest(loc, t.client, desc.digest),
      headers: { 'content-length': '0' },
      body: '',
      scopes: [pushScope(t.repo)],
      expect: [201, 204],
      noRedirect: true,
      ...this.sig,
    });
    await res.body.dump();
    await this.events.onUploaded(desc.digest, 0, undefined);
    return uploaded;
  }
}
