/**
 * What a kubelet's image pull asks of a registry, for the stack's puller: parse
 * the image reference the way container runtimes do (a first component with a
 * dot, a colon or `localhost` is a registry host, else Docker Hub), then ask the
 * registry for the manifest (HEAD, Accepting OCI and Docker media types) and,
 * for a multi-platform index, whether it has linux/amd64 (the fake nodes' platform).
 * The answer is the digest a kubelet reports as imageID, or the error a
 * kubelet would show, carrying the registry's own words.
 */
import http from 'node:http';

export interface ImageRef {
  /** As written in the pod spec. */
  raw: string;
  /** Fully qualified, as a runtime reports it: docker.io/library/nginx:latest. */
  full: string;
  host: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;

/** Parses an image reference; undefined when a runtime would call it an invalid reference format. */
export function parseImage(raw: string): ImageRef | undefined {
  let rest = raw;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) return undefined;
  }
  const parts = rest.split('/');
  let host = 'docker.io';
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    host = first;
    parts.shift();
    if (!HOST.test(host)) return undefined;
  } else if (parts.length === 1) {
    parts.unshift('library');
  }
  if (parts.length === 0 || !parts.every((p) => COMPONENT.test(p))) return undefined;
  const repository = parts.join('/');
  if (!tag && !digest) tag = 'latest';
  const full = `${host}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
  return { raw, full, host, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

export type PullResult =
  | { ok: true; digest: string; imageID: string }
  | { ok: false; reason: 'ErrImagePull' | 'InvalidImageName'; message: string };

export const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
];
const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(method: 'HEAD' | 'GET', url: string, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method, headers: { accept: MANIFEST_TYPES.join(', ') }, timeout: timeoutMs, agent: keepAlive },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('i/o timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end();
  });
}
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 16 });

/** A runtime's words for a failed connection. */
function dialError(host: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return `dial tcp ${host}: connect: connection refused`;
    case 'ECONNRESET':
      return `read tcp ${host}: read: connection reset by peer`;
    case 'ETIMEDOUT':
      return `dial tcp ${host}: i/o timeout`;
    default:
      return `${err.code ?? 'error'}: ${err.message}`;
  }
}

/** "MANIFEST_UNKNOWN: manifest unknown" from a registry's error body, else the status line. */
function registryError(a: Answer): string {
  try {
    const errors = (JSON.parse(a.body) as { errors?: { code?: string; message?: string }[] }).errors ?? [];
    if (errors.length) return errors.map((e) => `${e.code ?? ''}: ${e.message ?? ''}`).join('; ');
  } catch {
    /* not JSON */
  }
  return `${a.status} ${http.STATUS_CODES[a.status] ?? ''}`.trim();
}

/**
 * Resolves `ref` against its registry (plain HTTP; only the stack's own registries,
 * `known`, are reachable: anything else is a host this machine cannot reach).
 */
export async function resolveImage(
  ref: ImageRef,
  known: ReadonlySet<string>,
  timeoutMs = 5_000,
): Promise<PullResult> {
  const failed = (detail: string): PullResult => ({
    ok: false,
    reason: 'ErrImagePull',
    message: `failed to pull and unpack image "${ref.full}": failed to resolve reference "${ref.full}": ${detail}`,
  });
  const host = ref.host.replace(/^localhost(?=:|$)/, '127.0.0.1');
  if (!known.has(host)) {
    return failed(
      `dial tcp: lookup ${ref.host}: no such host (the local stack reaches only its own registries: ${[...known].join(', ')})`,
    );
  }
  const url = `http://${host}/v2/${ref.repository}/manifests/${ref.digest ?? ref.tag}`;
  let head: Answer;
  try {
    head = await request('HEAD', url, timeoutMs);
  } catch (err) {
    return failed(`failed to do request: Head "${url}": ${dialError(host, err as NodeJS.ErrnoException)}`);
  }
  if (head.status === 404) {
    // HEAD has no body: ask again for the registry's words (MANIFEST_UNKNOWN, NAME_UNKNOWN).
    const get = await request('GET', url, timeoutMs).catch(() => undefined);
    return failed(`${ref.full}: not found: ${get ? registryError(get) : '404 Not Found'}`);
  }
  if (head.status !== 200)
    return failed(`unexpected status from HEAD request to ${url}: ${registryError(head)}`);
  const digest = (head.headers['docker-content-digest'] as string | undefined) ?? ref.digest;
  if (!digest) return failed(`${url}: the registry sent no Docker-Content-Digest`);
  const type = String(head.headers['content-type'] ?? '').split(';')[0]!;
  if (INDEX_TYPES.has(type)) {
    let index: { manifests?: { platform?: { os?: string; architecture?: string } }[] };
    try {
      const get = await request('GET', url, timeoutMs);
      index = JSON.parse(get.body) as typeof index;
    } catch (err) {
      return failed(`reading the index ${url}: ${(err as Error).message}`);
    }
    const amd64 = index.manifests?.some(
      (m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64',
    );
    if (!amd64) {
      return {
        ok: false,
        reason: 'ErrImagePull',
        message: `failed to pull and unpack image "${ref.full}": no match for platform in manifest: not found`,
      };
    }
  }
  return { ok: true, digest, imageID: `${ref.host}/${ref.repository}@${digest}` };
}

/** The kubelet's words for an image it cannot parse. */
export function invalidImage(raw: string): PullResult {
  return {
    ok: false,
    reason: 'InvalidImageName',
    message: `Failed to apply default image tag "${raw}": couldn't parse image name "${raw}": invalid reference format`,
  };
}
