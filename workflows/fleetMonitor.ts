/**
 * The fleet monitor: one long-lived workflow per fleet (id `fleet-monitor`, started idempotently
 * by the hub worker), which probes every cluster's API server (`/readyz`) through that cluster's
 * own task queue every `probeInterval`, keeps each cluster's health (model/failover.ts: thresholds,
 * cooldown), and acts on it when failover is enabled:
 *
 * - a cluster turning Unhealthy is failed over once (a `clusterFailover` child moves the replicas
 *   of every application placed there to the healthy clusters its placement allows, through
 *   ordinary deliveries), and every delivery in flight is told not to wait for it;
 * - once Healthy again (successThreshold probes, then the cooldown without a failure) it is failed
 *   back, at once or after an SRE's `failback` (the fleet's `failback` setting).
 *
 * SRE actions (`drain`, `undrain`, `failover`, `failback`) arrive as an update with a validator.
 * The state travels through continue-as-new well before the history grows large, and is Temporal's:
 * a restarted worker or Temporal server finds it as it was (a cluster failed over stays so, once).
 */
import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  ParentClosePolicy,
  proxyActivities,
  setHandler,
  sleep,
  startChild,
  uuid4,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import { defaultFailoverSettings, Health, newHealth, observeProbe, probeTiming, type ClusterInfo, type FailoverSettings, type ProbeTiming } from '../model/index.ts';
import type { FleetActivities, ProbeActivities } from '../activities/fleet.ts';
import type { clusterFailover } from './failover.ts';
import {
  CLUSTER_FAILOVER_WORKFLOW,
  clusterActionUpdate,
  failoverDoneSignal,
  fleetStateQuery,
  type ClusterActionInput,
  type ClusterView,
  type FailoverDone,
  type FleetEvent,
  type FleetView,
} from './fleetMessages.ts';

export interface MonitorState {
  startedAt: string;
  /** The settings last read from the inventory (answered by queries before the first read of a run). */
  settings?: FailoverSettings;
  clusters: Record<string, ClusterView>;
  events: FleetEvent[];
}

export interface FleetMonitorInput {
  state?: MonitorState;
  /** Continue as new past this many history events (default 2000; the server suggests it at 4096). */
  maxHistory?: number;
}

const KEEP_EVENTS = 100;
/** The inventory is read again this often (clusters added or removed, settings changed). */
const REFRESH_MS = 10_000;

const hubOptions: ActivityOptions = { startToCloseTimeout: '30s', retry: { initialInterval: '1s', maximumInterval: '5s' } };

