/**
 * What the routers share: reading an object that must exist, writing a route back whole
 * (server-side apply as `flotilla`, guarded by its resourceVersion), remembering what a
 * router changed in an annotation on the object itself, scaling through the scale
 * subresource, deleting only the application's own objects, and waiting for a side.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { CanaryTarget } from '../../model/canary.ts';
import { ANNOTATION_ROUTING_ORIGINAL, LABEL_CANARY_OF } from '../../model/canary.ts';
import { describeObject, FIELD_MANAGER, Ownership, ownershipOf, restorable, type KubeObject, type ObjectRef, type Owner } from '../../model/objects.ts';
import { FailureType } from '../../model/reasons.ts';
import { currentCallSignal, type ClusterClients } from '../kubernetes/clients.ts';
import { httpStatusOf, kube } from '../kubernetes/errors.ts';
import { objectPath, readObject, serverSideApply } from '../kubernetes/objects.ts';
import { Reflector } from '../kubernetes/watch.ts';
import type { SideState } from './types.ts';

export const deploymentRef = (namespace: string, name: string): ObjectRef => ({ apiVersion: 'apps/v1', kind: 'Deployment', name, namespace });
export const serviceRef = (namespace: string, name: string): ObjectRef => ({ apiVersion: 'v1', kind: 'Service', name, namespace });

export function notFound(c: ClusterClients, ref: ObjectRef, hint: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.NotFound,
    nonRetryable: true,
    message: `cluster "${c.cluster}": ${describeObject(ref)} does not exist${hint ? `: ${hint}` : ''}`,
    details: [{ cluster: c.cluster, ref }],
  });
}

export function invalid(c: ClusterClients, ref: ObjectRef, message: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.InvalidManifest,
    nonRetryable: true,
    message: `cluster "${c.cluster}": ${describeObject(ref)} ${message}`,
    details: [{ cluster: c.cluster, ref }],
  });
}

export async function mustRead(c: ClusterClients, ref: ObjectRef, hint = ''): Promise<KubeObject> {
  const o = await readObject(c, ref);
  if (!o) throw notFound(c, ref, hint);
  return o;
}

/**
 * Writes an object back whole after changing it: server-side apply of everything it holds
 * (so fields `flotilla` applied before are never dropped), with the resourceVersion read,
 * so a change made in between is a Conflict (retried) and not overwritten.
 */
export async function writeBack(c: ClusterClients, read: KubeObject, change: (o: KubeObject) => void): Promise<KubeObject> {
  const o = restorable(read);
  change(o);
  o.metadata.resourceVersion = read.metadata.resourceVersion;
  return serverSideApply(c, o);
}

/** What a router saved on an object before its first change, or undefined when it has not changed it. */
export function savedOriginal<T>(o: KubeObject): T | undefined {
  const raw = o.metadata.annotations?.[ANNOTATION_ROUTING_ORIGINAL];
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw) as T;
  } catch {
    return undefined;
  }
}

export function saveOriginal(o: KubeObject, value: unknown): void {
  o.metadata.annotations = { ...(o.metadata.annotations ?? {}), [ANNOTATION_ROUTING_ORIGINAL]: JSON.stringify(value) };
}

export function dropOriginal(o: KubeObject): void {
  if (!o.metadata.annotations) return;
  delete o.metadata.annotations[ANNOTATION_ROUTING_ORIGINAL];
  if (Object.keys(o.metadata.annotations).length === 0) delete o.metadata.annotations;
}

/** Sets a Deployment's replicas through its scale subresource (server-side apply: no other field is touched). */
export async function scale(c: ClusterClients, namespace: string, name: string, replicas: number): Promise<void> {
  const ref = deploymentRef(namespace, name);
  const path = `${await objectPath(c, ref)}/scale`;
  await kube(c.cluster, `scale ${describeObject(ref)} to ${replicas}`, () =>
    c.rest('PATCH', path, {
      query: { fieldManager: FIELD_MANAGER, force: 'true' },
      body: { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name, namespace }, spec: { replicas } },
      contentType: 'application/apply-patch+yaml',
    }),
  );
}

interface DeploymentStatus {
  observedGeneration?: number;
  replicas?: number;
  readyReplicas?: number;
  updatedReplicas?: number;
}

export function sideOf(name: string, d: KubeObject | undefined): SideState {
  const spec = (d?.spec ?? {}) as { replicas?: number };
  const status = (d?.status ?? {}) as DeploymentStatus;
  return { deployment: name, exists: d !== undefined, replicas: spec.replicas ?? 0, readyReplicas: status.readyReplicas ?? 0 };
}

/**
 * Whether a Deployment has settled at `want` replicas, all of them ready and of its current
 * template: its spec asks for `want` (a watched copy from before our scale does not count)
 * and the controller has observed that spec.
 */
export function settled(d: KubeObject, want: number): boolean {
  const status = (d.status ?? {}) as DeploymentStatus;
  const generation = d.metadata.generation as number | undefined;
  return (
    ((d.spec ?? {}) as { replicas?: number }).replicas === want &&
    (status.observedGeneration ?? 0) >= (generation ?? 0) &&
    (status.replicas ?? 0) === want &&
    (status.readyReplicas ?? 0) === want &&
    (status.updatedReplicas ?? 0) === want
  );
}

