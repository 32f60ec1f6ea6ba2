/**
 * The cluster activities against the real local stack: real apiservers with
 * kwok nodes, the real activity code in a test activity Context (heartbeats and
 * cancellation work). Every outcome is read back from the cluster.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { pino } from 'pino';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { DefaultLogger } from '@temporalio/worker';
import { createClusterActivities } from '../../activities/index.ts';
import { createClusterClients, type ClusterClients } from '../../activities/kubernetes/clients.ts';
import type { ClusterActivities, WaitForRolloutInput } from '../../activities/types.ts';
import {
  AppSpecSchema,
  FailureType,
  planDeploy,
  toClusterInfo,
  type AppSpec,
  type AppSpecInput,
  type Cluster,
  type ClusterTarget,
} from '../../model/index.ts';
import { fault } from '../../stack/index.ts';
import { readState } from '../../stack/process.ts';
import type { StackInfo } from '../../stack/types.ts';
import { inventoryFromStack } from '../../worker/inventory-from-stack.ts';

const stack: StackInfo = inject('stack');
const inventory = inventoryFromStack(stack);
const fleet = inventory.clusters.map(toClusterInfo);
const central = stack.registries.find((r) => r.region === 'central')!.host;
const image = (tag: string) => `${central}/demo/web:${tag}`;
const silent = pino({ level: 'silent' });
const GRACE_MS = 4_000;

interface Handle {
  cluster: Cluster;
  clients: ClusterClients;
  acts: ClusterActivities;
}
const handles = new Map<string, Handle>();
function on(name: string): Handle {
  let h = handles.get(name);
  if (!h) {
    const cluster = inventory.clusters.find((c) => c.name === name)!;
    const clients = createClusterClients(cluster, { requestTimeoutMs: 5_000 });
    h = { cluster, clients, acts: createClusterActivities({ cluster, logger: silent, clients }) };
    handles.set(name, h);
  }
  return h;
}
const [A, B] = [inventory.clusters[0]!.name, inventory.clusters[1]!.name];

/** Runs an activity in a fresh test activity Context; collects its heartbeats. */
function activity() {
  // The SDK logs every failed activity at WARN; the failures here are expected, the assertions say what matters.
  const env = new MockActivityEnvironment(
    { heartbeatTimeoutMs: 20_000 },
    { logger: new DefaultLogger('ERROR') },
  );
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => heartbeats.push(d));
  return {
    env,
    heartbeats,
    run: <A extends unknown[], R>(fn: (...a: A) => Promise<R>, ...args: A) =>
      env.run(fn, ...args) as Promise<R>,
  };
}

/** waitForRollout's input for the Deployment web in `ns`. */
function waitInput(
  cluster: string,
  ns: string,
  generation: number,
  timeoutMs: number,
  unreadyGraceMs: number,
): WaitForRolloutInput {
  return { cluster, namespace: ns, name: 'web', generation, timeoutMs, unreadyGraceMs };
}

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    if (!(err instanceof ApplicationFailure)) throw err;
    return err;
  }
  throw new Error('expected the activity to fail');
}

const namespaces = new Map<string, Set<string>>();
function newNamespace(cluster: string, prefix: string): string {
  const ns = `t-${prefix}-${randomUUID().slice(0, 8)}`;
  if (!namespaces.has(cluster)) namespaces.set(cluster, new Set());
  namespaces.get(cluster)!.add(ns);
  return ns;
}

function appIn(
  cluster: string,
  namespace: string,
  over: Partial<AppSpecInput> = {},
): { app: AppSpec; target: ClusterTarget } {
  const app = AppSpecSchema.parse({
    name: 'web',
    namespace,
    image: image('v1'),
    replicas: 3,
    distribution: 'duplicated',
    placement: { clusters: [cluster] },
    ...over,
  });
  return { app, target: planDeploy(app, fleet).targets[cluster]! };
}

async function deploymentIn(h: Handle, namespace: string, name = 'web') {
  return h.clients.apps.readNamespacedDeployment({ name, namespace });
}

afterAll(async () => {
  await Promise.all(
    [...namespaces].flatMap(([cluster, set]) =>
      [...set].map((name) =>
        on(cluster)
          .clients.core.deleteNamespace({ name })
          .catch(() => undefined),
      ),
    ),
  );
});