export async function fleetMonitor(input: FleetMonitorInput = {}): Promise<void> {
  const hub = proxyActivities<FleetActivities>(hubOptions);
  const now = () => new Date().getTime(); // workflow time
  const iso = (ms = now()) => new Date(ms).toISOString();
  const st: MonitorState = input.state ?? { startedAt: iso(), clusters: {}, events: [] };
  const maxHistory = input.maxHistory ?? 2000;
  let fleet: ClusterInfo[] = [];
  let settings: FailoverSettings = st.settings ?? defaultFailoverSettings();
  let timing: ProbeTiming = probeTiming(settings);
  let refreshedAt = 0;
  /** Children being started and activities sent without waiting: finished before continuing as new. */
  let inFlight = 0;
  const probes = new Map<string, ProbeActivities>();

  async function refresh(): Promise<void> {
    const r = await hub.fleetSettings();
    fleet = r.clusters;
    settings = r.settings;
    st.settings = settings;
    timing = probeTiming(settings);
    refreshedAt = now();
    for (const c of fleet) {
      const old = st.clusters[c.name];
      st.clusters[c.name] = old ? { ...old, region: c.region } : { ...newHealth(c.name, now()), region: c.region, drained: false };
    }
    // A cluster gone from the inventory is forgotten, unless a failover of it is still on record.
    for (const name of Object.keys(st.clusters)) if (!fleet.some((c) => c.name === name) && !st.clusters[name]!.failover) delete st.clusters[name];
    probes.clear();
  }

  const event = (cluster: string, what: string, who = 'flotilla', comment?: string) => {
    st.events = [{ at: iso(), cluster, what, who, ...(comment ? { comment } : {}) }, ...st.events].slice(0, KEEP_EVENTS);
  };
  const background = (p: Promise<unknown>) => {
    inFlight++;
    void p.catch(() => undefined).finally(() => inFlight--);
  };
  /** Clusters that take no replicas now: failed (Unhealthy or not yet recovered) or drained. */
  const unavailable = (also: string) => [...new Set([also, ...Object.values(st.clusters).filter((c) => c.drained || c.health === Health.Unhealthy || c.health === Health.Recovering).map((c) => c.cluster)])];

  function begin(kind: 'failover' | 'failback', cluster: string, reason: string, who: string): void {
    const rec = st.clusters[cluster]!;
    const id = `${kind}-${cluster}-${uuid4().slice(0, 8)}`;
    if (kind === 'failover') rec.failover = { id, reason, phase: 'FailingOver', startedAt: iso(), to: [], apps: [] };
    else {
      rec.failover!.phase = 'FailingBack';
      rec.failover!.failback = { id, startedAt: iso(), by: who };
    }
    event(cluster, `${kind} started (${id}): ${reason}`, who);
    background(
      startChild<typeof clusterFailover>(CLUSTER_FAILOVER_WORKFLOW, {
        workflowId: id,
        args: [{ id, kind, cluster, reason, failed: kind === 'failover' ? unavailable(cluster) : unavailable(cluster).filter((c) => c !== cluster), drained: Object.values(st.clusters).filter((c) => c.drained).map((c) => c.cluster), settings, ...(kind === 'failback' ? { moves: rec.failover!.apps } : {}), reportTo: workflowInfo().workflowId }],
        // It outlives this run (continue-as-new) and reports its end by a signal.
        parentClosePolicy: ParentClosePolicy.ABANDON,
      }).catch((err: unknown) => {
        event(cluster, `${kind} could not start: ${(err as Error).message}`);
        if (kind === 'failover') delete rec.failover;
        else if (rec.failover) {
          rec.failover.phase = 'FailedOver';
          delete rec.failover.failback;
        }
        throw err;
      }),
    );
  }

  /** A failed-over cluster is Healthy again (and not drained): fail back now, or wait for an SRE. */
  function recovered(cluster: string): void {
    const rec = st.clusters[cluster]!;
    if (!rec.failover || rec.drained || rec.failover.phase !== 'FailedOver') return;
    if (settings.failback === 'automatic') begin('failback', cluster, `healthy again after the ${settings.cooldown} cooldown`, 'flotilla');
    else {
      rec.failover.phase = 'AwaitingApproval';
      event(cluster, 'healthy again: failback awaits an SRE (POST /v1/clusters/{name}/actions failback)');
    }
  }

  setHandler(fleetStateQuery, (): FleetView => ({ settings, clusters: st.clusters, events: st.events, startedAt: st.startedAt }));

  setHandler(failoverDoneSignal, (d: FailoverDone) => {
    const rec = st.clusters[d.cluster];
    if (!rec?.failover) return;
    const summary = d.apps.map((a) => `${a.app} ${a.phase}`).join(', ') || 'no application placed there';
    if (d.kind === 'failover' && rec.failover.id === d.id) {
      rec.failover.apps = d.apps;
      rec.failover.to = [...new Set(d.apps.flatMap((a) => Object.entries(a.after ?? {}).filter(([, n]) => n > 0).map(([c]) => c)))];
      rec.failover.phase = 'FailedOver';
      rec.failover.finishedAt = d.at;
      event(d.cluster, `failed over: ${summary}`);
      if (rec.health === Health.Healthy) recovered(d.cluster);
    } else if (d.kind === 'failback' && rec.failover.failback?.id === d.id) {
      rec.lastFailback = { at: d.at, apps: d.apps };
      delete rec.failover;
      event(d.cluster, `failed back: ${summary}`);
    }
  });

  setHandler(
    clusterActionUpdate,
    (a: ClusterActionInput): ClusterView => {
      const rec = st.clusters[a.cluster]!;
      switch (a.action) {
        case 'drain':
          rec.drained = true;
          rec.drainedBy = a.who;
          event(a.cluster, 'drained: no new deliveries, replicas moved away', a.who, a.comment);
          if (!rec.failover) begin('failover', a.cluster, `drained by ${a.who}`, a.who);
          break;
        case 'undrain':
          rec.drained = false;
          delete rec.drainedBy;
          event(a.cluster, 'undrained', a.who, a.comment);
          // The SRE's undrain is the approval: a healthy cluster gets its replicas back now.
          if (rec.failover && (rec.failover.phase === 'FailedOver' || rec.failover.phase === 'AwaitingApproval') && rec.health === Health.Healthy) begin('failback', a.cluster, `undrained by ${a.who}`, a.who);
          break;
        case 'failover':
          begin('failover', a.cluster, `asked by ${a.who}${a.comment ? `: ${a.comment}` : ''}`, a.who);
          break;
        case 'failback':
          begin('failback', a.cluster, `approved by ${a.who}${a.comment ? `: ${a.comment}` : ''}`, a.who);
          break;
      }
      return rec;
    },
    {
      validator: (a: ClusterActionInput) => {
        const rec = st.clusters[a.cluster];
        if (!rec) throw ApplicationFailure.create({ type: 'UnknownCluster', nonRetryable: true, message: `no cluster "${a.cluster}" in the fleet (has: ${Object.keys(st.clusters).join(', ')})` });
        const refuse = (message: string): never => {
          throw ApplicationFailure.create({ type: 'ActionNotApplicable', nonRetryable: true, message });
        };
        const f = rec.failover;
        switch (a.action) {
          case 'drain':
            if (rec.drained) refuse(`${a.cluster} is already drained (by ${rec.drainedBy ?? 'someone'})`);
            break;
          case 'undrain':
            if (!rec.drained) refuse(`${a.cluster} is not drained`);
            if (f && (f.phase === 'FailingOver' || f.phase === 'FailingBack')) refuse(`${a.cluster}: a ${f.phase === 'FailingOver' ? 'failover' : 'failback'} is in progress (${f.phase === 'FailingOver' ? f.id : f.failback?.id}); try again when it ends`);
            break;
          case 'failover':
            if (f) refuse(`${a.cluster} is already failed over (${f.id}, ${f.phase}, since ${f.startedAt})`);
            break;
          case 'failback':
            if (!f) refuse(`${a.cluster} is not failed over`);
            if (f!.phase === 'FailingOver' || f!.phase === 'FailingBack') refuse(`${a.cluster}: a ${f!.phase === 'FailingOver' ? 'failover' : 'failback'} is in progress; try again when it ends`);
            if (rec.drained) refuse(`${a.cluster} is drained: undrain it (which fails it back)`);
            if (rec.health !== Health.Healthy) refuse(`${a.cluster} is ${rec.health}; failback needs it Healthy (${timing.successThreshold} probes in a row, then the ${settings.cooldown} cooldown)`);
            break;
        }
      },
    },
  );

  const probeOf = (c: ClusterInfo): ProbeActivities => {
    let p = probes.get(c.name);
    if (!p) {
      p = proxyActivities<ProbeActivities>({
        taskQueue: c.taskQueue,
        // One try, bounded: a worker that is up while its API server is gone must not hold the probe.
        startToCloseTimeout: timing.timeoutMs + 500,
        scheduleToCloseTimeout: timing.timeoutMs + 1500,
        retry: { maximumAttempts: 1 },
      });
      probes.set(c.name, p);
    }
    return p;
  };

  async function probe(c: ClusterInfo): Promise<void> {
    const at = now();
    let ok = false;
    let message: string | undefined;
    let latencyMs: number | undefined;
    try {
      const r = await probeOf(c).probeCluster({ cluster: c.name, timeoutMs: timing.timeoutMs });
      ok = r.ok;
      latencyMs = r.latencyMs;
      message = r.message;
    } catch (err) {
      const timeout = err instanceof ActivityFailure && err.cause?.name === 'TimeoutFailure';
      message = timeout ? `no answer from the cluster's worker within ${timing.timeoutMs + 1500} ms` : (err as Error).message;
    }
    const rec = st.clusters[c.name];
    if (!rec) return;
    const { state, event: ev } = observeProbe(rec, { ok, at, ...(latencyMs !== undefined ? { latencyMs } : {}), ...(message ? { message } : {}) }, timing);
    Object.assign(rec, state);
    if (rec.health !== Health.Recovering) delete rec.recoveringAt;
    if (ev === 'failed') {
      event(c.name, `Unhealthy: ${timing.failureThreshold} probes failed in a row (${message ?? 'failed'})`);
      if (settings.enabled) {
        background(hub.tellDeliveries({ cluster: c.name, failed: true, reason: message ?? 'probes failed' }));
        if (!rec.failover) begin('failover', c.name, `Unhealthy: ${message ?? 'probes failed'}`, 'flotilla');
      }
    } else if (ev === 'recovered') {
      event(c.name, `Healthy again: ${timing.successThreshold} probes answered, then ${settings.cooldown} without a failure`);
      if (settings.enabled) background(hub.tellDeliveries({ cluster: c.name, failed: false, reason: 'healthy' }));
      recovered(c.name);
    }
  }

  // Handlers are set before the first await: a query or an SRE's action right after continue-as-new is answered.
  await refresh();

  const historyLong = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > maxHistory;
  while (!historyLong()) {
    const tick = now();
    if (tick - refreshedAt >= REFRESH_MS) await refresh();
    await Promise.all(fleet.map((c) => probe(c)));
    const wait = tick + timing!.intervalMs - now();
    if (wait > 0) await sleep(wait);
  }
  await condition(() => inFlight === 0 && allHandlersFinished());
  await continueAsNew<typeof fleetMonitor>({ state: st, ...(input.maxHistory ? { maxHistory: input.maxHistory } : {}) });
}
