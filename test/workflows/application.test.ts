import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { WithStartWorkflowOperation, WorkflowUpdateFailedError } from '@temporalio/client';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeployRequestSchema } from '../../model/index.ts';
import { acquireUpdate, applicationWorkflowId, appStateQuery } from '../../workflows/messages.ts';
import { bundle, eventually, startFleet, type Fleet } from './harness.ts';
import { saveHistory } from './histories.ts';

let workflowBundle: WorkflowBundleWithSourceMap;
let fleet: Fleet;
beforeAll(async () => {
  workflowBundle = await bundle();
});
afterEach(async () => {
  await fleet?.stop();
});

describe('application workflow: one delivery at a time, and where the app runs', () => {
  it('refuses a second delivery while one runs, frees the lock when it ends, and records images and specs', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    const ns = `ns${Date.now()}`;
    const appId = applicationWorkflowId(ns, 'web');
    const acquire = (deliveryId: string, image: string) =>
      fleet.client.workflow.executeUpdateWithStart(acquireUpdate, {
        args: [{ deliveryId, type: 'deploy', image, startedAt: new Date().toISOString() }],
        startWorkflowOperation: new WithStartWorkflowOperation('application', {
          workflowId: appId,
          taskQueue: fleet.taskQueue,
          workflowIdConflictPolicy: 'USE_EXISTING',
          args: [{ namespace: ns, name: 'web' }],
        }),
      });
    const deliver = async (id: string, image: string) => {
      await acquire(id, image);
      const req = DeployRequestSchema.parse({ type: 'deploy', app: { name: 'web', namespace: ns, image, replicas: 3, placement: { selector: { provider: 'private' } } } });
      return fleet.client.workflow.start('deploy', { workflowId: id, taskQueue: fleet.taskQueue, args: [{ request: req, requestedBy: 'ci' }] });
    };

    fleet.clusters.shenzhen!.badImages.add('reg.example/web:v1'); // holds the first delivery in NeedsAttention
    const first = await deliver(`d1-${ns}`, 'reg.example/web:v1');
    const err = await acquire(`d2-${ns}`, 'reg.example/web:v2').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    const cause = (err as WorkflowUpdateFailedError).cause as { type?: string; details?: unknown[]; message: string };
    expect(cause.type).toBe('DeliveryInProgress');
    expect(cause.details).toEqual([{ activeDelivery: `d1-${ns}` }]);

    await eventually(() => first.query<{ phase: string }>('status'), (s) => s.phase === 'NeedsAttention');
    fleet.clusters.shenzhen!.badImages.clear();
    await first.executeUpdate('action', { args: [{ action: 'retry', who: 'sre' }] });
    expect((await first.result()).phase).toBe('Healthy');

    const app = fleet.client.workflow.getHandle(appId);
    const afterFirst = await eventually(() => app.query(appStateQuery), (s) => s.activeDelivery === undefined);
    expect(afterFirst.spec?.image).toBe('reg.example/web:v1');
    expect(Object.keys(afterFirst.clusters).sort()).toEqual(['beijing', 'shenzhen']); // the selector placed the private clusters

    const second = await deliver(`d2-${ns}`, 'reg.example/web:v2');
    expect((await second.result()).phase).toBe('Healthy');
    const state = await eventually(() => app.query(appStateQuery), (s) => s.activeDelivery === undefined);
    expect(state.spec?.image).toBe('reg.example/web:v2');
    expect(state.previousSpec?.image).toBe('reg.example/web:v1');
    expect(state.clusters.beijing).toMatchObject({ image: 'reg.example/web:v2', replicas: 2, deliveryId: `d2-${ns}` });
    expect(state.deliveries.map((d) => [d.id, d.phase])).toEqual([
      [`d2-${ns}`, 'Healthy'],
      [`d1-${ns}`, 'Healthy'],
    ]);
    await saveHistory(fleet.client, appId, 'application-lock');
    await saveHistory(fleet.client, first.workflowId, 'deploy-pause-retry');
    await app.terminate('test over');
  });
});
