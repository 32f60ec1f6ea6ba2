/**
 * The delivery workflow (deploy strategy on the step interpreter) on a real
 * Temporal server with in-memory clusters: waves, steps, rollback order,
 * pause/retry from the failed step, unreachable clusters, skip, abort, and
 * restores that put back everything a delivery changed.
 */
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeployRequestSchema, type DeliveryStatus, type DeployRequestInput } from '../../model/index.ts';
import { actionUpdate, statusQuery, type ActionInput } from '../../workflows/messages.ts';
import { bundle, eventually, pinned, startFleet, type Fleet } from './harness.ts';
import { saveHistory } from './histories.ts';

let workflowBundle: WorkflowBundleWithSourceMap;
let fleet: Fleet;

beforeAll(async () => {
  workflowBundle = await bundle();
});
afterEach(async () => {
  await fleet?.stop();
});

const V1 = 'central:5000/demo/web:v1';
const V2 = 'central:5000/demo/web:v2';

function request(image: string, extra: Partial<DeployRequestInput> = {}, app: Partial<DeployRequestInput['app']> = {}) {
  return DeployRequestSchema.parse({
    type: 'deploy',
    app: { name: 'web', namespace: 'shop', image, replicas: 8, placement: { clusters: ['beijing', 'shenzhen', 'cloud-hk'] }, ...app },
    waves: [['beijing'], ['shenzhen', 'cloud-hk']],
    onFailure: 'pause',
    ...extra,
  });
}

type Handle = Awaited<ReturnType<Fleet['deliver']>>;
const status = (h: Handle) => h.query(statusQuery);
const act = (h: Handle, a: Omit<ActionInput, 'who'>) => h.executeUpdate(actionUpdate, { args: [{ who: 'sre-alice', ...a }] });
const images = (ns = 'shop') => Object.fromEntries(Object.entries(fleet.clusters).map(([n, c]) => [n, c.image(ns)]));
const replicas = (ns = 'shop') => Object.fromEntries(Object.entries(fleet.clusters).map(([n, c]) => [n, c.replicas(ns)]));
const result = async (h: Handle) => (await h.result()) as DeliveryStatus;

/** Deploys v1 everywhere so that later tests change a running application. */
async function baseline(): Promise<void> {
  expect((await result(await fleet.deliver(request(V1, { waves: undefined })))).phase).toBe('Healthy');
}

