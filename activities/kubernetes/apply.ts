/**
 * applyApp: the Deployment and Service of one application in one cluster, by
 * server-side apply with field manager `flotilla` (force: Flotilla owns what it
 * renders). Safe to retry: the same input gives the same objects, and what
 * stood there before is recorded on the Deployment by the first apply.
 */
import { PatchStrategy, type KubernetesObject, type V1Deployment } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ApplicationFailure } from '@temporalio/common';
import { ANNOTATION_DELIVERY, renderApp } from '../../model/render.ts';
import { FailureType } from '../../model/reasons.ts';
import type { ApplyAppInput, ApplyAppResult } from '../types.ts';
import type { ClusterClients } from './clients.ts';
import {
  ANNOTATION_CREATED,
  ANNOTATION_PREVIOUS_IMAGE,
  ANNOTATION_PREVIOUS_REVISION,
  describeRef,
  FIELD_MANAGER,
  imageOf,
  parseRevision,
  revisionOf,
} from './deployment.ts';
import { httpStatusOf, kube } from './errors.ts';

/** Server-side apply of one object, owned by Flotilla. */
export async function serverSideApply<T extends KubernetesObject>(
  c: ClusterClients,
  obj: T,
  what: string,
): Promise<T> {
  return kube(c.cluster, `apply ${what}`, () =>
    c.objects.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply),
  );
}

/** Reads a Deployment; undefined when there is none. */
export async function readDeployment(
  c: ClusterClients,
  namespace: string,
  name: string,
): Promise<V1Deployment | undefined> {
  try {
    return await kube(c.cluster, `read Deployment ${describeRef(namespace, name)}`, () =>
      c.apps.readNamespacedDeployment({ name, namespace }),
    );
  } catch (err) {
    if (httpStatusOf(err) === 404) return undefined;
    throw err;
  }
}

/** Creates the namespace when it is missing; an existing one is left as it is. */
export async function ensureNamespace(c: ClusterClients, namespace: string): Promise<void> {
  try {
    await kube(c.cluster, `read Namespace ${namespace}`, () => c.core.readNamespace({ name: namespace }));
    return;
  } catch (err) {
    if (httpStatusOf(err) !== 404) throw err;
  }
  await serverSideApply(
    c,
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    `Namespace ${namespace}`,
  );
}

interface Before {
  previousRevision?: number;
  previousImage?: string;
  created: boolean;
}

/** What stood there before this delivery: from the cluster, or from the record of this delivery's first apply. */
async function before(
  c: ClusterClients,
  input: ApplyAppInput,
  existing: V1Deployment | undefined,
): Promise<Before> {
  if (!existing) return { created: true };
  const a = existing.metadata?.annotations ?? {};
  if (a[ANNOTATION_DELIVERY] === input.deliveryId) {
    // A retry of this delivery's apply (or a later step of it): the first apply wrote down what it found.
    const previousRevision = parseRevision(a[ANNOTATION_PREVIOUS_REVISION]);
    return {
      created: a[ANNOTATION_CREATED] === 'true',
      ...(previousRevision !== undefined ? { previousRevision } : {}),
      ...(a[ANNOTATION_PREVIOUS_IMAGE] ? { previousImage: a[ANNOTATION_PREVIOUS_IMAGE] } : {}),
    };
  }
  const previousRevision = revisionOf(existing);
  if (previousRevision === undefined) {
    // The Deployment exists but its controller has not numbered it yet. Reporting "no previous revision"
    // would make a rollback delete it, so let Temporal retry the apply in a moment.
    throw ApplicationFailure.create({
      type: FailureType.Conflict,
      message: `cluster "${c.cluster}": Deployment ${describeRef(input.app.namespace, input.app.name)} has no revision yet; retrying`,
      details: [{ cluster: c.cluster }],
    });
  }
  const previousImage = imageOf(existing);
  return { created: false, previousRevision, ...(previousImage ? { previousImage } : {}) };
}

export async function applyApp(
  c: ClusterClients,
  input: ApplyAppInput,
  log: Logger,
): Promise<ApplyAppResult> {
  const { app, target, deliveryId } = input;
  const ref = describeRef(app.namespace, app.name);
  const { deployment, service } = renderApp(app, target, deliveryId);

  await ensureNamespace(c, app.namespace);
  const existing = await readDeployment(c, app.namespace, app.name);
  const prior = await before(c, input, existing);

  const meta = deployment.metadata as { annotations: Record<string, string> };
  meta.annotations = {
    ...meta.annotations,
    ...(prior.created ? { [ANNOTATION_CREATED]: 'true' } : {}),
    ...(prior.previousRevision !== undefined
      ? { [ANNOTATION_PREVIOUS_REVISION]: String(prior.previousRevision) }
      : {}),
    ...(prior.previousImage ? { [ANNOTATION_PREVIOUS_IMAGE]: prior.previousImage } : {}),
  };

  await serverSideApply(c, service as unknown as KubernetesObject, `Service ${ref}`);
  const applied = (await serverSideApply(
    c,
    deployment as unknown as KubernetesObject,
    `Deployment ${ref}`,
  )) as V1Deployment;
  const generation = applied.metadata?.generation ?? 0;
  log.info(
    {
      namespace: app.namespace,
      name: app.name,
      image: target.image,
      replicas: target.replicas,
      generation,
      ...prior,
    },
    'applied',
  );
  return {
    generation,
    created: prior.created,
    ...(prior.previousRevision !== undefined ? { previousRevision: prior.previousRevision } : {}),
    ...(prior.previousImage ? { previousImage: prior.previousImage } : {}),
  };
}
