/**
 * Manifests the copier handles, read from their bytes (which are pushed
 * unchanged, so digests are preserved): Docker schema 2 and OCI image
 * manifests, Docker manifest lists and OCI indexes. Pure functions.
 */
import { createHash } from 'node:crypto';

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** What the copier asks for (Accept), best first. */
export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.dockerList,
  MediaType.ociManifest,
  MediaType.dockerManifest,
].join(', ');

export const isIndexType = (mt: string) => mt === MediaType.ociIndex || mt === MediaType.dockerList;
export const isImageType = (mt: string) => mt === MediaType.ociManifest || mt === MediaType.dockerManifest;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

export type Manifest =
  | { kind: 'image'; mediaType: string; config: Descriptor; layers: Descriptor[] }
  | { kind: 'index'; mediaType: string; manifests: Descriptor[]; raw: Record<string, unknown> };

export class ManifestError extends Error {}

export const sha256Digest = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const digestRe = /^sha256:[a-f0-9]{64}$/;

function descriptor(x: unknown, where: string): Descriptor {
  const d = x as Partial<Descriptor> | null;
  if (!d || typeof d !== 'object') throw new ManifestError(`${where} is not a descriptor`);
  if (typeof d.digest !== 'string' || !digestRe.test(d.digest))
    throw new ManifestError(`${where}: digest ${JSON.stringify(d.digest)} is not sha256:<64 hex>`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0)
    throw new ManifestError(`${where}: size ${JSON.stringify(d.size)} is not a byte count`);
  if (typeof d.mediaType !== 'string') throw new ManifestError(`${where}: mediaType missing`);
  return d as Descriptor;
}

/**
 * Parses manifest bytes. `contentType` is what the registry said; the document's
 * own mediaType wins when it has one (OCI makes it optional, Docker requires it).
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined): Manifest {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new ManifestError('the manifest is not JSON');
  }
  if (!doc || typeof doc !== 'object') throw new ManifestError('the manifest is not a JSON object');
  const ct = contentType?.split(';')[0]?.trim();
  const mediaType =
    (typeof doc.mediaType === 'string' && doc.mediaType) ||
    (ct && ct !== 'application/json' ? ct : undefined) ||
    (Array.isArray(doc.manifests) ? MediaType.ociIndex : MediaType.ociManifest);
  if (
    mediaType === MediaType.dockerSchema1 ||
    mediaType === MediaType.dockerSchema1Signed ||
    doc.schemaVersion === 1
  )
    throw new ManifestError(
      'Docker schema 1 manifests are not supported (convert the image to schema 2 or OCI)',
    );
  if (isIndexType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw new ManifestError(`${mediaType} without "manifests"`);
    return {
      kind: 'index',
      mediaType,
      manifests: doc.manifests.map((m, i) => descriptor(m, `manifests[${i}]`)),
      raw: doc,
    };
  }
  if (isImageType(mediaType)) {
    if (!Array.isArray(doc.layers)) throw new ManifestError(`${mediaType} without "layers"`);
    return {
      kind: 'image',
      mediaType,
      config: descriptor(doc.config, 'config'),
      layers: doc.layers.map((l, i) => descriptor(l, `layers[${i}]`)),
    };
  }
  throw new ManifestError(`unsupported manifest media type ${mediaType}`);
}

/** `os/arch[/variant]` */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p)))
    throw new ManifestError(`platform "${s}" is not os/arch[/variant] (e.g. linux/amd64, linux/arm64/v8)`);
  return { os: parts[0]!, architecture: parts[1]!, ...(parts[2] ? { variant: parts[2] } : {}) };
}

/** Whether a descriptor's platform is the one asked for (no variant asked: any variant). */
export function platformMatches(want: Platform, have: Platform | undefined): boolean {
  if (!have) return false;
  if (want.os !== have.os || want.architecture !== have.architecture) return false;
  return want.variant === undefined || want.variant === have.variant;
}

/**
 * The index reduced to the platforms asked for: its other fields kept, the
 * manifests filtered, serialized anew (so it has a digest of its own).
 * Throws when a platform asked for is not in the index.
 */
export function filterIndex(
  index: Extract<Manifest, { kind: 'index' }>,
  platforms: string[],
): { bytes: Buffer; manifests: Descriptor[] } {
  const wanted = platforms.map(parsePlatform);
  const missing = platforms.filter(
    (_, i) => !index.manifests.some((m) => platformMatches(wanted[i]!, m.platform)),
  );
  if (missing.length) {
    const have = index.manifests.map((m) => (m.platform ? formatPlatform(m.platform) : m.digest)).join(', ');
    throw new ManifestError(`platform ${missing.join(', ')} not in the index (it has ${have})`);
  }
  const manifests = index.manifests.filter((m) => wanted.some((w) => platformMatches(w, m.platform)));
  const raw = {
    ...index.raw,
    manifests: (index.raw.manifests as unknown[]).filter((_, i) => manifests.includes(index.manifests[i]!)),
  };
  return { bytes: Buffer.from(JSON.stringify(raw)), manifests };
}

/** The blobs an image manifest references (config first), foreign layers (with `urls`) left out. */
export function blobsOf(m: Extract<Manifest, { kind: 'image' }>): Descriptor[] {
  return [
    m.config,
    ...m.layers.filter((l) => !(l.urls && l.urls.length && /foreign|nondistributable/.test(l.mediaType))),
  ];
}
