/**
 * Canary and blue-green deliveries on the step engine (a real Temporal
 * server, in-memory clusters whose router is the replica ratio): weights wave
 * by wave, gates with quorums and deadlines, pause and promote, abort back to
 * the stable version, the blue-green switch and its way back.
 */
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeployRequestSchema, type DeliveryStatus, type DeployRequestInput } from '../../model/index.ts';
import { actionUpdate, statusQuery, type ActionInput } from '../../workflows/messages.ts';
import { retryUnderLock } from '../../api/lock.ts';
import { bundle, eventually, pinned, startFleet, type Fleet } from './harness.ts';

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
const WAVES = [['beijing'], ['shenzhen', 'cloud-hk']];

function request(image: string, extra: Partial<DeployRequestInput> = {}) {
  return DeployRequestSchema.parse({
    type: 'deploy',
    app: { name: 'web', namespace: 'shop', image, replicas: 8, placement: { clusters: ['beijing', 'shenzhen', 'cloud-hk'] } },
    onFailure: 'pause',
    ...extra,
  });
}

type Handle = Awaited<ReturnType<Fleet['deliver']>>;
const status = (h: Handle) => h.query(statusQuery);
const act = (h: Handle, a: Omit<ActionInput, 'who'> & { who?: string }) => h.executeUpdate(actionUpdate, { args: [{ who: 'sre-alice', role: 'sre', ...a }] });
const refused = async (p: Promise<unknown>): Promise<{ type?: string; message: string }> => {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(WorkflowUpdateFailedError);
    const cause = (e as WorkflowUpdateFailedError).cause as { type?: string; message: string };
    return { type: cause.type, message: cause.message };
  }
  throw new Error('the action was accepted');
};
const result = async (h: Handle) => (await h.result()) as DeliveryStatus;
const until = (h: Handle, pred: (s: DeliveryStatus) => boolean) => eventually(() => status(h), pred, 60_000);
const images = (name = 'web') => Object.fromEntries(Object.entries(fleet.clusters).map(([n, c]) => [n, c.image('shop', name)]));
const replicasOf = (name: string) => Object.fromEntries(Object.entries(fleet.clusters).map(([n, c]) => [n, c.replicas('shop', name)]));
const waitingGate = (s: DeliveryStatus) => (s.gates ?? []).find((g) => g.state === 'Waiting');

async function baseline(): Promise<void> {
  expect((await result(await fleet.deliver(request(V1)))).phase).toBe('Healthy');
}

