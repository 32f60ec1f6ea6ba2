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
import type { ClusterActivities, WaitInput } from '../../activities/types.ts';
import {
  DeployRequestSchema,
  FailureType,
  prepareDeploy,
  refOf,
  toClusterInfo,
  type Cluster,
  type DeployRequestInput,
  type KubeObject,
  type ObjectRef,
} from '../../model/index.ts';
import { fault } from '../../stack/index.ts';
import { readState } from '../../stack/process.ts';
import type { StackInfo } from '../../stack/types.ts';
import { inventoryFromStack } from '../../worker/inventory-from-stack.ts';

const stack: StackInfo = inject('stack');
const inventory = inventoryFromStack(stack);
// The cluster activities on their own, on objects that pull from central (no replicate step runs here to fill a mirror).
const fleet = inventory.clusters.map(toClusterInfo).map(({ mirror: _mirror, ...c }) => c);
const central = stack.registries.find((r) => r.region === 'central')!.host;
const image = (tag: string) => `${central}/demo/web:${tag}`;
const silent = pino({ level: 'silent' });
const GRACE_MS = 4_000;
const graces = (ms: number) => ({ unschedulableMs: ms, imagePullMs: ms, unreadyMs: ms });

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
    h = { cluster, clients, acts: createClusterActivities({ cluster, logger: silent, clients, protectedNamespaces: ['platform'] }) };
    handles.set(name, h);
  }
  return h;
}
const [A, B] = [inventory.clusters[0]!.name, inventory.clusters[1]!.name];

/** Runs an activity in a fresh test activity Context; collects its heartbeats. */
function activity() {
  // The SDK logs every failed activity at WARN; the failures here are expected, the assertions say what matters.
  const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 20_000 }, { logger: new DefaultLogger('ERROR') });
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => heartbeats.push(d));
  return {
    env,
    heartbeats,
    run: <A extends unknown[], R>(fn: (...a: A) => Promise<R>, ...args: A) => env.run(fn, ...args) as Promise<R>,
  };
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

/** The objects a delivery renders for the application `web` in one cluster (3 replicas, duplicated). */
function objectsFor(cluster: string, namespace: string, deliveryId: string, app: Partial<DeployRequestInput['app']> = {}): KubeObject[] {
  const request = DeployRequestSchema.parse({
    type: 'deploy',
    app: { name: 'web', namespace, image: image('v1'), replicas: 3, distribution: 'duplicated', placement: { clusters: [cluster] }, ...app },
  });
  return prepareDeploy(request, fleet, {}, deliveryId).clusters[cluster]!.objects;
}
const owner = (namespace: string) => ({ namespace, name: 'web' });
const deploymentRef = (namespace: string): ObjectRef => ({ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: 'web' });
const waitInput = (cluster: string, ns: string, generation: number, timeoutMs: number, graceMs: number): WaitInput => ({
  cluster,
  workloads: [{ ref: deploymentRef(ns), generation }],
  timeoutMs,
  graces: graces(graceMs),
  notBefore: Date.now(),
});

async function deploymentIn(h: Handle, namespace: string, name = 'web') {
  return h.clients.apps.readNamespacedDeployment({ name, namespace });
}

/** Captures, then applies (what the apply step does); returns the capture and the Deployment's generation. */
async function applyIn(h: Handle, ns: string, deliveryId: string, objects: KubeObject[], adopt = false) {
  const a = activity();
  const before = await a.run(h.acts.captureObjects, { cluster: h.cluster.name, owner: owner(ns), refs: objects.map(refOf), adopt });
  const applied = await a.run(h.acts.applyObjects, { cluster: h.cluster.name, owner: owner(ns), deliveryId, objects, adopt });
  const generation = applied.find((x) => x.ref.kind === 'Deployment')!.generation!;
  return { before, applied, generation, heartbeats: a.heartbeats };
}

afterAll(async () => {
  await Promise.all(
    [...namespaces].flatMap(([cluster, set]) => [...set].map((name) => on(cluster).clients.core.deleteNamespace({ name }).catch(() => undefined))),
  );
});

