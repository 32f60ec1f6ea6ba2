import { describe, expect, it } from 'vitest';
import { copiesFor, groupByTarget, replicationRoute, replicationTargets, ReplicationPlanError, ReplicationRequestSchema, withReplication } from '../../model/replication.ts';
import { planPlacement, prepareDeploy, DeployRequestSchema, segmentsOf, type ClusterInfo } from '../../model/index.ts';
import type { RegistryInfo } from '../../model/registry.ts';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const registries: RegistryInfo[] = [
  { name: 'central', host: 'central.local:5000', region: 'central', type: 'oci' },
  { name: 'cn-north', host: 'north.local:5000', region: 'cn-north', type: 'oci' },
  { name: 'cn-south', host: 'south.local:5000', region: 'cn-south', type: 'oci' },
];
const fleet: ClusterInfo[] = [
  { name: 'beijing', region: 'cn-north', provider: 'private', labels: {}, capacity: 1, taskQueue: 'q-b' },
  { name: 'shenzhen', region: 'cn-south', provider: 'private', labels: {}, capacity: 1, taskQueue: 'q-s' },
  { name: 'cloud-hk', region: 'ap-east', provider: 'public', labels: {}, capacity: 1, taskQueue: 'q-h' },
];
const request = (extra: Record<string, unknown> = {}) =>
  DeployRequestSchema.parse({
    type: 'deploy',
    app: { name: 'web', namespace: 'shop', image: 'central.local:5000/demo/web:v2', replicas: 3, placement: { clusters: ['beijing', 'shenzhen', 'cloud-hk'] }, overrides: { beijing: { registry: 'north.local:5000' }, shenzhen: { registry: 'south.local:5000' } } },
    waves: [['cloud-hk'], ['beijing', 'shenzhen']],
    ...extra,
  });
const digests = { 'central.local:5000/demo/web:v2': d('a') };

/** The same fleet with each Chinese cluster pulling from its region's registry, as the inventory's `mirror` says. */
const mirrored: ClusterInfo[] = fleet.map((c) => (c.name === 'beijing' ? { ...c, mirror: 'north.local:5000' } : c.name === 'shenzhen' ? { ...c, mirror: 'south.local:5000' } : c));
const noOverrides = (extra: Record<string, unknown> = {}) => {
  const r = request(extra);
  return DeployRequestSchema.parse({ ...r, app: { ...r.app, overrides: {} } });
};

