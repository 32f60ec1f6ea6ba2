/**
 * The fleet monitor and its failovers on a real Temporal dev server, with in-memory clusters (the
 * harness) whose probe a test switches: thresholds, flapping, one failover per failure, the replicas
 * moved and moved back (read from each fake cluster), failback awaiting an SRE, drain and undrain,
 * continue-as-new carrying the state, and a delivery in flight that stops waiting for a cluster the
 * monitor declared failed. Probe settings are short (200 ms) so that each test takes seconds.
 */
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createFleetActivities, type ProbeActivities } from '../../activities/fleet.ts';
import type { SteeringEvent } from '../../activities/steering.ts';
import { createLogger } from '../../api/logger.ts';
import { DeployRequestSchema, FailoverSettingsSchema, type DeliveryStatus, type FailoverSettings } from '../../model/index.ts';
import { appStateQuery, applicationWorkflowId } from '../../workflows/messages.ts';
import { clusterActionUpdate, fleetStateQuery, FLEET_MONITOR_WORKFLOW, type FleetView } from '../../workflows/fleetMessages.ts';
import { bundle, eventually, pinned, startFleet, type Fleet } from './harness.ts';
import { saveHistory } from './histories.ts';

let workflowBundle: WorkflowBundleWithSourceMap;
let fleet: Fleet | undefined;
let monitor: WorkflowHandle | undefined;
beforeAll(async () => {
  workflowBundle = await bundle();
});
afterEach(async () => {
  await monitor?.terminate('test over').catch(() => undefined);
  monitor = undefined;
  await fleet?.stop();
  fleet = undefined;
});

type ProbeMode = 'ok' | 'down' | 'hang';
interface Rig {
  fleet: Fleet;
  probe: Record<string, ProbeMode>;
  steered: SteeringEvent[];
  monitor: WorkflowHandle;
  view(): Promise<FleetView>;
}

const fast = (over: Partial<FailoverSettings> = {}): FailoverSettings =>
  FailoverSettingsSchema.parse({ enabled: true, probeInterval: '200ms', probeTimeout: '150ms', cooldown: '1s', lockWait: '3s', rolloutTimeout: '30s', ...over });

async function rig(settings: FailoverSettings, maxHistory?: number): Promise<Rig> {
  const probe: Record<string, ProbeMode> = { beijing: 'ok', shenzhen: 'ok', 'cloud-hk': 'ok' };
  const steered: SteeringEvent[] = [];
  const silent = createLogger('silent');
  fleet = await startFleet(inject('temporalAddress'), workflowBundle, {
    cluster: (name): ProbeActivities => ({
      probeCluster: async () => {
        if (probe[name] === 'hang') await new Promise((r) => setTimeout(r, 1000)); // past the activity's bound
        return probe[name] === 'ok' ? { ok: true, latencyMs: 1 } : { ok: false, latencyMs: 1, message: 'connect ECONNREFUSED' };
      },
    }),
    hub: (inventory) => createFleetActivities({ inventory: { ...inventory, failover: settings }, logger: silent, steering: { steer: async (e) => void steered.push(e) } }),
  });
  monitor = await fleet.client.workflow.start(FLEET_MONITOR_WORKFLOW, {
    workflowId: `fleet-monitor-${fleet.taskQueue}`,
    taskQueue: fleet.taskQueue,
    args: [maxHistory ? { maxHistory } : {}],
  });
  const m = monitor;
  const f = fleet;
  return { fleet: f, probe, steered, monitor: m, view: () => f.client.workflow.getHandle(m.workflowId).query(fleetStateQuery) };
}

const deploy = (ns: string, placement: Record<string, unknown> = { clusters: ['beijing', 'shenzhen', 'cloud-hk'] }, replicas = 8) =>
  DeployRequestSchema.parse({ type: 'deploy', app: { name: 'web', namespace: ns, image: 'reg.example/web:v1', replicas, placement } });

