import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { RegistryInventorySchema } from '../../model/registry.ts';
import { mergeScopes, parseChallenges } from '../../activities/registry/auth.ts';
import { rangeEnd } from '../../activities/registry/blobs.ts';
import { parseTarget } from '../../activities/registry/copier.ts';
import {
  credentialFor,
  CredentialsFileError,
  loadCredentials,
  parseCredentials,
} from '../../activities/registry/credentials.ts';
import { RegistryAuthError, RegistryHttpError, toRegistryFailure } from '../../activities/registry/errors.ts';
import {
  filterIndex,
  MediaType,
  parseManifest,
  parsePlatform,
  platformMatches,
  sha256Digest,
} from '../../activities/registry/manifest.ts';
import { parseImageRef } from '../../model/image.ts';

const D = (c: string) => `sha256:${c.repeat(64)}`;

describe('WWW-Authenticate challenges', () => {
  it.each([
    ['Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    [
      'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"',
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.example.com/token',
            service: 'registry.example.com',
            scope: 'repository:a/b:pull,push',
          },
        },
      ],
    ],
    [
      'Bearer realm="http://127.0.0.1:1/token", service=reg, error="insufficient_scope", Basic realm="x"',
      [
        {
          scheme: 'bearer',
          params: { realm: 'http://127.0.0.1:1/token', service: 'reg', error: 'insufficient_scope' },
        },
        { scheme: 'basic', params: { realm: 'x' } },
      ],
    ],
    ['Bearer realm="a\\"b"', [{ scheme: 'bearer', params: { realm: 'a"b' } }]],
  ])('%s', (header, want) => {
    expect(parseChallenges(header)).toEqual(want);
  });

  it('reads several header lines and nothing', () => {
    expect(parseChallenges(['Basic realm="a"', 'Bearer realm="b"']).map((c) => c.scheme)).toEqual([
      'basic',
      'bearer',
    ]);
    expect(parseChallenges(undefined)).toEqual([]);
  });

  it('merges scopes per repository', () => {
    expect(
      mergeScopes([
        'repository:a/b:pull',
        'repository:a/b:push,pull',
        'repository:c:pull repository:a/b:delete',
      ]),
    ).toEqual(['repository:a/b:delete,pull,push', 'repository:c:pull']);
  });
});

describe('manifests', () => {
  const image = {
    schemaVersion: 2,
    mediaType: MediaType.dockerManifest,
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: D('c'), size: 10 },
    layers: [
      { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: D('1'), size: 100 },
      { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: D('2'), size: 200 },
    ],
  };
  const index = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    annotations: { 'org.example': 'kept' },
    manifests: [
      {
        mediaType: MediaType.ociManifest,
        digest: D('a'),
        size: 5,
        platform: { os: 'linux', architecture: 'amd64' },
      },
      {
        mediaType: MediaType.ociManifest,
        digest: D('b'),
        size: 6,
        platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      },
      {
        mediaType: MediaType.ociManifest,
        digest: D('d'),
        size: 7,
        platform: { os: 'windows', architecture: 'amd64' },
      },
    ],
  };

  it('reads Docker schema 2 and OCI manifests, lists and indexes', () => {
    const m = parseManifest(Buffer.from(JSON.stringify(image)), MediaType.dockerManifest);
    expect(m).toMatchObject({
      kind: 'image',
      mediaType: MediaType.dockerManifest,
      config: { digest: D('c') },
    });
    const noMediaType = { ...image, mediaType: undefined };
    expect(parseManifest(Buffer.from(JSON.stringify(noMediaType)), MediaType.ociManifest).mediaType).toBe(
      MediaType.ociManifest,
    );
    const list = { ...index, mediaType: MediaType.dockerList };
    expect(parseManifest(Buffer.from(JSON.stringify(list)), 'application/json')).toMatchObject({
      kind: 'index',
      mediaType: MediaType.dockerList,
    });
  });

  it.each([
    ['not json', 'the manifest is not JSON'],
    [JSON.stringify({ schemaVersion: 1, name: 'x' }), 'schema 1 manifests are not supported'],
    [
      JSON.stringify({ ...image, layers: [{ mediaType: 'x', digest: 'md5:1', size: 1 }] }),
      'layers[0]: digest "md5:1"',
    ],
    [JSON.stringify({ ...image, config: { ...image.config, size: -1 } }), 'config: size -1'],
    [JSON.stringify({ mediaType: 'application/vnd.example+json' }), 'unsupported manifest media type'],
  ])('refuses %s', (bytes, msg) => {
    expect(() => parseManifest(Buffer.from(bytes), undefined)).toThrow(msg);
  });

  it('filters an index by platform, keeping its other fields', () => {
    const idx = parseManifest(Buffer.from(JSON.stringify(index)), undefined);
    if (idx.kind !== 'index') throw new Error('not an index');
    const f = filterIndex(idx, ['linux/arm64']);
    expect(f.manifests.map((m) => m.digest)).toEqual([D('b')]);
    const doc = JSON.parse(f.bytes.toString()) as typeof index;
    expect(doc.annotations).toEqual({ 'org.example': 'kept' });
    expect(doc.manifests).toHaveLength(1);
    expect(sha256Digest(f.bytes)).not.toBe(sha256Digest(Buffer.from(JSON.stringify(index))));
    expect(filterIndex(idx, ['linux/amd64', 'windows/amd64']).manifests.map((m) => m.digest)).toEqual([
      D('a'),
      D('d'),
    ]);
    expect(() => filterIndex(idx, ['linux/s390x'])).toThrow(
      'platform linux/s390x not in the index (it has linux/amd64, linux/arm64/v8, windows/amd64)',
    );
  });

  it('matches platforms, a variant only when asked', () => {
    expect(
      platformMatches(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    ).toBe(true);
    expect(
      platformMatches(parsePlatform('linux/arm64/v7'), { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    ).toBe(false);
    expect(() => parsePlatform('amd64')).toThrow('is not os/arch[/variant]');
  });
});

describe('targets', () => {
  const src = parseImageRef('central.example.com/shop/web:v2');
  it.each([
    ['mirror.example.com:5000', { registry: 'mirror.example.com:5000', repository: 'shop/web', tag: 'v2' }],
    [
      'mirror.example.com/mirrors/web',
      { registry: 'mirror.example.com', repository: 'mirrors/web', tag: 'v2' },
    ],
    ['127.0.0.1:5000/x/y:stable', { registry: '127.0.0.1:5000', repository: 'x/y', tag: 'stable' }],
  ])('%s', (target, want) => {
    expect(parseTarget(target, src)).toEqual(want);
  });
  it.each([
    ['mirror.example.com/x@' + D('a'), 'has a digest'],
    ['library/web', 'names no registry host'],
    ['not a host', 'is not host[:port]'],
  ])('refuses %s', (target, msg) => {
    let err: unknown;
    try {
      parseTarget(target, src);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('InvalidReference');
    expect((err as Error).message).toContain(msg);
  });
});

describe('upload ranges', () => {
  it.each([
    ['0-0', 0],
    ['0-1048575', 1048576],
    ['bytes=0-99', 100],
    [undefined, undefined],
    ['garbage', undefined],
  ])('%s', (r, want) => expect(rangeEnd(r)).toBe(want));
});

describe('credentials file', () => {
  it('validates and keys by lower-case host', () => {
    const c = parseCredentials({
      registries: {
        'Harbor.Example.com': { username: 'robot$ci', password: 'pw' },
        'b.example.com': { token: 't' },
      },
    });
    expect(credentialFor(c, 'harbor.example.com')).toEqual({ username: 'robot$ci', password: 'pw' });
    expect(credentialFor(c, 'x', 'B.example.com')).toEqual({ token: 't' });
    expect(credentialFor(c, 'nope.example.com')).toBeUndefined();
  });

  it('names the bad key and never the secret', () => {
    let msg = '';
    try {
      parseCredentials(
        { registries: { 'a.example.com': { username: 'u', passwd: 'hunter2-secret' } } },
        'creds.yaml',
      );
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain('registries.a.example.com');
    expect(msg).toContain('creds.yaml');
    expect(msg).not.toContain('hunter2-secret');
  });

  it('refuses a file that others can read', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'creds-'));
    const file = path.join(dir, 'c.yaml');
    writeFileSync(file, 'registries:\n  a.example.com: {token: t}\n', { mode: 0o644 });
    expect(() => loadCredentials(file)).toThrow(CredentialsFileError);
    expect(() => loadCredentials(file)).toThrow('chmod 600');
    writeFileSync(path.join(dir, 'ok.yaml'), 'registries:\n  a.example.com: {token: t}\n', { mode: 0o600 });
    expect(credentialFor(loadCredentials(path.join(dir, 'ok.yaml')), 'a.example.com')).toEqual({
      token: 't',
    });
  });
});

