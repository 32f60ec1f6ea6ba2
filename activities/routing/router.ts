/**
 * The one small interface every router implements (one file each beside this one).
 * The activities (activities.ts) scale the stable and canary Deployments around it: the
 * side that grows first (waited ready), then `set`, then the side that shrinks.
 */
import type { CanaryTarget, RouterKind } from '../../model/canary.ts';
import type { Owner } from '../../model/objects.ts';
import type { ClusterClients } from '../kubernetes/clients.ts';
import type { Removal } from './common.ts';
import type { RouteWeights } from './types.ts';

export interface RouterContext {
  clients: ClusterClients;
  owner: Owner;
  target: CanaryTarget;
}

export interface Router {
  readonly kind: RouterKind;
  /** Refuses (NotFound, InvalidManifest) a route that does not exist or has nothing to split; changes nothing. */
  check(): Promise<void>;
  /** Sends `weight` % of the traffic to the canary (what the API server holds after it). Idempotent. */
  set(weight: number): Promise<void>;
  /** The weights as the API server holds them ([] when the route is not split). */
  read(): Promise<RouteWeights[]>;
  /** Whether the router has changed anything in the cluster (so `remove` has something to revert). */
  changed(): Promise<boolean>;
  /** Reverts what `set` changed and deletes what it added; the canary Deployment and Services are the activity's. */
  remove(out: Removal): Promise<void>;
}
