/**
 * The deploy delivery: one application to many clusters, wave by wave.
 *
 * Inside a wave the clusters change in parallel, each on its own task queue;
 * a wave starts only when the one before it is healthy. On a failure the
 * request's `onFailure` decides: roll back every changed cluster (newest wave
 * first), pause for an SRE (retry the failed step, skip a cluster, roll back,
 * abort), or stop as Degraded. Rollback runs in a non-cancellable scope so a
 * cancelled delivery is never left half rolled back.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ClusterActivities, HubActivities } from '../activities/types.ts';
import {
  durationMs,
  planDeploy,
  Reason,
  type ActionRequest,
  type AppSpec,
  type ClusterTarget,
  type DeliveryStatus,
  type DeployPlan,
  type DeployWorkflowInput,
} from '../model/index.ts';
import { DeliveryState } from './deliveryState.ts';
import { summarizeFailure } from './failures.ts';
import {
  actionUpdate,
  applicationWorkflowId,
  deliveryFinishedSignal,
  statusQuery,
  type ActionInput,
  type AppClusterRecord,
} from './messages.ts';
import { hubRead, k8sApply, rolloutWait, UNREADY_GRACE_MS } from './options.ts';

const hub = proxyActivities<HubActivities>(hubRead);

type Outcome = 'continue' | 'done';

export async function deploy(input: DeployWorkflowInput): Promise<DeliveryStatus> {
  const { request } = input;
  const app: AppSpec = request.app;
  const info = workflowInfo();
  const unreachableMs = durationMs(request.unreachableTimeout);
  const rolloutMs = durationMs(request.rolloutTimeout);
  const state = new DeliveryState({
    id: info.workflowId,
    type: input.rollbackOf ? 'rollback' : request.type,
    app: { name: app.name, namespace: app.namespace },
    image: app.image,
    onFailure: request.onFailure,
    waves: [],
    startedAt: new Date(info.startTime).toISOString(),
  });
  const s = state.status;
  /** Clusters this delivery has applied to, with what stood there before (for rollback). */
  const changed = new Map<string, { previousRevision?: number }>();
  let pendingAction: ActionInput | undefined;
  let waveScope: CancellationScope | undefined;
  let rollingBack = false;

  setHandler(statusQuery, () => s);
  setHandler(
    actionUpdate,
    (a: ActionInput) => {
      state.audit({ who: a.who, action: a.action, ...(a.cluster ? { cluster: a.cluster } : {}), ...(a.comment ? { comment: a.comment } : {}) });
      pendingAction = a;
      if (a.action === 'retry') {
        const targets = a.cluster ? [a.cluster] : state.failedIn(s.waves[s.currentWave] ?? []);
        for (const n of targets) state.setCluster(n, 'Pending', `retry requested by ${a.who}`);
        state.setPhase('Progressing', `retrying ${targets.join(', ')}`);
        state.condition('Progressing', 'True', Reason.RetryRequested, `${a.who} asked to retry ${targets.join(', ')}`);
      } else if (a.action === 'skip') {
        state.setCluster(a.cluster!, 'Skipped', `skipped by ${a.who}${a.comment ? `: ${a.comment}` : ''}`);
        state.condition('Progressing', 'True', Reason.ClusterSkipped, `${a.who} skipped ${a.cluster}`);
      } else if (s.phase === 'Progressing') {
        waveScope?.cancel(); // rollback or abort while a wave runs: stop its steps first
      }
      return state.snapshot();
    },
    { validator: (a: ActionInput) => validateAction(s, a, rollingBack) },
  );

  const finish = async (phase: DeliveryStatus['phase'], message: string): Promise<DeliveryStatus> => {
    state.finish(phase, message);
    await CancellationScope.nonCancellable(() => reportToApplication(app, s, input));
    return s;
  };

  state.setPhase('Progressing', 'planning');
  let plan: DeployPlan;
  try {
    plan = planDeploy(app, await hub.describeFleet(), request.waves);
  } catch (err) {
    state.condition('Progressing', 'False', 'PlanFailed', (err as Error).message);
    return finish('Degraded', `cannot plan the delivery: ${(err as Error).message}`);
  }
  s.waves = plan.waves;
  for (const t of Object.values(plan.targets)) {
    s.clusters[t.cluster] = { cluster: t.cluster, wave: t.wave, phase: 'Pending', image: t.image, desiredReplicas: t.replicas, readyReplicas: 0, message: 'waiting for its wave', attempts: 0 };
  }

  const activitiesFor = (t: ClusterTarget) => ({
    apply: proxyActivities<ClusterActivities>({ ...k8sApply(unreachableMs), taskQueue: t.taskQueue }),
    wait: proxyActivities<ClusterActivities>({ ...rolloutWait(rolloutMs, unreachableMs), taskQueue: t.taskQueue }),
  });

  /** One cluster's step: apply, then wait for the rollout. Never throws but for cancellation. */
  async function runCluster(t: ClusterTarget): Promise<void> {
    const cs = state.cluster(t.cluster);
    const acts = activitiesFor(t);
    cs.attempts += 1;
    try {
      state.setCluster(t.cluster, 'Applying', `applying ${t.image}, ${t.replicas} replicas`);
      const applied = await acts.apply.applyApp({ cluster: t.cluster, app, target: t, deliveryId: s.id });
      if (!changed.has(t.cluster)) {
        // The first apply of this delivery tells what stood there before; a retry's apply would see our own revision.
        changed.set(t.cluster, applied.previousRevision !== undefined ? { previousRevision: applied.previousRevision } : {});
        if (applied.previousRevision !== undefined) cs.previousRevision = applied.previousRevision;
      }
      state.setCluster(t.cluster, 'Progressing', 'waiting for the rollout');
      const r = await acts.wait.waitForRollout({
        cluster: t.cluster,
        namespace: app.namespace,
        name: app.name,
        generation: applied.generation,
        timeoutMs: rolloutMs,
        unreadyGraceMs: UNREADY_GRACE_MS,
      });
      state.setCluster(t.cluster, 'Healthy', `${r.readyReplicas}/${r.replicas} ready`, { readyReplicas: r.readyReplicas, revision: r.revision, image: r.image });
      delete cs.failureType;
    } catch (err) {
      if (isCancellation(err)) throw err;
      const f = summarizeFailure(err);
      state.setCluster(t.cluster, f.unreachable ? 'Unreachable' : 'Failed', f.message, { failureType: f.type });
    }
  }

  async function runWave(clusters: string[]): Promise<'ok' | 'cancelled'> {
    waveScope = new CancellationScope();
    try {
      await waveScope.run(() => Promise.all(clusters.map((n) => runCluster(plan.targets[n]!))));
      return 'ok';
    } catch (err) {
      if (isCancellation(err) && pendingAction) return 'cancelled';
      throw err;
    } finally {
      waveScope = undefined;
    }
  }

  async function rollbackAll(reason: string): Promise<DeliveryStatus> {
    rollingBack = true;
    state.setPhase('Progressing', `rolling back: ${reason}`);
    state.condition('RolledBack', 'False', Reason.RollbackStarted, reason);
    const failures: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (let w = s.currentWave; w >= 0; w--) {
        const wave = (s.waves[w] ?? []).filter((n) => changed.has(n));
        await Promise.all(
          wave.map(async (n) => {
            const t = plan.targets[n]!;
            const acts = activitiesFor(t);
            const before = changed.get(n)!;
            state.setCluster(n, 'RollingBack', before.previousRevision !== undefined ? `back to revision ${before.previousRevision}` : 'removing what this delivery created');
            try {
              const rb = await acts.apply.rollbackApp({ cluster: n, namespace: app.namespace, name: app.name, deliveryId: s.id, ...(before.previousRevision !== undefined ? { toRevision: before.previousRevision } : {}) });
              if (rb.deleted) {
                state.setCluster(n, 'RolledBack', 'removed (it did not exist before this delivery)', { readyReplicas: 0 });
                delete state.cluster(n).revision;
                return;
              }
              const r = await acts.wait.waitForRollout({ cluster: n, namespace: app.namespace, name: app.name, generation: rb.generation ?? 0, timeoutMs: rolloutMs, unreadyGraceMs: UNREADY_GRACE_MS });
              state.setCluster(n, 'RolledBack', `back on ${r.image}, ${r.readyReplicas}/${r.replicas} ready`, { image: r.image, readyReplicas: r.readyReplicas, revision: r.revision });
            } catch (err) {
              const f = summarizeFailure(err);
              failures.push(`${n}: ${f.message}`);
              state.setCluster(n, f.unreachable ? 'Unreachable' : 'Failed', `rollback failed: ${f.message}`, { failureType: f.type });
            }
          }),
        );
      }
    });
    if (failures.length > 0) {
      state.condition('RolledBack', 'False', Reason.RollbackFailed, failures.join('; '));
      return finish('Degraded', `rollback incomplete: ${failures.join('; ')}`);
    }
    state.condition('RolledBack', 'True', Reason.RollbackComplete, reason);
    return finish('RolledBack', `rolled back: ${reason}`);
  }

  /** What to do after a wave (or a retry) ended with failed clusters, or was interrupted by an action. */
  async function afterFailure(wave: string[]): Promise<Outcome | DeliveryStatus> {
    const failed = state.failedIn(wave);
    const summary = failed.map((n) => `${n}: ${state.cluster(n).message}`).join('; ');
    if (failed.length > 0) state.condition('Progressing', 'False', Reason.WaveFailed, `wave ${s.currentWave + 1}: ${summary}`);
    if (!pendingAction) {
      if (request.onFailure === 'rollback') return rollbackAll(`wave ${s.currentWave + 1} failed: ${summary}`);
      if (request.onFailure === 'fail') return finish('Degraded', `wave ${s.currentWave + 1} failed: ${summary}`);
      state.setPhase('NeedsAttention', `wave ${s.currentWave + 1} failed: ${summary}`);
      state.condition('Paused', 'True', Reason.WaitingForAction, 'waiting for an SRE: retry, skip, rollback or abort');
      await condition(() => pendingAction !== undefined);
    }
    const a = pendingAction!;
    pendingAction = undefined;
    state.condition('Paused', 'False', Reason.WaitingForAction, `${a.who} chose ${a.action}`);
    switch (a.action) {
      case 'rollback':
        return rollbackAll(`requested by ${a.who}${a.comment ? `: ${a.comment}` : ''}`);
      case 'abort':
        state.condition('Progressing', 'False', Reason.Aborted, `aborted by ${a.who}`);
        return finish('Aborted', `aborted by ${a.who}${a.comment ? `: ${a.comment}` : ''}; clusters left as they are`);
      default:
        state.setPhase('Progressing', `${a.action} by ${a.who}`);
        return 'continue';
    }
  }

  try {
    for (let w = 0; w < s.waves.length; w++) {
      s.currentWave = w;
      const wave = s.waves[w]!;
      state.condition('Progressing', 'True', Reason.WaveStarted, `wave ${w + 1} of ${s.waves.length}: ${wave.join(', ')}`);
      let todo = wave;
      for (;;) {
        const ran = await runWave(todo);
        if (ran === 'ok' && state.failedIn(wave).length === 0) break;
        const next = await afterFailure(wave);
        if (next !== 'continue') return next as DeliveryStatus;
        // retry: the clusters the SRE set back to Pending; skip: nothing more to run in this wave
        todo = wave.filter((n) => state.cluster(n).phase === 'Pending');
        if (todo.length === 0 && state.failedIn(wave).length === 0) break;
      }
      state.condition('Progressing', 'True', Reason.WaveHealthy, `wave ${w + 1} healthy: ${wave.join(', ')}`);
    }
    const skipped = Object.values(s.clusters).filter((c) => c.phase === 'Skipped').map((c) => c.cluster);
    state.condition('Progressing', 'True', Reason.AllWavesHealthy, 'every wave is healthy');
    state.condition('Paused', 'False', Reason.AllWavesHealthy, 'not paused');
    return await finish('Healthy', skipped.length ? `healthy; skipped: ${skipped.join(', ')}` : `every cluster runs ${app.image}`);
  } catch (err) {
    if (isCancellation(err)) {
      // The delivery itself was cancelled (not an action): leave clusters as they are, record it.
      await CancellationScope.nonCancellable(() => finish('Aborted', 'the delivery was cancelled'));
    }
    throw err;
  }
}

