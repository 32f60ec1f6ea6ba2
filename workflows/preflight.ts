/**
 * Preflight: what the API asks before it accepts a delivery. The hub prepares
 * the delivery exactly as the delivery will (digests, plan, rendered objects),
 * then every placed cluster dry-runs its objects against its own API server
 * (`dryRun=All`: nothing is stored) and checks who owns what already stands.
 * Nothing is written anywhere. A cluster that does not answer in time is
 * reported unchecked: the delivery itself will wait for it.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { ClusterActivities, HubActivities, ObjectIssue } from '../activities/types.ts';
import type { DeliveryRequest } from '../model/index.ts';
import { summarizeFailure } from './failures.ts';
import type { PreflightResult } from './messages.ts';
import { clusterCheck } from './options.ts';

export interface PreflightInput {
  request: DeliveryRequest;
  /** The id the delivery will have (rendered into the objects as it will be). */
  deliveryId: string;
}

export async function preflight(input: PreflightInput): Promise<PreflightResult> {
  const hub = proxyActivities<HubActivities>({
    startToCloseTimeout: '20s',
    scheduleToCloseTimeout: '25s',
    retry: { initialInterval: '500ms', maximumInterval: '2s', nonRetryableErrorTypes: ['PlanFailed', 'ImageNotFound', 'RegistryAuthFailed'] },
  });
  const prepared = await hub.prepareDelivery({ request: input.request, deliveryId: input.deliveryId });
  const issues: ObjectIssue[] = [];
  const unchecked: PreflightResult['unchecked'] = [];
  await Promise.all(
    Object.values(prepared.clusters).map(async (c) => {
      const acts = proxyActivities<ClusterActivities>({ ...clusterCheck, taskQueue: c.taskQueue });
      try {
        issues.push(
          ...(await acts.checkObjects({
            cluster: c.cluster,
            owner: { namespace: input.request.app.namespace, name: input.request.app.name },
            objects: c.objects,
            adopt: input.request.adopt,
          })),
        );
      } catch (err) {
        unchecked.push({ cluster: c.cluster, reason: summarizeFailure(err).message });
      }
    }),
  );
  const order = Object.keys(prepared.clusters);
  issues.sort((a, b) => order.indexOf(a.cluster) - order.indexOf(b.cluster));
  return { digests: prepared.digests, issues, unchecked };
}
