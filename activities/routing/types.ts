/**
 * The contract of the traffic routers' cluster activities (workflows import these types only).
 * Each runs on the cluster's own task queue; `cluster` is checked against the worker's cluster.
 */
import type { CanaryScale, CanaryTarget, RouterKind, TrafficRouting } from '../../model/canary.ts';
import type { Owner } from '../../model/objects.ts';

export interface SetTrafficWeightInput {
  cluster: string;
  owner: Owner;
  deliveryId?: string;
  routing: TrafficRouting;
  target: CanaryTarget;
  /** The canary's share of traffic, 0-100. */
  weight: number;
  /** Replicas of the application in this cluster (default: target.replicas). */
  totalReplicas?: number;
  /** The last setCanaryScale of the canary (traffic routers only; default: match the traffic weight). */
  canaryScale?: CanaryScale;
  /** How long the side that grows may take to be ready (default 5 minutes): then RolloutTimeout. */
  timeoutMs?: number;
}

export interface ReadTrafficWeightInput {
  cluster: string;
  owner: Owner;
  deliveryId?: string;
  routing: TrafficRouting;
  target: CanaryTarget;
}

export interface RemoveCanaryInput extends ReadTrafficWeightInput {
  /** Replicas the stable Deployment gets back (default: target.replicas; left alone when neither is known). */
  totalReplicas?: number;
  timeoutMs?: number;
}

export interface SideState {
  deployment: string;
  exists: boolean;
  replicas: number;
  readyReplicas: number;
}

/** One weighted place of a route (an HTTPRoute rule, a VirtualService http route, an Ingress) as read back. */
export interface RouteWeights {
  name: string;
  stable: number;
  canary: number;
}

/** What a cluster routes, read back from its API server. */
export interface TrafficState {
  router: RouterKind;
  /**
   * The canary's share (0-100): the route weight the API server holds (Gateway API, Istio,
   * NGINX; 0 when the route is not split), or the share of ready replicas (replica ratio).
   */
  weight: number;
  routes: RouteWeights[];
  stable: SideState;
  canary: SideState;
}

export interface RemoveCanaryResult {
  state: TrafficState;
  /** Objects deleted or reverted ("Deployment shop/web-canary", "HTTPRoute shop/web (reverted)"). */
  removed: string[];
  /** Objects left in place, and why (not created by Flotilla for this application). */
  kept: { object: string; reason: string }[];
}

export interface RoutingActivities {
  /** Scales the sides (the growing one first, waited ready), sets the route weight, reads back. Idempotent. */
  setTrafficWeight(input: SetTrafficWeightInput): Promise<TrafficState>;
  readTrafficWeight(input: ReadTrafficWeightInput): Promise<TrafficState>;
  /** 100 % stable, the canary objects deleted, what the router changed reverted. Idempotent. */
  removeCanary(input: RemoveCanaryInput): Promise<RemoveCanaryResult>;
}
