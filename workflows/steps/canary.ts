/**
 * A canary's cluster steps. `canary`: what stands there is recorded, then
 * every object of the new version but the canaried Deployment is applied and
 * the canary objects (the canary Deployment at 0 replicas; for traffic
 * routers, the stable and canary Services or the canary Ingress) are added.
 * `setWeight` / `setCanaryScale`: the cluster's router moves traffic and
 * replicas, and reads them back. `promote`: the new version becomes the
 * stable Deployment (full replicas, waited ready), then the canary objects go
 * and traffic is 100 % on it.
 *
 * A cluster with no stable version yet (the application's first delivery
 * there) has nothing to compare against: it is deployed whole, its weight
 * steps are skipped, and `promote` waits for it to be ready.
 */
import { ApplicationFailure, patched } from '@temporalio/workflow';
import { canaryObjects, canaryTarget, hasStableTrack, RouterKind, routerKind, withStableTrack, type CanaryScale, type CanaryTarget, type TrafficRouting } from '../../model/canary.ts';
import { PlanError, refKey, refOf, type KubeObject, type PlanStep } from '../../model/index.ts';
import type { RunContext } from '../context.ts';
import { observedOf, waitFor } from './wait.ts';

export interface CanaryCluster {
  target: CanaryTarget;
  routing: TrafficRouting;
  /** No stable version stood there: deployed whole, nothing to split. */
  first: boolean;
  weight: number;
  scale?: CanaryScale;
}

const planFailed = (cluster: string, e: PlanError) =>
  ApplicationFailure.create({ type: 'PlanFailed', nonRetryable: true, message: `cluster "${cluster}": canary: ${e.path.length ? `${e.path.join('.')}: ` : ''}${e.message}` });

/** The target and the routing of a cluster, from its rendered objects (pure: the same on every replay). */
function targetOf(x: RunContext, cluster: string): { target: CanaryTarget; routing: TrafficRouting; added: KubeObject[] } {
  const c = x.request.canary!;
  const p = x.plan().clusters[cluster]!;
  const target = canaryTarget(p.objects, { deployment: c.deployment, service: c.service });
  if (target instanceof PlanError) throw planFailed(cluster, target);
  const routing: TrafficRouting = c.trafficRouting ?? { replicaRatio: {} };
  const added = canaryObjects(target, p.objects, routing);
  if (added instanceof PlanError) throw planFailed(cluster, added);
  return { target, routing, added };
}

const isTarget = (o: { kind: string; metadata?: { name?: string }; name?: string }, t: CanaryTarget) => o.kind === 'Deployment' && (o.metadata?.name ?? o.name) === t.deployment;

export async function canaryStartStep(x: RunContext, cluster: string): Promise<void> {
  const p = x.plan().clusters[cluster]!;
  const { step } = x.acts(cluster);
  const { target, routing, added } = targetOf(x, cluster);
  if (!x.touched.has(cluster)) {
    x.state.setCluster(cluster, 'Applying', 'recording what stands there now');
    const refs = [...p.objects.map(refOf), ...added.map(refOf)];
    const before = await step.captureObjects({ cluster, owner: x.owner, refs, prune: p.prune, adopt: x.request.adopt });
    x.touched.set(cluster, { cluster, wave: p.wave, before });
  }
  const before = x.touched.get(cluster)!.before;
  const stable = before.find((b) => isTarget(b.ref, target));
  if (!stable?.exists) {
    x.canaries.set(cluster, { target, routing, first: true, weight: 100 });
    x.state.setCluster(cluster, 'Applying', `no stable version of ${target.deployment} here yet: deploying ${p.image} whole`);
    const applied = await step.applyObjects({ cluster, owner: x.owner, deliveryId: x.deliveryId, objects: p.objects, adopt: x.request.adopt });
    const waitFor = new Set(p.workloads.map(refKey));
    x.generations.set(cluster, applied.filter((a) => waitFor.has(refKey(a.ref))).map((a) => ({ ref: a.ref, generation: a.generation ?? 0 })));
    return;
  }
  const state = x.canaries.get(cluster) ?? { target, routing, first: false, weight: 0 };
  x.canaries.set(cluster, state);
  // A traffic router's stable Service selects the stable track: a stable version deployed before carries none yet.
  // Labelling its pod template rolls its pods once, same image, before any traffic moves.
  if (routerKind(routing) !== RouterKind.replicaRatio && stable.object && !hasStableTrack(stable.object)) {
    x.state.setCluster(cluster, 'Applying', `labelling the stable pods of ${target.deployment} (flotilla.dev/track: stable), once`);
    const [labelled] = withStableTrack([stable.object], target.deployment);
    const applied = await step.applyObjects({ cluster, owner: x.owner, deliveryId: x.deliveryId, objects: [labelled!], adopt: true });
    await waitFor(x, cluster, applied.map((a) => ({ ref: a.ref, generation: a.generation ?? 0 })));
  }
  const rest = p.objects.filter((o) => !isTarget(o, target));
  x.state.setCluster(cluster, 'Applying', `canary of ${target.deployment} beside the stable version: ${rest.length} objects and ${added.length} canary objects`);
  await step.applyObjects({ cluster, owner: x.owner, deliveryId: x.deliveryId, objects: [...rest, ...added], adopt: x.request.adopt });
  x.state.setCluster(cluster, 'Progressing', `canary ready to take traffic (0 %)`, { weight: 0 });
}

