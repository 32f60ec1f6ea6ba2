/** Traffic routers for canaries (README.md beside this file): one file per router, the activities over them. */
export { createRoutingActivities, readTrafficWeight, removeCanary, routerFor, setTrafficWeight, DEFAULT_SIDE_TIMEOUT_MS } from './activities.ts';
export type { Router, RouterContext } from './router.ts';
export type {
  ReadTrafficWeightInput,
  RemoveCanaryInput,
  RemoveCanaryResult,
  RouteWeights,
  RoutingActivities,
  SetTrafficWeightInput,
  SideState,
  TrafficState,
} from './types.ts';