describe(`apply, wait, roll back in ${A}`, () => {
  const h = on(A);
  const ns = newNamespace(A, 'deploy');
  const deliveryId = `delivery-${randomUUID()}`;

  it('applyApp then waitForRollout gives the image and N ready replicas', async () => {
    const { app, target } = appIn(A, ns);
    const a = activity();
    const applied = await a.run(h.acts.applyApp, { cluster: A, app, target, deliveryId });
    expect(applied).toMatchObject({ created: true });
    expect(applied.previousRevision).toBeUndefined();
    expect(applied.generation).toBeGreaterThan(0);

    const r = await a.run(h.acts.waitForRollout, waitInput(A, ns, applied.generation, 60_000, GRACE_MS));
    expect(r).toMatchObject({
      revision: 1,
      image: image('v1'),
      replicas: 3,
      updatedReplicas: 3,
      readyReplicas: 3,
      availableReplicas: 3,
    });
    expect(a.heartbeats.length).toBeGreaterThan(0);
    expect(a.heartbeats.at(-1)).toMatchObject({
      cluster: A,
      replicas: 3,
      readyReplicas: 3,
      generation: applied.generation,
    });

    const d = await deploymentIn(h, ns);
    expect(d.spec?.template.spec?.containers[0]?.image).toBe(image('v1'));
    expect(d.status?.readyReplicas).toBe(3);
    expect(d.metadata?.managedFields?.some((m) => m.manager === 'flotilla' && m.operation === 'Apply')).toBe(
      true,
    );
    const svc = await h.clients.core.readNamespacedService({ name: 'web', namespace: ns });
    expect(svc.spec?.selector).toEqual({ 'app.kubernetes.io/name': 'web' });

    expect(await a.run(h.acts.readAppState, { cluster: A, namespace: ns, name: 'web' })).toMatchObject({
      exists: true,
      revision: 1,
      image: image('v1'),
      replicas: 3,
      readyReplicas: 3,
    });
  });

  it('a repeated apply of the same delivery changes nothing and reports the same "before"', async () => {
    const { app, target } = appIn(A, ns);
    const before = await deploymentIn(h, ns);
    const again = await activity().run(h.acts.applyApp, { cluster: A, app, target, deliveryId });
    expect(again).toEqual({ generation: before.metadata?.generation, created: true });
  });

  it('a new image, then rollbackApp to the previous revision, leaves the old image and ready replicas', async () => {
    const next = `delivery-${randomUUID()}`;
    const { app, target } = appIn(A, ns, { image: image('v2') });
    const a = activity();
    const applied = await a.run(h.acts.applyApp, { cluster: A, app, target, deliveryId: next });
    expect(applied).toMatchObject({ created: false, previousRevision: 1, previousImage: image('v1') });
    const v2 = await a.run(h.acts.waitForRollout, waitInput(A, ns, applied.generation, 60_000, GRACE_MS));
    expect(v2).toMatchObject({ revision: 2, image: image('v2'), readyReplicas: 3 });

    const rb = await a.run(h.acts.rollbackApp, {
      cluster: A,
      namespace: ns,
      name: 'web',
      toRevision: 1,
      deliveryId: next,
    });
    expect(rb).toMatchObject({ deleted: false, image: image('v1') });
    const back = await a.run(h.acts.waitForRollout, {
      cluster: A,
      namespace: ns,
      name: 'web',
      generation: rb.generation!,
      timeoutMs: 60_000,
      unreadyGraceMs: GRACE_MS,
    });
    // The controller reuses revision 1's ReplicaSet and renumbers it 3, as `kubectl rollout undo` does.
    expect(back).toMatchObject({
      revision: 3,
      image: image('v1'),
      replicas: 3,
      readyReplicas: 3,
      updatedReplicas: 3,
    });

    // Repeating the rollback (a retried activity) finds the renumbered ReplicaSet and changes nothing.
    const again = await a.run(h.acts.rollbackApp, {
      cluster: A,
      namespace: ns,
      name: 'web',
      toRevision: 1,
      deliveryId: next,
    });
    expect(again).toEqual({ deleted: false, generation: rb.generation, image: image('v1') });

    const d = await deploymentIn(h, ns);
    expect(d.spec?.template.spec?.containers[0]?.image).toBe(image('v1'));
    expect(d.metadata?.annotations?.['deployment.kubernetes.io/revision']).toBe('3');
    expect(d.status?.readyReplicas).toBe(3);
    expect(d.spec?.template.metadata?.labels?.['pod-template-hash']).toBeUndefined();
  });

  it('rollbackApp to a revision that was never there fails with NoPreviousRevision', async () => {
    const f = await failureOf(
      activity().run(h.acts.rollbackApp, {
        cluster: A,
        namespace: ns,
        name: 'web',
        toRevision: 42,
        deliveryId,
      }),
    );
    expect(f).toMatchObject({ type: FailureType.NoPreviousRevision, nonRetryable: true });
    expect(f.message).toMatch(/revision 42/);
  });
});

