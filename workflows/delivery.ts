/**
 * The delivery workflow: one delivery of one application to many clusters.
 * It is started only by its application's workflow (which holds the lock and
 * keeps the record), prepares the plan once on the hub (images pinned by
 * digest, every cluster's objects rendered), runs it with the interpreter, and
 * concludes outside the cancellable scope.
 *
 * Actions work at every moment: `rollback` and `abort` cancel whatever runs
 * (planning, an apply, a wait, a pause) and wait until the cancelled step has
 * really stopped; `retry` and `skip` answer a delivery that waits for an SRE.
 */
import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { HubActivities } from '../activities/types.ts';
import {
  parseImageRef,
  planPlacement,
  prepareVersion,
  gateState,
  Reason,
  voteProblem,
  type ClusterInfo,
  type DeliveryStatus,
  type DeliveryWorkflowInput,
  type KubeObject,
  type ObjectInventory,
  type PreparedDelivery,
} from '../model/index.ts';
import { markStopped, observeAll, recordVersions, rollbackAll } from './conclude.ts';
import { RunContext } from './context.ts';
import { DeliveryState } from './deliveryState.ts';
import { summarizeFailure } from './failures.ts';
import { Interpreter, type Decisions, type Outcome } from './interpreter.ts';
import { actionUpdate, applicationWorkflowId, eventsQuery, statusQuery, type ActionInput } from './messages.ts';
import { gateOf } from './steps/gates.ts';
import { watchClusterVerdicts } from './clusterVerdict.ts';
import { hubPrepare, hubRead } from './options.ts';

const TERMINAL = ['Healthy', 'Degraded', 'Aborted', 'RolledBack'];