const replicas = (f: Fleet, ns: string) => Object.fromEntries(Object.entries(f.clusters).map(([n, c]) => [n, c.replicas(ns) ?? 0]));
/** Deliveries of the application requested by the failover, from its record. */
const failoverDeliveries = async (f: Fleet, ns: string) => {
  const s = await f.client.workflow.getHandle(applicationWorkflowId(ns, 'web')).query(appStateQuery);
  return s.deliveries.filter((d) => d.requestedBy === 'flotilla-failover');
};

describe('fleet monitor: health from probes', () => {
  it('turns a cluster Unhealthy after 3 failed probes, fails it over once, and fails it back after the cooldown', async () => {
    const r = await rig(fast());
    const ns = `fo${Date.now()}`;
    expect(((await (await r.fleet.deliver(deploy(ns))).result()) as DeliveryStatus).phase).toBe('Healthy');
    const original = replicas(r.fleet, ns);
    expect(original).toEqual({ beijing: 4, shenzhen: 2, 'cloud-hk': 2 }); // divided by capacity 2:1:1
    await eventually(r.view, (v) => Object.values(v.clusters).every((c) => c.health === 'Healthy'));

    r.probe.beijing = 'down';
    r.fleet.clusters.beijing!.fault = 'unreachable';
    const failed = await eventually(r.view, (v) => v.clusters.beijing?.failover?.phase === 'FailedOver', 30_000);
    expect(failed.clusters.beijing).toMatchObject({ health: 'Unhealthy', consecutiveFailures: expect.any(Number) });
    expect(failed.clusters.beijing!.consecutiveFailures).toBeGreaterThanOrEqual(3);
    expect(failed.clusters.beijing!.failover!.apps).toEqual([
      expect.objectContaining({ app: `${ns}/web`, phase: 'Moved', before: { beijing: 4, shenzhen: 2, 'cloud-hk': 2 }, after: { shenzhen: 4, 'cloud-hk': 4 } }),
    ]);
    // The full count on the healthy clusters; the dead one's objects untouched (it cannot be reached).
    expect(replicas(r.fleet, ns)).toEqual({ beijing: 4, shenzhen: 4, 'cloud-hk': 4 });
    expect(r.steered.map((e) => [e.type, e.cluster, e.to, e.apps])).toEqual([['cluster.failedOver', 'beijing', ['shenzhen', 'cloud-hk'], [`${ns}/web`]]]);
    // Still failing: no second failover.
    await new Promise((res) => setTimeout(res, 1500));
    expect(await failoverDeliveries(r.fleet, ns)).toHaveLength(1);

    r.probe.beijing = 'ok';
    r.fleet.clusters.beijing!.fault = 'none';
    const back = await eventually(r.view, (v) => v.clusters.beijing?.lastFailback !== undefined && !v.clusters.beijing.failover, 30_000);
    expect(back.clusters.beijing!.health).toBe('Healthy');
    expect(back.clusters.beijing!.lastFailback!.apps).toEqual([expect.objectContaining({ app: `${ns}/web`, phase: 'Moved' })]);
    expect(replicas(r.fleet, ns)).toEqual(original);
    expect(r.steered.map((e) => e.type)).toEqual(['cluster.failedOver', 'cluster.failedBack']);
    const app = await r.fleet.client.workflow.getHandle(applicationWorkflowId(ns, 'web')).query(appStateQuery);
    expect(app.spec?.placement).toEqual({ clusters: ['beijing', 'shenzhen', 'cloud-hk'] });
    // Every move deployed the version's pinned image, never the tag again.
    expect(Object.values(r.fleet.clusters).map((c) => c.image(ns))).toEqual([pinned('reg.example/web:v1'), pinned('reg.example/web:v1'), pinned('reg.example/web:v1')]);
    expect(back.events.map((e) => e.what.split(':')[0]!.split(' (')[0])).toEqual(
      expect.arrayContaining(['Unhealthy', 'failover started', 'failed over', 'Healthy again', 'failback started', 'failed back']),
    );
    await saveHistory(r.fleet.client, r.monitor.workflowId, 'fleet-monitor-failover');
  });

  it('a cluster that flaps (fails fewer times in a row than the threshold) triggers nothing; a hanging probe counts as a failure', async () => {
    const r = await rig(fast({ probeInterval: '300ms' }));
    const ns = `fl${Date.now()}`;
    await (await r.fleet.deliver(deploy(ns))).result();
    await eventually(r.view, (v) => v.clusters.shenzhen?.health === 'Healthy');
    for (let i = 0; i < 4; i++) {
      r.probe.shenzhen = i % 2 ? 'hang' : 'down';
      await eventually(r.view, (v) => (v.clusters.shenzhen?.consecutiveFailures ?? 0) >= 1, 10_000);
      r.probe.shenzhen = 'ok';
      await eventually(r.view, (v) => v.clusters.shenzhen?.consecutiveFailures === 0, 10_000);
    }
    const v = await r.view();
    expect(v.clusters.shenzhen!.health).toBe('Healthy');
    expect(v.clusters.shenzhen!.failover).toBeUndefined();
    expect(v.events.filter((e) => e.cluster === 'shenzhen')).toEqual([]);
    expect(await failoverDeliveries(r.fleet, ns)).toHaveLength(0);

    // Hanging for good: Unhealthy like a stopped one.
    r.probe.shenzhen = 'hang';
    const down = await eventually(r.view, (x) => x.clusters.shenzhen?.health === 'Unhealthy', 15_000);
    expect(down.clusters.shenzhen!.lastProbe?.message).toMatch(/no answer/);
  });
});

