/**
 * How a delivery ends, run outside the cancellable scope so that a cancelled
 * delivery is never left half rolled back: the rollback (newest wave first,
 * every touched cluster put back as it stood), the marking of steps an abort
 * stopped, and the read-back of what every cluster really runs.
 */
import { isWorkload, rollbackWaves, Reason, type ObservedWorkload } from '../model/index.ts';
import type { RunContext } from './context.ts';
import { IN_FLIGHT } from './deliveryState.ts';
import { summarizeFailure } from './failures.ts';
import { observedOf, waitFor } from './steps/wait.ts';

/** Restores every touched cluster, newest wave first; returns the clusters that could not be restored. */
export async function rollbackAll(x: RunContext): Promise<string[]> {
  const { state } = x;
  const order = state.status.waves.flat();
  const failures: string[] = [];
  for (const wave of rollbackWaves([...x.touched.values()], order)) {
    await Promise.all(
      wave.map(async (r) => {
        const what = [r.put.length ? `restoring ${r.put.length} objects as they stood` : '', r.remove.length ? `removing ${r.remove.length} it created` : '']
          .filter(Boolean)
          .join(', ');
        state.setCluster(r.cluster, 'RollingBack', what || 'nothing to restore');
        try {
          const res = await x.acts(r.cluster).step.restoreObjects({ cluster: r.cluster, owner: x.owner, deliveryId: x.deliveryId, put: r.put, remove: r.remove });
          const workloads = res.applied.filter((a) => isWorkload(a.ref)).map((a) => ({ ref: a.ref, generation: a.generation ?? 0 }));
          const ready = await waitFor(x, r.cluster, workloads);
          const main = ready.find((w) => w.ref.kind === 'Deployment');
          const kept = res.kept.length ? `; kept ${res.kept.map((k) => `${k.ref.kind} ${k.ref.name} (${k.reason})`).join(', ')}` : '';
          const msg = main ? `back on ${main.image}, ${main.readyReplicas ?? 0}/${main.replicas ?? 0} ready${kept}` : `removed what this delivery created${kept}`;
          state.setCluster(r.cluster, 'RolledBack', msg, { readyReplicas: main?.readyReplicas ?? 0, observed: observedOf(main, state.now()) });
          if (main?.revision !== undefined) state.cluster(r.cluster).revision = main.revision;
          else delete state.cluster(r.cluster).revision;
        } catch (err) {
          const f = summarizeFailure(err);
          failures.push(`${r.cluster}: ${f.message}`);
          state.setCluster(r.cluster, f.unreachable ? 'Unreachable' : 'Failed', `rollback failed: ${f.message}`, { failureType: f.type });
        }
      }),
    );
  }
  if (failures.length) state.condition('RolledBack', 'False', Reason.RollbackFailed, failures.join('; '));
  return failures;
}

/** Steps an abort (or a cancellation) stopped: their clusters say so; `observed` will say what runs there. */
export function markStopped(x: RunContext, why: string): void {
  for (const c of Object.values(x.state.status.clusters)) {
    if (IN_FLIGHT.includes(c.phase)) x.state.setCluster(c.cluster, 'Aborted', `${why} while ${c.phase === 'Applying' ? 'applying' : 'waiting for the rollout'}`);
  }
}

/**
 * Reads back what each cluster runs (the application's workloads), so the
 * final status and the application record tell the truth, including about
 * clusters whose step was stopped in flight. Clusters already seen at their
 * last step, and skipped ones, are not read again.
 */
export async function observeAll(x: RunContext, fresh: (phase: string) => boolean): Promise<void> {
  const plan = x.prepared;
  if (!plan) return;
  const { state } = x;
  await Promise.all(
    Object.values(state.status.clusters)
      .filter((c) => c.phase !== 'Skipped' && !(fresh(c.phase) && c.observed))
      .map(async (c) => {
        const refs = plan.clusters[c.cluster]!.workloads;
        try {
          const ws = await x.acts(c.cluster).read.readWorkloads({ cluster: c.cluster, refs });
          const main = ws.find((w) => w.ref.kind === 'Deployment');
          const observed: ObservedWorkload = observedOf(main, state.now());
          c.observed = observed;
          if (observed.readyReplicas !== undefined) c.readyReplicas = observed.readyReplicas;
          if (observed.exists && observed.revision !== undefined) c.revision = observed.revision;
        } catch (err) {
          c.message = `${c.message}; could not read back: ${summarizeFailure(err).message}`;
        }
      }),
  );
}

/**
 * Keeps what this Healthy delivery rendered in each cluster it ran on as
 * version N, in that cluster; a cluster that cannot take it now (unreachable)
 * is said in its message: a later rollback to N will not find it there.
 */
export async function recordVersions(x: RunContext, version: number, keep: number): Promise<void> {
  const plan = x.prepared;
  if (!plan) return;
  await Promise.all(
    Object.values(x.state.status.clusters)
      .filter((c) => c.phase === 'Healthy')
      .map(async (c) => {
        try {
          await x.acts(c.cluster).read.recordVersion({ cluster: c.cluster, owner: x.owner, version, deliveryId: x.deliveryId, objects: plan.clusters[c.cluster]!.objects, keep });
        } catch (err) {
          c.message = `${c.message}; version ${version} not kept here: ${summarizeFailure(err).message}`;
        }
      }),
  );
}
