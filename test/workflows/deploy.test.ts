import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeployRequestSchema, type DeliveryStatus, type DeployRequestInput } from '../../model/index.ts';
import { actionUpdate, statusQuery, type ActionInput } from '../../workflows/messages.ts';
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
afterAll(() => undefined);

const app = (image: string, extra: Partial<DeployRequestInput['app']> = {}) => ({
  name: 'web',
  namespace: 'shop',
  image,
  replicas: 8,
  placement: { clusters: ['beijing', 'shenzhen', 'cloud-hk'] },
  ...extra,
});

function request(image: string, extra: Partial<DeployRequestInput> = {}) {
  return DeployRequestSchema.parse({
    type: 'deploy',
    app: app(image),
    waves: [['beijing'], ['shenzhen', 'cloud-hk']],
    onFailure: 'pause',
    ...extra,
  });
}

async function start(id: string, req: ReturnType<typeof request>) {
  return fleet.client.workflow.start('deploy', {
    workflowId: `${id}-${Date.now()}`,
    taskQueue: fleet.taskQueue,
    args: [{ request: req, requestedBy: 'ci-bot' }],
  });
}

type Handle = Awaited<ReturnType<typeof start>>;
const status = (h: Handle) => h.query(statusQuery);
const act = (h: Handle, a: Omit<ActionInput, 'who'>) => h.executeUpdate(actionUpdate, { args: [{ who: 'sre-alice', ...a }] });
const images = () => Object.fromEntries(Object.entries(fleet.clusters).map(([n, c]) => [n, c.deployments.get('shop/web')?.image]));

/** Deploys v1 everywhere so that later tests change a running application. */
async function baseline(): Promise<void> {
  const h = await start('baseline', request('central:5000/demo/web:v1', { waves: undefined }));
  expect((await h.result()).phase).toBe('Healthy');
}