/** Refuses actions that do not apply in the delivery's present state. */
function validateAction(s: DeliveryStatus, a: ActionInput, rollingBack: boolean): void {
  const refuse = (message: string): never => {
    throw ApplicationFailure.create({ type: 'ActionNotApplicable', message, nonRetryable: true });
  };
  if (['Healthy', 'Degraded', 'Aborted', 'RolledBack'].includes(s.phase)) {
    // The same answer the API gives once the workflow has closed; here it is still reporting its end.
    throw ApplicationFailure.create({ type: 'DeliveryFinished', message: `the delivery has finished (${s.phase})`, nonRetryable: true });
  }
  const wave = s.waves[s.currentWave] ?? [];
  const failed = wave.filter((n) => ['Failed', 'Unreachable'].includes(s.clusters[n]?.phase ?? ''));
  if (a.cluster !== undefined && !s.clusters[a.cluster]) refuse(`cluster "${a.cluster}" is not part of this delivery`);
  switch (a.action as ActionRequest['action']) {
    case 'retry':
    case 'skip':
      if (s.phase !== 'NeedsAttention') refuse(`${a.action} applies only while the delivery waits for a decision (phase is ${s.phase})`);
      if (a.action === 'skip' && a.cluster === undefined) refuse('skip needs a cluster');
      if (a.cluster !== undefined && !failed.includes(a.cluster)) refuse(`cluster "${a.cluster}" has not failed in the current wave (failed: ${failed.join(', ') || 'none'})`);
      break;
    case 'rollback':
    case 'abort':
      if (s.phase !== 'NeedsAttention' && s.phase !== 'Progressing') refuse(`${a.action} does not apply in phase ${s.phase}`);
      if (rollingBack) refuse('a rollback is already running');
      break;
  }
}