describe('canary (real Temporal server, in-memory clusters, replica-ratio router)', () => {
  it('20 %, a gate of two people, 50 %, a pause until promote, then full, wave by wave; the canary is gone at the end', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    const h = await fleet.deliver(
      request(V2, {
        type: 'canary',
        waves: WAVES,
        canary: { steps: [{ setWeight: 20 }, { approval: { name: 'go', roles: ['release-manager'], quorum: 2 } }, { setWeight: 50 }, { pause: {} }] },
      }),
    );
    let s = await until(h, (x) => waitingGate(x)?.wave === 0);
    expect(s.phase).toBe('Paused');
    expect(s.steps).toEqual(['canary', 'setWeight 20', 'approval go', 'setWeight 50', 'pause', 'promote', 'prune']);
    expect(s.clusters.beijing).toMatchObject({ weight: 20, step: 2 });
    // At 20 %: 4 replicas in beijing split 3 stable (v1) + 1 canary (v2); wave 2 not touched.
    expect({ stable: fleet.clusters.beijing!.replicas('shop', 'web'), canary: fleet.clusters.beijing!.replicas('shop', 'web-canary') }).toEqual({ stable: 3, canary: 1 });
    expect(images()).toEqual({ beijing: pinned(V1), shenzhen: pinned(V1), 'cloud-hk': pinned(V1) });
    expect(fleet.clusters.beijing!.image('shop', 'web-canary')).toBe(pinned(V2));
    expect(fleet.clusters.shenzhen!.count('capture')).toBe(1); // the baseline's only

    // The gate: a role it does not name is refused (403 at the API), a second vote of one person is refused, a quorum is two people.
    expect(await refused(act(h, { action: 'approve', gate: 'go', who: 'sre-alice', role: 'sre' }))).toMatchObject({ type: 'ActionForbidden' });
    expect(await refused(act(h, { action: 'approve', gate: 'nope', who: 'rm-bob', role: 'release-manager' }))).toMatchObject({ type: 'ActionNotApplicable', message: 'gate "nope" is not waiting' });
    await act(h, { action: 'approve', gate: 'go', who: 'rm-bob', role: 'release-manager', comment: 'dashboards green' });
    expect(waitingGate(await status(h))?.votes.map((v) => v.who)).toEqual(['rm-bob']);
    expect((await refused(act(h, { action: 'approve', gate: 'go', who: 'rm-bob', role: 'release-manager' }))).message).toMatch(/already approved/);
    expect((await refused(act(h, { action: 'promote' }))).message).toMatch(/waits at a gate/);
    await act(h, { action: 'approve', gate: 'go', who: 'rm-carol', role: 'release-manager' });

    s = await until(h, (x) => x.phase === 'Paused' && x.clusters.beijing?.step === 4);
    expect(s.clusters.beijing!.weight).toBe(50);
    expect({ stable: fleet.clusters.beijing!.replicas('shop', 'web'), canary: fleet.clusters.beijing!.replicas('shop', 'web-canary') }).toEqual({ stable: 2, canary: 2 });
    await act(h, { action: 'promote', comment: 'wave 1 looks good' });

    // Wave 2 starts only after wave 1 is promoted: beijing runs v2 as its stable version, its canary gone.
    s = await until(h, (x) => waitingGate(x)?.wave === 1);
    expect(s.clusters.beijing).toMatchObject({ phase: 'Healthy', weight: 100 });
    expect(fleet.clusters.beijing!.image('shop', 'web')).toBe(pinned(V2));
    expect(fleet.clusters.beijing!.deployment('shop', 'web-canary')).toBeUndefined();
    expect(fleet.clusters.shenzhen!.weights).toEqual([20]);
    await act(h, { action: 'approve', gate: 'go', who: 'rm-bob', role: 'release-manager' });
    await act(h, { action: 'approve', gate: 'go', who: 'rm-carol', role: 'release-manager' });
    await until(h, (x) => x.phase === 'Paused' && x.currentWave === 1 && x.currentStep === 4);
    await act(h, { action: 'promote' });

    const final = await result(h);
    expect(final.phase).toBe('Healthy');
    expect(images()).toEqual({ beijing: pinned(V2), shenzhen: pinned(V2), 'cloud-hk': pinned(V2) });
    expect(images('web-canary')).toEqual({ beijing: undefined, shenzhen: undefined, 'cloud-hk': undefined });
    expect(replicasOf('web')).toEqual({ beijing: 4, shenzhen: 2, 'cloud-hk': 2 });
    for (const c of Object.values(fleet.clusters)) expect(c.weights).toEqual([20, 50]); // never backward
    expect(final.gates?.map((g) => [g.wave, g.state, g.votes.map((v) => v.who)])).toEqual([
      [0, 'Approved', ['rm-bob', 'rm-carol']],
      [1, 'Approved', ['rm-bob', 'rm-carol']],
    ]);
  });

  it('a gate past its deadline takes its onTimeout: abort puts every touched cluster back on the stable version; promote goes on', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    const aborted = await result(
      await fleet.deliver(request(V2, { type: 'canary', waves: WAVES, canary: { steps: [{ setWeight: 50 }, { approval: { name: 'late', deadline: '2s', onTimeout: 'abort' } }] } })),
    );
    expect(aborted.phase).toBe('Aborted');
    expect(aborted.message).toMatch(/gate late of wave 1 timed out/);
    expect(aborted.audit).toEqual([expect.objectContaining({ who: 'flotilla', action: 'gate-timeout:abort', gate: 'late' })]);
    expect(aborted.gates).toEqual([expect.objectContaining({ name: 'late', state: 'TimedOut', deadline: expect.any(String) })]);
    expect(images()).toEqual({ beijing: pinned(V1), shenzhen: pinned(V1), 'cloud-hk': pinned(V1) });
    expect(replicasOf('web')).toEqual({ beijing: 4, shenzhen: 2, 'cloud-hk': 2 });
    expect(fleet.clusters.beijing!.deployment('shop', 'web-canary')).toBeUndefined();

    const promoted = await result(
      await fleet.deliver(request(V2, { type: 'canary', waves: WAVES, canary: { steps: [{ setWeight: 50 }, { approval: { name: 'late', deadline: '2s', onTimeout: 'promote' } }] } })),
    );
    expect(promoted.phase).toBe('Healthy');
    expect(promoted.audit.filter((a) => a.action === 'gate-timeout:promote').length).toBe(2);
    expect(images()).toEqual({ beijing: pinned(V2), shenzhen: pinned(V2), 'cloud-hk': pinned(V2) });
  });

  it('a rejection aborts back to stable, including the waves already promoted (newest first); promote full skips every remaining step', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    const steps = [{ setWeight: 30 }, { approval: { name: 'go' } }];
    const h = await fleet.deliver(request(V2, { type: 'canary', waves: WAVES, canary: { steps } }));
    await until(h, (x) => waitingGate(x)?.wave === 0);
    await act(h, { action: 'approve', gate: 'go' });
    await until(h, (x) => waitingGate(x)?.wave === 1);
    expect(fleet.clusters.beijing!.image('shop', 'web')).toBe(pinned(V2)); // wave 1 promoted
    await act(h, { action: 'reject', gate: 'go', who: 'rm-bob', role: 'release-manager', comment: 'error budget spent' });
    const final = await result(h);
    expect(final.phase).toBe('Aborted');
    expect(final.message).toMatch(/rejected by rm-bob: error budget spent/);
    expect(images()).toEqual({ beijing: pinned(V1), shenzhen: pinned(V1), 'cloud-hk': pinned(V1) });
    expect(images('web-canary')).toEqual({ beijing: undefined, shenzhen: undefined, 'cloud-hk': undefined });
    const restores = Object.fromEntries(Object.entries(fleet.clusters).map(([n, c]) => [n, c.calls.find((k) => k.op === 'restore')?.at ?? 0]));
    expect(restores.shenzhen).toBeLessThanOrEqual(restores.beijing!); // wave 2 before wave 1

    const full = await fleet.deliver(request(V2, { type: 'canary', waves: WAVES, canary: { steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 60 }, { approval: { name: 'go' } }] } }));
    await until(full, (x) => x.phase === 'Paused');
    await act(full, { action: 'promote', full: true, comment: 'hotfix' });
    const done = await result(full);
    expect(done.phase).toBe('Healthy');
    expect(images()).toEqual({ beijing: pinned(V2), shenzhen: pinned(V2), 'cloud-hk': pinned(V2) });
    expect(fleet.clusters.beijing!.weights.slice(-1)).toEqual([10]);
    expect(fleet.clusters.shenzhen!.weights.slice(-1)).toEqual([30]); // from the first delivery: the full promotion set none
  });

  it('a new image while a canary is paused is refused, good or bad, until the canary is promoted or aborted (the rule)', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    const V3 = 'central:5000/demo/web:v3';
    const h = await fleet.deliver(request(V2, { type: 'canary', canary: { steps: [{ setWeight: 25 }, { pause: {} }] } }));
    await until(h, (x) => x.phase === 'Paused');
    // Good to bad and bad to good alike: the application's lock is held by the paused canary; nothing changes.
    for (const image of [V3, V1]) {
      const e = await fleet.deliver(request(image, { type: 'canary', canary: { steps: [{ setWeight: 10 }] } })).then(
        () => undefined,
        (err: unknown) => err as { cause?: { type?: string; message?: string } },
      );
      expect(e?.cause).toMatchObject({ type: 'DeliveryInProgress', message: expect.stringContaining(h.workflowId) });
    }
    expect(fleet.clusters.beijing!.image('shop', 'web-canary')).toBe(pinned(V2));
    expect((await status(h)).phase).toBe('Paused');
    // The way to replace it: abort (back to stable), then deliver the new image.
    await act(h, { action: 'abort', comment: 'v2 is superseded by v3' });
    expect((await result(h)).phase).toBe('Aborted');
    expect((await result(await fleet.deliver(request(V3)))).phase).toBe('Healthy');
    expect(images()).toEqual({ beijing: pinned(V3), shenzhen: pinned(V3), 'cloud-hk': pinned(V3) });
  });

  it('retry after an abort resumes at the aborted step: earlier waves put back without their gates, the canary at its last weight', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    const canary = { steps: [{ setWeight: 20 }, { approval: { name: 'qa' } }, { setWeight: 50 }, { approval: { name: 'go' } }] };
    const h = await fleet.deliver(request(V2, { type: 'canary', waves: WAVES, canary }));
    await until(h, (x) => waitingGate(x)?.wave === 0 && waitingGate(x)?.name === 'qa');
    await act(h, { action: 'approve', gate: 'qa' });
    await until(h, (x) => waitingGate(x)?.wave === 0 && waitingGate(x)?.name === 'go');
    await act(h, { action: 'approve', gate: 'go' });
    await until(h, (x) => waitingGate(x)?.wave === 1 && waitingGate(x)?.name === 'qa');
    await act(h, { action: 'approve', gate: 'qa' });
    await until(h, (x) => waitingGate(x)?.wave === 1 && waitingGate(x)?.name === 'go');
    await act(h, { action: 'abort', comment: 'dashboards look odd' });
    const aborted = await result(h);
    expect(aborted.phase).toBe('Aborted');
    expect(aborted.steps).toEqual(['canary', 'setWeight 20', 'approval qa', 'setWeight 50', 'approval go', 'promote', 'prune']);
    expect(aborted.resumeAt).toEqual({ wave: 1, step: 4, label: 'approval go' });
    expect(images()).toEqual({ beijing: pinned(V1), shenzhen: pinned(V1), 'cloud-hk': pinned(V1) }); // every wave undone

    const before = Object.fromEntries(Object.entries(fleet.clusters).map(([n, c]) => [n, c.weights.length]));
    const id = `retry-${aborted.id}`;
    await retryUnderLock(fleet.client, fleet.taskQueue, { namespace: 'shop', name: 'web' }, { deliveryId: id, retryOf: aborted.id, requestedBy: 'sre-alice', requestHash: 'test' });
    const r = fleet.client.workflow.getHandle(id);
    const s = await until(r, (x) => waitingGate(x)?.wave === 1);
    // Wave 1 was promoted before the abort: put back at once, its gates not asked again; wave 2 waits at the gate it stopped at.
    expect(s.retryOf).toBe(aborted.id);
    expect((s.gates ?? []).map((g) => [g.wave, g.name, g.state])).toEqual([[1, 'go', 'Waiting']]);
    expect(s.clusters.shenzhen).toMatchObject({ weight: 50, step: 4 });
    expect(fleet.clusters.beijing!.image('shop', 'web')).toBe(pinned(V2));
    const since = Object.fromEntries(Object.entries(fleet.clusters).map(([n, c]) => [n, c.weights.slice(before[n])]));
    expect(since).toEqual({ beijing: [], shenzhen: [50], 'cloud-hk': [50] }); // no 20 % step again, straight back to 50 %
    expect(s.conditions.find((c) => c.type === 'Resumed')?.message).toMatch(/wave 2: resumed at step 5 \(approval go\), without setWeight 20, approval qa/);
    // Only the last delivery, aborted, can be resumed: this one is running, and the aborted one is no longer the last.
    const again = await retryUnderLock(fleet.client, fleet.taskQueue, { namespace: 'shop', name: 'web' }, { deliveryId: `${id}-2`, retryOf: aborted.id, requestedBy: 'sre-alice', requestHash: 'test' }).catch((e: Error) => e);
    expect(String((again as { cause?: { type?: string } }).cause?.type)).toBe('NotResumable');
    await act(r, { action: 'approve', gate: 'go' });
    const done = await result(r);
    expect(done.phase).toBe('Healthy');
    expect(done.digests).toEqual(aborted.digests);
    expect(images()).toEqual({ beijing: pinned(V2), shenzhen: pinned(V2), 'cloud-hk': pinned(V2) });
    expect(images('web-canary')).toEqual({ beijing: undefined, shenzhen: undefined, 'cloud-hk': undefined });
    const late = await retryUnderLock(fleet.client, fleet.taskQueue, { namespace: 'shop', name: 'web' }, { deliveryId: `${id}-3`, retryOf: aborted.id, requestedBy: 'sre-alice', requestHash: 'test' }).catch((e: Error) => e);
    expect((late as { cause?: { type?: string; message?: string } }).cause).toMatchObject({ type: 'NotResumable', message: expect.stringMatching(/started after/) });
  });

  it('refuses canary actions on a deploy and a canary without a Deployment to split gets a plan error, not a hang', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    const h = await fleet.deliver(request(V1, { onFailure: 'pause', waves: WAVES }));
    expect((await refused(act(h, { action: 'promote' }))).message).toMatch(/promote applies to a canary or blue-green/);
    await result(h);
    expect(() => request(V2, { type: 'canary' })).toThrow(/canary.steps/);
    expect(() => request(V2, { canary: { steps: [{ setWeight: 5 }] } })).toThrow(/is for type canary/);
  });
});