/**
 * The Deployments of one namespace as the API server holds them, kept current by a watch
 * (kubernetes/watch.ts: list, then watch from that version), for the waits of one activity:
 * a side that settles is seen within milliseconds of the controller's status update, not at
 * the next poll. Stopped by `close()` or when the activity is cancelled.
 */
export class DeploymentWatch {
  readonly #c: ClusterClients;
  readonly #namespace: string;
  readonly #reflector: Reflector<KubeObject>;
  readonly #stop: AbortController;
  readonly #waiters = new Set<() => void>();

  private constructor(c: ClusterClients, namespace: string) {
    this.#c = c;
    this.#namespace = namespace;
    this.#stop = new AbortController();
    const call = currentCallSignal();
    const signal = call ? AbortSignal.any([call, this.#stop.signal]) : this.#stop.signal;
    this.#reflector = new Reflector<KubeObject>(c, `/apis/apps/v1/namespaces/${encodeURIComponent(namespace)}/deployments`, { watchSeconds: 60 }, () => this.#changed(), signal);
  }

  /** Lists the namespace's Deployments (errors reach the caller) and keeps watching them. */
  static async open(c: ClusterClients, namespace: string): Promise<DeploymentWatch> {
    const w = new DeploymentWatch(c, namespace);
    await w.#reflector.start();
    return w;
  }

  /** The Deployment as last seen (a list item: no apiVersion/kind of its own, so they are set here). */
  get(name: string): KubeObject | undefined {
    const d = this.#reflector.items.get(name);
    return d ? { ...d, apiVersion: 'apps/v1', kind: 'Deployment' } : undefined;
  }

  #changed(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  /**
   * Resolves once `done` holds for the Deployment `name` (undefined while it does not exist);
   * RolloutTimeout (non-retryable: the workflow decides) after `timeoutMs`, naming what it saw.
   * Rejects with the activity's cancellation at once.
   */
  until(name: string, done: (d: KubeObject | undefined) => boolean, timeoutMs: number, describe: (d: KubeObject | undefined) => string, progress: (d: KubeObject | undefined) => void = () => undefined): Promise<KubeObject | undefined> {
    const signal = currentCallSignal();
    return new Promise((resolve, reject) => {
      const finish = (fn: () => void) => {
        this.#waiters.delete(check);
        clearTimeout(timer);
        signal?.removeEventListener('abort', aborted);
        fn();
      };
      const check = () => {
        const d = this.get(name);
        progress(d);
        if (done(d)) finish(() => resolve(d));
      };
      const aborted = () => finish(() => reject(signal!.reason as Error));
      const timer = setTimeout(() => {
        const ref = deploymentRef(this.#namespace, name);
        finish(() =>
          reject(
            ApplicationFailure.create({
              type: FailureType.RolloutTimeout,
              nonRetryable: true,
              message: `cluster "${this.#c.cluster}": ${describeObject(ref)} ${describe(this.get(name))} after ${Math.round(timeoutMs / 1000)}s`,
              details: [{ cluster: this.#c.cluster, ref }],
            }),
          ),
        );
      }, timeoutMs);
      if (signal?.aborted) return aborted();
      signal?.addEventListener('abort', aborted, { once: true });
      this.#waiters.add(check);
      check();
    });
  }

  close(): void {
    this.#stop.abort();
  }
}

/**
 * Waits until the Deployment runs exactly `want` ready replicas of its current template, as
 * its status says (a pod being deleted no longer counts in it, nor is it a ready endpoint):
 * watched, the activity heartbeating meanwhile. RolloutTimeout after `timeoutMs`.
 */
export async function waitSettled(w: DeploymentWatch, name: string, want: number, timeoutMs: number, progress: (s: SideState) => void = () => undefined): Promise<SideState> {
  const d = await w.until(
    name,
    (o) => o !== undefined && settled(o, want),
    timeoutMs,
    (o) => (o ? `has ${sideOf(name, o).readyReplicas} of ${want} replicas ready` : 'does not exist'),
    (o) => progress(sideOf(name, o)),
  );
  return sideOf(name, d);
}

/** Whether an object is one a canary of `target` added for `owner` (Flotilla made it for this application, for this Deployment). */
export function canaryOwned(o: KubeObject, owner: Owner, target: CanaryTarget): boolean {
  return ownershipOf(o, owner) === Ownership.ours && o.metadata.labels?.[LABEL_CANARY_OF] === target.deployment;
}

export interface Removal {
  removed: string[];
  kept: { object: string; reason: string }[];
}

/** Deletes an object a canary added (absent: nothing to do; not the canary's: kept, and said why). */
export async function deleteCanaryObject(c: ClusterClients, ref: ObjectRef, owner: Owner, target: CanaryTarget, out: Removal): Promise<void> {
  const now = await readObject(c, ref);
  if (!now) return;
  if (!canaryOwned(now, owner, target)) {
    out.kept.push({ object: describeObject(ref), reason: `not added by a canary of ${target.deployment} for this application` });
    return;
  }
  const path = await objectPath(c, ref);
  try {
    await kube(c.cluster, `delete ${describeObject(ref)}`, () => c.rest('DELETE', path, { query: { propagationPolicy: 'Background' } }));
  } catch (err) {
    if (httpStatusOf(err) !== 404) throw err;
  }
  out.removed.push(describeObject(ref));
}
