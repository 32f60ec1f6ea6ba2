/**
 * Objects in one cluster, generically: read exactly (raw JSON, nothing
 * dropped), check who owns them, server-side apply them as `flotilla`, capture
 * what stood before a change, restore it, dry-run them. The cluster side of
 * the step engine knows nothing of Flotilla's application schema: it applies
 * whatever objects the hub rendered.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import {
  ANNOTATION_APP,
  ANNOTATION_DELIVERY,
  applyOrder,
  describeObject,
  FIELD_MANAGER,
  managersOf,
  ownerKey,
  Ownership,
  ownershipOf,
  refOf,
  restorable,
  type CapturedObject,
  type KubeObject,
  type ObjectRef,
  type Owner,
} from '../../model/objects.ts';
import { FailureType } from '../../model/reasons.ts';
import type { ClusterClients } from './clients.ts';
import { httpStatusOf, kube, type KubeFailureDetails } from './errors.ts';

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
}
/** Discovery answers per client and API version; a kind not found is looked up again (a definition may be new). */
const discovery = new WeakMap<ClusterClients, Map<string, ApiResource[]>>();

async function resourceOf(c: ClusterClients, apiVersion: string, kind: string): Promise<ApiResource | undefined> {
  let cache = discovery.get(c);
  if (!cache) discovery.set(c, (cache = new Map()));
  const cached = cache.get(apiVersion)?.find((x) => x.kind === kind);
  if (cached) return cached;
  const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  let list: { resources?: ApiResource[] };
  try {
    list = await kube(c.cluster, `discover ${apiVersion}`, () => c.rest<{ resources?: ApiResource[] }>('GET', path));
  } catch (err) {
    if (httpStatusOf(err) === 404) return undefined; // the group/version is not served
    throw err;
  }
  const resources = (list.resources ?? []).filter((x) => !x.name.includes('/')); // not subresources
  cache.set(apiVersion, resources);
  return resources.find((x) => x.kind === kind);
}

/** The REST path of an object (or of its collection), by discovery (cached per client). */
export async function objectPath(c: ClusterClients, r: ObjectRef, collection = false): Promise<string> {
  const resource = await resourceOf(c, r.apiVersion, r.kind);
  if (!resource) {
    throw ApplicationFailure.create({
      type: FailureType.InvalidManifest,
      nonRetryable: true,
      message: `cluster "${c.cluster}": the API server serves no ${r.kind} in ${r.apiVersion}`,
      details: [{ cluster: c.cluster, ref: r }],
    });
  }
  const base = r.apiVersion.includes('/') ? `/apis/${r.apiVersion}` : `/api/${r.apiVersion}`;
  const ns = resource.namespaced ? `/namespaces/${encodeURIComponent(r.namespace ?? 'default')}` : '';
  return `${base}${ns}/${resource.name}${collection ? '' : `/${encodeURIComponent(r.name)}`}`;
}

/** The object as the API server holds it (exact JSON), or undefined. */
export async function readObject(c: ClusterClients, r: ObjectRef): Promise<KubeObject | undefined> {
  const path = await objectPath(c, r);
  try {
    return await kube(c.cluster, `read ${describeObject(r)}`, () => c.rest<KubeObject>('GET', path));
  } catch (err) {
    if (httpStatusOf(err) === 404) return undefined;
    throw err;
  }
}

export interface ApplyOptions {
  dryRun?: boolean;
}

/** Server-side apply of one object with field manager `flotilla` (force: Flotilla owns what it renders). */
export async function serverSideApply(c: ClusterClients, o: KubeObject, opts: ApplyOptions = {}): Promise<KubeObject> {
  const r = refOf(o);
  const path = await objectPath(c, r);
  return kube(c.cluster, `${opts.dryRun ? 'dry-run ' : ''}apply ${describeObject(r)}`, () =>
    c.rest<KubeObject>('PATCH', path, {
      query: { fieldManager: FIELD_MANAGER, force: 'true', ...(opts.dryRun ? { dryRun: 'All' } : {}) },
      body: o,
      contentType: 'application/apply-patch+yaml',
    }),
  );
}

/** Namespaces Flotilla never writes into. */
export function isProtectedNamespace(ns: string, extra: readonly string[]): boolean {
  return ns.startsWith('kube-') || extra.includes(ns);
}

