import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatImageRef, ImageRefError, parseImageRef, withRegistry } from '../../model/index.ts';
import type { ImageRef } from '../../model/index.ts';

const D = `sha256:${'0123456789abcdef'.repeat(4)}`;

describe('parseImageRef', () => {
  it.each<[string, ImageRef]>([
    ['nginx', { registry: 'docker.io', repository: 'library/nginx', tag: 'latest' }],
    ['nginx:1.27', { registry: 'docker.io', repository: 'library/nginx', tag: '1.27' }],
    ['bitnami/redis:7', { registry: 'docker.io', repository: 'bitnami/redis', tag: '7' }],
    ['docker.io/nginx', { registry: 'docker.io', repository: 'library/nginx', tag: 'latest' }],
    ['docker.io/library/nginx:1', { registry: 'docker.io', repository: 'library/nginx', tag: '1' }],
    ['ghcr.io/org/team/app:v2', { registry: 'ghcr.io', repository: 'org/team/app', tag: 'v2' }],
    ['ghcr.io/app', { registry: 'ghcr.io', repository: 'app', tag: 'latest' }],
    [
      'registry.local:5000/demo/web:v2',
      { registry: 'registry.local:5000', repository: 'demo/web', tag: 'v2' },
    ],
    [
      'registry.local:5000/demo/web',
      { registry: 'registry.local:5000', repository: 'demo/web', tag: 'latest' },
    ],
    ['localhost/web', { registry: 'localhost', repository: 'web', tag: 'latest' }],
    ['localhost:5000/web:v1', { registry: 'localhost:5000', repository: 'web', tag: 'v1' }],
    ['127.0.0.1:5001/demo/web:v1', { registry: '127.0.0.1:5001', repository: 'demo/web', tag: 'v1' }],
    ['[::1]:5000/web:v1', { registry: '[::1]:5000', repository: 'web', tag: 'v1' }],
    ['[fd00::a:1]/demo/web', { registry: '[fd00::a:1]', repository: 'demo/web', tag: 'latest' }],
    ['Registry.Example.com/web', { registry: 'Registry.Example.com', repository: 'web', tag: 'latest' }],
    [`web@${D}`, { registry: 'docker.io', repository: 'library/web', digest: D }],
    [`ghcr.io/a/web:v1@${D}`, { registry: 'ghcr.io', repository: 'a/web', tag: 'v1', digest: D }],
    [`localhost:5000/web@${D}`, { registry: 'localhost:5000', repository: 'web', digest: D }],
    [
      'my_org/my__app-x.y:V1.0-rc_1',
      { registry: 'docker.io', repository: 'my_org/my__app-x.y', tag: 'V1.0-rc_1' },
    ],
  ])('%s', (input, want) => {
    expect(parseImageRef(input)).toEqual(want);
  });

  it('keeps only the fields that are there (no undefined keys)', () => {
    expect(Object.keys(parseImageRef(`web@${D}`)).sort()).toEqual(['digest', 'registry', 'repository']);
    expect(Object.keys(parseImageRef('web:v1')).sort()).toEqual(['registry', 'repository', 'tag']);
  });

  it('a bare "host:port" is a repository with a tag, as Docker reads it', () => {
    expect(parseImageRef('localhost:5000')).toEqual({
      registry: 'docker.io',
      repository: 'library/localhost',
      tag: '5000',
    });
  });

  it.each<[string, RegExp]>([
    ['', /is not an image reference/],
    [' nginx', /is not an image reference/],
    ['nginx ', /is not an image reference/],
    ['ng inx', /is not an image reference/],
    ['nginx:v 1', /is not an image reference/],
    ['Nginx', /repository "Nginx" must be lowercase/],
    ['Org/web:v1', /repository "Org\/web" must be lowercase/],
    ['ghcr.io/Org/web', /repository "Org\/web" must be lowercase/],
    ['web::v1', /repository "web:" must be lowercase/],
    ['web:v1:v2', /must be lowercase/],
    ['web:', /tag "" is not valid/],
    ['web:-v1', /tag "-v1" is not valid/],
    [`web:${'a'.repeat(129)}`, /tag "a+" is not valid/],
    ['web@', /digest must be sha256:<64 lowercase hex>/],
    ['web@sha256:abc', /digest must be sha256/],
    [`web@${D.toUpperCase()}`, /digest must be sha256/],
    [`web@md5:${'0'.repeat(64)}`, /digest must be sha256/],
    [`web@${D}@${D}`, /digest must be sha256/],
    [`web@${D}0`, /digest must be sha256/],
    ['registry.local:/web', /registry "registry.local:" is not a host\[:port\]/],
    ['registry.local:port/web', /registry "registry.local:port" is not a host\[:port\]/],
    ['-bad.example/web', /registry "-bad.example" is not a host/],
    ['::1/web', /registry "::1" is not a host/],
    ['[::1/web', /registry "\[::1" is not a host/],
    ['ghcr.io/', /repository "" must be lowercase/],
    ['/web', /must be lowercase path components/],
    ['ghcr.io//web', /must be lowercase path components/],
    ['web-', /must be lowercase path components/],
    ['a/.b', /must be lowercase path components/],
  ])('rejects %j with a clear message', (input, message) => {
    expect(() => parseImageRef(input)).toThrow(ImageRefError);
    expect(() => parseImageRef(input)).toThrow(message);
  });

  it('names the input in every rejection', () => {
    for (const input of ['Web', 'web@sha256:1', 'web:-x', 'a.b:x/web']) {
      expect(() => parseImageRef(input)).toThrow(`"${input}"`);
    }
  });
});

