/**
 * One failover (or failback) of one cluster, started by the fleet monitor. Each application placed
 * on the cluster is moved through an ordinary delivery under its own lock (the step engine: apply,
 * wait, prune; type deploy, requested by `flotilla-failover`, onFailure fail), all applications in
 * parallel, and waited for until every moved replica is ready:
 *
 * - failover: the application's spec with the placement narrowed to the healthy clusters it allows
 *   (model/failover.ts failoverPlan) and its latest version's pinned image, so the same bits run;
 * - failback: the application's spec as it stands now with its placement and overrides restored,
 *   unless a delivery since the failover chose another placement (then it is left as it is).
 *
 * An application with a delivery in flight: its delivery keeps the lock; the move waits for the lock
 * up to the fleet's `lockWait` (the delivery has been told not to wait for the failed cluster, so it
 * ends or pauses soon), then the application is recorded Skipped (DeliveryInProgress) and left as it
 * is: its own delivery decides (retry, skip, rollback).
 *
 * The traffic-steering hook is called when a failover starts moving (beside the moves) and after a failback is done.
 * The end is reported to the monitor by a signal (it may have continued as new meanwhile).
 */
import { getExternalWorkflowHandle, proxyActivities, workflowInfo } from '@temporalio/workflow';
import { durationMs, failbackSpec, failoverPlan } from '../model/index.ts';
import type { FleetActivities } from '../activities/fleet.ts';
import { failoverDoneSignal, type AppMove, type ClusterFailoverInput, type PlacedApp } from './fleetMessages.ts';
import { summarizeFailure } from './failures.ts';

export async function clusterFailover(input: ClusterFailoverInput): Promise<AppMove[]> {
  const id = input.id ?? workflowInfo().workflowId;
  const lockWaitMs = durationMs(input.settings.lockWait);
  const rolloutMs = durationMs(input.settings.rolloutTimeout);
  const hub = proxyActivities<FleetActivities>({ startToCloseTimeout: '1m', retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 10 } });
  const starter = proxyActivities<FleetActivities>({
    startToCloseTimeout: lockWaitMs + 60_000,
    heartbeatTimeout: '15s',
    retry: { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 5, nonRetryableErrorTypes: ['DeliveryInProgress'] },
  });
  const waiter = proxyActivities<FleetActivities>({ startToCloseTimeout: rolloutMs + 5 * 60_000, heartbeatTimeout: '15s', retry: { initialInterval: '1s', maximumInterval: '10s' } });
  const steer = proxyActivities<FleetActivities>({ startToCloseTimeout: '30s', retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 5 } });
  const at = () => new Date().toISOString();
  const { clusters: fleet } = await hub.fleetSettings();
  const failed = new Set(input.failed);

  async function deliver(move: AppMove, spec: PlacedApp['spec'], comment: string): Promise<void> {
    const [namespace, name] = move.app.split('/') as [string, string];
    const deliveryId = `${id}-${namespace}-${name}`;
    move.deliveryId = deliveryId;
    move.phase = 'Moving';
    try {
      await starter.startMoveDelivery({ deliveryId, spec, rolloutTimeout: input.settings.rolloutTimeout, lockWaitMs, comment });
    } catch (err) {
      const f = summarizeFailure(err);
      move.phase = f.type === 'DeliveryInProgress' ? 'Skipped' : 'Failed';
      move.message = `${f.type}: ${f.message}`;
      delete move.deliveryId;
      return;
    }
    const r = await waiter.awaitDelivery({ deliveryId });
    move.phase = r.phase === 'Healthy' ? 'Moved' : 'Failed';
    move.message = `delivery ${deliveryId} ended ${r.phase}: ${r.message}`;
  }

  let moves: AppMove[];
  if (input.kind === 'failover') {
    const apps = await hub.placedApplications({ cluster: input.cluster });
    const toSet = new Set<string>();
    const work: { move: AppMove; spec?: PlacedApp['spec'] }[] = apps.map((a) => {
      const app = `${a.namespace}/${a.name}`;
      const plan = failoverPlan(a.spec, fleet, failed, a.image, new Set(input.drained ?? []));
      if (plan.kind === 'skip') return { move: { app, phase: 'Skipped', message: plan.reason } };
      plan.to.forEach((c) => toSet.add(c));
      return {
        move: { app, phase: 'Pending', message: `to ${plan.to.join(', ')}`, before: plan.before, after: plan.after, placement: plan.spec.placement, restore: plan.restore },
        spec: plan.spec,
      };
    });
    moves = work.map((w) => w.move);
    const to = [...toSet];
    // The hook at once, beside the moves (the failed cluster serves nobody; a hook that is down never holds a move).
    const hook =
      to.length > 0
        ? steer
            .steerTraffic({ type: 'cluster.failedOver', id: `${id}/failedOver`, at: at(), cluster: input.cluster, to, reason: input.reason, apps: work.filter((w) => w.spec).map((w) => w.move.app) })
            .catch(() => undefined)
        : Promise.resolve();
    await Promise.all([hook, ...work.filter((w) => w.spec).map((w) => deliver(w.move, w.spec!, `failover of ${input.cluster}: ${input.reason}`))]);
  } else {
    moves = [];
    await Promise.all(
      (input.moves ?? [])
        .filter((m) => m.phase === 'Moved' && m.placement && m.restore)
        .map(async (m) => {
          const [namespace, name] = m.app.split('/') as [string, string];
          const move: AppMove = { app: m.app, phase: 'Pending', message: '' };
          moves.push(move);
          const a = await hub.readApplication({ namespace, name });
          const spec = a ? failbackSpec(a.spec, m.placement!, m.restore!, a.image) : undefined;
          if (!a || !spec) {
            move.phase = 'Skipped';
            move.message = a ? 'a delivery since the failover chose its own placement: left as it is' : 'the application is gone';
            return;
          }
          move.placement = spec.placement;
          await deliver(move, spec, `failback of ${input.cluster}: ${input.reason}`);
        }),
    );
    const from = [...new Set((input.moves ?? []).flatMap((m) => Object.keys(m.after ?? {})))];
    await steer
      .steerTraffic({ type: 'cluster.failedBack', id: `${id}/failedBack`, at: at(), cluster: input.cluster, from, reason: input.reason, apps: moves.filter((m) => m.phase === 'Moved').map((m) => m.app) })
      .catch(() => undefined);
  }
  await getExternalWorkflowHandle(input.reportTo)
    .signal(failoverDoneSignal, { id, cluster: input.cluster, kind: input.kind, apps: moves, at: at() })
    .catch(() => undefined);
  return moves;
}
