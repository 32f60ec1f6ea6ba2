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
 *   3. the side that shrinks is scaled down and waited until its status counts no more than
 *      the new replicas (its deleted pods have left it, and their Service's ready endpoints);
 *      their termination is not waited for;
 *   4. what the API server holds is returned (the Deployments as the step's watch saw them
 *      settle, the route read back).
 * The waits are on one watch of the namespace's Deployments (common.ts DeploymentWatch),
 * opened at the start of the step: a change is seen within milliseconds, not at a poll.
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
import { describeObject, type KubeObject, type Owner } from '../../model/objects.ts';
import { FailureType } from '../../model/reasons.ts';
import type { ClusterClients } from '../kubernetes/clients.ts';
import { readObject } from '../kubernetes/objects.ts';
import { canaryOwned, deleteCanaryObject, deploymentRef, DeploymentWatch, invalid, mustRead, notFound, scale, serviceRef, settled, sideOf, waitSettled, type Removal } from './common.ts';
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
  const [stable, canary] = await Promise.all([readObject(c, deploymentRef(target.namespace, target.deployment)), readObject(c, deploymentRef(target.namespace, target.canaryDeployment))]);
  return trafficState(routerFor(c, input.owner, target, input.routing), target, stable, canary);
}

/** What a cluster routes, from its two Deployments as read (or watched) and the router's own read of its route. */
async function trafficState(router: Router, target: CanaryTarget, stableObject: KubeObject | undefined, canaryObject: KubeObject | undefined): Promise<TrafficState> {
  const stable = sideOf(target.deployment, stableObject);
  const canary = sideOf(target.canaryDeployment, canaryObject);
  const routes = router.kind === RouterKind.replicaRatio ? [{ name: `Service ${target.service}`, stable: stable.readyReplicas, canary: canary.readyReplicas }] : await router.read();
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
  // One watch on the namespace's Deployments serves the reads and every wait of this step.
  const deployments = await DeploymentWatch.open(c, ns);
  try {
    const stableNow = deployments.get(target.deployment);
    if (!stableNow) throw notFound(c, stableRef, '');
    const canaryNow = deployments.get(target.canaryDeployment);
    if (!canaryNow) throw notFound(c, canaryRef, 'apply the canary objects (model/canary.ts canaryObjects) before setting a weight');
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
    // 1. What grows (or stays), ready before any traffic moves: every replica ready and available, as
    //    Argo Rollouts waits for its canary ReplicaSet before a step is done.
    for (const s of sides.filter((x) => x.want >= x.now)) {
      if (s.want !== s.now) await scale(c, ns, s.name, s.want);
      await waitSettled(deployments, s.name, s.want, timeoutMs, report('ready'));
    }
    // 2. The route.
    await router.set(weight);
    // 3. What shrinks: until its status counts `want` replicas. A pod being deleted leaves that count (and its
    //    Service's ready endpoints) as soon as the ReplicaSet controller deletes it, so this is the moment its
    //    traffic moved; its pods' termination is not waited for (Argo Rollouts does not wait for it either).
    for (const s of sides.filter((x) => x.want < x.now)) {
      await scale(c, ns, s.name, s.want);
      await waitSettled(deployments, s.name, s.want, timeoutMs, report('shrink'));
    }
    // 4. Read back: the Deployments as the watch last saw them (each settled above), the route from the API server.
    const state = await trafficState(router, target, deployments.get(target.deployment), deployments.get(target.canaryDeployment));
    log.info({ router: kind, weight, read: state.weight, stable: state.stable, canary: state.canary, routes: state.routes }, 'traffic weight set');
    return state;
  } finally {
    deployments.close();
  }
}

export async function removeCanary(c: ClusterClients, input: RemoveCanaryInput, log: Logger, progress: (d: unknown) => void = () => undefined): Promise<RemoveCanaryResult> {
  const { target, owner } = input;
  const ns = target.namespace;
  const out: Removal = { removed: [], kept: [] };
  const router = routerFor(c, owner, target, input.routing);
  const total = input.totalReplicas ?? target.replicas;
  const timeoutMs = input.timeoutMs ?? DEFAULT_SIDE_TIMEOUT_MS;
  // 1. The stable side back to its full count, ready, before it takes all the traffic (after a promotion it
  //    already is: one read, no watch).
  const stable = await readObject(c, deploymentRef(ns, target.deployment));
  if (stable && total !== undefined && !settled(stable, total)) {
    const deployments = await DeploymentWatch.open(c, ns);
    try {
      if (sideOf(target.deployment, deployments.get(target.deployment)).replicas !== total) await scale(c, ns, target.deployment, total);
      await waitSettled(deployments, target.deployment, total, timeoutMs, (s) => progress({ cluster: c.cluster, step: 'stable', side: s }));
    } finally {
      deployments.close();
    }
  }
  // 2. All traffic to stable, then 3. the canary pods go, then 4. the route as it was.
  if (await router.changed()) await router.set(0);
  await deleteCanaryObject(c, deploymentRef(ns, target.canaryDeployment), owner, target, out);
  await router.remove(out);
  // 5. The stable and canary Services, once nothing routes to them (both at once; reported in this order).
  const services = [target.canaryService, target.stableService].map(() => ({ removed: [], kept: [] }) as Removal);
  await Promise.all([target.canaryService, target.stableService].map((svc, i) => deleteCanaryObject(c, serviceRef(ns, svc), owner, target, services[i]!)));
  for (const r of services) {
    out.removed.push(...r.removed);
    out.kept.push(...r.kept);
  }
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
