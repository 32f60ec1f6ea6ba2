/**
 * Failover and failback on the real stack: the four-cluster fleet (stack/fleet-4.yaml: beijing and
 * tianjin in cn-north, shenzhen in cn-south, cloud-hk in ap-east) as a stack of its own beside the
 * project's (its data dir + "-fleet4", its port base + 250), the real worker with failover enabled
 * (default probes: 5 s, bound 2 s, thresholds 3 and 3; cooldown 10 s to keep the file short), the API,
 * and a GSLB stand-in that checks each signed traffic-steering call.
 *
 * Two applications: `all` on every cluster (12 replicas) and `cn` confined to cn-north and cn-south
 * (6 replicas on beijing, tianjin, shenzhen). Everything asserted is read back from the clusters'
 * API servers (replicas and ready replicas) or from GET /v1/clusters.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import request from 'supertest';
import { fault, resolveConfig } from '../../stack/index.ts';
import { temporalDown, temporalUp } from '../../stack/temporal.ts';
import { portOpen } from '../../stack/net.ts';
import type { StackInfo } from '../../stack/types.ts';
import { replicasByCluster, toClusterInfo, type ClusterInfo } from '../../model/index.ts';
import { FailoverRig, waitFor } from '../support/failover-rig.ts';
import { CI, VIEWER } from '../support/tokens.ts';

const main: StackInfo = inject('stack');
const rig = new FailoverRig({ dataDir: `${main.dataDir}-fleet4`, portBase: main.portBase! + 250 }, { cooldown: '10s' });
const run = Date.now().toString(36);
const ALL = `fo-all-${run}`;
const CN = `fo-cn-${run}`;
const everywhere = { clusters: ['beijing', 'shenzhen', 'cloud-hk', 'tianjin'] };
const confined = { clusters: ['beijing', 'shenzhen', 'tianjin'] };
let fleet: ClusterInfo[];

/** The replicas each cluster runs when `failed` take none (the planner's own division, by capacity). */
function split(placement: { clusters: string[] }, total: number, failed: string[] = []): Record<string, number> {
  const placed = fleet.filter((c) => placement.clusters.includes(c.name) && !failed.includes(c.name));
  const r = replicasByCluster(total, placed, {}, 'divided');
  return Object.fromEntries(fleet.map((c) => [c.name, r[c.name] ?? 0]));
}
const without = (m: Record<string, number>, c: string) => Object.fromEntries(Object.entries(m).filter(([k]) => k !== c));
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const stackOpts = () => rig.opts;

beforeAll(async () => {
  await rig.start();
  fleet = rig.inventory.clusters.map(toClusterInfo);
  await rig.deliver(ALL, everywhere, 12);
  await rig.deliver(CN, confined, 6);
  await waitFor('every cluster Healthy in GET /v1/clusters', 30_000, async () => ((await rig.view()).items.every((c) => c.health === 'Healthy') ? true : undefined));
}, 600_000);

afterAll(async () => {
  await rig.cleanup().catch(() => undefined);
  await rig.stop();
}, 300_000);

/** Waits until the clusters (but `dead`) run `want` for both apps, all ready; returns the elapsed ms from `t0`. */
async function reached(t0: number, dead: string | undefined, wantAll: Record<string, number>, wantCn: Record<string, number>, timeoutMs = 120_000): Promise<number> {
  const skip = dead ? [dead] : [];
  return waitFor(`replicas ${JSON.stringify(wantAll)} / ${JSON.stringify(wantCn)}`, timeoutMs, async () =>
    (await rig.runs(ALL, dead ? without(wantAll, dead) : wantAll, skip)) && (await rig.runs(CN, dead ? without(wantCn, dead) : wantCn, skip)) ? Date.now() - t0 : undefined,
  );
}