// Arbitraries that build references in the grammar the parser accepts.
const alnum = fc.string({
  unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'.split('')),
  minLength: 1,
  maxLength: 8,
});
const component = fc
  .tuple(alnum, fc.array(fc.tuple(fc.constantFrom('.', '_', '__', '-', '--'), alnum), { maxLength: 2 }))
  .map(([head, tail]) => head + tail.map(([s, a]) => s + a).join(''));
const repository = fc.array(component, { minLength: 1, maxLength: 3 }).map((cs) => cs.join('/'));
const port = fc.integer({ min: 1, max: 65535 }).map((p) => `:${p}`);
const registry = fc.oneof(
  fc.tuple(alnum, alnum, fc.option(port, { nil: '' })).map(([a, b, p]) => `${a}.${b}${p}`),
  fc.tuple(alnum, port).map(([a, p]) => `${a}${p}`),
  fc.option(port, { nil: '' }).map((p) => `localhost${p}`),
  fc.option(port, { nil: '' }).map((p) => `[fd00::${'1'}]${p}`),
);
const tag = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}$/);
const digest = fc
  .string({ unit: fc.constantFrom(...'0123456789abcdef'.split('')), minLength: 64, maxLength: 64 })
  .map((h) => `sha256:${h}`);
const imageRef: fc.Arbitrary<ImageRef> = fc
  .record({
    registry,
    repository,
    tag: fc.option(tag, { nil: undefined }),
    digest: fc.option(digest, { nil: undefined }),
  })
  .map((r) => ({
    registry: r.registry,
    repository: r.repository,
    ...(r.tag || !r.digest ? { tag: r.tag ?? 'latest' } : {}),
    ...(r.digest ? { digest: r.digest } : {}),
  }));

describe('round trips', () => {
  it('parse(format(ref)) gives ref back for every explicit reference', () => {
    fc.assert(
      fc.property(imageRef, (ref) => {
        expect(parseImageRef(formatImageRef(ref))).toEqual(ref);
      }),
    );
  });

  it('format(parse(s)) is canonical: parsing it again changes nothing', () => {
    const shorthand = fc
      .tuple(component, fc.option(tag, { nil: undefined }))
      .map(([c, t]) => (t ? `${c}:${t}` : c));
    fc.assert(
      fc.property(fc.oneof(shorthand, imageRef.map(formatImageRef)), (s) => {
        const canonical = formatImageRef(parseImageRef(s));
        expect(formatImageRef(parseImageRef(canonical))).toBe(canonical);
      }),
    );
  });

  it('formats the short forms in full', () => {
    expect(formatImageRef(parseImageRef('nginx'))).toBe('docker.io/library/nginx:latest');
    expect(formatImageRef(parseImageRef(`web:v1@${D}`))).toBe(`docker.io/library/web:v1@${D}`);
  });

  it('never throws anything but ImageRefError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        try {
          const ref = parseImageRef(s);
          expect(ref.tag ?? ref.digest).toBeDefined();
        } catch (e) {
          expect(e).toBeInstanceOf(ImageRefError);
        }
      }),
    );
  });
});

describe('withRegistry', () => {
  it.each([
    ['nginx', 'mirror.cn-north.local:5000', 'mirror.cn-north.local:5000/library/nginx:latest'],
    ['ghcr.io/demo/web:v2', 'localhost:5001', 'localhost:5001/demo/web:v2'],
    [`registry.local:5000/demo/web:v2@${D}`, 'harbor.hk.example', `harbor.hk.example/demo/web:v2@${D}`],
    ['registry.local/demo/web@' + D, '[::1]:5000', `[::1]:5000/demo/web@${D}`],
    ['demo/web:v1', 'localhost', 'localhost/demo/web:v1'],
  ])('%s from %s', (ref, reg, want) => {
    expect(withRegistry(ref, reg)).toBe(want);
  });

  it('keeps repository, tag and digest; only the registry changes', () => {
    fc.assert(
      fc.property(imageRef, registry, (ref, reg) => {
        expect(parseImageRef(withRegistry(formatImageRef(ref), reg))).toEqual({ ...ref, registry: reg });
      }),
    );
  });

  it.each([
    ['mirror', /registry "mirror" is not a host/],
    ['bad host', /registry "bad host" is not a host/],
    ['', /registry "" is not a host/],
    ['mirror.local/path', /registry "mirror.local\/path" is not a host/],
  ])('refuses %j, which a runtime would not read as a registry', (reg, message) => {
    expect(() => withRegistry('demo/web:v1', reg)).toThrow(ImageRefError);
    expect(() => withRegistry('demo/web:v1', reg)).toThrow(message);
  });

  it('refuses an unparsable reference', () => {
    expect(() => withRegistry('Demo/Web', 'mirror.local')).toThrow(/must be lowercase/);
  });
});
