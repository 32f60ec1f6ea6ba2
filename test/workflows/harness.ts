/**
 * Workflow tests run the real workflows on a real Temporal dev server with
 * in-memory stand-ins for the cluster activities: each FakeCluster keeps the
 * objects applied to it (generations, ownership labels, a fault switch), so a
 * test can check what each cluster ended up running, in which order the steps
 * ran, and what the SRE saw. The hub is the real one (planning and rendering),
 * with a registry stand-in that resolves each tag to a fixed digest.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, DefaultLogger, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { quietRuntime } from '../support/temporal.ts';
import { createHubActivities } from '../../activities/hub.ts';
import type { ClusterActivities, WorkloadState } from '../../activities/types.ts';
import {
  ANNOTATION_APP,
  ANNOTATION_DELIVERY,
  LABEL_MANAGED_BY,
  MANAGED_BY,
  ownerKey,
  ownershipOf,
  refKey,
  refOf,
  restorable,
  type CapturedObject,
  type ClusterInfo,
  type DeliveryStatus,
  type DeployRequest,
  type KubeObject,
  type ObjectRef,
} from '../../model/index.ts';
import { applicationWorkflowId } from '../../workflows/messages.ts';
import { replicaSplit, weightOf, type CanaryTarget } from '../../model/canary.ts';
import type { TrafficState } from '../../activities/routing/types.ts';
import { startUnderLock } from '../../api/lock.ts';
import { WORKFLOW_PRELOAD_MODULES } from '../../worker/main.ts';
import type { Inventory } from '../../model/inventory.ts';

export { quietRuntime };

export async function bundle(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({
    workflowsPath: new URL('../../workflows/index.ts', import.meta.url).pathname,
    // As the worker bundles them (worker/main.ts), so these tests run what it runs.
    preloadModules: WORKFLOW_PRELOAD_MODULES,
    logger: new DefaultLogger('WARN'),
  });
}

/** The digest the stand-in registry gives a reference: the same for the same reference, every time. */
export const fakeDigest = (ref: string): string => `sha256:${createHash('sha256').update(ref).digest('hex')}`;
/** `registry/repo@sha256:...` as a delivery pins `ref`. */
export const pinned = (ref: string): string => `${ref.replace(/:[^:/@]+$/, '')}@${fakeDigest(ref)}`;

/** Opens the fault switch from a test: next calls throw what the cluster would. */
export type Fault = 'none' | 'unreachable';

interface Stored {
  object: KubeObject;
  generation: number;
}

const imageOfObject = (o: KubeObject | undefined): string | undefined =>
  (o?.spec as { template?: { spec?: { containers?: { image?: string }[] } } } | undefined)?.template?.spec?.containers?.[0]?.image;
const replicasOf = (o: KubeObject | undefined): number | undefined => (o?.spec as { replicas?: number } | undefined)?.replicas;
const specOf = (o: KubeObject): string => JSON.stringify(o.spec ?? {});

export class FakeCluster {
  readonly name: string;
  /** Objects by refKey. */
  readonly objects = new Map<string, Stored>();
  fault: Fault = 'none';
  /** Images whose pods never become ready here. */
  readonly badImages = new Set<string>();
  readonly calls: { op: string; image?: string; at: number; end?: number }[] = [];
  /** While set, waitReady reports `ready` replicas in a heartbeat and waits for `release`. */
  rolloutGate: { ready: number; release: Promise<void> } | undefined;
  /** While set, an apply changes the objects and then never answers (its answer is lost) until cancelled. */
  applyHangs = false;
  /** The next this-many waits fail as a rollout whose pods never become ready. */
  failNextWaits = 0;
  /** Every weight a canary's router set here, in order (for "never backward" checks). */
  readonly weights: number[] = [];
  /** Versions kept here: `<ns>/<app>` -> number -> objects (as the cluster's Secrets keep them). */
  readonly versions = new Map<string, Map<number, KubeObject[]>>();
  constructor(name: string) {
    this.name = name;
  }

  private check(op: string, image?: string): { op: string; at: number; end?: number } {
    const call = { op, ...(image ? { image } : {}), at: Date.now() };
    this.calls.push(call);
    if (this.fault === 'unreachable') {
      throw ApplicationFailure.create({ type: 'ClusterUnreachable', message: `connect ECONNREFUSED (cluster ${this.name})` });
    }
    return call;
  }

