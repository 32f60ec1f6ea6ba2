/**
 * The hook through which deliveries in flight hear the fleet monitor's verdict on a cluster.
 *
 * The monitor (when failover is enabled) signals every running delivery `clusterVerdict` when it
 * declares a cluster failed, and again when the cluster is healthy. A delivery then stops waiting
 * for a failed cluster: the step running there is cancelled (and waited for, as any cancelled step)
 * and the cluster counts as Unreachable at once, so the delivery's `onFailure` applies now instead of
 * after `unreachableTimeout`; a step about to start there fails the same way. A later `retry` of that
 * cluster fails again until the monitor says it is healthy.
 *
 * Two lines elsewhere: the delivery calls `watchClusterVerdicts(x)` once, and the interpreter runs each
 * cluster step through `guardCluster(x, cluster, ...)`. No new commands are issued unless a verdict
 * arrives, so recorded histories replay as before.
 */
import { ApplicationFailure, CancellationScope, defineSignal, setHandler } from '@temporalio/workflow';
import { FailureType } from '../model/reasons.ts';

export interface ClusterVerdict {
  cluster: string;
  failed: boolean;
  reason: string;
}
export const clusterVerdictSignal = defineSignal<[ClusterVerdict]>('clusterVerdict');

interface Verdicts {
  failed: Map<string, string>;
  running: Map<string, Set<CancellationScope>>;
}
const byRun = new WeakMap<object, Verdicts>();

/** Installs the signal handler for one delivery run (`key`: its RunContext). */
export function watchClusterVerdicts(key: object): void {
  const v: Verdicts = { failed: new Map(), running: new Map() };
  byRun.set(key, v);
  setHandler(clusterVerdictSignal, (s: ClusterVerdict) => {
    if (!s.failed) {
      v.failed.delete(s.cluster);
      return;
    }
    v.failed.set(s.cluster, s.reason);
    for (const scope of v.running.get(s.cluster) ?? []) scope.cancel();
  });
}

const declared = (cluster: string, reason: string) =>
  ApplicationFailure.create({
    type: FailureType.ClusterUnreachable,
    nonRetryable: true,
    message: `the fleet monitor declared ${cluster} failed (${reason}): not waiting for it`,
  });

/** Runs one cluster step; fails it as unreachable at once if the monitor has declared the cluster failed. */
export async function guardCluster<T>(key: object, cluster: string, fn: () => Promise<T>): Promise<T> {
  const v = byRun.get(key);
  if (!v) return fn();
  const before = v.failed.get(cluster);
  if (before !== undefined) throw declared(cluster, before);
  const scope = new CancellationScope();
  const set = v.running.get(cluster) ?? new Set<CancellationScope>();
  v.running.set(cluster, set);
  set.add(scope);
  try {
    return await scope.run(fn);
  } catch (err) {
    const reason = v.failed.get(cluster);
    // Stopped by a verdict (not by an abort or rollback of the delivery, which cancel the outer scope): however the
    // step ended (cancelled, or timed out while its cancellation was waited for), the cluster was declared failed.
    if (scope.consideredCancelled && reason !== undefined && !CancellationScope.current().consideredCancelled) throw declared(cluster, reason);
    throw err;
  } finally {
    set.delete(scope);
  }
}