describe('delivery workflow (real Temporal server, in-memory clusters)', () => {
  it('goes wave by wave, step by step, and ends Healthy with the divided replicas and the pinned image everywhere', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    const h = await fleet.deliver(request(V2));
    const final = await result(h);
    expect(final.phase).toBe('Healthy');
    expect(final.image).toBe(V2); // the tag stays visible
    expect(pinned(V2)).toMatch(/^central:5000\/demo\/web@sha256:[a-f0-9]{64}$/);
    expect(final.digest).toBe(pinned(V2).split('@')[1]);
    expect(final.waves).toEqual([['beijing'], ['shenzhen', 'cloud-hk']]);
    expect(final.steps).toEqual(['apply', 'wait', 'prune']);
    expect(images()).toEqual({ beijing: pinned(V2), shenzhen: pinned(V2), 'cloud-hk': pinned(V2) });
    // capacity 2:1:1 over 8 replicas, at least one each
    expect(Object.fromEntries(Object.entries(final.clusters).map(([n, c]) => [n, [c.desiredReplicas, c.readyReplicas, c.phase, c.step, c.observed?.image]]))).toEqual({
      beijing: [4, 4, 'Healthy', 3, pinned(V2)],
      shenzhen: [2, 2, 'Healthy', 3, pinned(V2)],
      'cloud-hk': [2, 2, 'Healthy', 3, pinned(V2)],
    });
    // wave 2 starts only once wave 1 has finished waiting for its rollout
    const wave1Done = fleet.clusters.beijing!.calls.find((c) => c.op === 'wait')!.end!;
    for (const n of ['shenzhen', 'cloud-hk']) expect(fleet.clusters[n]!.calls.find((c) => c.op === 'capture')!.at).toBeGreaterThanOrEqual(wave1Done);
    expect(final.conditions.find((c) => c.type === 'Progressing')?.reason).toBe('AllWavesHealthy');
    await saveHistory(fleet.client, h.workflowId, 'delivery-two-waves');
  });

  it('rolls every touched cluster back, the newest wave entirely before the one before it, when wave 2 never becomes ready', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    fleet.clusters.shenzhen!.badImages.add(pinned(V2));
    const h = await fleet.deliver(request(V2, { onFailure: 'rollback' }));
    const final = await result(h);
    expect(final.phase).toBe('RolledBack');
    expect(images()).toEqual({ beijing: pinned(V1), shenzhen: pinned(V1), 'cloud-hk': pinned(V1) });
    expect(final.clusters.shenzhen!.message).toMatch(/back on central:5000\/demo\/web@sha256/);
    // Every restore of wave 2 had finished before wave 1's began.
    const restore = (n: string) => fleet.clusters[n]!.calls.find((c) => c.op === 'restore')!;
    const wave2End = Math.max(restore('shenzhen').end!, restore('cloud-hk').end!);
    expect(restore('beijing').at).toBeGreaterThanOrEqual(wave2End);
    await saveHistory(fleet.client, h.workflowId, 'delivery-rollback');
  });

  it('pauses in NeedsAttention and a retry resumes the failed cluster at its failed step, without redoing wave 1', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    const sz = fleet.clusters.shenzhen!;
    sz.badImages.add(pinned(V2));
    const h = await fleet.deliver(request(V2));
    const paused = await eventually(() => status(h), (s) => s.phase === 'NeedsAttention');
    expect(paused.clusters.shenzhen).toMatchObject({ phase: 'Failed', failureType: 'RolloutFailed', step: 1 });
    expect(paused.clusters.shenzhen!.message).toMatch(/not Ready/);
    expect(paused.clusters['cloud-hk']!.phase).toBe('Healthy');
    expect(paused.currentStep).toBe(1);

    // an action that does not apply now is refused with a reason, and changes nothing
    await expect(act(h, { action: 'skip' })).rejects.toThrow(WorkflowUpdateFailedError);
    await expect(act(h, { action: 'retry', cluster: 'beijing' })).rejects.toThrow(WorkflowUpdateFailedError);
    expect((await status(h)).phase).toBe('NeedsAttention');

    const applies = { beijing: fleet.clusters.beijing!.count('apply'), shenzhen: sz.count('apply') };
    const waits = sz.count('wait');
    sz.badImages.clear(); // the fault is fixed
    const after = await act(h, { action: 'retry', comment: 'node pool fixed' });
    expect(after.phase).toBe('Progressing');
    const final = await result(h);
    expect(final.phase).toBe('Healthy');
    expect(images().shenzhen).toBe(pinned(V2));
    // resumed at the wait step: no apply again anywhere, one more wait in shenzhen
    expect([fleet.clusters.beijing!.count('apply'), sz.count('apply'), sz.count('wait')]).toEqual([applies.beijing, applies.shenzhen, waits + 1]);
    expect(final.clusters.shenzhen!.attempts).toBe(2);
    expect(final.audit).toEqual([expect.objectContaining({ who: 'sre-alice', action: 'retry', comment: 'node pool fixed' })]);
    // the workflow has closed: Temporal itself refuses the update (the API maps this to 409)
    await expect(act(h, { action: 'abort' })).rejects.toThrow(/completed/);
    await saveHistory(fleet.client, h.workflowId, 'delivery-pause-retry');
  });

  it('waits for an unreachable cluster and finishes when it comes back in time', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    fleet.clusters['cloud-hk']!.fault = 'unreachable';
    const h = await fleet.deliver(request(V2, { unreachableTimeout: '60s' }));
    await eventually(() => Promise.resolve(fleet.clusters['cloud-hk']!.count('capture')), (n) => n >= 2);
    expect((await status(h)).clusters['cloud-hk']!.phase).toBe('Applying');
    fleet.clusters['cloud-hk']!.fault = 'none';
    const final = await result(h);
    expect(final.phase).toBe('Healthy');
    expect(images()['cloud-hk']).toBe(pinned(V2));
  });

  it('lets an SRE skip a cluster that stays unreachable past the wait', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    fleet.clusters['cloud-hk']!.fault = 'unreachable';
    const h = await fleet.deliver(request(V2, { unreachableTimeout: '3s' }));
    const paused = await eventually(() => status(h), (s) => s.phase === 'NeedsAttention');
    expect(paused.clusters['cloud-hk']).toMatchObject({ phase: 'Unreachable', failureType: 'ClusterUnreachable' });
    await act(h, { action: 'skip', cluster: 'cloud-hk', comment: 'DC maintenance' });
    const final = await result(h);
    expect(final.phase).toBe('Healthy');
    expect(final.message).toMatch(/skipped: cloud-hk/);
    expect(final.clusters['cloud-hk']!.phase).toBe('Skipped');
    expect(images()).toEqual({ beijing: pinned(V2), shenzhen: pinned(V2), 'cloud-hk': undefined });
    await saveHistory(fleet.client, h.workflowId, 'delivery-unreachable-skip');
  });

  it('treats a cluster whose agent worker is not running as unreachable', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await fleet.stopCluster('cloud-hk');
    const final = await result(await fleet.deliver(request(V2, { unreachableTimeout: '3s', onFailure: 'fail' })));
    expect(final.phase).toBe('Degraded');
    expect(final.clusters['cloud-hk']!.phase).toBe('Unreachable');
    expect(final.clusters['cloud-hk']!.message).toMatch(/worker/);
    expect(images()).toEqual({ beijing: pinned(V2), shenzhen: pinned(V2), 'cloud-hk': undefined });
  });

  it('removes what a first deploy created when it is rolled back, and aborts on request leaving clusters as they are', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    fleet.clusters['cloud-hk']!.badImages.add(pinned(V1));
    const h = await fleet.deliver(request(V1));
    await eventually(() => status(h), (s) => s.phase === 'NeedsAttention');
    const rb = await act(h, { action: 'rollback', comment: 'bad build' });
    expect(rb.audit.at(-1)).toMatchObject({ action: 'rollback', who: 'sre-alice' });
    const final = await result(h);
    expect(final.phase).toBe('RolledBack');
    expect(images()).toEqual({ beijing: undefined, shenzhen: undefined, 'cloud-hk': undefined });
    expect([...fleet.clusters.beijing!.objects.keys()]).toEqual([]); // the Service went too: the delivery created it

    const h2 = await fleet.deliver(request(V1));
    await eventually(() => status(h2), (s) => s.phase === 'NeedsAttention');
    await act(h2, { action: 'abort' });
    const aborted = await result(h2);
    expect(aborted.phase).toBe('Aborted');
    expect(images().beijing).toBe(pinned(V1)); // abort leaves clusters as they are
    expect(aborted.clusters.beijing!.observed?.image).toBe(pinned(V1));
  });

  it('a delivery that changed only replicas, rolled back: every cluster has its replicas back', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    const before = replicas();
    fleet.clusters['cloud-hk']!.failNextWaits = 1; // the 16 replicas never all become ready there
    const final = await result(await fleet.deliver(request(V1, { onFailure: 'rollback' }, { replicas: 16 })));
    expect(final.phase).toBe('RolledBack');
    expect(replicas()).toEqual(before);
  });

  it('never writes over an object it did not create, unless asked to adopt it; its rollback puts that object back exactly', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    const theirs = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'shop', labels: { team: 'legacy' } },
      spec: { selector: { app: 'legacy' }, ports: [{ port: 9000 }] },
    };
    for (const c of Object.values(fleet.clusters)) c.seedForeign(theirs);
    const refused = await result(await fleet.deliver(request(V1, { onFailure: 'fail' })));
    expect(refused.phase).toBe('Degraded');
    expect(refused.clusters.beijing).toMatchObject({ phase: 'Failed', failureType: 'NotOwned' });
    for (const c of Object.values(fleet.clusters)) expect([c.name, c.count('apply')]).toEqual([c.name, 0]);

    fleet.clusters['cloud-hk']!.badImages.add(pinned(V1));
    const adopted = await result(await fleet.deliver(request(V1, { onFailure: 'rollback', adopt: true })));
    expect(adopted.phase).toBe('RolledBack');
    for (const c of Object.values(fleet.clusters)) {
      const svc = [...c.objects.values()].map((s) => s.object).find((o) => o.kind === 'Service')!;
      expect([c.name, svc.metadata.labels, svc.spec]).toEqual([c.name, { team: 'legacy' }, theirs.spec]);
      expect(c.image('shop')).toBeUndefined();
    }
  });
});