  count(op: string): number {
    return this.calls.filter((c) => c.op === op).length;
  }

  /** The Deployment `web` of namespace `ns` (or the one named), as a test reads it back. */
  deployment(ns: string, name = 'web'): KubeObject | undefined {
    return this.objects.get(refKey({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: ns, name }))?.object;
  }
  image(ns: string, name = 'web'): string | undefined {
    return imageOfObject(this.deployment(ns, name));
  }
  replicas(ns: string, name = 'web'): number | undefined {
    return replicasOf(this.deployment(ns, name));
  }

  private put(o: KubeObject): Stored {
    const key = refKey(refOf(o));
    const old = this.objects.get(key);
    const generation = !old ? 1 : specOf(old.object) === specOf(o) ? old.generation : old.generation + 1;
    const stored = { object: JSON.parse(JSON.stringify(o)) as KubeObject, generation };
    this.objects.set(key, stored);
    return stored;
  }

  private state(ref: ObjectRef): WorkloadState {
    const s = this.objects.get(refKey(ref));
    if (!s) return { ref, exists: false };
    const replicas = replicasOf(s.object) ?? 1;
    const image = imageOfObject(s.object);
    const deliveryId = s.object.metadata.annotations?.[ANNOTATION_DELIVERY];
    return { ref, exists: true, ...(image ? { image } : {}), replicas, readyReplicas: replicas, updatedReplicas: replicas, generation: s.generation, ...(deliveryId ? { deliveryId } : {}) };
  }

