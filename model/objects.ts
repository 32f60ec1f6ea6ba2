/**
 * Kubernetes objects as the engine moves them: rendered on the hub, applied,
 * captured and restored in each cluster. Pure: references, ownership, what a
 * captured object keeps for a faithful restore, and the order of applying.
 */

/** Any Kubernetes object (what the hub renders and a cluster applies). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

/** The application an object belongs to. */
export interface Owner {
  namespace: string;
  name: string;
}

export const MANAGED_BY = 'flotilla';
export const FIELD_MANAGER = 'flotilla';
export const LABEL_APP = 'app.kubernetes.io/name';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
/** `<namespace>/<name>` of the application that created the object. */
export const ANNOTATION_APP = 'flotilla.dev/app';
/** The delivery that last applied the object. */
export const ANNOTATION_DELIVERY = 'flotilla.dev/delivery';
export const ANNOTATION_CLUSTER = 'flotilla.dev/cluster';

export const ownerKey = (o: Owner): string => `${o.namespace}/${o.name}`;

export function refOf(o: KubeObject): ObjectRef {
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    name: o.metadata.name,
    ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}),
  };
}

/** "Deployment shop/web" for messages. */
export function describeObject(r: ObjectRef): string {
  return `${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}`;
}

/** A key that tells objects apart: group/kind/namespace/name (the version does not make another object). */
export function refKey(r: ObjectRef): string {
  const group = r.apiVersion.includes('/') ? r.apiVersion.split('/')[0] : '';
  return `${group}/${r.kind}/${r.namespace ?? ''}/${r.name}`;
}

export const Ownership = {
  /** Created by Flotilla for this application. */
  ours: 'ours',
  /** Created by Flotilla for another application. */
  otherApp: 'other-app',
  /** Not created by Flotilla. */
  foreign: 'foreign',
} as const;
export type Ownership = (typeof Ownership)[keyof typeof Ownership];

interface MetaLike {
  metadata?: {
    labels?: Record<string, string> | undefined;
    annotations?: Record<string, string> | undefined;
    managedFields?: { manager?: string | undefined; subresource?: string | undefined }[] | undefined;
  };
}

export function ownershipOf(o: MetaLike, owner: Owner): Ownership {
  if (o.metadata?.labels?.[LABEL_MANAGED_BY] !== MANAGED_BY) return Ownership.foreign;
  return o.metadata?.annotations?.[ANNOTATION_APP] === ownerKey(owner) ? Ownership.ours : Ownership.otherApp;
}

/**
 * Who manages an object's desired state: its field managers, without those that
 * only write its status (controllers reporting on it), flotilla's own last.
 */
export function managersOf(o: MetaLike): string[] {
  const names = (o.metadata?.managedFields ?? [])
    .filter((f) => f.subresource !== 'status')
    .map((f) => f.manager ?? '')
    .filter((m) => m !== '');
  return [...new Set(names)].sort((a, b) => Number(a === FIELD_MANAGER) - Number(b === FIELD_MANAGER) || (a < b ? -1 : a > b ? 1 : 0));
}

/** What the cluster's controllers keep in metadata that a restore must not send back. */
const volatileMetadata = ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'selfLink', 'deletionTimestamp', 'deletionGracePeriodSeconds'];
/** Annotations a controller writes (the Deployment's revision counter). */
const controllerAnnotations = ['deployment.kubernetes.io/revision'];

/**
 * The object as it stood, fit to be applied again: without status and the
 * fields the API server and controllers own. Everything a user or an earlier
 * apply set (spec, replicas, labels, annotations, ports, selectors) is kept.
 */
export function restorable(o: KubeObject): KubeObject {
  const copy = JSON.parse(JSON.stringify(o)) as KubeObject;
  delete copy.status;
  for (const k of volatileMetadata) delete copy.metadata[k];
  const ann = copy.metadata.annotations;
  if (ann) {
    for (const k of controllerAnnotations) delete ann[k];
    if (Object.keys(ann).length === 0) delete copy.metadata.annotations;
  }
  return copy;
}

/**
 * The order objects are applied in: what others depend on first (namespaces,
 * definitions, then configuration, then what serves, then workloads). Stable
 * within a rank. Deletion goes the other way round.
 */
const rank: Record<string, number> = {
  Namespace: 0,
  CustomResourceDefinition: 1,
  ServiceAccount: 2,
  Role: 2,
  ClusterRole: 2,
  RoleBinding: 3,
  ClusterRoleBinding: 3,
  ConfigMap: 4,
  Secret: 4,
  PersistentVolumeClaim: 5,
  Service: 6,
  Deployment: 7,
  StatefulSet: 7,
  DaemonSet: 7,
  Job: 7,
  CronJob: 7,
  HorizontalPodAutoscaler: 8,
  PodDisruptionBudget: 8,
  Ingress: 8,
};
const rankOf = (kind: string): number => rank[kind] ?? 9;

export function applyOrder<T extends { kind: string }>(objects: readonly T[]): T[] {
  return objects
    .map((o, i) => ({ o, i }))
    .sort((a, b) => rankOf(a.o.kind) - rankOf(b.o.kind) || a.i - b.i)
    .map(({ o }) => o);
}

/** Kinds with a readiness of their own that a delivery waits for. */
export const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'ReplicaSet']);
/** Built-in kinds with no notion of readiness: they count once applied. */
export const NO_READINESS_KINDS = new Set([
  'Namespace', 'ConfigMap', 'Secret', 'Service', 'ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding',
  'Ingress', 'IngressClass', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'NetworkPolicy', 'PersistentVolumeClaim',
  'PersistentVolume', 'CronJob', 'LimitRange', 'ResourceQuota', 'PriorityClass', 'StorageClass', 'CustomResourceDefinition',
  'Endpoints', 'EndpointSlice', 'ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration', 'Lease', 'PodTemplate',
]);
export const isWorkload = (r: ObjectRef): boolean => WORKLOAD_KINDS.has(r.kind);
/** Objects a rollout waits for: workloads, and anything else that may carry a Ready condition (most custom resources). */
export const needsWait = (r: ObjectRef): boolean => WORKLOAD_KINDS.has(r.kind) || !NO_READINESS_KINDS.has(r.kind);

/** What stood in a cluster before a delivery changed it: one entry per object the delivery applies. */
export interface CapturedObject {
  ref: ObjectRef;
  exists: boolean;
  /** The object as it stood, `restorable()` (present when it existed). */
  object?: KubeObject;
  ownership?: Ownership;
  managers?: string[];
}