describe('replication in a delivery plan', () => {
  it("pulls each cluster from its inventory mirror unless the request names another registry (by cluster or by selector)", () => {
    const p = planPlacement(noOverrides().app, mirrored, noOverrides().waves);
    expect(p.overrides.beijing!.registry).toBe('north.local:5000');
    expect(p.overrides.shenzhen!.registry).toBe('south.local:5000');
    expect(p.overrides['cloud-hk']!.registry).toBeUndefined();
    const own = planPlacement({ ...noOverrides().app, overrides: { beijing: { registry: 'other.local:5000' } } }, mirrored, noOverrides().waves);
    expect(own.overrides.beijing!.registry).toBe('other.local:5000');
    expect(own.overrides.shenzhen!.registry).toBe('south.local:5000');
    const bySelector = planPlacement({ ...noOverrides().app, selectorOverrides: [{ clusterSelector: { region: 'cn-south' }, registry: 'central.local:5000' }] }, mirrored.map((c) => ({ ...c, labels: { region: c.region } })), noOverrides().waves);
    expect(bySelector.overrides.shenzhen!.registry).toBe('central.local:5000');
  });

  it('plans the same copies from the inventory mirrors as from overrides.registry; replicate: false keeps the mirror reference and copies nothing', () => {
    const fromMirrors = withReplication(prepareDeploy(noOverrides(), mirrored, digests, 'delivery-1'), registries, undefined);
    const fromOverrides = withReplication(prepareDeploy(request(), fleet, digests, 'delivery-1'), registries, undefined);
    expect(fromMirrors.waves).toEqual(fromOverrides.waves);
    expect(fromMirrors.clusters.shenzhen!.image).toBe(`south.local:5000/demo/web@${d('a')}`);
    const optOut = withReplication(prepareDeploy(noOverrides({ replicate: false }), mirrored, digests, 'delivery-1'), registries, false);
    expect(optOut.waves.map((w) => w.steps.map((s) => s.kind))).toEqual([['apply', 'wait', 'prune'], ['apply', 'wait', 'prune']]);
    expect(optOut.clusters.shenzhen!.image).toBe(`south.local:5000/demo/web@${d('a')}`);
  });

  it('copies an image the request pinned by digest from the registry it names to the mirror', () => {
    const pinned = `central.local:5000/demo/web@${d('b')}`;
    const r = noOverrides();
    const req = DeployRequestSchema.parse({ ...r, app: { ...r.app, image: pinned } });
    const prepared = withReplication(prepareDeploy(req, mirrored, { [pinned]: d('b') }, 'delivery-1'), registries, undefined);
    expect(prepared.clusters.beijing!.image).toBe(`north.local:5000/demo/web@${d('b')}`);
    expect(prepared.waves[1]!.steps[0]).toMatchObject({ kind: 'replicate', targets: [{ registry: 'cn-north', copies: [{ source: pinned, target: `north.local:5000/demo/web@${d('b')}` }] }, { registry: 'cn-south' }] });
  });

  it('puts a replicate step first in every wave, with the copies of that wave grouped by target registry', () => {
    const prepared = withReplication(prepareDeploy(request(), fleet, digests, 'delivery-1'), registries, undefined);
    expect(prepared.waves.map((w) => w.steps.map((s) => s.kind))).toEqual([
      ['replicate', 'apply', 'wait', 'prune'],
      ['replicate', 'apply', 'wait', 'prune'],
    ]);
    // Wave 1 (cloud-hk pulls from central itself): nothing to copy; wave 2: one copy per regional registry.
    expect(prepared.waves[0]!.steps[0]).toEqual({ kind: 'replicate', targets: [] });
    expect(prepared.waves[1]!.steps[0]).toEqual({
      kind: 'replicate',
      targets: [
        { registry: 'cn-north', host: 'north.local:5000', via: 'copier', copies: [{ source: `central.local:5000/demo/web@${d('a')}`, target: `north.local:5000/demo/web@${d('a')}`, tag: 'v2' }] },
        { registry: 'cn-south', host: 'south.local:5000', via: 'copier', copies: [{ source: `central.local:5000/demo/web@${d('a')}`, target: `south.local:5000/demo/web@${d('a')}`, tag: 'v2' }] },
      ],
    });
    // The clusters deploy the regional reference, pinned.
    expect(prepared.clusters.beijing!.image).toBe(`north.local:5000/demo/web@${d('a')}`);
    expect(segmentsOf(prepared.waves[1]!.steps)[0]).toEqual({ scope: 'wave', at: 0 });
  });

  it('leaves the plan as it was with replicate: false, or when no cluster pulls from another registry', () => {
    const plain = prepareDeploy(request(), fleet, digests, 'delivery-1');
    expect(withReplication(plain, registries, false)).toBe(plain);
    const central = prepareDeploy(DeployRequestSchema.parse({ ...request(), app: { ...request().app, overrides: {} } }), fleet, digests, 'delivery-1');
    expect(withReplication(central, registries, true)).toBe(central);
  });

  it('copies only images the delivery resolved from another registry of the same repository', () => {
    expect(copiesFor([`north.local:5000/demo/web@${d('a')}`, `central.local:5000/demo/web@${d('a')}`, 'north.local:5000/demo/web:v2', `north.local:5000/other@${d('a')}`], digests)).toEqual([
      { source: `central.local:5000/demo/web@${d('a')}`, target: `north.local:5000/demo/web@${d('a')}`, tag: 'v2' },
    ]);
  });

  it('routes a copy whose source is a Harbor through Harbor, and names an unknown target by its host', () => {
    const harbor: RegistryInfo[] = [{ ...registries[0]!, type: 'harbor' }, registries[1]!];
    const t = groupByTarget(
      [
        { source: `central.local:5000/demo/web@${d('a')}`, target: `north.local:5000/demo/web@${d('a')}` },
        { source: `central.local:5000/demo/web@${d('a')}`, target: `north.local:5000/demo/web@${d('a')}` },
        { source: `central.local:5000/demo/web@${d('a')}`, target: `elsewhere.local/demo/web@${d('a')}` },
      ],
      harbor,
    );
    expect(t.map((x) => [x.registry, x.via, x.harbor, x.copies.length])).toEqual([
      ['cn-north', 'harbor', 'central', 1],
      ['elsewhere.local', 'copier', undefined, 1],
    ]);
  });
});