export async function delivery(input: DeliveryWorkflowInput): Promise<DeliveryStatus> {
  const { request } = input;
  const app = request.app;
  const info = workflowInfo();
  const source = app.source ? Object.keys(app.source)[0]! : 'inline';
  const state = new DeliveryState({
    id: info.workflowId,
    type: input.rollbackOf || (app.source && 'version' in app.source) ? 'rollback' : request.type,
    app: { name: app.name, namespace: app.namespace },
    image: app.image ?? '',
    onFailure: request.onFailure,
    startedAt: new Date(info.startTime).toISOString(),
    source: app.source && 'version' in app.source ? `version ${app.source.version}` : source,
    ...(input.version !== undefined ? { version: input.version } : {}),
  });
  const s = state.status;
  const resume = input.resume;
  if (resume) s.retryOf = resume.of;
  const x = new RunContext(state, request, info.workflowId);
  const decisions: Decisions = { pending: undefined };
  /** rollback or abort, once accepted: the run is cancelled and this decides how it ends. */
  let requested: ActionInput | undefined;
  let work: CancellationScope | undefined;
  /** Set once the run is over: later actions are refused rather than silently dropped. */
  let settled = false;

  setHandler(statusQuery, () => s);
  setHandler(eventsQuery, (after: number) => ({ events: state.eventsAfter(after), last: state.events.length }));
  setHandler(
    actionUpdate,
    (a: ActionInput) => {
      state.audit({ who: a.who, action: a.action, ...(a.cluster ? { cluster: a.cluster } : {}), ...(a.gate ? { gate: a.gate } : {}), ...(a.comment ? { comment: a.comment } : {}) });
      const by = `${a.who}${a.comment ? `: ${a.comment}` : ''}`;
      if (a.action === 'approve' || a.action === 'reject') {
        const g = gateOf(x, a.gate!)!;
        g.votes.push({ who: a.who, role: a.role ?? '', decision: a.action, at: state.now(), ...(a.comment ? { comment: a.comment } : {}) });
        const was = g.state;
        g.state = gateState(g);
        if (g.state !== was) state.gate(g, `gate ${g.name} ${g.state.toLowerCase()} (${a.who})`);
      } else if (a.action === 'promote') {
        x.canary.promotions += 1;
        x.canary.lastPromoter = a.who;
        if (a.full) x.canary.full = true;
      } else if (a.action === 'retry') {
        const targets = a.cluster ? [a.cluster] : state.failedIn(s.waves[s.currentWave] ?? []);
        for (const n of targets) state.setCluster(n, 'Pending', `retry requested by ${a.who}`);
        state.condition('Progressing', 'True', Reason.RetryRequested, `${a.who} asked to retry ${targets.join(', ')}`);
        state.setPhase('Progressing', `retrying ${targets.join(', ')}, asked by ${by}`);
        decisions.pending = a;
      } else if (a.action === 'skip') {
        state.setCluster(a.cluster!, 'Skipped', `skipped by ${by}`);
        state.condition('Progressing', 'True', Reason.ClusterSkipped, `${a.who} skipped ${a.cluster}`);
        state.setPhase('Progressing', `${a.cluster} skipped by ${by}`);
        decisions.pending = a;
      } else {
        requested = a;
        state.setPhase(s.phase === 'Pending' ? 'Progressing' : s.phase, `${a.action === 'rollback' ? 'rolling back' : 'aborting'}, asked by ${by}`);
        work?.cancel();
      }
      return state.snapshot();
    },
    { validator: (a: ActionInput) => validateAction(s, a, requested, settled, x) },
  );

  // The fleet monitor's verdicts: a cluster it declares failed is not waited for (workflows/clusterVerdict.ts).
  watchClusterVerdicts(x);

  // A delivery runs only under its application's lock: the application workflow starts it.
  const lockHolder = applicationWorkflowId(app.namespace, app.name);
  if (info.parent?.workflowId !== lockHolder) {
    throw ApplicationFailure.create({
      type: Reason.NotUnderLock,
      nonRetryable: true,
      message: `delivery ${info.workflowId} was not started by ${lockHolder}, which holds the application's lock; start deliveries through the API (or that workflow's startDelivery update)`,
    });
  }

  const hub = proxyActivities<HubActivities>(hubPrepare(x.timing.unreachableMs));
  const fleetRead = proxyActivities<HubActivities>(hubRead);
  let outcome: Outcome;
  work = new CancellationScope();
  try {
    outcome = await work.run(async () => {
      state.setPhase('Progressing', 'planning: resolving image digests, rendering each cluster');
      try {
        x.prepared = app.source && 'version' in app.source
          ? await fromVersion(x, app.source.version, await fleetRead.describeFleet(), input.previous ?? {})
          : await hub.prepareDelivery({ request, deliveryId: info.workflowId, ...(input.previous ? { previous: input.previous } : {}), ...(resume?.digests ? { pinned: resume.digests } : {}) });
      } catch (err) {
        if (isCancellation(err)) throw err;
        const f = summarizeFailure(err);
        return { kind: 'planFailed', message: f.message } as const;
      }
      const main = app.image ?? Object.keys(x.prepared.digests)[0] ?? Object.values(x.prepared.clusters)[0]?.image ?? '';
      if (!app.image) s.image = main;
      state.planned(x.prepared, x.prepared.digests[main] ?? (main.includes('@') ? parseImageRef(main).digest : undefined));
      state.condition('Progressing', 'True', Reason.Planned, `${s.waves.length} wave(s), steps ${s.steps.join(' -> ')}, ${app.image} pinned as ${s.digest ?? '(digest)'}`);
      if (resume) state.condition('Resumed', 'True', Reason.Resumed, `retry of ${resume.of}: resuming wave ${resume.wave + 1} at step ${resume.step + 1} (${resume.label})`);
      return new Interpreter(x, decisions, resume).all();
    });
  } catch (err) {
    if (!isCancellation(err)) throw err;
    // Cancelled by an action (or the delivery itself was cancelled): decide from what was asked.
    const a = requested;
    const by = a ? `${a.who}${a.comment ? `: ${a.comment}` : ''}` : 'cancellation of the delivery';
    outcome = a?.action === 'rollback' ? { kind: 'rollback', reason: `requested by ${by}` } : { kind: 'abort', reason: a ? `aborted by ${by}` : 'the delivery was cancelled' };
  } finally {
    work = undefined;
    settled = true;
  }
  // An action accepted while the run was finishing still does what it says.
  if (requested && outcome.kind !== 'rollback' && outcome.kind !== 'abort') {
    const by = `${requested.who}${requested.comment ? `: ${requested.comment}` : ''}`;
    outcome = requested.action === 'rollback' ? { kind: 'rollback', reason: `requested by ${by}` } : { kind: 'abort', reason: `aborted by ${by}` };
  }
  return CancellationScope.nonCancellable(() => conclude(x, outcome, input));
}

