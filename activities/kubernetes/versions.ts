/**
 * Versions of an application, kept where they apply: every delivery that ends
 * Healthy leaves, in each cluster it ran on, exactly what it rendered there,
 * as a Secret of the application's namespace (gzip, as Helm keeps its
 * releases). The application's workflow keeps only the small index (number,
 * delivery, images); a rollback to version N reads the objects back from each
 * cluster. A bounded number of versions is kept per cluster.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import { ANNOTATION_APP, LABEL_MANAGED_BY, MANAGED_BY, ownerKey, type KubeObject, type Owner } from '../../model/objects.ts';
import { FailureType } from '../../model/reasons.ts';
import type { ClusterClients } from './clients.ts';
import { httpStatusOf, kube } from './errors.ts';
import { ensureNamespace, serverSideApply } from './objects.ts';

export const LABEL_VERSION_OF = 'flotilla.dev/version-of';
export const LABEL_VERSION = 'flotilla.dev/version';
const TYPE = 'flotilla.dev/version';

/** The Secret's name: `flotilla.v<N>.<app>` (names of applications are DNS labels). */
export const versionSecretName = (owner: Owner, version: number) => `flotilla.v${version}.${owner.name}`;

export async function recordVersion(
  c: ClusterClients,
  input: { owner: Owner; version: number; deliveryId: string; objects: KubeObject[]; keep: number },
  log: Logger,
): Promise<void> {
  const { owner, version } = input;
  await ensureNamespace(c, owner.namespace);
  const data = gzipSync(Buffer.from(JSON.stringify(input.objects))).toString('base64');
  await serverSideApply(c, {
    apiVersion: 'v1',
    kind: 'Secret',
    type: TYPE,
    metadata: {
      name: versionSecretName(owner, version),
      namespace: owner.namespace,
      labels: { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_VERSION_OF]: owner.name, [LABEL_VERSION]: String(version) },
      annotations: { [ANNOTATION_APP]: ownerKey(owner), 'flotilla.dev/delivery': input.deliveryId },
    },
    data: { objects: data },
  });
  // Forget versions past the limit: the oldest first.
  const list = await kube(c.cluster, `list versions of ${ownerKey(owner)}`, () =>
    c.rest<{ items: KubeObject[] }>('GET', `/api/v1/namespaces/${encodeURIComponent(owner.namespace)}/secrets`, { query: { labelSelector: `${LABEL_VERSION_OF}=${owner.name}` } }),
  );
  const numbers = list.items.map((s) => Number(s.metadata.labels?.[LABEL_VERSION])).filter((n) => Number.isInteger(n)).sort((a, b) => b - a);
  for (const n of numbers.slice(Math.max(1, input.keep))) {
    try {
      await kube(c.cluster, `delete version ${n}`, () => c.rest('DELETE', `/api/v1/namespaces/${encodeURIComponent(owner.namespace)}/secrets/${encodeURIComponent(versionSecretName(owner, n))}`));
    } catch (err) {
      if (httpStatusOf(err) !== 404) throw err;
    }
  }
  log.info({ owner: ownerKey(owner), version, objects: input.objects.length, kept: Math.min(numbers.length, input.keep) }, 'version recorded');
}

export async function readVersion(c: ClusterClients, input: { owner: Owner; version: number }): Promise<KubeObject[]> {
  const { owner, version } = input;
  let secret: { data?: { objects?: string } } | undefined;
  try {
    secret = await kube(c.cluster, `read version ${version} of ${ownerKey(owner)}`, () =>
      c.rest('GET', `/api/v1/namespaces/${encodeURIComponent(owner.namespace)}/secrets/${encodeURIComponent(versionSecretName(owner, version))}`),
    );
  } catch (err) {
    if (httpStatusOf(err) !== 404) throw err;
  }
  if (!secret?.data?.objects) {
    throw ApplicationFailure.create({
      type: FailureType.NotFound,
      nonRetryable: true,
      message: `cluster "${c.cluster}" keeps no version ${version} of ${ownerKey(owner)} (older versions are forgotten past the history limit)`,
    });
  }
  return JSON.parse(gunzipSync(Buffer.from(secret.data.objects, 'base64')).toString('utf8')) as KubeObject[];
}
