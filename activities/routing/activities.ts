/**
 * The routers' cluster activities: setTrafficWeight, readTrafficWeight, removeCanary.
 * `createRoutingActivities(clients, run)` is spread into each cluster's activities
 * (activities/index.ts), so they run on that cluster's own task queue under the same
 * wrapper as the others (cluster check, cancellation, heartbeats).
 *
 * setTrafficWeight, in this order, so no request ever reaches a side that is not ready:
 *   1. the side that grows is scaled (scale subresource) and waited until all its replicas
 *      are ready (RolloutTimeout after timeoutMs);
 *   2. the router sets the weight;
 *   3. the side that shrinks is scaled down and waited until it has settled;
 *   4. everything is read back from the API server and returned.
 * With replica ratio the scaling is the routing (step 2 is nothing); with a traffic router
 * the stable side keeps its full count and the canary follows the weight or setCanaryScale.
 * Failures: NotFound (non-retryable) for a Deployment, route or canary object that does not
 * exist; InvalidManifest (non-retryable) for a route with nothing to split, a stable
 * Deployment without the stable track, a weight out of range; cluster errors as
 * kubernetes/errors.ts maps them.
 */
import type { Logger } from 'pino';
import { ApplicationFailure } from '@temporalio/common';
import { canaryScale, hasStableTrack, routerKind, RouterKind, weightOf, LABEL_TRACK, Track, type CanaryTarget, type TrafficRouting } from '../../model/canary.ts';
import { describeObject, type Owner } from '../../model/objects.ts';
import { FailureType } from '../../model/reasons.ts';
import type { ClusterClients } from '../kubernetes/clients.ts';
import { readObject } from '../kubernetes/objects.ts';
import { canaryOwned, deleteCanaryObject, deploymentRef, invalid, mustRead, scale, serviceRef, sideOf, waitSettled, type Removal } from './common.ts';
import { gatewayApiRouter } from './gateway-api.ts';
import { istioRouter } from './istio.ts';
import { nginxRouter } from './nginx.ts';
import { replicaRatioRouter } from './replica-ratio.ts';
import type { Router } from './router.ts';
import type { ReadTrafficWeightInput, RemoveCanaryInput, RemoveCanaryResult, RoutingActivities, SetTrafficWeightInput, SideState, TrafficState } from './types.ts';

export const DEFAULT_SIDE_TIMEOUT_MS = 5 * 60_000;

export function routerFor(clients: ClusterClients, owner: Owner, target: CanaryTarget, routing: TrafficRouting): Router {
  const ctx = { clients, owner, target };
  if ('gatewayAPI' in routing) return gatewayApiRouter(ctx, routing.gatewayAPI.httpRoute);
  if ('istio' in routing) return istioRouter(ctx, routing.istio.virtualService, routing.istio.routes);
  if ('nginx' in routing) return nginxRouter(ctx, routing.nginx.ingress);
  return replicaRatioRouter(ctx);
}

export async function readTrafficWeight(c: ClusterClients, input: ReadTrafficWeightInput): Promise<TrafficState> {
  const { target } = input;
  const router = routerFor(c, input.owner, target, input.routing);
  const stable = sideOf(target.deployment, await readObject(c, deploymentRef(target.namespace, target.deployment)));
  const canary = sideOf(target.canaryDeployment, await readObject(c, deploymentRef(target.namespace, target.canaryDeployment)));
  const routes = await router.read();
  const weight =
    router.kind === RouterKind.replicaRatio ? weightOf(stable.readyReplicas, canary.readyReplicas) : routes[0] ? weightOf(routes[0].stable, routes[0].canary) : 0;
  return { router: router.kind, weight, routes, stable, canary };
}