describe('blue-green (real Temporal server, in-memory clusters)', () => {
  it('a preview beside the active version, the active Service pinned to the old pods, switched on promote, the old version gone after the delay', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    const h = await fleet.deliver(request(V2, { type: 'blueGreen', blueGreen: { autoPromotion: false, scaleDownDelay: '1s' } }));
    const s = await until(h, (x) => x.phase === 'Paused');
    expect(s.steps).toEqual(['preview', 'pause', 'switch', 'finish after 1s', 'prune']);
    const bj = fleet.clusters.beijing!;
    const svc = () => bj.objects.get('/Service/shop/web')?.object.spec as { selector: Record<string, string> };
    expect(bj.image('shop', 'web-preview')).toBe(pinned(V2));
    expect(bj.image('shop', 'web')).toBe(pinned(V1));
    expect(svc().selector).toEqual({ 'app.kubernetes.io/name': 'web', 'pod-template-hash': expect.any(String) });
    expect((bj.objects.get('/Service/shop/web-preview')?.object.spec as { selector: Record<string, string> }).selector).toMatchObject({ 'flotilla.dev/track': 'preview' });
    await act(h, { action: 'promote' });
    const final = await result(h);
    expect(final.phase).toBe('Healthy');
    expect(images()).toEqual({ beijing: pinned(V2), shenzhen: pinned(V2), 'cloud-hk': pinned(V2) });
    expect(images('web-preview')).toEqual({ beijing: undefined, shenzhen: undefined, 'cloud-hk': undefined });
    expect(svc().selector).toEqual({ 'app.kubernetes.io/name': 'web' });
  });

  it('abort before the switch puts the active Service and the Deployment back and deletes the preview', async () => {
    fleet = await startFleet(inject('temporalAddress'), workflowBundle);
    await baseline();
    const h = await fleet.deliver(request(V2, { type: 'blueGreen', blueGreen: { autoPromotion: false } }));
    await until(h, (x) => x.phase === 'Paused');
    await act(h, { action: 'abort', comment: 'preview looks wrong' });
    const final = await result(h);
    expect(final.phase).toBe('Aborted');
    expect(images()).toEqual({ beijing: pinned(V1), shenzhen: pinned(V1), 'cloud-hk': pinned(V1) });
    expect(images('web-preview')).toEqual({ beijing: undefined, shenzhen: undefined, 'cloud-hk': undefined });
    for (const c of Object.values(fleet.clusters)) expect((c.objects.get('/Service/shop/web')?.object.spec as { selector: Record<string, string> }).selector).toEqual({ 'app.kubernetes.io/name': 'web' });
  });
});