/** A rollback to version N: each placed cluster's objects read back from that cluster, then planned like any bundle. */
async function fromVersion(x: RunContext, version: number, fleet: ClusterInfo[], previous: ObjectInventory): Promise<PreparedDelivery> {
  const placed = planPlacement(x.request.app, fleet, x.request.waves);
  for (const c of placed.clusters) x.queues.set(c.name, c.taskQueue);
  const objects: Record<string, KubeObject[]> = {};
  await Promise.all(
    placed.clusters.map(async (c) => {
      objects[c.name] = await x.acts(c.name).read.readVersion({ cluster: c.name, owner: x.owner, version });
    }),
  );
  return prepareVersion(x.request, placed, objects, x.deliveryId, previous);
}

async function conclude(x: RunContext, outcome: Outcome, input: DeliveryWorkflowInput): Promise<DeliveryStatus> {
  const { state } = x;
  const s = state.status;
  switch (outcome.kind) {
    case 'healthy': {
      await observeAll(x, (p) => p === 'Healthy');
      if (input.version !== undefined) await recordVersions(x, input.version, input.historyLimit ?? 10);
      const skipped = Object.values(s.clusters).filter((c) => c.phase === 'Skipped').map((c) => c.cluster);
      state.condition('Progressing', 'True', Reason.AllWavesHealthy, 'every wave is healthy');
      state.condition('Paused', 'False', Reason.AllWavesHealthy, 'not paused');
      return state.finish('Healthy', skipped.length ? `healthy; skipped: ${skipped.join(', ')}` : `every cluster runs ${s.image}${s.digest ? ` (${s.digest})` : ''}`);
    }
    case 'planFailed':
      state.condition('Progressing', 'False', Reason.PlanFailed, outcome.message);
      return state.finish('Degraded', `cannot plan the delivery: ${outcome.message}`);
    case 'failed':
      await observeAll(x, (p) => p === 'Healthy');
      state.condition('Progressing', 'False', Reason.FailedAsRequested, outcome.message);
      return state.finish('Degraded', outcome.message);
    case 'abort': {
      // Where it stopped, before the abort's own steps change any cluster: a `retry` resumes there.
      s.resumeAt = x.prepared ? { wave: s.currentWave, step: s.currentStep, label: s.steps[s.currentStep] ?? 'end' } : { wave: 0, step: 0, label: 'planning' };
      if (x.request.type === 'canary' || x.request.type === 'blueGreen') {
        // A canary's abort returns every touched wave to the stable version, newest first: traffic, replicas, objects.
        markStopped(x, outcome.reason);
        const failures = [...(await removeCanaries(x)), ...(await rollbackAll(x))];
        await observeAll(x, (p) => p === 'RolledBack' || p === 'Healthy');
        state.condition('Progressing', 'False', Reason.Aborted, outcome.reason);
        if (failures.length) return state.finish('Degraded', `${outcome.reason}; returning to the stable version failed: ${failures.join('; ')}`);
        return state.finish('Aborted', `${outcome.reason}; every touched cluster is back on the stable version`);
      }
      markStopped(x, outcome.reason);
      await observeAll(x, (p) => p === 'Healthy');
      state.condition('Progressing', 'False', Reason.Aborted, outcome.reason);
      return state.finish('Aborted', `${outcome.reason}; clusters left as they are`);
    }
    case 'rollback': {
      state.setPhase('Progressing', `rolling back: ${outcome.reason}`);
      state.condition('RolledBack', 'False', Reason.RollbackStarted, outcome.reason);
      markStopped(x, 'rolled back');
      // A canary's routers first revert routes the bundle does not carry, which restoring captured objects would not reach.
      const failures = [...(await removeCanaries(x)), ...(await rollbackAll(x))];
      await observeAll(x, (p) => p === 'RolledBack' || p === 'Healthy');
      if (failures.length) return state.finish('Degraded', `rollback incomplete: ${failures.join('; ')}`);
      state.condition('RolledBack', 'True', Reason.RollbackComplete, outcome.reason);
      return state.finish('RolledBack', x.touched.size ? `rolled back: ${outcome.reason}` : `rolled back before any cluster was touched: ${outcome.reason}`);
    }
  }
}