  activities(): ClusterActivities {
    const mine = (i: { cluster: string }) => {
      if (i.cluster !== this.name) throw ApplicationFailure.nonRetryable(`wrong cluster ${i.cluster} on ${this.name}`);
    };
    return {
      captureObjects: async (i) => {
        mine(i);
        this.check('capture');
        const out: CapturedObject[] = i.refs.map((ref) => {
          const s = this.objects.get(refKey(ref));
          if (!s) return { ref, exists: false };
          const ownership = ownershipOf(s.object, i.owner);
          if (ownership !== 'ours' && !i.adopt) throw ApplicationFailure.create({ type: 'NotOwned', nonRetryable: true, message: `${ref.kind} ${ref.name} is not ours` });
          return { ref, exists: true, object: restorable(s.object), ownership };
        });
        for (const ref of i.prune ?? []) {
          const s = this.objects.get(refKey(ref));
          if (s && ownershipOf(s.object, i.owner) === 'ours') out.push({ ref, exists: true, object: restorable(s.object), ownership: 'ours' });
        }
        return out;
      },
      applyObjects: async (i) => {
        mine(i);
        const dep = i.objects.find((o) => o.kind === 'Deployment');
        const call = this.check('apply', imageOfObject(dep));
        const out = i.objects.map((o) => {
          const had = this.objects.has(refKey(refOf(o)));
          const s = this.put(o);
          return { ref: refOf(o), generation: s.generation, created: !had };
        });
        if (this.applyHangs) {
          const ctx = Context.current();
          for (;;) {
            ctx.heartbeat();
            await ctx.sleep(200); // rejects when the activity is cancelled
          }
        }
        call.end = Date.now();
        return out;
      },
      waitReady: async (i) => {
        mine(i);
        const ref = i.workloads[0]?.ref;
        const image = ref ? this.state(ref).image : undefined;
        const call = this.check('wait', image);
        if (this.rolloutGate) {
          const gate = this.rolloutGate;
          Context.current().heartbeat({ cluster: this.name, readyReplicas: gate.ready, message: `${gate.ready} updated replicas available` });
          await gate.release;
        }
        if ((image && this.badImages.has(image)) || (this.failNextWaits > 0 && this.failNextWaits--)) {
          throw ApplicationFailure.create({ type: 'RolloutFailed', nonRetryable: true, message: `pod web-abc on ${this.name} Running but not Ready` });
        }
        call.end = Date.now();
        return i.workloads.map((w) => this.state(w.ref));
      },
      restoreObjects: async (i) => {
        mine(i);
        const call = this.check('restore');
        const applied = i.put.map((o) => ({ ref: refOf(o), generation: this.put(o).generation, created: false }));
        const removed: ObjectRef[] = [];
        const kept: { ref: ObjectRef; reason: string }[] = [];
        for (const ref of i.remove) {
          const s = this.objects.get(refKey(ref));
          if (!s) continue;
          if (s.object.metadata.annotations?.[ANNOTATION_DELIVERY] !== i.deliveryId) {
            kept.push({ ref, reason: 'applied by another delivery' });
            continue;
          }
          this.objects.delete(refKey(ref));
          removed.push(ref);
        }
        call.end = Date.now();
        return { applied, removed, kept };
      },
      readWorkloads: async (i) => {
        mine(i);
        this.check('read');
        return i.refs.map((r) => {
          const s = this.state(r);
          const o = this.objects.get(refKey(r))?.object;
          // A stand-in for the current ReplicaSet's pod-template-hash: one per template.
          if (o && r.kind === 'Deployment') s.podTemplateHash = createHash('sha256').update(JSON.stringify((o.spec as { template?: unknown }).template ?? {})).digest('hex').slice(0, 10);
          return s;
        });
      },
      // The replica-ratio router, on the stored objects: the weight is the canary's share of the replicas.
      setTrafficWeight: async (i) => {
        mine(i);
        this.check('setWeight');
        const total = i.totalReplicas ?? i.target.replicas ?? 1;
        const split = replicaSplit(total, i.weight);
        this.scale(i.target.namespace, i.target.deployment, split.stable);
        this.scale(i.target.namespace, i.target.canaryDeployment, split.canary);
        this.weights.push(i.weight);
        return this.traffic(i.target);
      },
      readTrafficWeight: async (i) => {
        mine(i);
        return this.traffic(i.target);
      },
      removeCanary: async (i) => {
        mine(i);
        this.check('removeCanary');
        const removed: string[] = [];
        const key = refKey({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: i.target.namespace, name: i.target.canaryDeployment });
        if (this.objects.delete(key)) removed.push(`Deployment ${i.target.namespace}/${i.target.canaryDeployment}`);
        if (i.totalReplicas !== undefined) this.scale(i.target.namespace, i.target.deployment, i.totalReplicas);
        return { state: this.traffic(i.target), removed, kept: [] };
      },
      pruneObjects: async (i) => {
        mine(i);
        this.check('prune');
        const removed: ObjectRef[] = [];
        const kept: { ref: ObjectRef; reason: string }[] = [];
        for (const ref of i.refs) {
          const s = this.objects.get(refKey(ref));
          if (!s) continue;
          if (ownershipOf(s.object, i.owner) !== 'ours') kept.push({ ref, reason: 'not ours' });
          else {
            this.objects.delete(refKey(ref));
            removed.push(ref);
          }
        }
        return { removed, kept };
      },
      recordVersion: async (i) => {
        mine(i);
        this.check('recordVersion');
        const key = ownerKey(i.owner);
        const byNumber = this.versions.get(key) ?? new Map<number, KubeObject[]>();
        byNumber.set(i.version, JSON.parse(JSON.stringify(i.objects)) as KubeObject[]);
        for (const n of [...byNumber.keys()].sort((a, b) => b - a).slice(i.keep)) byNumber.delete(n);
        this.versions.set(key, byNumber);
      },
      readVersion: async (i) => {
        mine(i);
        this.check('readVersion');
        const objects = this.versions.get(ownerKey(i.owner))?.get(i.version);
        if (!objects) throw ApplicationFailure.create({ type: 'NotFound', nonRetryable: true, message: `no version ${i.version} here` });
        return objects;
      },
      checkObjects: async (i) => {
        mine(i);
        this.check('check');
        return i.objects.flatMap((o) => {
          const s = this.objects.get(refKey(refOf(o)));
          if (s && ownershipOf(s.object, i.owner) !== 'ours' && !i.adopt) {
            return [{ cluster: this.name, object: `${o.kind} ${o.metadata.name}`, kind: 'NotOwned' as const, message: 'not ours', managers: ['kubectl'] }];
          }
          return [];
        });
      },
    };
  }

  private scale(ns: string, name: string, replicas: number): void {
    const s = this.objects.get(refKey({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: ns, name }));
    if (s) (s.object.spec as { replicas?: number }).replicas = replicas;
  }

  private traffic(t: CanaryTarget): TrafficState {
    const side = (name: string) => {
      const r = this.replicas(t.namespace, name);
      return { deployment: name, exists: r !== undefined, replicas: r ?? 0, readyReplicas: r ?? 0 };
    };
    const stable = side(t.deployment);
    const canary = side(t.canaryDeployment);
    return { router: 'replicaRatio', weight: weightOf(stable.readyReplicas, canary.readyReplicas), routes: [], stable, canary };
  }

