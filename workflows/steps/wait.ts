/** The wait step: until every applied workload of the cluster is ready (watched, heartbeating). */
import type { WorkloadState } from '../../activities/types.ts';
import type { ObservedWorkload } from '../../model/index.ts';
import type { RunContext } from '../context.ts';
import { ROLLOUT_TIMEOUT_MARGIN_MS } from '../options.ts';

export function observedOf(w: WorkloadState | undefined, at: string): ObservedWorkload {
  if (!w || !w.exists) return { exists: false, at };
  return {
    exists: true,
    ...(w.image !== undefined ? { image: w.image } : {}),
    ...(w.replicas !== undefined ? { replicas: w.replicas } : {}),
    ...(w.readyReplicas !== undefined ? { readyReplicas: w.readyReplicas } : {}),
    ...(w.updatedReplicas !== undefined ? { updatedReplicas: w.updatedReplicas } : {}),
    ...(w.revision !== undefined ? { revision: w.revision } : {}),
    ...(w.deliveryId !== undefined ? { deliveryId: w.deliveryId } : {}),
    at,
  };
}

/** Waits for `workloads` in `cluster`; the grace clocks start no earlier than now. */
export async function waitFor(x: RunContext, cluster: string, workloads: { ref: WorkloadState['ref']; generation: number }[]): Promise<WorkloadState[]> {
  if (workloads.length === 0) return [];
  return x.acts(cluster).wait.waitReady({
    cluster,
    workloads,
    // The Deployment's own progress deadline (rolloutTimeout) fires first and says why.
    timeoutMs: x.timing.rolloutMs + ROLLOUT_TIMEOUT_MARGIN_MS,
    graces: x.timing.graces,
    notBefore: new Date().getTime(), // the workflow's clock: deterministic
  });
}

export async function waitStep(x: RunContext, cluster: string): Promise<void> {
  x.state.setCluster(cluster, 'Progressing', 'waiting for the rollout');
  const states = await waitFor(x, cluster, x.generations.get(cluster) ?? []);
  const main = states.find((w) => w.ref.kind === 'Deployment');
  const at = x.state.now();
  x.state.setCluster(cluster, 'Healthy', main ? `${main.readyReplicas ?? 0}/${main.replicas ?? 0} ready` : 'applied', {
    ...(main ? { readyReplicas: main.readyReplicas ?? 0, observed: observedOf(main, at) } : {}),
    ...(main?.revision !== undefined ? { revision: main.revision } : {}),
  });
  delete x.state.cluster(cluster).failureType;
}