describe(`first deploy rolled back in ${A}`, () => {
  it('rollbackApp without a revision deletes what the delivery created, and may be repeated', async () => {
    const h = on(A);
    const ns = newNamespace(A, 'remove');
    const deliveryId = `delivery-${randomUUID()}`;
    const { app, target } = appIn(A, ns, { replicas: 1 });
    const a = activity();
    await a.run(h.acts.applyApp, { cluster: A, app, target, deliveryId });
    expect(await a.run(h.acts.rollbackApp, { cluster: A, namespace: ns, name: 'web', deliveryId })).toEqual({
      deleted: true,
    });
    expect(await a.run(h.acts.rollbackApp, { cluster: A, namespace: ns, name: 'web', deliveryId })).toEqual({
      deleted: true,
    });
    expect(await a.run(h.acts.readAppState, { cluster: A, namespace: ns, name: 'web' })).toEqual({
      exists: false,
    });
    await expect(h.clients.core.readNamespacedService({ name: 'web', namespace: ns })).rejects.toMatchObject({
      code: 404,
    });
  });
});

describe(`clear failures in ${A}`, () => {
  const h = on(A);

  it('pods that never become ready fail waitForRollout with RolloutFailed, naming the pod, soon after the grace', async () => {
    const ns = newNamespace(A, 'unready');
    const { app, target } = appIn(A, ns, {
      replicas: 2,
      template: { annotations: { 'flotilla.dev/simulate': 'unready' } },
    });
    const a = activity();
    const applied = await a.run(h.acts.applyApp, {
      cluster: A,
      app,
      target,
      deliveryId: `delivery-${randomUUID()}`,
    });
    const t0 = Date.now();
    const f = await failureOf(
      a.run(h.acts.waitForRollout, waitInput(A, ns, applied.generation, 120_000, GRACE_MS)),
    );
    const took = Date.now() - t0;
    expect(f).toMatchObject({ type: FailureType.RolloutFailed, nonRetryable: true });
    expect(took).toBeGreaterThanOrEqual(GRACE_MS - 1000);
    expect(took).toBeLessThan(GRACE_MS + 15_000);
    const pods = await h.clients.core.listNamespacedPod({ namespace: ns });
    expect(pods.items.length).toBeGreaterThan(0);
    expect(pods.items.some((p) => f.message.includes(p.metadata!.name!))).toBe(true);
    expect(f.message).toMatch(/Running but not Ready/);
    expect(f.message).toContain(`cluster "${A}"`);
  });

  it('crash-looping pods fail waitForRollout with RolloutFailed at once, naming the pod and the reason', async () => {
    const ns = newNamespace(A, 'crash');
    const { app, target } = appIn(A, ns, {
      replicas: 2,
      template: { annotations: { 'flotilla.dev/simulate': 'crashloop' } },
    });
    const a = activity();
    const applied = await a.run(h.acts.applyApp, {
      cluster: A,
      app,
      target,
      deliveryId: `delivery-${randomUUID()}`,
    });
    const t0 = Date.now();
    const f = await failureOf(
      a.run(h.acts.waitForRollout, waitInput(A, ns, applied.generation, 120_000, 60_000)),
    );
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(f).toMatchObject({ type: FailureType.RolloutFailed, nonRetryable: true });
    expect(f.message).toMatch(/CrashLoopBackOff/);
    const pods = await h.clients.core.listNamespacedPod({ namespace: ns });
    expect(pods.items.some((p) => f.message.includes(p.metadata!.name!))).toBe(true);
  });

  it('a rollout that does not finish in time fails with RolloutTimeout', async () => {
    const ns = newNamespace(A, 'timeout');
    const { app, target } = appIn(A, ns, {
      replicas: 1,
      template: { annotations: { 'flotilla.dev/simulate': 'unready' } },
    });
    const a = activity();
    const applied = await a.run(h.acts.applyApp, {
      cluster: A,
      app,
      target,
      deliveryId: `delivery-${randomUUID()}`,
    });
    const f = await failureOf(
      a.run(h.acts.waitForRollout, waitInput(A, ns, applied.generation, 3_000, 600_000)),
    );
    expect(f).toMatchObject({ type: FailureType.RolloutTimeout, nonRetryable: true });
    expect(f.message).toMatch(/not complete after \d+s/);
  });

  it('waitForRollout stops when the activity is cancelled', async () => {
    const ns = newNamespace(A, 'cancel');
    const { app, target } = appIn(A, ns, {
      replicas: 1,
      template: { annotations: { 'flotilla.dev/simulate': 'unready' } },
    });
    const a = activity();
    const applied = await a.run(h.acts.applyApp, {
      cluster: A,
      app,
      target,
      deliveryId: `delivery-${randomUUID()}`,
    });
    const waiting = a.run(h.acts.waitForRollout, waitInput(A, ns, applied.generation, 120_000, 600_000));
    await new Promise((r) => setTimeout(r, 2_500));
    const t0 = Date.now();
    a.env.cancel();
    await expect(waiting).rejects.toBeInstanceOf(CancelledFailure);
    expect(Date.now() - t0).toBeLessThan(6_000);
    expect(a.heartbeats.length).toBeGreaterThanOrEqual(2);
  });

  it('a manifest the apiserver rejects gives InvalidManifest, not retryable, and creates no Deployment', async () => {
    const ns = newNamespace(A, 'invalid');
    const { app, target } = appIn(A, ns, { replicas: 1 });
    const bad = { ...target, resources: { requests: { cpu: 'lots' } } };
    const f = await failureOf(
      activity().run(h.acts.applyApp, {
        cluster: A,
        app,
        target: bad,
        deliveryId: `delivery-${randomUUID()}`,
      }),
    );
    expect(f).toMatchObject({ type: FailureType.InvalidManifest, nonRetryable: true });
    expect(f.message).toContain(`cluster "${A}"`);
    expect(f.message).toMatch(/quantit/i);
    expect(await activity().run(h.acts.readAppState, { cluster: A, namespace: ns, name: 'web' })).toEqual({
      exists: false,
    });
  });

  it('refuses an input meant for another cluster', async () => {
    const { app, target } = appIn(B, 'default');
    const f = await failureOf(activity().run(h.acts.applyApp, { cluster: B, app, target, deliveryId: 'x' }));
    expect(f).toMatchObject({ type: FailureType.UnknownCluster, nonRetryable: true });
  });
});