/** Tells the application workflow where the application now runs, and frees its delivery lock. */
async function reportToApplication(app: AppSpec, s: DeliveryStatus, input: DeployWorkflowInput): Promise<void> {
  const clusters: Record<string, AppClusterRecord> = {};
  const removed = Object.values(s.clusters).filter((c) => c.phase === 'RolledBack' && c.revision === undefined && c.readyReplicas === 0).map((c) => c.cluster);
  for (const c of Object.values(s.clusters)) {
    if ((c.phase === 'Healthy' || c.phase === 'RolledBack') && !removed.includes(c.cluster)) {
      clusters[c.cluster] = { image: c.image, replicas: c.readyReplicas, ...(c.revision !== undefined ? { revision: c.revision } : {}), deliveryId: s.id, at: s.finishedAt ?? '' };
    }
  }
  try {
    await getExternalWorkflowHandle(applicationWorkflowId(app.namespace, app.name)).signal(deliveryFinishedSignal, {
      deliveryId: s.id,
      phase: s.phase,
      spec: app,
      clusters,
      removed,
      finishedAt: s.finishedAt ?? '',
      ...(input.rollbackOf ? { rollbackOf: input.rollbackOf } : {}),
    });
  } catch {
    // No application workflow (a delivery started by hand, outside the API): nothing holds a lock.
  }
}