export async function setTrafficWeight(c: ClusterClients, input: SetTrafficWeightInput, log: Logger, progress: (d: unknown) => void = () => undefined): Promise<TrafficState> {
  const { target, weight } = input;
  const ns = target.namespace;
  const stableRef = deploymentRef(ns, target.deployment);
  const canaryRef = deploymentRef(ns, target.canaryDeployment);
  const kind = routerKind(input.routing);
  const total = input.totalReplicas ?? target.replicas;
  if (total === undefined) throw invalid(c, stableRef, 'has no replicas in the rendered objects (an autoscaler owns them?): pass totalReplicas');
  let want: { stable: number; canary: number };
  try {
    want = canaryScale(kind, total, weight, input.canaryScale);
  } catch (err) {
    throw invalid(c, stableRef, `cannot take weight ${weight}: ${(err as Error).message}`);
  }
  const stableNow = await mustRead(c, stableRef);
  const canaryNow = await mustRead(c, canaryRef, 'apply the canary objects (model/canary.ts canaryObjects) before setting a weight');
  if (!canaryOwned(canaryNow, input.owner, target))
    throw ApplicationFailure.create({
      type: FailureType.NotOwned,
      nonRetryable: true,
      message: `cluster "${c.cluster}": ${describeObject(canaryRef)} exists and was not added by a canary of ${target.deployment} for this application`,
    });
  if (kind !== RouterKind.replicaRatio) {
    if (!hasStableTrack(stableNow))
      throw invalid(c, stableRef, `has no ${LABEL_TRACK}: ${Track.stable} on its pod template, so ${target.stableService} would select no pod (render it with withStableTrack)`);
    for (const svc of [target.stableService, target.canaryService]) await mustRead(c, serviceRef(ns, svc), 'it is one of the canary objects (canaryObjects)');
  }
  const router = routerFor(c, input.owner, target, input.routing);
  await router.check(); // before any replica moves
  const timeoutMs = input.timeoutMs ?? DEFAULT_SIDE_TIMEOUT_MS;
  const sides = [
    { name: target.canaryDeployment, now: sideOf(target.canaryDeployment, canaryNow).replicas, want: want.canary },
    { name: target.deployment, now: sideOf(target.deployment, stableNow).replicas, want: want.stable },
  ];
  const report = (step: string) => (s: SideState) => progress({ cluster: c.cluster, step, weight, side: s });
  // 1. What grows (or stays), ready before any traffic moves.
  for (const s of sides.filter((x) => x.want >= x.now)) {
    if (s.want !== s.now) await scale(c, ns, s.name, s.want);
    await waitSettled(c, ns, s.name, s.want, timeoutMs, report('ready'));
  }
  // 2. The route.
  await router.set(weight);
  // 3. What shrinks.
  for (const s of sides.filter((x) => x.want < x.now)) {
    await scale(c, ns, s.name, s.want);
    await waitSettled(c, ns, s.name, s.want, timeoutMs, report('shrink'));
  }
  const state = await readTrafficWeight(c, input);
  log.info({ router: kind, weight, read: state.weight, stable: state.stable, canary: state.canary, routes: state.routes }, 'traffic weight set');
  return state;
}

export async function removeCanary(c: ClusterClients, input: RemoveCanaryInput, log: Logger, progress: (d: unknown) => void = () => undefined): Promise<RemoveCanaryResult> {
  const { target, owner } = input;
  const ns = target.namespace;
  const out: Removal = { removed: [], kept: [] };
  const router = routerFor(c, owner, target, input.routing);
  const total = input.totalReplicas ?? target.replicas;
  const timeoutMs = input.timeoutMs ?? DEFAULT_SIDE_TIMEOUT_MS;
  // 1. The stable side back to its full count, ready, before it takes all the traffic.
  const stable = await readObject(c, deploymentRef(ns, target.deployment));
  if (stable && total !== undefined) {
    if (sideOf(target.deployment, stable).replicas !== total) await scale(c, ns, target.deployment, total);
    await waitSettled(c, ns, target.deployment, total, timeoutMs, (s) => progress({ cluster: c.cluster, step: 'stable', side: s }));
  }
  // 2. All traffic to stable, then 3. the canary pods go, then 4. the route as it was.
  if (await router.changed()) await router.set(0);
  await deleteCanaryObject(c, deploymentRef(ns, target.canaryDeployment), owner, target, out);
  await router.remove(out);
  // 5. The stable and canary Services, once nothing routes to them.
  for (const svc of [target.canaryService, target.stableService]) await deleteCanaryObject(c, serviceRef(ns, svc), owner, target, out);
  const state = await readTrafficWeight(c, input);
  log.info({ router: router.kind, removed: out.removed, kept: out.kept }, 'canary removed');
  return { state, ...out };
}

type Runner = <T>(input: { cluster: string; deliveryId?: string }, activity: string, body: (log: Logger, progress: (d: unknown) => void) => Promise<T>) => Promise<T>;

/** The routers' activities of one cluster, run by that cluster's activity wrapper. */
export function createRoutingActivities(clients: ClusterClients, run: Runner): RoutingActivities {
  return {
    setTrafficWeight: (input) => run(input, 'setTrafficWeight', (log, progress) => setTrafficWeight(clients, input, log, progress)),
    readTrafficWeight: (input) => run(input, 'readTrafficWeight', () => readTrafficWeight(clients, input)),
    removeCanary: (input) => run(input, 'removeCanary', (log, progress) => removeCanary(clients, input, log, progress)),
  };
}