describe('deploy workflow (real Temporal server, in-memory clusters)', () => {
  it('goes wave by wave and ends Healthy with the divided replicas in every cluster', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    const h = await start('two-waves', request('central:5000/demo/web:v2'));
    const final: DeliveryStatus = await h.result();
    expect(final.phase).toBe('Healthy');
    expect(final.waves).toEqual([['beijing'], ['shenzhen', 'cloud-hk']]);
    expect(images()).toEqual({ beijing: 'central:5000/demo/web:v2', shenzhen: 'central:5000/demo/web:v2', 'cloud-hk': 'central:5000/demo/web:v2' });
    // capacity 2:1:1 over 8 replicas, at least one each
    expect(Object.fromEntries(Object.entries(final.clusters).map(([n, c]) => [n, [c.desiredReplicas, c.readyReplicas, c.phase]]))).toEqual({
      beijing: [4, 4, 'Healthy'],
      shenzhen: [2, 2, 'Healthy'],
      'cloud-hk': [2, 2, 'Healthy'],
    });
    // wave 2 starts only once wave 1 has finished waiting for its rollout
    const wave1Done = fleet.clusters.beijing!.calls.find((c) => c.op === 'wait')!.at;
    for (const n of ['shenzhen', 'cloud-hk']) expect(fleet.clusters[n]!.calls.find((c) => c.op === 'apply')!.at).toBeGreaterThanOrEqual(wave1Done);
    expect(final.conditions.find((c) => c.type === 'Progressing')?.reason).toBe('AllWavesHealthy');
    await saveHistory(fleet.client, h.workflowId, 'deploy-two-waves');
  });

  it('rolls every changed cluster back, newest wave first, when wave 2 never becomes ready', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    fleet.clusters.shenzhen!.badImages.add('central:5000/demo/web:v2');
    const h = await start('rollback', request('central:5000/demo/web:v2', { onFailure: 'rollback' }));
    const final = await h.result();
    expect(final.phase).toBe('RolledBack');
    expect(images()).toEqual({ beijing: 'central:5000/demo/web:v1', shenzhen: 'central:5000/demo/web:v1', 'cloud-hk': 'central:5000/demo/web:v1' });
    expect(final.clusters.shenzhen!.message).toMatch(/back on central:5000\/demo\/web:v1/);
    const rbBeijing = fleet.clusters.beijing!.calls.find((c) => c.op === 'rollback')!.at;
    const rbShenzhen = fleet.clusters.shenzhen!.calls.find((c) => c.op === 'rollback')!.at;
    expect(rbShenzhen).toBeLessThanOrEqual(rbBeijing);
    await saveHistory(fleet.client, h.workflowId, 'deploy-rollback');
  });

  it('pauses in NeedsAttention and an SRE retry finishes it without redoing wave 1', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    const sz = fleet.clusters.shenzhen!;
    sz.badImages.add('central:5000/demo/web:v2');
    const h = await start('pause', request('central:5000/demo/web:v2'));
    const paused = await eventually(() => status(h), (s) => s.phase === 'NeedsAttention');
    expect(paused.clusters.shenzhen!.phase).toBe('Failed');
    expect(paused.clusters.shenzhen!.failureType).toBe('RolloutFailed');
    expect(paused.clusters.shenzhen!.message).toMatch(/not Ready/);
    expect(paused.clusters['cloud-hk']!.phase).toBe('Healthy');

    // an action that does not apply now is refused with a reason, and changes nothing
    await expect(act(h, { action: 'skip' })).rejects.toThrow(WorkflowUpdateFailedError);
    await expect(act(h, { action: 'retry', cluster: 'beijing' })).rejects.toThrow(WorkflowUpdateFailedError);
    expect((await status(h)).phase).toBe('NeedsAttention');

    const beijingApplies = fleet.clusters.beijing!.count('apply');
    sz.badImages.clear(); // the fault is fixed
    const after = await act(h, { action: 'retry', comment: 'node pool fixed' });
    expect(after.phase).toBe('Progressing');
    const final = await h.result();
    expect(final.phase).toBe('Healthy');
    expect(images().shenzhen).toBe('central:5000/demo/web:v2');
    expect(fleet.clusters.beijing!.count('apply')).toBe(beijingApplies);
    expect(fleet.clusters['cloud-hk']!.count('apply')).toBe(2); // baseline + once in this delivery
    expect(final.clusters.shenzhen!.attempts).toBe(2);
    expect(final.audit).toEqual([expect.objectContaining({ who: 'sre-alice', action: 'retry', comment: 'node pool fixed' })]);
    // the workflow has closed: Temporal itself refuses the update (the API maps this to 409)
    await expect(act(h, { action: 'abort' })).rejects.toThrow(/completed/);
    await saveHistory(fleet.client, h.workflowId, 'deploy-pause-retry');
  });

  it('waits for an unreachable cluster and finishes when it comes back in time', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    fleet.clusters['cloud-hk']!.fault = 'unreachable';
    const h = await start('unreachable', request('central:5000/demo/web:v2', { unreachableTimeout: '60s' }));
    await eventually(() => Promise.resolve(fleet.clusters['cloud-hk']!.count('apply')), (n) => n >= 2);
    expect((await status(h)).clusters['cloud-hk']!.phase).toBe('Applying');
    fleet.clusters['cloud-hk']!.fault = 'none';
    const final = await h.result();
    expect(final.phase).toBe('Healthy');
    expect(images()['cloud-hk']).toBe('central:5000/demo/web:v2');
  });

  it('lets an SRE skip a cluster that stays unreachable past the wait', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    fleet.clusters['cloud-hk']!.fault = 'unreachable';
    const h = await start('skip', request('central:5000/demo/web:v2', { unreachableTimeout: '3s' }));
    const paused = await eventually(() => status(h), (s) => s.phase === 'NeedsAttention');
    expect(paused.clusters['cloud-hk']!.phase).toBe('Unreachable');
    expect(paused.clusters['cloud-hk']!.failureType).toBe('ClusterUnreachable');
    await act(h, { action: 'skip', cluster: 'cloud-hk', comment: 'DC maintenance' });
    const final = await h.result();
    expect(final.phase).toBe('Healthy');
    expect(final.message).toMatch(/skipped: cloud-hk/);
    expect(final.clusters['cloud-hk']!.phase).toBe('Skipped');
    expect(images()).toEqual({ beijing: 'central:5000/demo/web:v2', shenzhen: 'central:5000/demo/web:v2', 'cloud-hk': undefined });
    await saveHistory(fleet.client, h.workflowId, 'deploy-unreachable-skip');
  });

  it('treats a cluster whose agent worker is not running as unreachable', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await fleet.stopCluster('cloud-hk');
    const h = await start('agent-down', request('central:5000/demo/web:v2', { unreachableTimeout: '3s', onFailure: 'fail' }));
    const final = await h.result();
    expect(final.phase).toBe('Degraded');
    expect(final.clusters['cloud-hk']!.phase).toBe('Unreachable');
    expect(final.clusters['cloud-hk']!.message).toMatch(/worker/);
    expect(images()).toEqual({ beijing: 'central:5000/demo/web:v2', shenzhen: 'central:5000/demo/web:v2', 'cloud-hk': undefined });
  });

  it('removes what a first deploy created when it is rolled back, and aborts on request', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    fleet.clusters['cloud-hk']!.badImages.add('central:5000/demo/web:v1');
    const h = await start('first-rollback', request('central:5000/demo/web:v1'));
    await eventually(() => status(h), (s) => s.phase === 'NeedsAttention');
    const rb = await act(h, { action: 'rollback', comment: 'bad build' });
    expect(rb.audit.at(-1)).toMatchObject({ action: 'rollback', who: 'sre-alice' });
    const final = await h.result();
    expect(final.phase).toBe('RolledBack');
    expect(images()).toEqual({ beijing: undefined, shenzhen: undefined, 'cloud-hk': undefined });

    const h2 = await start('abort', request('central:5000/demo/web:v1'));
    await eventually(() => status(h2), (s) => s.phase === 'NeedsAttention');
    await act(h2, { action: 'abort' });
    const aborted = await h2.result();
    expect(aborted.phase).toBe('Aborted');
    expect(images()['beijing']).toBe('central:5000/demo/web:v1'); // abort leaves clusters as they are
  });
});
