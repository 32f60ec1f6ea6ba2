/**
 * Hub activities: what workflows may know of the fleet (no credentials, no
 * paths), and the preparation of a delivery: images resolved to digests once,
 * waves planned, each cluster's objects rendered.
 */
import { ApplicationFailure } from '@temporalio/common';
import { pino, type Logger } from 'pino';
import { toClusterInfo, type ClusterInfo, type Inventory } from '../model/inventory.ts';
import { imagesOf, PlanError, type ImageDigests } from '../model/plan.ts';
import { FailureType } from '../model/reasons.ts';
import { prepareDeploy, type PreparedDelivery } from '../model/steps.ts';
import { Copier, RegistryPool, type RegistryCredentials } from './registry/index.ts';
import type { HubActivities, PrepareInput } from './types.ts';

/** How an image reference becomes its digest (`sha256:...`). */
export type DigestResolver = (ref: string) => Promise<string>;

export function describeFleet(inventory: Inventory): ClusterInfo[] {
  return inventory.clusters.map(toClusterInfo);
}

export async function prepareDelivery(fleet: readonly ClusterInfo[], input: PrepareInput, resolve: DigestResolver): Promise<PreparedDelivery> {
  const { request, deliveryId } = input;
  const digests: ImageDigests = {};
  for (const ref of imagesOf(request.app)) digests[ref] = await resolve(ref);
  try {
    return prepareDeploy(request, fleet, digests, deliveryId);
  } catch (err) {
    if (err instanceof PlanError) {
      throw ApplicationFailure.create({ type: FailureType.PlanFailed, nonRetryable: true, message: err.message, details: [{ path: err.path }] });
    }
    throw err;
  }
}

export interface HubActivityDeps {
  inventory: Inventory;
  /** The worker's registry credentials (none: anonymous). */
  credentials?: RegistryCredentials;
  logger?: Logger;
  /** A registry connection pool to share with the registry activities. */
  pool?: RegistryPool;
  /** How an image tag becomes a digest (the registry, by default; tests may give another). */
  resolveDigest?: DigestResolver;
}

export function createHubActivities(deps: HubActivityDeps): HubActivities {
  const fleet = describeFleet(deps.inventory);
  let resolve = deps.resolveDigest;
  if (!resolve) {
    const log = deps.logger ?? pino({ level: 'silent' });
    const pool = deps.pool ?? new RegistryPool(deps.inventory.registries, deps.credentials ?? {}, log);
    const copier = new Copier(pool, undefined, deps.logger);
    resolve = async (ref) => (await copier.resolveDigest(ref)).digest;
  }
  return {
    async describeFleet() {
      return fleet;
    },
    async prepareDelivery(input) {
      return prepareDelivery(fleet, input, resolve!);
    },
  };
}
