/**
 * A bundle: the objects a source rendered (manifests, a Kustomize overlay, a
 * Helm chart), made ready for each cluster. Pure: it checks the objects,
 * divides every replicated workload's replicas across the clusters (an
 * autoscaler's bounds instead, where one targets the workload: Flotilla then
 * stops owning `spec.replicas`), applies each cluster's overrides (images, env,
 * JSON patches), pins every container image by digest, marks every object as
 * this application's, and tells which objects a rollout waits for and which an
 * earlier delivery left that this one no longer has (to prune).
 */
import { applyPatch } from 'rfc6902';
import type { AppSpec, Override } from './app.ts';
import { withRegistry } from './image.ts';
import type { ClusterInfo } from './inventory.ts';
import {
  ANNOTATION_APP,
  ANNOTATION_CLUSTER,
  ANNOTATION_DELIVERY,
  describeObject,
  LABEL_MANAGED_BY,
  MANAGED_BY,
  ownerKey,
  refKey,
  refOf,
  type KubeObject,
  type ObjectRef,
} from './objects.ts';
import { divideReplicas, pinImage, PlanError, replicasByCluster, type ImageDigests } from './plan.ts';
import { secretValues, SECRET_BY_REFERENCE } from './source.ts';

/** Built-in kinds that live outside namespaces. */
export const CLUSTER_SCOPED = new Set([
  'Namespace',
  'Node',
  'PersistentVolume',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
  'PriorityClass',
  'StorageClass',
  'IngressClass',
  'RuntimeClass',
  'CSIDriver',
  'APIService',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
  'GatewayClass',
]);

/** Workloads whose replicas Flotilla divides across clusters. */
export const REPLICATED_KINDS = new Set(['Deployment', 'StatefulSet', 'ReplicaSet']);

const get = (o: unknown, path: (string | number)[]): unknown => path.reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string | number, unknown>)[k] : undefined), o);
const clone = <T>(o: T): T => JSON.parse(JSON.stringify(o)) as T;

/** Which kinds the bundle's own definitions declare cluster-scoped. */
function crdScopes(objects: readonly KubeObject[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const o of objects) {
    if (o.kind !== 'CustomResourceDefinition') continue;
    const kind = get(o, ['spec', 'names', 'kind']);
    const scope = get(o, ['spec', 'scope']);
    if (typeof kind === 'string' && typeof scope === 'string') out.set(kind, scope);
  }
  return out;
}

/**
 * Checks the rendered objects: every namespaced one goes into the
 * application's namespace (filled in where missing; another namespace is
 * refused), no two objects are the same, and a Namespace object can only be the
 * application's own.
 */
export function normalizeBundle(objects: readonly KubeObject[], app: Pick<AppSpec, 'namespace'>): KubeObject[] {
  const scopes = crdScopes(objects);
  const seen = new Set<string>();
  return objects.map((o0, i) => {
    const o = clone(o0);
    const clusterScoped = CLUSTER_SCOPED.has(o.kind) || scopes.get(o.kind) === 'Cluster';
    if (clusterScoped) {
      delete o.metadata.namespace;
      if (o.kind === 'Namespace' && o.metadata.name !== app.namespace) {
        throw new PlanError(`object ${i + 1} is Namespace ${o.metadata.name}: an application may create only its own namespace (${app.namespace})`, ['source', i]);
      }
    } else if (o.metadata.namespace && o.metadata.namespace !== app.namespace) {
      throw new PlanError(`${o.kind} ${o.metadata.namespace}/${o.metadata.name} is outside the application's namespace ${app.namespace}`, ['source', i, 'metadata', 'namespace']);
    } else o.metadata.namespace = app.namespace;
    const carried = secretValues(o);
    if (carried) throw new PlanError(`Secret ${o.metadata.name} (object ${i + 1}) carries ${carried}: ${SECRET_BY_REFERENCE}`, ['source', i, carried]);
    const key = refKey(refOf(o));
    if (seen.has(key)) throw new PlanError(`${describeObject(refOf(o))} is in the bundle twice`, ['source', i]);
    seen.add(key);
    return o;
  });
}

