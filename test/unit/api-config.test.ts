/** The API's configuration: env schema, the inventory and tokens files. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, loadInventory, loadTokens } from '../../api/config.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-api-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
const file = async (name: string, text: string) => {
  const p = join(dir, name);
  await writeFile(p, text);
  return p;
};

describe('loadConfig', () => {
  it('fills defaults, coerces the port and freezes the result', () => {
    const c = loadConfig({
      FLOTILLA_INVENTORY: '/etc/flotilla/inventory.yaml',
      FLOTILLA_API_TOKENS_FILE: '/run/secrets/tokens',
      FLOTILLA_API_PORT: '9090',
    });
    expect(c).toMatchObject({
      FLOTILLA_TEMPORAL_ADDRESS: '127.0.0.1:7233',
      FLOTILLA_TEMPORAL_NAMESPACE: 'default',
      FLOTILLA_API_HOST: '127.0.0.1',
      FLOTILLA_API_PORT: 9090,
      FLOTILLA_LOG_LEVEL: 'info',
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('names every missing or wrong variable; the tokens file has no default', () => {
    let err: unknown;
    try {
      loadConfig({ FLOTILLA_API_PORT: 'eighty' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    for (const v of ['FLOTILLA_INVENTORY', 'FLOTILLA_API_TOKENS_FILE', 'FLOTILLA_API_PORT'])
      expect(msg).toContain(v);
  });
});

describe('loadTokens', () => {
  it('reads YAML or JSON mapping tokens to callers', async () => {
    const yaml = await file(
      'tokens.yaml',
      'ci-token-0123456789abcdef: {name: gitlab, role: ci}\nsre-token-0123456789abcdef:\n  name: alice\n  role: sre\n',
    );
    expect(await loadTokens(yaml)).toEqual({
      'ci-token-0123456789abcdef': { name: 'gitlab', role: 'ci' },
      'sre-token-0123456789abcdef': { name: 'alice', role: 'sre' },
    });
    const json = await file(
      'tokens.json',
      JSON.stringify({ 'viewer-token-0123456789abcdef': { name: 'carol', role: 'viewer' } }),
    );
    expect(Object.values(await loadTokens(json))).toEqual([{ name: 'carol', role: 'viewer' }]);
  });

  it('refuses short tokens and unknown roles without echoing a token', async () => {
    const p = await file(
      'bad-tokens.json',
      JSON.stringify({
        'good-token-0123456789abcdef': { name: 'a', role: 'ci' },
        shortsecret: { name: 'b', role: 'ci' },
        'other-token-0123456789abc': { name: 'c', role: 'admin' },
      }),
    );
    const err = await loadTokens(p).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/entry #2/);
    expect(err.message).toMatch(/entry #3 role/);
    expect(err.message).not.toMatch(/shortsecret|other-token|good-token/);
  });

  it('says which file cannot be read', async () => {
    await expect(loadTokens(join(dir, 'missing.yaml'))).rejects.toThrow(/tokens file .*missing\.yaml/);
  });
});

describe('loadInventory', () => {
  it('gives the API what a workflow may know of each cluster, never the kubeconfig', async () => {
    const p = await file(
      'inventory.yaml',
      'clusters:\n  - name: beijing\n    region: cn-north\n    provider: private\n    capacity: 2\n    kubeconfig: {path: /etc/flotilla/kubeconfigs/beijing}\n  - name: cloud-hk\n    region: ap-east\n    provider: public\n    kubeconfig: {path: /etc/flotilla/kubeconfigs/hk}\n',
    );
    const fleet = await loadInventory(p);
    expect(fleet.map((c) => [c.name, c.capacity, c.taskQueue])).toEqual([
      ['beijing', 2, 'flotilla-cluster-beijing'],
      ['cloud-hk', 1, 'flotilla-cluster-cloud-hk'],
    ]);
    expect(JSON.stringify(fleet)).not.toContain('kubeconfig');
  });

  it('refuses an invalid inventory with the field path', async () => {
    const p = await file(
      'bad-inventory.yaml',
      'clusters:\n  - name: Bei_Jing\n    region: x\n    provider: y\n    kubeconfig: {path: /k}\n',
    );
    await expect(loadInventory(p)).rejects.toThrow(/clusters\.0\.name/);
  });
});
