/**
 * Demo images, built by hand as an OCI image layout (no download, no Docker):
 * gzip'd tar layers of seeded pseudo-random bytes, a config, a manifest per
 * tag, and one multi-architecture index. The bytes depend only on the repository,
 * tag, layer index, architecture and size, so a tag's digest is the same on every
 * run and every machine: the push is skipped when the registry already holds it.
 *
 * Layer 0 is shared by every tag of an architecture (a "base" layer), the others
 * are per tag, the way real application images share a base image.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { ImagesConfig } from './config.ts';

export const MT = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string };
}

export interface BuiltImage {
  tag: string;
  /** Digest of the tag's manifest (or index, for the multi-architecture tag). */
  digest: string;
  mediaType: string;
  platforms: string[];
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Deterministic pseudo-random bytes: AES-256-CTR keystream keyed by the seed. */
export function seededBytes(seed: string, size: number): Buffer {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

/** A ustar archive of regular files (fixed owner, mode and mtime), as `tar` would write it. */
export function tarFiles(files: { name: string; data: Buffer }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const f of files) {
    const h = Buffer.alloc(512);
    const put = (s: string, off: number, len: number) => h.write(s.slice(0, len), off, len, 'ascii');
    const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, '0') + '\0';
    put(f.name, 0, 100);
    put(octal(0o644, 8), 100, 8);
    put(octal(0, 8), 108, 8);
    put(octal(0, 8), 116, 8);
    put(octal(f.data.length, 12), 124, 12);
    put(octal(1767225600, 12), 136, 12); // 2026-01-01T00:00:00Z
    put('        ', 148, 8);
    put('0', 156, 1);
    put('ustar\0' + '00', 257, 8);
    put('root', 265, 32);
    put('root', 297, 32);
    let sum = 0;
    for (const b of h) sum += b;
    put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
    blocks.push(h, f.data, Buffer.alloc((512 - (f.data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

const PLATFORMS = {
  amd64: { architecture: 'amd64', os: 'linux' },
  arm64: { architecture: 'arm64', os: 'linux', variant: 'v8' },
} as const;
type Arch = keyof typeof PLATFORMS;

class Layout {
  readonly dir: string;
  readonly refs: Descriptor[] = [];
  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  }
  blob(data: Buffer | string, mediaType: string): Descriptor {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    const hex = sha256(buf);
    const file = path.join(this.dir, 'blobs', 'sha256', hex);
    if (!existsSync(file)) writeFileSync(file, buf);
    return { mediaType, digest: `sha256:${hex}`, size: buf.length };
  }
  finish(): void {
    writeFileSync(path.join(this.dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(
      path.join(this.dir, 'index.json'),
      JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: this.refs }, null, 2),
    );
  }
}

function buildManifest(layout: Layout, cfg: ImagesConfig, tag: string, arch: Arch): Descriptor {
  const layers: Descriptor[] = [];
  const diffIds: string[] = [];
  const layerBytes = cfg.layerSizeKiB * 1024;
  for (let i = 0; i < cfg.layers; i++) {
    const seed =
      i === 0
        ? `${cfg.repository}:base:${arch}:${layerBytes}`
        : `${cfg.repository}:${tag}:${i}:${arch}:${layerBytes}`;
    const files = [{ name: `app/layer-${i}.bin`, data: seededBytes(seed, layerBytes) }];
    if (i === cfg.layers - 1)
      files.push({ name: 'app/VERSION', data: Buffer.from(`${cfg.repository} ${tag} ${arch}\n`) });
    const tar = tarFiles(files);
    diffIds.push(`sha256:${sha256(tar)}`);
    // Level 0 (stored blocks): random bytes do not compress, and stored output does not depend on the zlib version.
    layers.push(layout.blob(gzipSync(tar, { level: 0 }), MT.layer));
  }
  const platform = PLATFORMS[arch];
  const config = {
    created: '2026-01-01T00:00:00Z',
    ...platform,
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', `DEMO_VERSION=${tag}`],
      Cmd: ['/app/web'],
      ExposedPorts: { '8080/tcp': {} },
      Labels: { 'org.opencontainers.image.title': cfg.repository, 'org.opencontainers.image.version': tag },
    },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map((_, i) => ({
      created: '2026-01-01T00:00:00Z',
      created_by: `flotilla stack: layer ${i}`,
    })),
  };
  const configDesc = layout.blob(JSON.stringify(config), MT.config);
  const manifest = { schemaVersion: 2, mediaType: MT.manifest, config: configDesc, layers };
  return layout.blob(JSON.stringify(manifest), MT.manifest);
}

/** Writes the OCI layout (idempotent: blobs are content-addressed) and returns each tag's digest. */
export function buildDemoImages(layoutDir: string, cfg: ImagesConfig): BuiltImage[] {
  const layout = new Layout(layoutDir);
  const built: BuiltImage[] = [];
  for (const tag of cfg.tags) {
    const d = buildManifest(layout, cfg, tag, 'amd64');
    layout.refs.push({ ...d, annotations: { 'org.opencontainers.image.ref.name': tag } });
    built.push({ tag, digest: d.digest, mediaType: d.mediaType, platforms: ['linux/amd64'] });
  }
  if (cfg.multiArchTag) {
    const tag = cfg.multiArchTag;
    const manifests = (Object.keys(PLATFORMS) as Arch[]).map((arch) => ({
      ...buildManifest(layout, cfg, tag, arch),
      platform: { ...PLATFORMS[arch] },
    }));
    const d = layout.blob(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests }), MT.index);
    layout.refs.push({ ...d, annotations: { 'org.opencontainers.image.ref.name': tag } });
    const platforms = manifests.map((m) =>
      [m.platform.os, m.platform.architecture, 'variant' in m.platform ? m.platform.variant : undefined]
        .filter(Boolean)
        .join('/'),
    );
    built.push({ tag, digest: d.digest, mediaType: d.mediaType, platforms });
  }
  layout.finish();
  return built;
}