describe(`capture, apply, wait, restore in ${A}`, () => {
  const h = on(A);
  const ns = newNamespace(A, 'deploy');
  const first = `delivery-${randomUUID()}`;

  it('capture finds nothing; apply then waitReady give the image and N ready replicas, applied as flotilla', async () => {
    const objects = objectsFor(A, ns, first);
    const { before, applied, generation, heartbeats } = await applyIn(h, ns, first, objects);
    expect(before.map((b) => [b.ref.kind, b.exists])).toEqual([['Service', false], ['Deployment', false]]);
    expect(applied.map((x) => [x.ref.kind, x.created])).toEqual([['Service', true], ['Deployment', true]]);
    expect(heartbeats.length).toBeGreaterThan(0);

    const a = activity();
    const [w] = await a.run(h.acts.waitReady, waitInput(A, ns, generation, 60_000, GRACE_MS));
    expect(w).toMatchObject({ exists: true, revision: 1, image: image('v1'), replicas: 3, readyReplicas: 3, updatedReplicas: 3, deliveryId: first });
    expect(a.heartbeats.at(-1)).toMatchObject({ cluster: A });

    const d = await deploymentIn(h, ns);
    expect(d.spec?.template.spec?.containers[0]?.image).toBe(image('v1'));
    expect(d.status?.readyReplicas).toBe(3);
    expect(d.metadata?.managedFields?.some((m) => m.manager === 'flotilla' && m.operation === 'Apply')).toBe(true);
    expect(d.metadata?.annotations?.['flotilla.dev/app']).toBe(`${ns}/web`);
    const svc = await h.clients.core.readNamespacedService({ name: 'web', namespace: ns });
    expect(svc.spec?.selector).toEqual({ 'app.kubernetes.io/name': 'web' });
    expect(await a.run(h.acts.readWorkloads, { cluster: A, refs: [deploymentRef(ns)] })).toMatchObject([{ exists: true, image: image('v1'), readyReplicas: 3 }]);
  });

  it('a repeated apply of the same objects changes nothing (same generation)', async () => {
    const before = await deploymentIn(h, ns);
    const again = await activity().run(h.acts.applyObjects, { cluster: A, owner: owner(ns), deliveryId: first, objects: objectsFor(A, ns, first), adopt: false });
    expect(again.find((x) => x.ref.kind === 'Deployment')).toMatchObject({ generation: before.metadata?.generation, created: false });
  });

  it('a new image, replicas and port, then restoreObjects of the capture: image, replicas, Service ports back, ready', async () => {
    const next = `delivery-${randomUUID()}`;
    const objects = objectsFor(A, ns, next, { image: image('v2'), replicas: 5, template: { ports: [{ name: 'web', containerPort: 9090 }] } });
    const { before, generation } = await applyIn(h, ns, next, objects);
    const a = activity();
    const [v2] = await a.run(h.acts.waitReady, waitInput(A, ns, generation, 60_000, GRACE_MS));
    expect(v2).toMatchObject({ revision: 2, image: image('v2'), replicas: 5, readyReplicas: 5 });

    const put = before.filter((b) => b.exists).map((b) => b.object!);
    expect(put.map((o) => o.kind)).toEqual(['Service', 'Deployment']);
    const res = await a.run(h.acts.restoreObjects, { cluster: A, owner: owner(ns), deliveryId: next, put, remove: [] });
    const gen = res.applied.find((x) => x.ref.kind === 'Deployment')!.generation!;
    const [back] = await a.run(h.acts.waitReady, waitInput(A, ns, gen, 60_000, GRACE_MS));
    // The controller reuses revision 1's ReplicaSet and renumbers it 3, as `kubectl rollout undo` does.
    expect(back).toMatchObject({ revision: 3, image: image('v1'), replicas: 3, readyReplicas: 3, updatedReplicas: 3 });
    const svc = await h.clients.core.readNamespacedService({ name: 'web', namespace: ns });
    expect(svc.spec?.ports?.map((p) => [p.name, p.port])).toEqual([['http', 8080]]);

    // Repeating the restore (a retried activity) changes nothing more.
    const again = await a.run(h.acts.restoreObjects, { cluster: A, owner: owner(ns), deliveryId: next, put, remove: [] });
    expect(again.applied.find((x) => x.ref.kind === 'Deployment')!.generation).toBe(gen);
    const d = await deploymentIn(h, ns);
    expect([d.spec?.template.spec?.containers[0]?.image, d.spec?.replicas, d.metadata?.annotations?.['deployment.kubernetes.io/revision']]).toEqual([image('v1'), 3, '3']);
  });
});