describe('registry inventory', () => {
  it('defaults, and refuses duplicates and a URL for a host', () => {
    const inv = RegistryInventorySchema.parse({
      registries: [{ name: 'central', host: 'harbor.example.com', region: 'central' }],
    });
    expect(inv.registries[0]).toMatchObject({ type: 'oci', tls: 'verify' });
    const dup = RegistryInventorySchema.safeParse({
      registries: [
        { name: 'a', host: 'x.example.com', region: 'r' },
        { name: 'b', host: 'X.example.com', region: 'r' },
      ],
    });
    expect(dup.success).toBe(false);
    expect(dup.error?.issues[0]?.message).toContain('duplicate registry host');
    const url = RegistryInventorySchema.safeParse({
      registries: [{ name: 'a', host: 'https://x.example.com', region: 'r' }],
    });
    expect(url.error?.issues[0]?.message).toContain('without a scheme');
  });
});

describe('failure mapping', () => {
  const where = {
    registry: 'r.example.com',
    repository: 'shop/web',
    reference: 'v1',
    operation: 'read manifest',
    notFoundIsImage: true,
  };
  it.each([
    [new RegistryHttpError(503, 'GET', 'r.example.com', '/v2/', []), 'RegistryUnreachable', false],
    [new RegistryHttpError(429, 'GET', 'r.example.com', '/v2/', []), 'RegistryUnreachable', false],
    [
      new RegistryHttpError(401, 'GET', 'r.example.com', '/v2/', [{ code: 'UNAUTHORIZED' }]),
      'RegistryAuthFailed',
      true,
    ],
    [
      new RegistryHttpError(403, 'GET', 'r.example.com', '/v2/', [{ code: 'DENIED' }]),
      'RegistryAuthFailed',
      true,
    ],
    [
      new RegistryHttpError(404, 'GET', 'r.example.com', '/v2/', [
        { code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' },
      ]),
      'ImageNotFound',
      true,
    ],
    [
      new RegistryHttpError(400, 'PUT', 'r.example.com', '/v2/', [{ code: 'MANIFEST_INVALID' }]),
      'RegistryRejected',
      true,
    ],
    [new RegistryAuthError('token server refused'), 'RegistryAuthFailed', true],
    [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      'RegistryUnreachable',
      false,
    ],
  ])('%s', (err, type, nonRetryable) => {
    const f = toRegistryFailure(err, where) as ApplicationFailure;
    expect(f.type).toBe(type);
    expect(f.nonRetryable).toBe(nonRetryable);
    expect(f.message).toContain('r.example.com/shop/web:v1');
  });
});