describe(`${B} down, then back`, () => {
  const stackOpts = () => ({ dataDir: stack.dataDir, portBase: readState(stack.dataDir)!.portBase });
  let down = false;
  afterAll(async () => {
    if (down) await fault('cluster-up', B, stackOpts());
  });

  it('applyApp and waitForRollout give ClusterUnreachable (retryable), naming the cluster; the same clients work again when it is back', async () => {
    const h = on(B);
    const ns = newNamespace(B, 'down');
    const { app, target } = appIn(B, ns, { replicas: 1 });
    const deliveryId = `delivery-${randomUUID()}`;
    const a = activity();
    expect(await a.run(h.acts.readAppState, { cluster: B, namespace: ns, name: 'web' })).toEqual({
      exists: false,
    }); // connected before

    await fault('cluster-down', B, stackOpts());
    down = true;
    const f = await failureOf(a.run(h.acts.applyApp, { cluster: B, app, target, deliveryId }));
    expect(f).toMatchObject({ type: FailureType.ClusterUnreachable, nonRetryable: false });
    expect(f.message).toContain(`cluster "${B}"`);
    expect(f.message).toMatch(/ECONNREFUSED/);
    const w = await failureOf(a.run(h.acts.waitForRollout, waitInput(B, ns, 1, 10_000, GRACE_MS)));
    expect(w).toMatchObject({ type: FailureType.ClusterUnreachable, nonRetryable: false });

    await fault('cluster-up', B, stackOpts());
    down = false;
    // What Temporal would do next: retry the apply, then wait.
    const applied = await a.run(h.acts.applyApp, { cluster: B, app, target, deliveryId });
    const r = await a.run(h.acts.waitForRollout, waitInput(B, ns, applied.generation, 60_000, GRACE_MS));
    expect(r).toMatchObject({ image: image('v1'), readyReplicas: 1 });
  });
});
