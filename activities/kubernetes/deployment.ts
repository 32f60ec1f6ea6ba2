/** Small readers of Deployments and ReplicaSets, shared by apply, rollout and rollback. */
import type {
  V1Deployment,
  V1LabelSelector,
  V1ObjectMeta,
  V1PodTemplateSpec,
  V1ReplicaSet,
} from '@kubernetes/client-node';

export const FIELD_MANAGER = 'flotilla';
export const ANNOTATION_REVISION = 'deployment.kubernetes.io/revision';
export const ANNOTATION_REVISION_HISTORY = 'deployment.kubernetes.io/revision-history';
export const LABEL_POD_TEMPLATE_HASH = 'pod-template-hash';
/**
 * What stood in the cluster before a delivery first applied, recorded on the
 * Deployment by that apply, so a retried apply of the same delivery reports
 * the same "before" as the first attempt did (the revision has moved on since).
 */
export const ANNOTATION_PREVIOUS_REVISION = 'flotilla.dev/previous-revision';
export const ANNOTATION_PREVIOUS_IMAGE = 'flotilla.dev/previous-image';
export const ANNOTATION_CREATED = 'flotilla.dev/created';

export function parseRevision(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

export function revisionOf(obj: { metadata?: V1ObjectMeta }): number | undefined {
  return parseRevision(obj.metadata?.annotations?.[ANNOTATION_REVISION]);
}

/** The app's container: the one named like the Deployment (as model/render.ts names it), else the first. */
export function appContainer(template: V1PodTemplateSpec | undefined, name: string) {
  const containers = template?.spec?.containers ?? [];
  return containers.find((c) => c.name === name) ?? containers[0];
}

export function imageOf(d: V1Deployment): string | undefined {
  return appContainer(d.spec?.template, d.metadata?.name ?? '')?.image;
}

/** "k=v,k2=v2" from matchLabels (Flotilla's selectors use matchLabels only). */
export function labelSelector(sel: V1LabelSelector | undefined, extra: Record<string, string> = {}): string {
  return Object.entries({ ...(sel?.matchLabels ?? {}), ...extra })
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export function ownedBy(rs: V1ReplicaSet, d: V1Deployment): boolean {
  return (rs.metadata?.ownerReferences ?? []).some((o) => o.uid === d.metadata?.uid);
}

/** Whether this ReplicaSet is (or, renumbered by an earlier rollback, was) revision `rev`. */
export function replicaSetHasRevision(rs: V1ReplicaSet, rev: number): boolean {
  if (revisionOf(rs) === rev) return true;
  const history = rs.metadata?.annotations?.[ANNOTATION_REVISION_HISTORY];
  return history ? history.split(',').some((h) => parseRevision(h.trim()) === rev) : false;
}

export function describeRef(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}