describe(`first deploy restored in ${A}`, () => {
  it('restoreObjects removes what the delivery created (and only that), and may be repeated', async () => {
    const h = on(A);
    const ns = newNamespace(A, 'remove');
    const deliveryId = `delivery-${randomUUID()}`;
    const objects = objectsFor(A, ns, deliveryId, { replicas: 1 });
    const { before } = await applyIn(h, ns, deliveryId, objects);
    const remove = before.filter((b) => !b.exists).map((b) => b.ref).reverse();
    const a = activity();
    expect((await a.run(h.acts.restoreObjects, { cluster: A, owner: owner(ns), deliveryId, put: [], remove })).removed.map((r) => r.kind)).toEqual(['Deployment', 'Service']);
    expect((await a.run(h.acts.restoreObjects, { cluster: A, owner: owner(ns), deliveryId, put: [], remove })).removed).toEqual([]);
    expect(await a.run(h.acts.readWorkloads, { cluster: A, refs: [deploymentRef(ns)] })).toEqual([{ ref: deploymentRef(ns), exists: false }]);
    await expect(h.clients.core.readNamespacedService({ name: 'web', namespace: ns })).rejects.toMatchObject({ code: 404 });
  });

  it('an object another delivery applied since is kept, and said so', async () => {
    const h = on(A);
    const ns = newNamespace(A, 'keep');
    const mine = `delivery-${randomUUID()}`;
    const { before } = await applyIn(h, ns, mine, objectsFor(A, ns, mine, { replicas: 1 }));
    const later = `delivery-${randomUUID()}`;
    await applyIn(h, ns, later, objectsFor(A, ns, later, { replicas: 1 }));
    const res = await activity().run(h.acts.restoreObjects, { cluster: A, owner: owner(ns), deliveryId: mine, put: [], remove: before.map((b) => b.ref) });
    expect(res.removed).toEqual([]);
    expect(res.kept.map((k) => k.reason)).toEqual([`last applied by delivery ${later}`, `last applied by delivery ${later}`]);
  });
});

describe(`ownership and refusals in ${A}`, () => {
  const h = on(A);

  it("an existing Deployment Flotilla did not create: capture and apply refuse (NotOwned, naming its manager); adopt takes it over", async () => {
    const ns = newNamespace(A, 'foreign');
    await h.clients.core.createNamespace({ body: { metadata: { name: ns } } });
    await h.clients.apps.createNamespacedDeployment({
      namespace: ns,
      fieldManager: 'kubectl-create',
      body: {
        metadata: { name: 'web', namespace: ns },
        spec: { replicas: 1, selector: { matchLabels: { 'app.kubernetes.io/name': 'web' } }, template: { metadata: { labels: { 'app.kubernetes.io/name': 'web' } }, spec: { containers: [{ name: 'web', image: image('v3') }] } } },
      },
    });
    const deliveryId = `delivery-${randomUUID()}`;
    const objects = objectsFor(A, ns, deliveryId, { replicas: 1 });
    const refs = objects.map(refOf);
    const c = await failureOf(activity().run(h.acts.captureObjects, { cluster: A, owner: owner(ns), refs, adopt: false }));
    expect(c).toMatchObject({ type: FailureType.NotOwned, nonRetryable: true });
    expect(c.message).toMatch(/Deployment .*\/web exists and was not created by Flotilla \(managed by kubectl-create\)/);
    const ap = await failureOf(activity().run(h.acts.applyObjects, { cluster: A, owner: owner(ns), deliveryId, objects, adopt: false }));
    expect(ap.type).toBe(FailureType.NotOwned);
    expect((await deploymentIn(h, ns)).spec?.template.spec?.containers[0]?.image).toBe(image('v3'));

    const { before } = await applyIn(h, ns, deliveryId, objects, true);
    expect(before.find((b) => b.ref.kind === 'Deployment')).toMatchObject({ exists: true, ownership: 'foreign', managers: ['kubectl-create'] });
    expect((await deploymentIn(h, ns)).spec?.template.spec?.containers[0]?.image).toBe(image('v1'));
  });

  it('checkObjects dry-runs: a rejected annotation key is an Invalid issue naming the field; nothing is stored', async () => {
    const ns = newNamespace(A, 'check');
    const objects = objectsFor(A, ns, 'd', { template: { annotations: { '!!!': 'x' } } });
    const issues = await activity().run(h.acts.checkObjects, { cluster: A, owner: owner(ns), objects, adopt: false });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ cluster: A, object: `Deployment ${ns}/web`, kind: 'Invalid' });
    expect(issues[0]!.field).toMatch(/annotations/);
    await expect(h.clients.core.readNamespace({ name: ns })).rejects.toMatchObject({ code: 404 });
    expect(await activity().run(h.acts.checkObjects, { cluster: A, owner: owner(ns), objects: objectsFor(A, ns, 'd'), adopt: false })).toEqual([]);
  });

  it('a protected namespace is refused by the worker whatever it is asked (kube-* and the configured ones)', async () => {
    for (const ns of ['kube-system', 'platform']) {
      const f = await failureOf(activity().run(h.acts.applyObjects, { cluster: A, owner: owner(ns), deliveryId: 'd', objects: objectsFor(A, ns, 'd'), adopt: true }));
      expect([ns, f.type]).toEqual([ns, FailureType.ProtectedNamespace]);
    }
    await expect(h.clients.apps.readNamespacedDeployment({ name: 'web', namespace: 'kube-system' })).rejects.toMatchObject({ code: 404 });
  });
});