async function route(x: RunContext, cluster: string, c: CanaryCluster, weight: number): Promise<void> {
  x.state.setCluster(cluster, 'Progressing', `setting the canary's weight to ${weight} %`);
  const got = await x.acts(cluster).wait.setTrafficWeight({
    cluster,
    owner: x.owner,
    deliveryId: x.deliveryId,
    routing: c.routing,
    target: c.target,
    weight,
    ...(c.target.replicas !== undefined ? { totalReplicas: c.target.replicas } : {}),
    ...(c.scale ? { canaryScale: c.scale } : {}),
    timeoutMs: x.timing.rolloutMs,
  });
  c.weight = weight;
  // The status shows the step's weight; what the router reads back (a replica ratio is a whole number of pods) is in the message.
  x.state.setCluster(cluster, 'Progressing', `canary at ${weight} % (${got.router} reads ${got.weight} %: stable ${got.stable.readyReplicas}/${got.stable.replicas} ready, canary ${got.canary.readyReplicas}/${got.canary.replicas} ready)`, {
    weight,
    readyReplicas: got.stable.readyReplicas + got.canary.readyReplicas,
  });
}

export async function setWeightStep(x: RunContext, cluster: string, step: PlanStep): Promise<void> {
  if (step.kind !== 'setWeight') throw new Error(`setWeight module got ${step.kind}`);
  const c = x.canaries.get(cluster);
  if (!c || c.first || x.canary.full) return;
  await route(x, cluster, c, step.weight);
}

export async function setCanaryScaleStep(x: RunContext, cluster: string, step: PlanStep): Promise<void> {
  if (step.kind !== 'setCanaryScale') throw new Error(`setCanaryScale module got ${step.kind}`);
  const c = x.canaries.get(cluster);
  if (!c || c.first || x.canary.full) return;
  c.scale = step.replicas !== undefined ? { replicas: step.replicas } : step.weight !== undefined ? { weight: step.weight } : { matchTrafficWeight: true };
  await route(x, cluster, c, c.weight);
}

export async function promoteStep(x: RunContext, cluster: string): Promise<void> {
  const p = x.plan().clusters[cluster]!;
  const c = x.canaries.get(cluster);
  const { step } = x.acts(cluster);
  if (!c) throw new Error(`promote before the canary step in ${cluster}`);
  if (c.first) {
    x.state.setCluster(cluster, 'Progressing', 'waiting for the rollout');
  } else {
    // The canary must still be whole when the wave is promoted: one that turned unready during a pause is a failure.
    const now = await x.acts(cluster).read.readTrafficWeight({ cluster, owner: x.owner, deliveryId: x.deliveryId, routing: c.routing, target: c.target });
    if (now.canary.replicas > 0 && now.canary.readyReplicas < now.canary.replicas) {
      throw ApplicationFailure.create({
        type: 'RolloutFailed',
        nonRetryable: true,
        message: `cluster "${cluster}": the canary ${c.target.canaryDeployment} has ${now.canary.readyReplicas}/${now.canary.replicas} ready replicas at promotion; not promoted`,
      });
    }
    const next = p.objects.find((o) => isTarget(o, c.target))!;
    const [labelled] = routerKind(c.routing) === RouterKind.replicaRatio ? [next] : withStableTrack([next], c.target.deployment);
    x.state.setCluster(cluster, 'Applying', `promoting: ${c.target.deployment} becomes ${p.image}`);
    const applied = await step.applyObjects({ cluster, owner: x.owner, deliveryId: x.deliveryId, objects: [labelled!], adopt: x.request.adopt });
    x.generations.set(cluster, applied.map((a) => ({ ref: a.ref, generation: a.generation ?? 0 })));
  }
  const states = await waitFor(x, cluster, x.generations.get(cluster) ?? []);
  if (!c.first) {
    x.state.setCluster(cluster, 'Progressing', 'removing the canary: traffic 100 % on the promoted version');
    await x.acts(cluster).wait.removeCanary({
      cluster,
      owner: x.owner,
      deliveryId: x.deliveryId,
      routing: c.routing,
      target: c.target,
      ...(c.target.replicas !== undefined ? { totalReplicas: c.target.replicas } : {}),
      timeoutMs: x.timing.rolloutMs,
    });
  }
  const main = states.find((w) => w.ref.kind === 'Deployment');
  x.state.setCluster(cluster, 'Healthy', `promoted: ${main ? `${main.readyReplicas ?? 0}/${main.replicas ?? 0} ready` : 'applied'}`, {
    weight: 100,
    ...(main ? { readyReplicas: main.readyReplicas ?? 0 } : {}),
    // What the promoted Deployment runs, as its wait saw it ready: the conclusion need not read it back again.
    ...(main && patched('canary-promote-observed') ? { observed: observedOf(main, x.state.now()) } : {}),
    ...(main?.revision !== undefined ? { revision: main.revision } : {}),
  });
  delete x.state.cluster(cluster).failureType;
}