describe('which way an image moves', () => {
  const src = `central.local:5000/demo/web@${d('a')}`;
  const copies = [
    { source: src, target: `north.local:5000/demo/web@${d('a')}`, tag: 'v2' },
    { source: src, target: `south.local:5000/demo/web@${d('a')}`, tag: 'v2' },
    { source: `elsewhere.local/demo/web@${d('a')}`, target: `south.local:5000/demo/web@${d('a')}` },
  ];
  it('a regional Harbor pulls from a source the inventory names; the copier serves the rest', () => {
    const regionalHarbor: RegistryInfo[] = [registries[0]!, registries[1]!, { ...registries[2]!, type: 'harbor' }];
    expect(groupByTarget(copies, regionalHarbor).map((t) => [t.registry, t.via, t.harbor, t.pullFrom, t.copies.length])).toEqual([
      ['cn-north', 'copier', undefined, undefined, 1],
      ['cn-south', 'harbor', 'cn-south', 'central', 1],
      // A source the inventory does not know cannot be a Harbor endpoint: the copier moves it.
      ['cn-south', 'copier', undefined, undefined, 1],
    ]);
  });

  it('a central Harbor pushes, whatever the target is (a Harbor too)', () => {
    expect(replicationRoute({ ...registries[0]!, type: 'harbor' }, { ...registries[2]!, type: 'harbor' })).toEqual({ via: 'harbor', harbor: 'central' });
    expect(replicationRoute(registries[0], registries[1])).toEqual({ via: 'copier' });
    expect(replicationRoute(undefined, { ...registries[1]!, type: 'harbor' })).toEqual({ via: 'copier' });
  });
});

describe('POST /v1/replications request', () => {
  it('validates the body with field paths', () => {
    const r = ReplicationRequestSchema.safeParse({ image: 'Not An Image', to: [] });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.path.join('.')).sort()).toEqual(['image', 'to']);
    expect(ReplicationRequestSchema.parse({ image: 'central.local:5000/demo/web:v2', to: 'all' }).timeout).toBe('30m');
  });

  it('expands "all" to every registry but the image\'s own, and names an unknown or duplicate registry', () => {
    expect(replicationTargets({ image: 'central.local:5000/demo/web:v2', to: 'all' }, registries).map((r) => r.name)).toEqual(['cn-north', 'cn-south']);
    const err = (to: string[]) => {
      try {
        replicationTargets({ image: 'central.local:5000/demo/web:v2', to }, registries);
      } catch (e) {
        return e as ReplicationPlanError;
      }
      throw new Error('no error');
    };
    expect(err(['cn-north', 'mars'])).toMatchObject({ path: ['to', 1], message: expect.stringMatching(/unknown registry "mars"/) });
    expect(err(['cn-north', 'cn-north']).message).toMatch(/listed twice/);
    expect(err(['central']).message).toMatch(/image's own registry/);
  });
});