describe(`clear failures in ${A}`, () => {
  const h = on(A);

  it('pods that never become ready fail waitReady with RolloutFailed, naming the pod, soon after the grace', async () => {
    const ns = newNamespace(A, 'unready');
    const deliveryId = `delivery-${randomUUID()}`;
    const { generation } = await applyIn(h, ns, deliveryId, objectsFor(A, ns, deliveryId, { replicas: 2, template: { annotations: { 'flotilla.dev/simulate': 'unready' } } }));
    const t0 = Date.now();
    const f = await failureOf(activity().run(h.acts.waitReady, waitInput(A, ns, generation, 120_000, GRACE_MS)));
    const took = Date.now() - t0;
    expect(f).toMatchObject({ type: FailureType.RolloutFailed, nonRetryable: true });
    expect(took).toBeGreaterThanOrEqual(GRACE_MS - 1000);
    const pods = await h.clients.core.listNamespacedPod({ namespace: ns });
    expect(pods.items.some((p) => f.message.includes(p.metadata!.name!))).toBe(true);
    expect(f.message).toMatch(/Running but not Ready/);
    expect(f.message).toContain(`cluster "${A}"`);
  });

  it('crash-looping pods fail waitReady with RolloutFailed at once, naming the pod and the reason', async () => {
    const ns = newNamespace(A, 'crash');
    const deliveryId = `delivery-${randomUUID()}`;
    const { generation } = await applyIn(h, ns, deliveryId, objectsFor(A, ns, deliveryId, { replicas: 2, template: { annotations: { 'flotilla.dev/simulate': 'crashloop' } } }));
    const f = await failureOf(activity().run(h.acts.waitReady, waitInput(A, ns, generation, 120_000, 600_000)));
    expect(f).toMatchObject({ type: FailureType.RolloutFailed, nonRetryable: true });
    expect(f.message).toMatch(/CrashLoopBackOff/);
  });

  it('a rollout that does not finish in time fails with RolloutTimeout', async () => {
    const ns = newNamespace(A, 'timeout');
    const deliveryId = `delivery-${randomUUID()}`;
    const { generation } = await applyIn(h, ns, deliveryId, objectsFor(A, ns, deliveryId, { replicas: 1, template: { annotations: { 'flotilla.dev/simulate': 'unready' } } }));
    const f = await failureOf(activity().run(h.acts.waitReady, waitInput(A, ns, generation, 3_000, 600_000)));
    expect(f).toMatchObject({ type: FailureType.RolloutTimeout, nonRetryable: true });
    expect(f.message).toMatch(/not complete after \d+s/);
  });

  it('waitReady stops when the activity is cancelled, closing its watches', async () => {
    const ns = newNamespace(A, 'cancel');
    const deliveryId = `delivery-${randomUUID()}`;
    const { generation } = await applyIn(h, ns, deliveryId, objectsFor(A, ns, deliveryId, { replicas: 1, template: { annotations: { 'flotilla.dev/simulate': 'unready' } } }));
    const a = activity();
    const waiting = a.run(h.acts.waitReady, waitInput(A, ns, generation, 120_000, 600_000));
    await new Promise((r) => setTimeout(r, 2_500));
    const t0 = Date.now();
    a.env.cancel();
    await expect(waiting).rejects.toBeInstanceOf(CancelledFailure);
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(a.heartbeats.length).toBeGreaterThanOrEqual(2);
  });

  it('a manifest the apiserver rejects gives InvalidManifest, not retryable, and creates no Deployment', async () => {
    const ns = newNamespace(A, 'invalid');
    const objects = objectsFor(A, ns, 'd', { replicas: 1 }).map((o) =>
      o.kind === 'Deployment' ? (JSON.parse(JSON.stringify(o).replace('"containers":[{', '"containers":[{"resources":{"requests":{"cpu":"lots"}},')) as KubeObject) : o,
    );
    const f = await failureOf(activity().run(h.acts.applyObjects, { cluster: A, owner: owner(ns), deliveryId: 'd', objects, adopt: false }));
    expect(f).toMatchObject({ type: FailureType.InvalidManifest, nonRetryable: true });
    expect(f.message).toContain(`cluster "${A}"`);
    expect(f.message).toMatch(/quantit/i);
    expect(await activity().run(h.acts.readWorkloads, { cluster: A, refs: [deploymentRef(ns)] })).toEqual([{ ref: deploymentRef(ns), exists: false }]);
  });

  it('refuses an input meant for another cluster', async () => {
    const f = await failureOf(activity().run(h.acts.applyObjects, { cluster: B, owner: owner('default'), deliveryId: 'x', objects: objectsFor(B, 'default', 'x'), adopt: false }));
    expect(f).toMatchObject({ type: FailureType.UnknownCluster, nonRetryable: true });
  });
});

