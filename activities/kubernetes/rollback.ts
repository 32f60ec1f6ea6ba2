/**
 * rollbackApp, like `kubectl rollout undo --to-revision`: the pod template of
 * the ReplicaSet that was revision N goes back into the Deployment (server-side
 * apply, field manager `flotilla`); the controller then reuses that ReplicaSet
 * and renumbers it. Without a revision, the Deployment did not exist before
 * the delivery: what Flotilla created is deleted. Repeating either is harmless.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { KubernetesObject, V1Deployment, V1PodTemplateSpec } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ANNOTATION_DELIVERY, LABEL_MANAGED_BY, MANAGED_BY } from '../../model/render.ts';
import { FailureType } from '../../model/reasons.ts';
import type { RollbackInput, RollbackResult } from '../types.ts';
import type { ClusterClients } from './clients.ts';
import { readDeployment, serverSideApply } from './apply.ts';
import {
  describeRef,
  imageOf,
  labelSelector,
  LABEL_POD_TEMPLATE_HASH,
  ownedBy,
  replicaSetHasRevision,
  revisionOf,
} from './deployment.ts';
import { httpStatusOf, kube } from './errors.ts';

function managedByFlotilla(o: { metadata?: { labels?: Record<string, string> } } | undefined): boolean {
  return o?.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY;
}

async function deleteIgnoringMissing(
  c: ClusterClients,
  what: string,
  fn: () => Promise<unknown>,
): Promise<void> {
  try {
    await kube(c.cluster, `delete ${what}`, fn);
  } catch (err) {
    if (httpStatusOf(err) !== 404) throw err;
  }
}

/** Removes the Deployment and Service that Flotilla created (only objects labelled as Flotilla's). */
async function removeApp(c: ClusterClients, input: RollbackInput, log: Logger): Promise<RollbackResult> {
  const { namespace, name } = input;
  const ref = describeRef(namespace, name);
  const d = await readDeployment(c, namespace, name);
  if (d && !managedByFlotilla(d)) {
    throw ApplicationFailure.create({
      type: FailureType.Conflict,
      nonRetryable: true,
      message: `cluster "${c.cluster}": Deployment ${ref} is not managed by Flotilla; refusing to delete it`,
    });
  }
  const by = d?.metadata?.annotations?.[ANNOTATION_DELIVERY];
  if (d && by !== input.deliveryId) {
    // Another delivery has changed it since: it is no longer ours to remove.
    throw ApplicationFailure.create({
      type: FailureType.Conflict,
      nonRetryable: true,
      message: `cluster "${c.cluster}": Deployment ${ref} was last applied by delivery ${by ?? '(none)'}, not ${input.deliveryId}; refusing to delete it`,
    });
  }
  if (d) {
    await deleteIgnoringMissing(c, `Deployment ${ref}`, () =>
      c.apps.deleteNamespacedDeployment({ name, namespace, propagationPolicy: 'Background' }),
    );
  }
  let svc;
  try {
    svc = await kube(c.cluster, `read Service ${ref}`, () =>
      c.core.readNamespacedService({ name, namespace }),
    );
  } catch (err) {
    if (httpStatusOf(err) !== 404) throw err;
  }
  if (svc && managedByFlotilla(svc)) {
    await deleteIgnoringMissing(c, `Service ${ref}`, () =>
      c.core.deleteNamespacedService({ name, namespace }),
    );
  }
  log.info(
    { namespace, name, deployment: Boolean(d), service: Boolean(svc) },
    'removed what the delivery created',
  );
  return { deleted: true };
}

/** The pod template as the ReplicaSet keeps it, without the label the controller adds. */
function templateOf(t: V1PodTemplateSpec): V1PodTemplateSpec {
  const labels = { ...(t.metadata?.labels ?? {}) };
  delete labels[LABEL_POD_TEMPLATE_HASH];
  return {
    metadata: { labels, ...(t.metadata?.annotations ? { annotations: t.metadata.annotations } : {}) },
    spec: t.spec!,
  };
}

/**
 * The Deployment as Flotilla applies it, with `template` in place of the
 * current pod template. A full object, not just the template: server-side
 * apply drops any field the manager owned and leaves out.
 */
function rollbackObject(d: V1Deployment, template: V1PodTemplateSpec, deliveryId: string): KubernetesObject {
  const own = Object.fromEntries(
    Object.entries(d.metadata?.annotations ?? {}).filter(([k]) => k.startsWith('flotilla.dev/')),
  );
  const spec = d.spec!;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: d.metadata!.name!,
      namespace: d.metadata!.namespace!,
      ...(d.metadata?.labels ? { labels: d.metadata.labels } : {}),
      annotations: { ...own, [ANNOTATION_DELIVERY]: deliveryId },
    },
    spec: {
      ...(spec.replicas !== undefined ? { replicas: spec.replicas } : {}),
      selector: spec.selector,
      ...(spec.progressDeadlineSeconds !== undefined
        ? { progressDeadlineSeconds: spec.progressDeadlineSeconds }
        : {}),
      ...(spec.revisionHistoryLimit !== undefined ? { revisionHistoryLimit: spec.revisionHistoryLimit } : {}),
      ...(spec.strategy ? { strategy: spec.strategy } : {}),
      template,
    },
  } as KubernetesObject;
}

export async function rollbackApp(
  c: ClusterClients,
  input: RollbackInput,
  log: Logger,
): Promise<RollbackResult> {
  if (input.toRevision === undefined) return removeApp(c, input, log);
  const { namespace, name, toRevision } = input;
  const ref = describeRef(namespace, name);
  const d = await readDeployment(c, namespace, name);
  if (!d) {
    throw ApplicationFailure.create({
      type: FailureType.NoPreviousRevision,
      nonRetryable: true,
      message: `cluster "${c.cluster}": cannot roll back ${ref} to revision ${toRevision}: the Deployment does not exist`,
    });
  }
  const sets = await kube(c.cluster, `list ReplicaSets of ${ref}`, () =>
    c.apps.listNamespacedReplicaSet({ namespace, labelSelector: labelSelector(d.spec?.selector) }),
  );
  const rs = sets.items.find((s) => ownedBy(s, d) && replicaSetHasRevision(s, toRevision));
  if (!rs?.spec?.template?.spec) {
    const known = sets.items
      .filter((s) => ownedBy(s, d))
      .map((s) => revisionOf(s))
      .filter((r) => r !== undefined)
      .sort((a, b) => a - b);
    throw ApplicationFailure.create({
      type: FailureType.NoPreviousRevision,
      nonRetryable: true,
      message: `cluster "${c.cluster}": ${ref} has no ReplicaSet for revision ${toRevision} (revisions kept: ${known.join(', ') || 'none'})`,
    });
  }
  const applied = (await serverSideApply(
    c,
    rollbackObject(d, templateOf(rs.spec.template), input.deliveryId),
    `Deployment ${ref} (rollback to revision ${toRevision})`,
  )) as V1Deployment;
  const image = imageOf(applied);
  log.info({ namespace, name, toRevision, image, generation: applied.metadata?.generation }, 'rolled back');
  return { deleted: false, generation: applied.metadata?.generation ?? 0, ...(image ? { image } : {}) };
}
