/**
 * The holes issue #6 found in the engine core that need a moment held open to
 * show: an apply in flight whose answer is lost, an action while planning, a
 * delivery started beside the application's lock. Real Temporal server,
 * in-memory clusters whose state the tests read back.
 */
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeployRequestSchema, type DeliveryStatus, type DeployRequestInput } from '../../model/index.ts';
import { actionUpdate, statusQuery, type ActionInput } from '../../workflows/messages.ts';
import { bundle, eventually, pinned, startFleet, type Fleet } from './harness.ts';

let workflowBundle: WorkflowBundleWithSourceMap;
let fleet: Fleet;

beforeAll(async () => {
  workflowBundle = await bundle();
});
afterEach(async () => {
  await fleet?.stop();
});

function request(image: string, extra: Partial<DeployRequestInput> = {}) {
  return DeployRequestSchema.parse({
    type: 'deploy',
    app: { name: 'web', namespace: 'shop', image, replicas: 8, placement: { clusters: ['beijing', 'shenzhen', 'cloud-hk'] } },
    waves: [['beijing'], ['shenzhen', 'cloud-hk']],
    onFailure: 'pause',
    ...extra,
  });
}

const start = (_id: string, req: ReturnType<typeof request>) => fleet.deliver(req);
type Handle = Awaited<ReturnType<typeof start>>;
const status = (h: Handle) => h.query(statusQuery);
const act = (h: Handle, a: Omit<ActionInput, 'who'>) => h.executeUpdate(actionUpdate, { args: [{ who: 'sre-alice', ...a }] });
const images = () => Object.fromEntries(Object.entries(fleet.clusters).map(([n, c]) => [n, c.image('shop') ?? null]));
const V1 = pinned('central:5000/demo/web:v1');
const V2 = pinned('central:5000/demo/web:v2');

async function baseline(): Promise<void> {
  const h = await start('baseline', request('central:5000/demo/web:v1', { waves: undefined }));
  expect(((await h.result()) as DeliveryStatus).phase).toBe('Healthy');
}

describe('hole 1: an apply in flight when rollback or abort arrives', () => {
  it('rollback while the apply has landed but its answer is lost: every cluster ends on what it ran before', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    fleet.clusters.shenzhen!.applyHangs = true;
    const h = await start('rollback-inflight', request('central:5000/demo/web:v2'));
    await eventually(() => Promise.resolve(images()), (i) => i.shenzhen === V2);
    await act(h, { action: 'rollback', comment: 'stop it' });
    fleet.clusters.shenzhen!.applyHangs = false;
    const final = (await h.result()) as DeliveryStatus;
    expect(final.phase).toBe('RolledBack');
    expect(images()).toEqual({ beijing: V1, shenzhen: V1, 'cloud-hk': V1 });
  });

  it('abort while an apply has landed but not answered: the status tells what that cluster now runs', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    fleet.clusters.shenzhen!.applyHangs = true;
    const h = await start('abort-inflight', request('central:5000/demo/web:v2'));
    await eventually(() => Promise.resolve(images()), (i) => i.shenzhen === V2);
    await act(h, { action: 'abort' });
    const final = (await h.result()) as DeliveryStatus;
    expect(final.phase).toBe('Aborted');
    const truth = images();
    for (const [n, c] of Object.entries(final.clusters)) {
      // No cluster is left in a step that no longer runs, and what the status says runs there is what runs there.
      expect([n, ['Applying', 'Progressing', 'RollingBack'].includes(c.phase)]).toEqual([n, false]);
      const seen = (c as { observed?: { image?: string } }).observed?.image ?? null;
      expect([n, seen]).toEqual([n, truth[n]]);
    }
  });
});

describe('hole 2: an action while the delivery is planning', () => {
  it('abort while planning: Aborted, and no cluster is touched', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    let release!: () => void;
    fleet.planGate = new Promise((r) => (release = r));
    const h = await start('abort-planning', request('central:5000/demo/web:v2', { onFailure: 'rollback' }));
    await eventually(() => status(h), (s) => s.message.includes('planning'));
    const answer = await act(h, { action: 'abort', comment: 'wrong build' });
    expect(answer.audit).toHaveLength(1);
    release();
    const final = (await h.result()) as DeliveryStatus;
    expect(final.phase).toBe('Aborted');
    for (const c of Object.values(fleet.clusters)) expect([c.name, c.count('apply')]).toEqual([c.name, 0]);
  });

  it('rollback while planning: RolledBack with nothing to undo, and no cluster is touched', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    let release!: () => void;
    fleet.planGate = new Promise((r) => (release = r));
    const h = await start('rollback-planning', request('central:5000/demo/web:v2'));
    await eventually(() => status(h), (s) => s.message.includes('planning'));
    await act(h, { action: 'rollback' });
    release();
    const final = (await h.result()) as DeliveryStatus;
    expect(final.phase).toBe('RolledBack');
    for (const c of Object.values(fleet.clusters)) expect([c.name, c.count('apply')]).toEqual([c.name, 0]);
  });
});

describe('hole 6: a delivery runs only under its application lock', () => {
  it('a delivery workflow started directly, not by its application workflow, changes no cluster', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    const h = await fleet.client.workflow.start('delivery', {
      workflowId: `no-lock-${Date.now()}`,
      taskQueue: fleet.taskQueue,
      args: [{ request: request('central:5000/demo/web:v2'), requestedBy: 'ci-bot' }],
    });
    const final = (await h.result().catch((e: Error) => ({ phase: 'Failed', message: e.message }))) as DeliveryStatus;
    expect(final.phase).not.toBe('Healthy');
    for (const c of Object.values(fleet.clusters)) expect([c.name, c.count('apply')]).toEqual([c.name, 0]);
  });
});