const workloadKey = (kind: string, name: string) => `${kind}/${name}`;

/** The workloads an autoscaler targets: `Kind/name` -> the HPA's name. */
export function autoscaled(objects: readonly KubeObject[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const o of objects) {
    if (o.kind !== 'HorizontalPodAutoscaler') continue;
    const t = get(o, ['spec', 'scaleTargetRef']) as { kind?: string; name?: string } | undefined;
    if (t?.kind && t.name) out.set(workloadKey(t.kind, t.name), o.metadata.name);
  }
  return out;
}

/** Replicas of each replicated workload per cluster, and HPA bounds per cluster, for the whole fleet. */
export interface ReplicaPlan {
  workloads: Record<string, Record<string, number>>;
  autoscalers: Record<string, Record<string, { min: number; max: number }>>;
}

/**
 * Every replicated workload without an autoscaler gets its total (`app.replicas`
 * if given, else its own `spec.replicas`, else 1) divided or duplicated; an
 * autoscaler's minReplicas and maxReplicas are divided the same way instead
 * (at least one each; max never below min).
 */
export function planBundleReplicas(objects: readonly KubeObject[], app: AppSpec, placed: readonly ClusterInfo[], overrides: Record<string, Override>): ReplicaPlan {
  const hpas = autoscaled(objects);
  const plan: ReplicaPlan = { workloads: {}, autoscalers: {} };
  objects.forEach((o, i) => {
    if (REPLICATED_KINDS.has(o.kind) && !hpas.has(workloadKey(o.kind, o.metadata.name))) {
      const own = get(o, ['spec', 'replicas']);
      const total = app.replicas ?? (typeof own === 'number' ? own : 1);
      plan.workloads[workloadKey(o.kind, o.metadata.name)] = replicasByCluster(total, placed, overrides, app.distribution, app.replicas !== undefined ? ['replicas'] : ['source', i, 'spec', 'replicas']);
    }
    if (o.kind === 'HorizontalPodAutoscaler') {
      const min = Number(get(o, ['spec', 'minReplicas']) ?? 1);
      const max = Number(get(o, ['spec', 'maxReplicas']) ?? min);
      const bounds: Record<string, { min: number; max: number }> = {};
      if (app.distribution === 'duplicated') for (const c of placed) bounds[c.name] = { min, max };
      else {
        const weights = placed.map((c) => c.capacity);
        const mins = divideReplicas(Math.max(min, placed.length), weights);
        const maxs = divideReplicas(Math.max(max, placed.length), weights);
        placed.forEach((c, k) => (bounds[c.name] = { min: mins[k]!, max: Math.max(maxs[k]!, mins[k]!) }));
      }
      plan.autoscalers[o.metadata.name] = bounds;
    }
  });
  return plan;
}

/** Where pod templates live in each kind of workload. */
export function podSpecPaths(o: KubeObject): (string | number)[][] {
  switch (o.kind) {
    case 'Pod':
      return [['spec']];
    case 'CronJob':
      return [['spec', 'jobTemplate', 'spec', 'template', 'spec']];
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'Job':
    case 'ReplicationController':
      return [['spec', 'template', 'spec']];
    default:
      return [];
  }
}

interface Container {
  name?: string;
  image?: string;
  env?: { name: string; value?: string }[];
}

function containersOf(o: KubeObject): Container[] {
  return podSpecPaths(o).flatMap((p) => {
    const spec = get(o, p) as { containers?: Container[]; initContainers?: Container[] } | undefined;
    return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
  });
}

/** The image a user would call the bundle's: the first workload's first (non-init) container's. */
export function mainImage(objects: readonly KubeObject[]): string {
  for (const o of objects) {
    for (const p of podSpecPaths(o)) {
      const image = (get(o, [...p, 'containers', 0, 'image']) as string | undefined);
      if (image) return image;
    }
  }
  return '';
}

/** Every container image the bundle's pods run, once each. */
export function imagesIn(objects: readonly KubeObject[]): string[] {
  return [...new Set(objects.flatMap((o) => containersOf(o).map((c) => c.image).filter((i): i is string => typeof i === 'string')))];
}