describe('fleet monitor: SRE actions and approval', () => {
  it('with failback: approval, a recovered cluster waits for an SRE; drain moves replicas away and undrain brings them back', async () => {
    const r = await rig(fast({ failback: 'approval' }));
    const ns = `ap${Date.now()}`;
    // Confined to the two Chinese regions: never lands on cloud-hk.
    await (await r.fleet.deliver(deploy(ns, { selector: { provider: 'private' } }, 6))).result();
    expect(replicas(r.fleet, ns)).toEqual({ beijing: 4, shenzhen: 2, 'cloud-hk': 0 });
    const act = (cluster: string, action: string) => r.monitor.executeUpdate(clusterActionUpdate, { args: [{ cluster, action: action as 'drain', who: 'sre-alice' }] });
    const refusal = async (p: Promise<unknown>) => {
      const e = await p.catch((x: unknown) => x);
      expect(e).toBeInstanceOf(WorkflowUpdateFailedError);
      return (e as WorkflowUpdateFailedError).cause as { type?: string; message: string };
    };
    expect(await refusal(act('atlantis', 'drain'))).toMatchObject({ type: 'UnknownCluster' });
    expect(await refusal(act('beijing', 'failback'))).toMatchObject({ type: 'ActionNotApplicable', message: 'beijing is not failed over' });
    expect(await refusal(act('beijing', 'undrain'))).toMatchObject({ type: 'ActionNotApplicable' });

    r.probe.beijing = 'down';
    await eventually(r.view, (v) => v.clusters.beijing?.failover?.phase === 'FailedOver', 30_000);
    expect(replicas(r.fleet, ns)).toEqual({ beijing: 4, shenzhen: 6, 'cloud-hk': 0 });
    expect(await refusal(act('beijing', 'failover'))).toMatchObject({ type: 'ActionNotApplicable' });
    expect((await refusal(act('beijing', 'failback'))).message).toMatch(/beijing is Unhealthy; failback needs it Healthy/);
    r.probe.beijing = 'ok';
    await eventually(r.view, (v) => v.clusters.beijing?.failover?.phase === 'AwaitingApproval', 30_000);
    await new Promise((res) => setTimeout(res, 1000));
    expect(replicas(r.fleet, ns)).toEqual({ beijing: 4, shenzhen: 6, 'cloud-hk': 0 }); // nothing without the SRE
    await act('beijing', 'failback');
    await eventually(r.view, (v) => v.clusters.beijing?.lastFailback !== undefined && !v.clusters.beijing.failover, 30_000);
    expect(replicas(r.fleet, ns)).toEqual({ beijing: 4, shenzhen: 2, 'cloud-hk': 0 });

    // Drain: a healthy cluster emptied on request; undrain (the SRE's approval) restores it.
    await act('shenzhen', 'drain');
    expect(await refusal(act('shenzhen', 'drain'))).toMatchObject({ type: 'ActionNotApplicable' });
    await eventually(r.view, (v) => v.clusters.shenzhen?.failover?.phase === 'FailedOver', 30_000);
    expect(replicas(r.fleet, ns)).toEqual({ beijing: 6, shenzhen: 0, 'cloud-hk': 0 }); // reachable: emptied, not just bypassed
    await act('shenzhen', 'undrain');
    await eventually(r.view, (v) => !v.clusters.shenzhen?.failover && v.clusters.shenzhen?.drained === false, 30_000);
    expect(replicas(r.fleet, ns)).toEqual({ beijing: 4, shenzhen: 2, 'cloud-hk': 0 });
  });
});

