import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { clusterTaskQueue, ClusterSchema, InventorySchema, toClusterInfo } from '../../model/index.ts';

const beijing = {
  name: 'beijing',
  region: 'cn-north',
  zone: 'cn-north-1a',
  provider: 'idc',
  labels: { tier: 'core' },
  kubeconfig: { path: '/secret/beijing.kubeconfig', context: 'beijing-admin' },
  mirror: 'harbor.beijing.local:8443',
  capacity: 2,
  taskQueue: 'queue-beijing',
};
const shenzhen = {
  name: 'shenzhen',
  region: 'cn-south',
  provider: 'idc',
  kubeconfig: { path: '/secret/sz' },
};
const cloudHk = { name: 'cloud-hk', region: 'ap-east', provider: 'aws', kubeconfig: { path: '/secret/hk' } };

describe('InventorySchema', () => {
  it('parses a fleet and fills the defaults', () => {
    const inv = InventorySchema.parse({ clusters: [beijing, shenzhen, cloudHk] });
    expect(inv.clusters.map((c) => c.name)).toEqual(['beijing', 'shenzhen', 'cloud-hk']);
    expect(inv.clusters[1]).toEqual({ ...shenzhen, labels: {}, capacity: 1 });
    expect(inv.clusters[0]).toEqual(beijing);
  });

  it('rejects a duplicate cluster with the path of the second one', () => {
    const r = InventorySchema.safeParse({ clusters: [beijing, shenzhen, { ...cloudHk, name: 'beijing' }] });
    expect(r.success).toBe(false);
    expect(r.error?.issues).toEqual([
      expect.objectContaining({ path: ['clusters', 2, 'name'], message: 'duplicate cluster "beijing"' }),
    ]);
  });

  it('reports every duplicate, each at its own index', () => {
    const r = InventorySchema.safeParse({ clusters: [shenzhen, shenzhen, cloudHk, shenzhen, cloudHk] });
    expect(r.error?.issues.map((i) => i.path)).toEqual([
      ['clusters', 1, 'name'],
      ['clusters', 3, 'name'],
      ['clusters', 4, 'name'],
    ]);
  });

  it('accepts any list of distinct names and rejects any list with a repeat', () => {
    const name = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f');
    fc.assert(
      fc.property(fc.array(name, { minLength: 1, maxLength: 8 }), (names) => {
        const r = InventorySchema.safeParse({ clusters: names.map((n) => ({ ...shenzhen, name: n })) });
        expect(r.success).toBe(new Set(names).size === names.length);
      }),
    );
  });

  it.each<[string, unknown, (string | number)[]]>([
    ['an empty fleet', { clusters: [] }, ['clusters']],
    [
      'a name that is not a DNS label',
      { clusters: [{ ...shenzhen, name: 'Shen_Zhen' }] },
      ['clusters', 0, 'name'],
    ],
    ['a missing region', { clusters: [{ ...shenzhen, region: undefined }] }, ['clusters', 0, 'region']],
    ['an empty provider', { clusters: [{ ...shenzhen, provider: '' }] }, ['clusters', 0, 'provider']],
    ['an empty zone', { clusters: [cloudHk, { ...shenzhen, zone: '' }] }, ['clusters', 1, 'zone']],
    ['no kubeconfig', { clusters: [{ ...shenzhen, kubeconfig: undefined }] }, ['clusters', 0, 'kubeconfig']],
    [
      'an empty kubeconfig path',
      { clusters: [{ ...shenzhen, kubeconfig: { path: '' } }] },
      ['clusters', 0, 'kubeconfig', 'path'],
    ],
    ['a zero capacity', { clusters: [{ ...shenzhen, capacity: 0 }] }, ['clusters', 0, 'capacity']],
    ['a negative capacity', { clusters: [{ ...shenzhen, capacity: -1 }] }, ['clusters', 0, 'capacity']],
    [
      'a label value past 63',
      { clusters: [{ ...shenzhen, labels: { tier: 'x'.repeat(64) } }] },
      ['clusters', 0, 'labels', 'tier'],
    ],
  ])('rejects %s at its path', (_what, input, path) => {
    const r = InventorySchema.safeParse(input);
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.path)).toContainEqual(path);
  });
});

describe('toClusterInfo', () => {
  it('strips the kubeconfig: nothing of it reaches a workflow', () => {
    const info = toClusterInfo(ClusterSchema.parse(beijing));
    expect(info).not.toHaveProperty('kubeconfig');
    expect(JSON.stringify(info)).not.toContain('/secret/');
    expect(JSON.stringify(info)).not.toContain('beijing-admin');
  });

  it('keeps what workflows need and adds region, provider and zone as labels', () => {
    expect(toClusterInfo(ClusterSchema.parse(beijing))).toEqual({
      name: 'beijing',
      region: 'cn-north',
      zone: 'cn-north-1a',
      provider: 'idc',
      labels: { tier: 'core', region: 'cn-north', provider: 'idc', zone: 'cn-north-1a' },
      mirror: 'harbor.beijing.local:8443',
      capacity: 2,
      taskQueue: 'queue-beijing',
    });
  });

  it('leaves out what is not set, and defaults the task queue', () => {
    const info = toClusterInfo(ClusterSchema.parse(shenzhen));
    expect(info).toEqual({
      name: 'shenzhen',
      region: 'cn-south',
      provider: 'idc',
      labels: { region: 'cn-south', provider: 'idc' },
      capacity: 1,
      taskQueue: 'flotilla-cluster-shenzhen',
    });
    expect(Object.keys(info)).not.toContain('zone');
    expect(Object.keys(info)).not.toContain('mirror');
    expect(clusterTaskQueue('cloud-hk')).toBe('flotilla-cluster-cloud-hk');
  });

  it('lets the fields win over labels of the same key, so a selector on region means the region', () => {
    const info = toClusterInfo(
      ClusterSchema.parse({ ...shenzhen, labels: { region: 'elsewhere', team: 'pay' } }),
    );
    expect(info.labels).toEqual({ region: 'cn-south', provider: 'idc', team: 'pay' });
  });

  it('does not share its labels object with the inventory', () => {
    const cluster = ClusterSchema.parse(beijing);
    const info = toClusterInfo(cluster);
    info.labels.extra = 'x';
    expect(cluster.labels).toEqual({ tier: 'core' });
  });
});