/**
 * Traffic back on the stable version where a canary stands, newest wave first: the router reverts what it
 * changed in routes that are not the application's own (a user's HTTPRoute, VirtualService or Ingress),
 * which restoring the captured objects would not reach. Returns the failures, per cluster.
 */
async function removeCanaries(x: RunContext): Promise<string[]> {
  const failures: string[] = [];
  const stood = [...x.canaries.entries()].filter(([, c]) => !c.first).sort(([a], [b]) => (x.plan().clusters[b]?.wave ?? 0) - (x.plan().clusters[a]?.wave ?? 0));
  for (const [cluster, c] of stood) {
    try {
      x.state.setCluster(cluster, 'RollingBack', 'traffic back to the stable version, canary removed');
      await x.acts(cluster).wait.removeCanary({ cluster, owner: x.owner, deliveryId: x.deliveryId, routing: c.routing, target: c.target, ...(c.target.replicas !== undefined ? { totalReplicas: c.target.replicas } : {}), timeoutMs: x.timing.rolloutMs });
    } catch (err) {
      failures.push(`${cluster}: ${summarizeFailure(err).message}`);
    }
  }
  return failures;
}

/** Refuses actions that do not apply in the delivery's present state. */
function validateAction(s: DeliveryStatus, a: ActionInput, requested: ActionInput | undefined, settled: boolean, x: RunContext): void {
  const refuse = (message: string): never => {
    throw ApplicationFailure.create({ type: 'ActionNotApplicable', message, nonRetryable: true });
  };
  if (TERMINAL.includes(s.phase)) {
    // The same answer the API gives once the workflow has closed; here it is still reporting its end.
    throw ApplicationFailure.create({ type: 'DeliveryFinished', message: `the delivery has finished (${s.phase})`, nonRetryable: true });
  }
  if (requested) refuse(`the delivery is ${requested.action === 'rollback' ? 'rolling back' : 'aborting'} (asked by ${requested.who})`);
  if (settled) refuse('the delivery is concluding; wait for its end');
  const wave = s.waves[s.currentWave] ?? [];
  const failed = wave.filter((n) => ['Failed', 'Unreachable'].includes(s.clusters[n]?.phase ?? ''));
  if (a.cluster !== undefined && Object.keys(s.clusters).length > 0 && !s.clusters[a.cluster]) refuse(`cluster "${a.cluster}" is not part of this delivery`);
  switch (a.action) {
    case 'retry':
    case 'skip':
      if (s.phase !== 'NeedsAttention') refuse(`${a.action} applies only while the delivery waits for a decision (phase is ${s.phase})`);
      if (a.action === 'skip' && a.cluster === undefined) refuse('skip needs a cluster');
      if (a.cluster !== undefined && !failed.includes(a.cluster)) refuse(`cluster "${a.cluster}" has not failed in the current wave (failed: ${failed.join(', ') || 'none'})`);
      break;
    case 'rollback':
    case 'abort':
      break;
    case 'approve':
    case 'reject': {
      if (s.type !== 'canary' && s.type !== 'blueGreen') refuse(`${a.action} applies to the gates of a canary or blue-green; this delivery is a ${s.type}`);
      const problem = voteProblem(gateOf(x, a.gate!), a.gate!, a.role ?? '', a.who);
      if (problem?.status === 403) throw ApplicationFailure.create({ type: 'ActionForbidden', message: problem.message, nonRetryable: true });
      if (problem) refuse(problem.message);
      break;
    }
    case 'promote': {
      if (s.type !== 'canary' && s.type !== 'blueGreen') refuse(`promote applies to a canary or blue-green; this delivery is a ${s.type}`);
      if (a.full) {
        if (x.canary.full) refuse('the delivery is already fully promoted');
        break;
      }
      const atGate = (s.gates ?? []).some((g) => g.state === 'Waiting');
      if (s.phase !== 'Paused' || atGate) refuse(atGate ? 'the wave waits at a gate: approve it (or promote with full: true to skip every remaining step)' : `nothing is paused (phase is ${s.phase}); promote with full: true skips every remaining step`);
      break;
    }
  }
}
