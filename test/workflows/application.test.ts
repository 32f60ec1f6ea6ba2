/**
 * The application workflow: it owns the lock (a delivery starts only through
 * its update, as its child) and the record (what each cluster was read back to
 * run at the end of the last delivery).
 */
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeployRequestSchema, type DeliveryStatus } from '../../model/index.ts';
import { applicationWorkflowId, appStateQuery } from '../../workflows/messages.ts';
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

const req = (ns: string, image: string) =>
  DeployRequestSchema.parse({ type: 'deploy', app: { name: 'web', namespace: ns, image, replicas: 3, placement: { selector: { provider: 'private' } } } });

describe('application workflow: one delivery at a time, and where the app runs', () => {
  it('refuses a second delivery while one runs, frees the lock when it ends, and records what each cluster runs', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    const ns = `ns${Date.now()}`;
    const appId = applicationWorkflowId(ns, 'web');
    fleet.clusters.shenzhen!.badImages.add(pinned('reg.example/web:v1')); // holds the first delivery in NeedsAttention
    const first = await fleet.deliver(req(ns, 'reg.example/web:v1'), { id: `delivery-d1-${ns}` });
    const err = await fleet.deliver(req(ns, 'reg.example/web:v2'), { id: `delivery-d2-${ns}` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    const cause = (err as WorkflowUpdateFailedError).cause as { type?: string; details?: unknown[]; message: string };
    expect(cause.type).toBe('DeliveryInProgress');
    expect(cause.details).toEqual([{ activeDelivery: `delivery-d1-${ns}` }]);
    // The same delivery asked for again (a retried request) is the one already running.
    expect((await fleet.deliver(req(ns, 'reg.example/web:v1'), { id: `delivery-d1-${ns}` })).workflowId).toBe(first.workflowId);

    await eventually(() => first.query<{ phase: string }>('status'), (s) => s.phase === 'NeedsAttention');
    fleet.clusters.shenzhen!.badImages.clear();
    await first.executeUpdate('action', { args: [{ action: 'retry', who: 'sre' }] });
    expect(((await first.result()) as DeliveryStatus).phase).toBe('Healthy');

    const app = fleet.client.workflow.getHandle(appId);
    const afterFirst = await eventually(() => app.query(appStateQuery), (s) => s.activeDelivery === undefined);
    expect(afterFirst.spec?.image).toBe('reg.example/web:v1');
    expect(Object.keys(afterFirst.clusters).sort()).toEqual(['beijing', 'shenzhen']); // the selector placed the private clusters

    const second = await fleet.deliver(req(ns, 'reg.example/web:v2'), { id: `delivery-d2-${ns}` });
    expect(((await second.result()) as DeliveryStatus).phase).toBe('Healthy');
    const state = await eventually(() => app.query(appStateQuery), (s) => s.activeDelivery === undefined);
    expect(state.spec?.image).toBe('reg.example/web:v2');
    expect(state.previousSpec?.image).toBe('reg.example/web:v1');
    expect(state.clusters.beijing).toMatchObject({ image: pinned('reg.example/web:v2'), replicas: 2, readyReplicas: 2, deliveryId: `delivery-d2-${ns}`, verified: true });
    expect(state.deliveries.map((d) => [d.id, d.phase])).toEqual([
      [`delivery-d2-${ns}`, 'Healthy'],
      [`delivery-d1-${ns}`, 'Healthy'],
    ]);
    await saveHistory(fleet.client, appId, 'application-lock');
    await app.terminate('test over');
  });

  it('frees the lock when its delivery is terminated by hand, and says the record is no longer verified', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    const ns = `term${Date.now()}`;
    expect(((await (await fleet.deliver(req(ns, 'reg.example/web:v1'))).result()) as DeliveryStatus).phase).toBe('Healthy');
    fleet.clusters.beijing!.badImages.add(pinned('reg.example/web:v2'));
    const stuck = await fleet.deliver(req(ns, 'reg.example/web:v2'));
    await eventually(() => stuck.query<{ phase: string }>('status'), (s) => s.phase === 'NeedsAttention');
    await stuck.terminate('operator gave up');
    const app = fleet.client.workflow.getHandle(applicationWorkflowId(ns, 'web'));
    const state = await eventually(() => app.query(appStateQuery), (s) => s.activeDelivery === undefined);
    expect(state.deliveries[0]).toMatchObject({ id: stuck.workflowId, phase: 'Degraded' });
    expect(Object.values(state.clusters).every((c) => c.verified === false)).toBe(true);
    fleet.clusters.beijing!.badImages.clear();
    expect(((await (await fleet.deliver(req(ns, 'reg.example/web:v2'))).result()) as DeliveryStatus).phase).toBe('Healthy');
    await app.terminate('test over');
  });
});
