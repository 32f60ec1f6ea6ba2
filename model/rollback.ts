/**
 * What a rollback must do, computed from what each cluster held before the
 * delivery touched it: put back every object that existed (whole: spec,
 * replicas, labels, ports, selectors), remove only the objects the delivery
 * created, newest wave first. Pure; the workflow runs it, the activities do it.
 */
import { isWorkload, refOf, type CapturedObject, type KubeObject, type ObjectRef } from './objects.ts';

export interface TouchedCluster {
  cluster: string;
  wave: number;
  before: CapturedObject[];
}

export interface ClusterRestore {
  cluster: string;
  /** Objects to apply as they were. */
  put: KubeObject[];
  /** Objects the delivery created, to delete (reverse apply order). */
  remove: ObjectRef[];
  /** Restored workloads whose readiness to wait for. */
  workloads: ObjectRef[];
}

/**
 * Restores grouped by wave, newest wave first; inside a wave in the given
 * cluster order (they run in parallel). Clusters that were never touched do
 * not appear: there is nothing to undo there.
 */
export function rollbackWaves(touched: readonly TouchedCluster[], order: readonly string[]): ClusterRestore[][] {
  const byWave = new Map<number, TouchedCluster[]>();
  for (const t of touched) byWave.set(t.wave, [...(byWave.get(t.wave) ?? []), t]);
  const pos = (c: string) => (order.indexOf(c) < 0 ? Number.MAX_SAFE_INTEGER : order.indexOf(c));
  return [...byWave.keys()]
    .sort((a, b) => b - a)
    .map((w) =>
      byWave
        .get(w)!
        .slice()
        .sort((a, b) => pos(a.cluster) - pos(b.cluster))
        .map(restoreFor),
    );
}

export function restoreFor(t: TouchedCluster): ClusterRestore {
  const put = t.before.filter((b) => b.exists && b.object).map((b) => b.object!);
  const remove = t.before.filter((b) => !b.exists).map((b) => b.ref).reverse();
  return { cluster: t.cluster, put, remove, workloads: put.map(refOf).filter(isWorkload) };
}
