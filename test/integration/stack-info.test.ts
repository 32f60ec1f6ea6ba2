/**
 * The StackInfo file across `up`: what others added to it (`npm start` adds
 * `api: {url, tokens}`) survives, the stack's own fields are rewritten, and the
 * file stays readable by its owner only. On the real stack of the integration
 * project (an `up` of a running stack only checks its parts).
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stackInfoFile, stackOptions, up } from '../../stack/index.ts';
import type { StackInfo } from '../../stack/types.ts';

const stack: StackInfo = inject('stack');
const opts = stackOptions(stack);
const file = stackInfoFile(stack.dataDir);
let original = '';

beforeAll(() => {
  original = readFileSync(file, 'utf8');
});
afterAll(() => {
  writeFileSync(file, original);
});

const read = () => JSON.parse(readFileSync(file, 'utf8')) as StackInfo & Record<string, unknown>;

describe('stack.json across up', () => {
  it('keeps api and other fields it does not own, rewrites its own, mode 0600', async () => {
    const api = { url: 'http://127.0.0.1:9', tokens: { ci: 'ci-token', viewer: 'viewer-token' } };
    const stale = { ...stack, clusters: [], api, addedBySomeoneElse: { keep: true } };
    writeFileSync(file, JSON.stringify(stale), { mode: 0o644 });

    const info = await up(opts);

    const after = read();
    expect(after.api).toEqual(api);
    expect(after.addedBySomeoneElse).toEqual({ keep: true });
    expect(after.clusters.map((c) => c.name)).toEqual(stack.clusters.map((c) => c.name));
    expect(after.clusters).toEqual(stack.clusters);
    expect(info.api).toEqual(api); // what up returns is what it wrote
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('rewrites a file that is not JSON', async () => {
    writeFileSync(file, '{ not json');
    await up(opts);
    const after = read();
    expect(after.clusters).toEqual(stack.clusters);
    expect(after.api).toBeUndefined();
  });
});
