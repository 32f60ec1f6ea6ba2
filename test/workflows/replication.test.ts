/**
 * The replicate wave step on a real Temporal server with in-memory clusters and
 * registries: it runs first in each wave, before any cluster of the wave is
 * touched; a registry that is down is waited for; past replicationTimeout the
 * wave fails at that step naming registry and image, and a retry runs it again.
 */
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeployRequestSchema, type DeliveryStatus, type DeployRequestInput } from '../../model/index.ts';
import { actionUpdate, statusQuery } from '../../workflows/messages.ts';
import { bundle, eventually, pinned, startFleet, type Fleet } from './harness.ts';

let workflowBundle: WorkflowBundleWithSourceMap;
let fleet: Fleet;
beforeAll(async () => {
  workflowBundle = await bundle();
});
afterEach(async () => {
  await fleet?.stop();
});

const V2 = 'central:5000/demo/web:v2';
const SOUTH = 'south.local:5000';
const atSouth = (ref: string) => ref.replace(/^central:5000/, SOUTH);

function request(extra: Partial<DeployRequestInput> = {}) {
  return DeployRequestSchema.parse({
    type: 'deploy',
    app: { name: 'web', namespace: 'shop', image: V2, replicas: 8, placement: { clusters: ['beijing', 'shenzhen', 'cloud-hk'] }, overrides: { shenzhen: { registry: SOUTH } } },
    waves: [['beijing'], ['shenzhen', 'cloud-hk']],
    onFailure: 'pause',
    ...extra,
  });
}
type Handle = Awaited<ReturnType<Fleet['deliver']>>;
const result = (h: Handle) => h.result() as Promise<DeliveryStatus>;
const images = () => Object.fromEntries(Object.entries(fleet.clusters).map(([n, c]) => [n, (c.deployment('shop')?.spec as { template: { spec: { containers: { image: string }[] } } } | undefined)?.template.spec.containers[0]!.image]));

describe('replicate step (real Temporal server, in-memory clusters and registries)', () => {
  it('runs first in each wave: wave 2 copies to its regional registry after wave 1 is done and before it touches a cluster', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    const final = await result(await fleet.deliver(request()));
    expect(final.phase).toBe('Healthy');
    expect(final.steps).toEqual(['replicate', 'apply', 'wait', 'prune']);
    expect(images()).toEqual({ beijing: pinned(V2), shenzhen: atSouth(pinned(V2)), 'cloud-hk': pinned(V2) });
    expect([...fleet.registries.held]).toEqual([atSouth(pinned(V2))]);
    const copy = fleet.registries.calls.find((c) => c.op === 'copy')!;
    const check = fleet.registries.calls.find((c) => c.op === 'check')!;
    expect(copy.ref).toBe(`${SOUTH}/demo/web`);
    expect(copy.at).toBeGreaterThanOrEqual(fleet.clusters.beijing!.calls.find((c) => c.op === 'wait')!.end!);
    for (const n of ['shenzhen', 'cloud-hk']) expect(fleet.clusters[n]!.calls[0]!.at).toBeGreaterThanOrEqual(check.at);
    expect(Object.values(final.clusters).map((c) => c.step)).toEqual([4, 4, 4]);
  });

  it('waits while the regional registry is down and proceeds once it is back', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    fleet.registries.down.add(SOUTH);
    const h = await fleet.deliver(request());
    const waiting = await eventually(() => h.query(statusQuery), (s) => s.currentWave === 1 && fleet.registries.calls.filter((c) => c.op === 'copy').length >= 2);
    expect(waiting.clusters.shenzhen!.message).toMatch(/replicating 1 image\(s\) to south\.local:5000/);
    expect(fleet.clusters.shenzhen!.calls).toEqual([]); // untouched while the copy waits
    fleet.registries.down.delete(SOUTH);
    const final = await result(h);
    expect(final.phase).toBe('Healthy');
    expect(images().shenzhen).toBe(atSouth(pinned(V2)));
  });

  it('past replicationTimeout fails the wave at the replicate step naming registry and image; a retry runs it again', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    fleet.registries.down.add(SOUTH);
    const h = await fleet.deliver(request({ replicationTimeout: '3s' }));
    const paused = await eventually(() => h.query(statusQuery), (s) => s.phase === 'NeedsAttention', 60_000);
    for (const n of ['shenzhen', 'cloud-hk']) {
      expect(paused.clusters[n]).toMatchObject({ phase: 'Failed', step: 0, failureType: 'RegistryUnreachable' });
      expect(paused.clusters[n]!.message).toContain(`replicating ${pinned(V2)} to registry ${SOUTH} (${SOUTH}) did not finish within 3s`);
      expect(fleet.clusters[n]!.calls).toEqual([]);
    }
    fleet.registries.down.delete(SOUTH);
    await h.executeUpdate(actionUpdate, { args: [{ who: 'sre-alice', action: 'retry' }] });
    const final = await result(h);
    expect(final.phase).toBe('Healthy');
    expect(images().shenzhen).toBe(atSouth(pinned(V2)));
    expect(fleet.clusters.beijing!.count('apply')).toBe(1); // wave 1 not redone
  });

  it('replicate: false leaves the step out: the cluster is pointed at its registry and nothing is copied', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    const final = await result(await fleet.deliver(request({ replicate: false })));
    expect(final.steps).toEqual(['apply', 'wait', 'prune']);
    expect(images().shenzhen).toBe(atSouth(pinned(V2)));
    expect(fleet.registries.calls).toEqual([]);
  });
});
