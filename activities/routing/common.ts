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

/** Whether a Deployment has settled at `want` replicas, all of them ready and of its current template. */
function settled(d: KubeObject, want: number): boolean {
  const status = (d.status ?? {}) as DeploymentStatus;
  const generation = d.metadata.generation as number | undefined;
  return (
    (status.observedGeneration ?? 0) >= (generation ?? 0) &&
    (status.replicas ?? 0) === want &&
    (status.readyReplicas ?? 0) === want &&
    (status.updatedReplicas ?? 0) === want
  );
}

const sleep = (ms: number) =>
  new Promise<void>((resolve, reject) => {
    const signal = currentCallSignal();
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(t);
      reject(signal!.reason as Error);
    }
    signal?.addEventListener('abort', abort, { once: true });
  });

/**
 * Waits until the Deployment runs exactly `want` ready replicas of its current template
 * (polling; the activity heartbeats meanwhile). RolloutTimeout (non-retryable: the
 * workflow decides whether to abort) after `timeoutMs`, naming what it saw.
 */
export async function waitSettled(c: ClusterClients, namespace: string, name: string, want: number, timeoutMs: number, progress: (s: SideState) => void = () => undefined): Promise<SideState> {
  const ref = deploymentRef(namespace, name);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const d = await mustRead(c, ref);
    const side = sideOf(name, d);
    progress(side);
    if (settled(d, want)) return side;
    if (Date.now() > end) {
      throw ApplicationFailure.create({
        type: FailureType.RolloutTimeout,
        nonRetryable: true,
        message: `cluster "${c.cluster}": ${describeObject(ref)} has ${side.readyReplicas} of ${want} replicas ready after ${Math.round(timeoutMs / 1000)}s`,
        details: [{ cluster: c.cluster, ref, want, ready: side.readyReplicas }],
      });
    }
    await sleep(250);
  }
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