describe(`${B} down, then back`, () => {
  const stackOpts = () => ({ dataDir: stack.dataDir, portBase: readState(stack.dataDir)!.portBase });
  let down = false;
  afterAll(async () => {
    if (down) await fault('cluster-up', B, stackOpts());
  });

  it('apply and waitReady give ClusterUnreachable (retryable), naming the cluster; the same clients work again when it is back', async () => {
    const h = on(B);
    const ns = newNamespace(B, 'down');
    const deliveryId = `delivery-${randomUUID()}`;
    const objects = objectsFor(B, ns, deliveryId, { replicas: 1 });
    const a = activity();
    expect(await a.run(h.acts.readWorkloads, { cluster: B, refs: [deploymentRef(ns)] })).toEqual([{ ref: deploymentRef(ns), exists: false }]); // connected before

    await fault('cluster-down', B, stackOpts());
    down = true;
    const f = await failureOf(a.run(h.acts.applyObjects, { cluster: B, owner: owner(ns), deliveryId, objects, adopt: false }));
    expect(f).toMatchObject({ type: FailureType.ClusterUnreachable, nonRetryable: false });
    expect(f.message).toContain(`cluster "${B}"`);
    expect(f.message).toMatch(/ECONNREFUSED/);
    const w = await failureOf(a.run(h.acts.waitReady, waitInput(B, ns, 1, 10_000, GRACE_MS)));
    expect(w).toMatchObject({ type: FailureType.ClusterUnreachable, nonRetryable: false });

    await fault('cluster-up', B, stackOpts());
    down = false;
    // What Temporal would do next: retry the apply, then wait.
    const { generation } = await applyIn(h, ns, deliveryId, objects);
    const [r] = await a.run(h.acts.waitReady, waitInput(B, ns, generation, 60_000, GRACE_MS));
    expect(r).toMatchObject({ image: image('v1'), readyReplicas: 1 });
  });
});