describe('fleet monitor: long life', () => {
  it('continues as new with its state: a cluster failed over before stays failed over once', async () => {
    const r = await rig(fast({ cooldown: '1s' }), 120);
    const ns = `can${Date.now()}`;
    await (await r.fleet.deliver(deploy(ns))).result();
    r.probe['cloud-hk'] = 'down';
    await eventually(r.view, (v) => v.clusters['cloud-hk']?.failover?.phase === 'FailedOver', 30_000);
    const firstRun = (await r.monitor.describe()).runId;
    // Two more runs at least, while cloud-hk stays down.
    let runs = new Set([firstRun]);
    await eventually(
      async () => {
        runs = runs.add((await r.fleet.client.workflow.getHandle(r.monitor.workflowId).describe()).runId);
        return runs.size;
      },
      (n) => n >= 3,
      60_000,
    );
    const v = await r.view();
    expect(v.clusters['cloud-hk']).toMatchObject({ health: 'Unhealthy', failover: { phase: 'FailedOver' } });
    expect(v.events.filter((e) => e.what.startsWith('failover started'))).toHaveLength(1);
    expect(await failoverDeliveries(r.fleet, ns)).toHaveLength(1);
    expect(replicas(r.fleet, ns)).toEqual({ beijing: 5, shenzhen: 3, 'cloud-hk': 2 });
  });
});

describe('deliveries in flight', () => {
  it('stop waiting for a cluster the monitor declared failed: its unreachable rule applies at once', async () => {
    const r = await rig(fast());
    const ns = `inf${Date.now()}`;
    // shenzhen's rollout never ends while its API server is gone (the harness's wait gate).
    let release!: () => void;
    r.fleet.clusters.shenzhen!.rolloutGate = { ready: 0, release: new Promise<void>((res) => (release = res)) };
    const d = await r.fleet.deliver(DeployRequestSchema.parse({ ...deploy(ns), onFailure: 'fail', unreachableTimeout: '10m' }));
    await eventually(() => d.query<DeliveryStatus>('status'), (s) => s.clusters.shenzhen?.phase === 'Progressing');
    r.probe.shenzhen = 'down';
    const end = (await d.result()) as DeliveryStatus;
    release();
    expect(end.phase).toBe('Degraded');
    expect(end.clusters.shenzhen).toMatchObject({ phase: 'Unreachable', failureType: 'ClusterUnreachable' });
    expect(end.clusters.shenzhen!.message).toMatch(/fleet monitor declared shenzhen failed/);
    // Far sooner than the 10-minute unreachableTimeout.
    expect(new Date(end.finishedAt!).getTime() - new Date(end.startedAt).getTime()).toBeLessThan(60_000);
  });
});