describe('failover on the real stack', () => {
  it('cluster-down: the other clusters reach the full ready count (cn never lands on cloud-hk); cluster-up: the original distribution after the cooldown', async () => {
    const t0 = Date.now();
    await fault('cluster-down', 'beijing', stackOpts());
    const moved = await reached(t0, 'beijing', split(everywhere, 12, ['beijing']), split(confined, 6, ['beijing']));
    console.log(`[failover] cluster-down beijing -> full ready replicas elsewhere in ${secs(moved)} (probe 5s, threshold 3)`);
    const cn = await rig.replicas(CN, ['beijing']);
    expect(cn['cloud-hk']).toBeNull(); // confined to cn-north and cn-south: never on cloud-hk
    const v = await waitFor('beijing FailedOver', 30_000, async () => ((await rig.view()).clusters.beijing?.failover?.phase === 'FailedOver' ? rig.view() : undefined));
    expect(v.clusters.beijing).toMatchObject({ health: 'Unhealthy', lastProbe: { ok: false } });
    expect(v.clusters.beijing!.failover!.apps.map((a) => [a.app, a.phase]).sort()).toEqual([[`${ALL}/web`, 'Moved'], [`${CN}/web`, 'Moved']]);
    expect(rig.steered.filter((s) => s.cluster === 'beijing')).toEqual([
      { type: 'cluster.failedOver', cluster: 'beijing', to: expect.arrayContaining(['shenzhen', 'cloud-hk', 'tianjin']), apps: [`${ALL}/web`, `${CN}/web`], signature: 'ok' },
    ]);

    const t1 = Date.now();
    await fault('cluster-up', 'beijing', stackOpts());
    const back = await reached(t1, undefined, split(everywhere, 12), split(confined, 6), 180_000);
    console.log(`[failover] cluster-up beijing -> original distribution in ${secs(back)} (3 probes + 10s cooldown + the move)`);
    const after = await waitFor('beijing failed back', 30_000, async () => ((await rig.view()).clusters.beijing?.lastFailback ? rig.view() : undefined));
    expect(after.clusters.beijing).toMatchObject({ health: 'Healthy' });
    expect(after.clusters.beijing!.failover).toBeUndefined();
    expect(rig.steered.filter((s) => s.cluster === 'beijing').map((s) => [s.type, s.signature])).toEqual([
      ['cluster.failedOver', 'ok'],
      ['cluster.failedBack', 'ok'],
    ]);
  });

  it('an API server that hangs (connections accepted, no answer) is failed over and back the same way', async () => {
    const t0 = Date.now();
    await fault('cluster-hang', 'shenzhen', stackOpts());
    const moved = await reached(t0, 'shenzhen', split(everywhere, 12, ['shenzhen']), split(confined, 6, ['shenzhen']));
    console.log(`[failover] cluster-hang shenzhen -> full ready replicas elsewhere in ${secs(moved)}`);
    const v = await rig.view();
    expect(v.clusters.shenzhen!.health).toBe('Unhealthy');
    expect(v.clusters.shenzhen!.lastProbe?.message).toMatch(/no answer/);
    await fault('cluster-heal', 'shenzhen', stackOpts());
    await reached(Date.now(), undefined, split(everywhere, 12), split(confined, 6), 180_000);
    await waitFor('shenzhen failed back', 30_000, async () => ((await rig.view()).clusters.shenzhen?.lastFailback ? true : undefined));
  });

  it('a cluster that flaps (5xx for less than the threshold) triggers nothing', async () => {
    const before = (await rig.view()).events.length;
    await fault('cluster-5xx', 'cloud-hk', stackOpts());
    // Seen failing by the probes at least once, so this test can fail ...
    await waitFor('a failed probe of cloud-hk', 15_000, async () => ((await rig.view()).clusters['cloud-hk']?.lastProbe?.ok === false ? true : undefined));
    await new Promise((r) => setTimeout(r, 3_000));
    await fault('cluster-heal', 'cloud-hk', stackOpts());
    // ... and then answering again for longer than the threshold window.
    await new Promise((r) => setTimeout(r, 16_000));
    const v = await rig.view();
    expect(v.clusters['cloud-hk']).toMatchObject({ health: 'Healthy', consecutiveFailures: 0 });
    expect(v.clusters['cloud-hk']!.failover).toBeUndefined();
    expect(v.events.slice(0, v.events.length - before).filter((e) => e.cluster === 'cloud-hk')).toEqual([]);
    expect(await rig.runs(ALL, split(everywhere, 12))).toBe(true);
  });

  it('drain and undrain by an SRE: replicas leave tianjin and come back; new deliveries to it are refused meanwhile', async () => {
    expect((await rig.action('tianjin', 'drain', VIEWER)).status).toBe(403);
    expect((await rig.action('atlantis', 'drain')).status).toBe(404);
    const bad = await rig.action('tianjin', 'explode');
    expect(bad.status).toBe(400);
    expect(bad.body.details).toEqual([expect.objectContaining({ path: 'action' })]);
    expect((await rig.action('tianjin', 'failback')).body).toMatchObject({ error: 'ActionNotApplicable', message: 'tianjin is not failed over' });

    const drained = await rig.action('tianjin', 'drain');
    expect(drained.status).toBe(200);
    expect(drained.body).toMatchObject({ name: 'tianjin', drained: true, drainedBy: 'alice', failover: { phase: 'FailingOver' } });
    expect((await rig.action('tianjin', 'drain')).status).toBe(409);
    await reached(Date.now(), undefined, split(everywhere, 12, ['tianjin']), split(confined, 6, ['tianjin']));
    const refused = await request(rig.api)
      .post('/v1/deliveries')
      .set('Authorization', CI)
      .send({ type: 'deploy', app: { name: 'other', namespace: CN, image: 'x.example/web:v1', replicas: 2, placement: { clusters: ['tianjin', 'shenzhen'] } } });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ error: 'ClusterDrained', message: expect.stringMatching(/tianjin is drained/) });

    await waitFor('drain failover done', 30_000, async () => ((await rig.view()).clusters.tianjin?.failover?.phase === 'FailedOver' ? true : undefined));
    expect((await rig.action('tianjin', 'undrain')).status).toBe(200);
    await reached(Date.now(), undefined, split(everywhere, 12), split(confined, 6));
    await waitFor('tianjin back', 30_000, async () => {
      const t = (await rig.view()).clusters.tianjin;
      return t && !t.drained && !t.failover ? true : undefined;
    });
  });

  it('worker and Temporal restarted while a cluster is down: the monitor resumes with its state, fails over once, and the failback waits for approval', async () => {
    await fault('cluster-down', 'cloud-hk', stackOpts());
    await reached(Date.now(), 'cloud-hk', split(everywhere, 12, ['cloud-hk']), split(confined, 6));
    const failedOver = await waitFor('cloud-hk FailedOver', 30_000, async () => ((await rig.view()).clusters['cloud-hk']?.failover?.phase === 'FailedOver' ? rig.view() : undefined));
    const failoverId = failedOver.clusters['cloud-hk']!.failover!.id;

    // Everything on the hub side goes away while cloud-hk is down; the worker comes back with failback: approval.
    await rig.stopWorkers();
    const cfg = resolveConfig(stackOpts());
    await temporalDown(cfg);
    // The dev server's ports go free a moment after its process has ended.
    const temporalPorts = [0, 1, 2, 3].map((i) => cfg.portBase + i);
    await waitFor('Temporal ports free', 30_000, async () => ((await Promise.all(temporalPorts.map((p) => portOpen(p, 300)))).some(Boolean) ? undefined : true));
    await temporalUp(cfg, () => undefined);
    rig.settings = { ...rig.settings, failback: 'approval' };
    await rig.startWorkers();
    const resumed = await waitFor('monitor answering with the new settings', 60_000, async () => {
      const v = await rig.view();
      return v.settings.failback === 'approval' ? v : undefined;
    });
    expect(resumed.clusters['cloud-hk']).toMatchObject({ health: 'Unhealthy', failover: { id: failoverId, phase: 'FailedOver' } });
    await new Promise((r) => setTimeout(r, 16_000)); // three more failed probes at least
    const still = await rig.view();
    expect(still.clusters['cloud-hk']!.failover!.id).toBe(failoverId);
    expect(still.events.filter((e) => e.cluster === 'cloud-hk' && e.what.startsWith('failover started'))).toHaveLength(1);

    await fault('cluster-up', 'cloud-hk', stackOpts());
    await waitFor('cloud-hk awaiting approval', 120_000, async () => ((await rig.view()).clusters['cloud-hk']?.failover?.phase === 'AwaitingApproval' ? true : undefined));
    await new Promise((r) => setTimeout(r, 3_000));
    // Nothing moved without the SRE: the others keep the full count (cloud-hk, back, runs its old replicas beside them).
    expect(await rig.runs(ALL, without(split(everywhere, 12, ['cloud-hk']), 'cloud-hk'), ['cloud-hk'])).toBe(true);
    const approved = await rig.action('cloud-hk', 'failback');
    expect(approved.status).toBe(200);
    expect(approved.body.failover).toMatchObject({ phase: 'FailingBack', failback: { by: 'alice' } });
    await reached(Date.now(), undefined, split(everywhere, 12), split(confined, 6));
  });
});