/** One cluster's copy: replicas and bounds, container images and env, then JSON patches. */
export function customizeForCluster(base: readonly KubeObject[], cluster: string, override: Override, plan: ReplicaPlan): KubeObject[] {
  const hpas = autoscaled(base);
  const objects = base.map((o) => clone(o));
  for (const o of objects) {
    const key = workloadKey(o.kind, o.metadata.name);
    const spec = o.spec as Record<string, unknown> | undefined;
    if (spec && REPLICATED_KINDS.has(o.kind)) {
      // An autoscaled workload's replicas are the autoscaler's: leave them out, so applying never fights it.
      if (hpas.has(key)) delete spec.replicas;
      else if (plan.workloads[key]?.[cluster] !== undefined) spec.replicas = plan.workloads[key]![cluster];
    }
    if (spec && o.kind === 'HorizontalPodAutoscaler' && plan.autoscalers[o.metadata.name]?.[cluster]) {
      const b = plan.autoscalers[o.metadata.name]![cluster]!;
      spec.minReplicas = b.min;
      spec.maxReplicas = b.max;
    }
    for (const c of containersOf(o)) {
      if (c.name && override.images?.[c.name]) c.image = override.images[c.name];
      if (override.env) {
        const env = (c.env ??= []);
        for (const [name, value] of Object.entries(override.env)) {
          const at = env.findIndex((e) => e.name === name);
          if (at >= 0) env[at] = { name, value };
          else env.push({ name, value });
        }
      }
    }
  }
  (override.patches ?? []).forEach((p, i) => {
    const path = ['overrides', cluster, 'patches', i];
    const target = objects.find((o) => o.kind === p.target.kind && o.metadata.name === p.target.name && (!p.target.apiVersion || o.apiVersion === p.target.apiVersion));
    if (!target) throw new PlanError(`patch target ${p.target.kind} ${p.target.name} is not in the bundle`, [...path, 'target']);
    const op = { op: p.op, path: p.path, ...('value' in p ? { value: p.value } : {}), ...(p.from ? { from: p.from } : {}) } as Parameters<typeof applyPatch>[1][number];
    const [err] = applyPatch(target, [op]);
    if (err) throw new PlanError(`patch ${p.op} ${p.path} on ${p.target.kind} ${p.target.name} failed: ${err.message ?? err.name}`, [...path, 'path']);
  });
  return objects;
}

/** Pins every container image by digest, then moves it to the cluster's mirror if it has one. */
export function pinBundle(objects: KubeObject[], digests: ImageDigests, registry: string | undefined, cluster: string): void {
  for (const o of objects) {
    for (const c of containersOf(o)) {
      if (!c.image) continue;
      const pinned = pinImage(c.image, digests);
      try {
        c.image = registry ? withRegistry(pinned, registry) : pinned;
      } catch (e) {
        throw new PlanError((e as Error).message, ['overrides', cluster, 'registry']);
      }
    }
  }
}

/** Marks each object as this application's, applied by this delivery, for this cluster. */
export function markBundle(objects: KubeObject[], owner: { namespace: string; name: string }, deliveryId: string, cluster: string): void {
  for (const o of objects) {
    o.metadata.labels = { ...(o.metadata.labels ?? {}), [LABEL_MANAGED_BY]: MANAGED_BY };
    o.metadata.annotations = { ...(o.metadata.annotations ?? {}), [ANNOTATION_APP]: ownerKey(owner), [ANNOTATION_DELIVERY]: deliveryId, [ANNOTATION_CLUSTER]: cluster };
  }
}

/** What an earlier delivery left in a cluster that this one no longer has: to prune (reverse apply order). */
export function toPrune(previous: readonly ObjectRef[] | undefined, next: readonly KubeObject[]): ObjectRef[] {
  const keep = new Set(next.map((o) => refKey(refOf(o))));
  return (previous ?? []).filter((r) => !keep.has(refKey(r))).reverse();
}