export function refuseProtected(c: ClusterClients, objects: readonly { metadata: { namespace?: string } }[], protectedNamespaces: readonly string[]): void {
  for (const o of objects) {
    const ns = o.metadata.namespace;
    if (ns && isProtectedNamespace(ns, protectedNamespaces)) {
      throw ApplicationFailure.create({
        type: FailureType.ProtectedNamespace,
        nonRetryable: true,
        message: `cluster "${c.cluster}": Flotilla does not write into namespace ${ns} (namespaces starting with kube- and ${protectedNamespaces.join(', ') || 'no others'} are protected)`,
        details: [{ cluster: c.cluster, namespace: ns }],
      });
    }
  }
}

/** Creates a namespace when it is missing; an existing one is left as it is. */
export async function ensureNamespace(c: ClusterClients, namespace: string): Promise<void> {
  const ref: ObjectRef = { apiVersion: 'v1', kind: 'Namespace', name: namespace };
  if (await readObject(c, ref)) return;
  await serverSideApply(c, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
}

function notOwned(c: ClusterClients, r: ObjectRef, existing: KubeObject, owner: Owner): ApplicationFailure {
  const ownership = ownershipOf(existing, owner);
  const managers = managersOf(existing);
  const by =
    ownership === Ownership.otherApp
      ? `belongs to Flotilla application ${existing.metadata.annotations?.[ANNOTATION_APP]}`
      : `was not created by Flotilla (managed by ${managers.join(', ') || 'nobody recorded'})`;
  return ApplicationFailure.create({
    type: FailureType.NotOwned,
    nonRetryable: true,
    message: `cluster "${c.cluster}": ${describeObject(r)} exists and ${by}; it is not overwritten unless the delivery says adopt: true (role sre)`,
    details: [{ cluster: c.cluster, ref: r, ownership, managers }],
  });
}

/** The API group of a reference's apiVersion ('' for the core group). */
function groupOf(apiVersion: string): string {
  return apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
}

/** Whether a CustomResourceDefinition among `refs` defines the group of `ref` (its name is `<plural>.<group>`). */
export function definedAlongside(ref: ObjectRef, refs: readonly ObjectRef[]): boolean {
  const group = groupOf(ref.apiVersion);
  return group !== '' && refs.some((r) => r.kind === 'CustomResourceDefinition' && r.name.endsWith(`.${group}`));
}

function notServed(err: unknown): boolean {
  return err instanceof ApplicationFailure && err.type === FailureType.InvalidManifest && /serves no/.test(err.message);
}

/**
 * Reads an object; a custom resource whose definition comes in the same
 * bundle and is not served yet does not exist yet.
 */
async function readPending(c: ClusterClients, ref: ObjectRef, bundle: readonly ObjectRef[]): Promise<KubeObject | undefined | 'pending'> {
  try {
    return await readObject(c, ref);
  } catch (err) {
    if (notServed(err) && definedAlongside(ref, bundle)) return 'pending';
    throw err;
  }
}

/**
 * What stands now for each object: exactly (restorable form), with its owner.
 * An object that is not this application's is refused unless `adopt`.
 * `prune` lists objects the delivery will delete: those of this application
 * are captured too (a rollback puts them back); anything else there is left
 * out, since the delivery will not touch it.
 */
export async function captureObjects(
  c: ClusterClients,
  input: { refs: ObjectRef[]; prune?: ObjectRef[]; owner: Owner; adopt: boolean },
): Promise<CapturedObject[]> {
  const out: CapturedObject[] = [];
  for (const ref of input.refs) {
    const existing = await readPending(c, ref, input.refs);
    if (!existing || existing === 'pending') {
      out.push({ ref, exists: false });
      continue;
    }
    const ownership = ownershipOf(existing, input.owner);
    if (ownership !== Ownership.ours && !input.adopt) throw notOwned(c, ref, existing, input.owner);
    out.push({ ref, exists: true, object: restorable(existing), ownership, managers: managersOf(existing) });
  }
  for (const ref of input.prune ?? []) {
    let existing: KubeObject | undefined;
    try {
      existing = await readObject(c, ref);
    } catch (err) {
      if (notServed(err)) continue; // its definition is gone: so is the object
      throw err;
    }
    if (!existing || ownershipOf(existing, input.owner) !== Ownership.ours) continue;
    out.push({ ref, exists: true, object: restorable(existing), ownership: Ownership.ours, managers: managersOf(existing) });
  }
  return out;
}

export interface AppliedObject {
  ref: ObjectRef;
  generation?: number;
  created: boolean;
}

/**
 * Applies the objects in dependency order. Re-checks ownership right before
 * each write (defence in depth: the hub checked at planning, time has passed).
 * Calls `progress` after each object so the activity can heartbeat.
 */
export async function applyObjects(
  c: ClusterClients,
  input: { objects: KubeObject[]; owner: Owner; adopt: boolean; protectedNamespaces: readonly string[] },
  log: Logger,
  progress: (done: number) => void = () => undefined,
): Promise<AppliedObject[]> {
  refuseProtected(c, input.objects, input.protectedNamespaces);
  const namespaces = [...new Set(input.objects.map((o) => o.metadata.namespace).filter((n): n is string => Boolean(n)))];
  for (const ns of namespaces) await ensureNamespace(c, ns);
  const out: AppliedObject[] = [];
  for (const o of applyOrder(input.objects)) {
    const ref = refOf(o);
    const existing = await readObject(c, ref);
    if (existing && ownershipOf(existing, input.owner) !== Ownership.ours && !input.adopt) throw notOwned(c, ref, existing, input.owner);
    const applied = await serverSideApply(c, o);
    const generation = applied.metadata.generation as number | undefined;
    out.push({ ref, ...(generation !== undefined ? { generation } : {}), created: !existing });
    // A custom resource can be applied only once its definition is established: wait for that here.
    if (o.kind === 'CustomResourceDefinition') await established(c, o.metadata.name);
    progress(out.length);
  }
  log.info({ objects: out.map((a) => describeObject(a.ref)), owner: ownerKey(input.owner) }, 'applied');
  return out;
}

/** Waits until a CustomResourceDefinition is Established (its API is served), at most `timeoutMs`. */
export async function established(c: ClusterClients, name: string, timeoutMs = 30_000): Promise<void> {
  const ref: ObjectRef = { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name };
  const end = Date.now() + timeoutMs;
  for (;;) {
    const crd = await readObject(c, ref);
    const conditions = ((crd?.status as { conditions?: { type: string; status: string; message?: string }[] } | undefined)?.conditions ?? []);
    if (conditions.some((x) => x.type === 'Established' && x.status === 'True')) return;
    const names = conditions.find((x) => x.type === 'NamesAccepted' && x.status === 'False');
    if (names) throw ApplicationFailure.create({ type: FailureType.InvalidManifest, nonRetryable: true, message: `cluster "${c.cluster}": CustomResourceDefinition ${name} is not accepted: ${names.message ?? ''}` });
    if (Date.now() > end) throw ApplicationFailure.create({ type: FailureType.ClusterUnreachable, message: `cluster "${c.cluster}": CustomResourceDefinition ${name} not established after ${Math.round(timeoutMs / 1000)}s` });
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Deletes the application's objects the new version no longer has; an object not created by Flotilla for it is kept. */
export async function pruneObjects(
  c: ClusterClients,
  input: { owner: Owner; refs: ObjectRef[] },
  log: Logger,
): Promise<{ removed: ObjectRef[]; kept: { ref: ObjectRef; reason: string }[] }> {
  const removed: ObjectRef[] = [];
  const kept: { ref: ObjectRef; reason: string }[] = [];
  for (const ref of input.refs) {
    const now = await readObject(c, ref);
    if (!now) continue;
    if (ownershipOf(now, input.owner) !== Ownership.ours) {
      kept.push({ ref, reason: `not created by Flotilla for ${ownerKey(input.owner)} (managed by ${managersOf(now).join(', ') || 'nobody recorded'})` });
      continue;
    }
    const path = await objectPath(c, ref);
    try {
      await kube(c.cluster, `prune ${describeObject(ref)}`, () => c.rest('DELETE', path, { query: { propagationPolicy: 'Background' } }));
    } catch (err) {
      if (httpStatusOf(err) !== 404) throw err;
    }
    removed.push(ref);
  }
  if (removed.length || kept.length) log.info({ pruned: removed.map(describeObject), kept }, 'pruned what the new version no longer has');
  return { removed, kept };
}

export interface RestoreResult {
  applied: AppliedObject[];
  removed: ObjectRef[];
  /** Objects left in place, and why (another delivery applied them since). */
  kept: { ref: ObjectRef; reason: string }[];
}

/**
 * Puts back what stood before (whole objects, applied as they were) and removes
 * what the delivery created: only objects of this application that this
 * delivery applied last. Repeating it changes nothing more.
 */
export async function restoreObjects(
  c: ClusterClients,
  input: { put: KubeObject[]; remove: ObjectRef[]; owner: Owner; deliveryId: string },
  log: Logger,
  progress: (done: number) => void = () => undefined,
): Promise<RestoreResult> {
  const result: RestoreResult = { applied: [], removed: [], kept: [] };
  for (const o of applyOrder(input.put)) {
    const applied = await serverSideApply(c, o);
    const generation = applied.metadata.generation as number | undefined;
    result.applied.push({ ref: refOf(o), ...(generation !== undefined ? { generation } : {}), created: false });
    progress(result.applied.length);
  }
  for (const ref of input.remove) {
    const now = await readObject(c, ref);
    if (!now) continue;
    const ours = ownershipOf(now, input.owner) === Ownership.ours;
    const by = now.metadata.annotations?.[ANNOTATION_DELIVERY];
    if (!ours || by !== input.deliveryId) {
      result.kept.push({ ref, reason: ours ? `last applied by delivery ${by ?? '(none)'}` : 'not created by Flotilla for this application' });
      continue;
    }
    const path = await objectPath(c, ref);
    try {
      await kube(c.cluster, `delete ${describeObject(ref)}`, () => c.rest('DELETE', path, { query: { propagationPolicy: 'Background' } }));
    } catch (err) {
      if (httpStatusOf(err) !== 404) throw err;
    }
    result.removed.push(ref);
    progress(result.applied.length + result.removed.length);
  }
  log.info(
    { restored: result.applied.map((a) => describeObject(a.ref)), removed: result.removed.map(describeObject), kept: result.kept },
    'restored what stood before the delivery',
  );
  return result;
}

export interface ObjectIssue {
  cluster: string;
  object: string;
  /** Invalid: the API server rejects it; NotOwned: it exists and is not this application's. */
  kind: 'Invalid' | 'NotOwned' | 'ProtectedNamespace';
  message: string;
  /** The field the API server names, when it names one. */
  field?: string;
  managers?: string[];
}

/**
 * Preflight of one cluster: every object dry-run against the API server
 * (`dryRun=All`, nothing is stored) and its ownership checked. A namespace that
 * does not exist yet is validated in `default` instead (the schema is the same).
 */
export async function checkObjects(
  c: ClusterClients,
  input: { objects: KubeObject[]; owner: Owner; adopt: boolean; protectedNamespaces: readonly string[] },
): Promise<ObjectIssue[]> {
  const issues: ObjectIssue[] = [];
  const bundle = input.objects.map(refOf);
  for (const o of applyOrder(input.objects)) {
    const ref = refOf(o);
    const what = describeObject(ref);
    const ns = o.metadata.namespace;
    if (ns && isProtectedNamespace(ns, input.protectedNamespaces)) {
      issues.push({ cluster: c.cluster, object: what, kind: 'ProtectedNamespace', message: `namespace ${ns} is protected` });
      continue;
    }
    let existing: KubeObject | undefined;
    try {
      existing = await readObject(c, ref);
    } catch (err) {
      if (!notServed(err)) throw err;
      // A custom resource whose definition comes with it cannot be dry-run before the definition is
      // established; the apply step validates it then. Without its definition it is invalid.
      if (definedAlongside(ref, bundle)) continue;
      issues.push({ cluster: c.cluster, object: what, kind: 'Invalid', message: (err as Error).message });
      continue;
    }
    if (existing && ownershipOf(existing, input.owner) !== Ownership.ours && !input.adopt) {
      // Someone else's object: that is the answer; what a dry-run would say against it (an immutable
      // selector, say) is only a consequence.
      issues.push({ cluster: c.cluster, object: what, kind: 'NotOwned', message: notOwned(c, ref, existing, input.owner).message, managers: managersOf(existing) });
      continue;
    }
    const nsExists = !ns || (await readObject(c, { apiVersion: 'v1', kind: 'Namespace', name: ns })) !== undefined;
    const probe: KubeObject = nsExists ? o : { ...o, metadata: { ...o.metadata, namespace: 'default' } };
    try {
      await serverSideApply(c, probe, { dryRun: true });
    } catch (err) {
      // kube() mapped it: InvalidManifest for 400, 422 and undecodable objects; anything else is not the object's fault.
      if (!(err instanceof ApplicationFailure) || err.type !== FailureType.InvalidManifest) throw err;
      const causes = (err.details?.[0] as KubeFailureDetails | undefined)?.causes ?? [];
      const fields = causes.map((x) => x.split(': ')[0]!).filter((f) => f && !f.includes(' '));
      issues.push({
        cluster: c.cluster,
        object: what,
        kind: 'Invalid',
        message: err.message,
        ...(fields.length ? { field: [...new Set(fields)].join(', ') } : {}),
      });
    }
  }
  return issues;
}