  /** An object someone else created here, for ownership tests. */
  seedForeign(o: KubeObject): void {
    this.put(o);
  }

  /** An object as a Flotilla delivery of `owner` would have left it. */
  static ours(o: KubeObject, owner: { namespace: string; name: string }, deliveryId = 'earlier'): KubeObject {
    return {
      ...o,
      metadata: {
        ...o.metadata,
        labels: { ...(o.metadata.labels ?? {}), [LABEL_MANAGED_BY]: MANAGED_BY },
        annotations: { ...(o.metadata.annotations ?? {}), [ANNOTATION_APP]: ownerKey(owner), [ANNOTATION_DELIVERY]: deliveryId },
      },
    };
  }
}

/**
 * A registry stand-in for the replicate step: keeps which pinned references each host holds; a host
 * in `down` refuses like a stopped registry (RegistryUnreachable, retried by Temporal).
 */
export class FakeRegistries {
  readonly held = new Set<string>();
  readonly down = new Set<string>();
  readonly calls: { op: string; ref: string; at: number }[] = [];

  activities() {
    const hostOf = (ref: string) => ref.split('/')[0]!;
    return {
      copyImage: async (input: { source: string; target: string }) => {
        this.calls.push({ op: 'copy', ref: input.target, at: Date.now() });
        if (this.down.has(hostOf(input.target))) throw ApplicationFailure.retryable(`registry ${hostOf(input.target)}: connection refused`, 'RegistryUnreachable');
        const digest = input.source.slice(input.source.indexOf('@') + 1);
        this.held.add(`${input.target}@${digest}`);
        return { source: input.source, target: `${input.target}@${digest}`, digest, sourceDigest: digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', filtered: false, manifests: 1, blobs: { total: 2, copied: 2, skipped: 0, mounted: 0 }, bytes: { total: 2, uploaded: 2, skipped: 0, mounted: 0 }, resumed: [], restarted: [], uploadedBefore: 0, attempt: Context.current().info.attempt, durationMs: 1 };
      },
      checkImage: async (input: { ref: string; digest: string }) => {
        this.calls.push({ op: 'check', ref: `${input.ref}@${input.digest}`, at: Date.now() });
        if (this.down.has(hostOf(input.ref))) throw ApplicationFailure.retryable(`registry ${hostOf(input.ref)}: connection refused`, 'RegistryUnreachable');
        if (!this.held.has(`${input.ref}@${input.digest}`)) throw ApplicationFailure.nonRetryable(`${input.ref}@${input.digest} not found`, 'ImageNotFound');
        return { pinned: `${input.ref}@${input.digest}`, digest: input.digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1 };
      },
      resolveImage: async (input: { ref: string }) => {
        const digest = fakeDigest(input.ref);
        return { ref: input.ref, pinned: pinned(input.ref), digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1 };
      },
    };
  }
}

export interface Fleet {
  client: Client;
  /** The registries the replicate step copies into. */
  registries: FakeRegistries;
  taskQueue: string;
  clusters: Record<string, FakeCluster>;
  info: ClusterInfo[];
  /** While set, planning (the hub's preparation) waits for it to resolve. */
  planGate: Promise<void> | undefined;
  /** Stops every worker of the fleet (or of one cluster) and waits for them. */
  stop(): Promise<void>;
  stopCluster(name: string): Promise<void>;
  startCluster(name: string): Promise<void>;
  /** Starts a delivery through its application's workflow (which takes the lock), as the API does. */
  deliver(request: DeployRequest, opts?: { id?: string; requestedBy?: string; rollbackOf?: string }): Promise<WorkflowHandle>;
  track(namespace: string, name: string): void;
}

const defaultClusters: Omit<ClusterInfo, 'taskQueue'>[] = [
  { name: 'beijing', region: 'cn-north', provider: 'private', labels: { region: 'cn-north', provider: 'private' }, capacity: 2 },
  { name: 'shenzhen', region: 'cn-south', provider: 'private', labels: { region: 'cn-south', provider: 'private' }, capacity: 1 },
  { name: 'cloud-hk', region: 'ap-east', provider: 'public', labels: { region: 'ap-east', provider: 'public' }, capacity: 1 },
];

/** Starts a delivery through its application's workflow, as the API does; returns the delivery's handle. */
export async function deliverVia(client: Client, taskQueue: string, request: DeployRequest, opts: { id?: string; requestedBy?: string; rollbackOf?: string } = {}): Promise<WorkflowHandle> {
  const deliveryId = opts.id ?? `delivery-${randomUUID()}`;
  await startUnderLock(client, taskQueue, { deliveryId, request, requestedBy: opts.requestedBy ?? 'ci-bot', requestHash: 'test', ...(opts.rollbackOf ? { rollbackOf: opts.rollbackOf } : {}) });
  return client.workflow.getHandle(deliveryId);
}

/** More activities for the fleet's workers (the failover tests add the probe and the fleet's hub side). */
export interface FleetExtras {
  cluster?: (name: string) => object;
  hub?: (inventory: Inventory) => object;
}

export async function startFleet(address: string, workflowBundle: WorkflowBundleWithSourceMap, extras: FleetExtras = {}): Promise<Fleet> {
  quietRuntime();
  const run = randomUUID().slice(0, 8);
  const taskQueue = `hub-${run}`;
  const info: ClusterInfo[] = defaultClusters.map((c) => ({ ...c, taskQueue: `cluster-${run}-${c.name}` }));
  const clusters = Object.fromEntries(info.map((c) => [c.name, new FakeCluster(c.name)]));
  const connection = await NativeConnection.connect({ address });
  const inventory: Inventory = {
    registries: [],
    clusters: info.map((c) => ({ name: c.name, region: c.region, provider: c.provider, labels: c.labels, kubeconfig: { path: '/nowhere' }, capacity: c.capacity, taskQueue: c.taskQueue })),
  };
  const fleetRef: { planGate: Promise<void> | undefined } = { planGate: undefined };
  const registries = new FakeRegistries();
  const realHub = createHubActivities({ inventory, resolveDigest: async (ref) => fakeDigest(ref) });
  const hub = {
    describeFleet: realHub.describeFleet,
    prepareDelivery: async (input: Parameters<typeof realHub.prepareDelivery>[0]) => {
      if (fleetRef.planGate) await fleetRef.planGate;
      return realHub.prepareDelivery(input);
    },
  };
  const workers = new Map<string, { worker: Worker; done: Promise<void> }>();
  const launch = async (key: string, worker: Worker) => {
    workers.set(key, { worker, done: worker.run() });
  };
  await launch('hub', await Worker.create({ connection, taskQueue, workflowBundle, activities: { ...hub, ...registries.activities(), ...(extras.hub?.(inventory) ?? {}) }, stickyQueueScheduleToStartTimeout: '2s' }));
  const startCluster = async (name: string) => {
    const c = info.find((x) => x.name === name)!;
    await launch(name, await Worker.create({ connection, taskQueue: c.taskQueue, activities: { ...clusters[name]!.activities(), ...(extras.cluster?.(name) ?? {}) } }));
  };
  for (const c of info) await startCluster(c.name);
  const stopCluster = async (name: string) => {
    const w = workers.get(name);
    if (!w) return;
    workers.delete(name);
    w.worker.shutdown();
    await w.done;
  };
  const client = new Client({ connection: await Connection.connect({ address }) });
  /** Application workflows this fleet started: ended with it, so the next fleet's deliveries do not reach them. */
  const apps = new Set<string>();
  return Object.assign(fleetRef, {
    client,
    registries,
    taskQueue,
    clusters,
    info,
    stopCluster,
    startCluster,
    deliver: (request: DeployRequest, opts: { id?: string; requestedBy?: string; rollbackOf?: string } = {}) => {
      apps.add(applicationWorkflowId(request.app.namespace, request.app.name));
      return deliverVia(client, taskQueue, request, opts);
    },
    /** Remembers an application workflow started another way (through the API), to end it with the fleet. */
    track(namespace: string, name: string) {
      apps.add(applicationWorkflowId(namespace, name));
    },
    async stop() {
      await Promise.all([...apps].map((id) => client.workflow.getHandle(id).terminate('test fleet stopped').catch(() => undefined)));
      for (const key of [...workers.keys()]) await stopCluster(key);
      await client.connection.close();
      await connection.close();
    },
  });
}

/** Polls a query until `pred` holds, or fails with the last value seen. */
export async function eventually<T>(read: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < end) {
    last = await read();
    if (pred(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`condition not met in ${timeoutMs} ms; last value: ${JSON.stringify(last)}`);
}

export type { DeliveryStatus };
