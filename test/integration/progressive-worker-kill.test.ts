/**
 * The worker killed mid-canary (issue 8): the real worker runs in a process of its own and is
 * killed with SIGKILL twice during one canary of two clusters, through the HTTP API, once with
 * the Istio router and once with the NGINX router:
 *  - during a pause (wave paused at 20 %): the replacement worker finds the delivery still
 *    paused at the same step, the weights as they were, and nothing redone;
 *  - during a weight change (20 -> 50 %): beijing's write of the route (the VirtualService, or
 *    the canary Ingress's canary-weight) is held at the stack's API-server proxy, the worker is killed while that write is in flight, the write
 *    never lands, and the next worker retries the same step (the same activity, attempt 2) and
 *    sets 50 %.
 * The rollout then completes. Every cluster's new-version share, read straight from its API
 * server every 200 ms over the whole run, never goes back.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { proxyRules, proxyState, stackOptions } from '../../stack/index.ts';
import type { DeliveryStatus } from '../../model/index.ts';
import { harness, meshRoutes, newVersionShare, sampleShares, shareSteps, SRE, splitIn, webDeployment, webService, type Harness } from './progressive-support.ts';
import { spawnWorker, stopProcess, until } from './support.ts';

const stack = inject('stack');
const opts = stackOptions(stack);
const dir = mkdtempSync(path.join(tmpdir(), 'flotilla-kill-'));
const inventoryFile = path.join(dir, 'inventory.yaml');
const CLUSTERS = ['beijing', 'shenzhen'];
let h: Harness;
let worker: ChildProcess | undefined;
let workers = 0;

/** A new worker process (the only one serving this run's queues: the harness starts none), once it has created its workers. */
async function startWorker(): Promise<ChildProcess> {
  workers += 1;
  const log = path.join(dir, `worker-${workers}.log`);
  const w = spawnWorker(stack, inventoryFile, log);
  worker = w;
  await until(async () => readFileSync(log, 'utf8'), (t) => t.includes('workers starting') || w.exitCode !== null, `worker ${workers} started`, 120_000);
  expect(w.exitCode, readFileSync(log, 'utf8')).toBeNull();
  return w;
}
const identity = (w: ChildProcess) => `${w.pid}@${hostname()}`;

beforeAll(async () => {
  h = await harness(stack, { worker: false });
  writeFileSync(inventoryFile, stringify(h.inventory));
  await startWorker();
});
afterAll(async () => {
  await proxyRules('beijing', [], opts).catch(() => undefined);
  if (worker) await stopProcess(worker, 'SIGTERM');
  await h?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Every setTrafficWeight the delivery scheduled: its activity id, cluster and weight, and (once it has
 * ended: Temporal records the start of a retried activity only then) the attempt that ran it and its worker.
 */
async function weightChanges(id: string) {
  const events = (await h.temporal.workflow.getHandle(id).fetchHistory()).events ?? [];
  const out = new Map<string, { activityId: string; cluster: string; weight: number; starts: { attempt: number; identity: string }[] }>();
  for (const e of events) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s?.activityType?.name === 'setTrafficWeight') {
      const input = JSON.parse(Buffer.from(s.input!.payloads![0]!.data!).toString('utf8')) as { cluster: string; weight: number };
      out.set(String(e.eventId), { activityId: s.activityId ?? '', cluster: input.cluster, weight: input.weight, starts: [] });
    }
    const st = e.activityTaskStartedEventAttributes;
    if (st && out.has(String(st.scheduledEventId))) out.get(String(st.scheduledEventId))!.starts.push({ attempt: st.attempt ?? 0, identity: st.identity ?? '' });
  }
  return [...out.values()];
}

/** The status once a worker answers again (a query fails while none does). */
const statusWhen = (id: string, pred: (s: DeliveryStatus) => boolean, what: string) => until(() => h.status(id), pred, `delivery ${id}: ${what}`, 120_000);

/** Istio by default (its write is the VirtualService); FLOTILLA_KILL_ROUTERS=istio,nginx runs NGINX's canary Ingress too (~100 s more). */
const routers = (process.env.FLOTILLA_KILL_ROUTERS ?? 'istio').split(',');
describe.each(meshRoutes.filter((r) => routers.includes(r.router)))('the worker killed mid-canary ($router router, one wave of two clusters)', (tc) => {
  it('SIGKILL during a pause and during a weight change: resumed at the same step, completed, weights never back', { timeout: 480_000 }, async () => {
    const ns = h.fresh(`kill-${tc.router}`);
    const v1 = await h.pinned('v1');
    const v2 = await h.pinned('v2');
    const body = (img: string) => ({
      app: { name: 'web', namespace: ns, source: { manifests: [webDeployment(img), webService, tc.route] }, placement: { clusters: CLUSTERS }, distribution: 'duplicated' },
      onFailure: 'pause',
      rolloutTimeout: '2m',
    });
    const base = await h.finished(await h.start({ type: 'deploy', ...body(h.image('v1')) }));
    expect(base.phase, base.message).toBe('Healthy');

    const sampler = sampleShares(CLUSTERS, (c) => newVersionShare(h.direct.get(c)!, tc.router, ns, h.at(c, v2)));
    try {
      const id = await h.start({
        type: 'canary',
        ...body(h.image('v2')),
        canary: { trafficRouting: tc.trafficRouting, steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 50 }, { pause: {} }] },
      });

      // --- 1. Killed during the pause at 20 %.
      await h.waitFor(id, (x) => x.phase === 'Paused' && x.currentStep === 3, 'paused at 20 %');
      for (const c of CLUSTERS) expect(await tc.read(h.direct.get(c)!, ns), c).toEqual(tc.want(20));
      await stopProcess(worker!, 'SIGKILL');
      await startWorker();
      let s = await statusWhen(id, () => true, 'answered by the new worker');
      expect({ phase: s.phase, step: s.currentStep, weights: CLUSTERS.map((c) => s.clusters[c]!.weight) }).toEqual({ phase: 'Paused', step: 3, weights: [20, 20] });
      for (const c of CLUSTERS) expect(await tc.read(h.direct.get(c)!, ns), c).toEqual(tc.want(20));
      // Nothing was redone: one weight change per cluster so far.
      expect((await weightChanges(id)).map((w) => [w.cluster, w.weight]).sort()).toEqual([
        ['beijing', 20],
        ['shenzhen', 20],
      ]);

      // --- 2. Killed while beijing's write of 50 % is in flight (held at the proxy for a minute).
      const delayed = async () => (await proxyState(opts)).find((v) => v.name === 'beijing')!.counts.delay;
      const delayedBefore = await delayed();
      await proxyRules('beijing', [{ action: 'delay', method: 'PATCH', path: tc.write, delayMs: 60_000, count: 1 }], opts);
      const promoted = await until(() => h.act(id, SRE, { action: 'promote', comment: 'on to 50 %' }), (r) => r.status === 200, 'promote accepted', 60_000);
      expect(promoted.status).toBe(200);
      // Kill well within the worker's 10 s request timeout (after which the activity would retry the write itself).
      await until(delayed, (n) => n > delayedBefore, `beijing's ${tc.router} route write held at the proxy`, 120_000);
      const change = (await weightChanges(id)).find((w) => w.cluster === 'beijing' && w.weight === 50)!;
      const pending = ((await h.temporal.workflow.getHandle(id).describe()).raw.pendingActivities ?? []).find((a) => a.activityId === change.activityId);
      expect({ state: Number(pending?.state), attempt: pending?.attempt, worker: pending?.lastWorkerIdentity }).toEqual({ state: 2 /* STARTED */, attempt: 1, worker: identity(worker!) });
      await stopProcess(worker!, 'SIGKILL');
      // The write never landed (the proxy drops a held request whose client is gone).
      expect(await tc.read(h.direct.get('beijing')!, ns)).toEqual(tc.want(20));
      await proxyRules('beijing', [], opts);
      const third = await startWorker();
      s = await statusWhen(id, (x) => x.phase === 'Paused' && x.currentStep === 5, 'paused at 50 %');
      expect(CLUSTERS.map((c) => s.clusters[c]!.weight)).toEqual([50, 50]);
      for (const c of CLUSTERS) expect(await tc.read(h.direct.get(c)!, ns), c).toEqual(tc.want(50));
      expect(await splitIn(h.direct, ns, CLUSTERS)).toEqual({
        beijing: { stable: { image: h.at('beijing', v1), replicas: 4, ready: 4 }, canary: { image: h.at('beijing', v2), replicas: 2, ready: 2 } },
        shenzhen: { stable: { image: h.at('shenzhen', v1), replicas: 4, ready: 4 }, canary: { image: h.at('shenzhen', v2), replicas: 2, ready: 2 } },
      });
      // The same step resumed: beijing's 50 % is the one activity, started again by the third worker.
      const changes = await weightChanges(id);
      expect(changes.map((w) => [w.cluster, w.weight]).sort()).toEqual([
        ['beijing', 20],
        ['beijing', 50],
        ['shenzhen', 20],
        ['shenzhen', 50],
      ]);
      const retried = changes.find((w) => w.cluster === 'beijing' && w.weight === 50)!;
      expect(retried.starts.at(-1)!.attempt).toBeGreaterThanOrEqual(2);
      expect(retried.starts.at(-1)!.identity).toBe(identity(third));

      // --- 3. Promoted: 100 % on v2, the canary gone, the route as delivered.
      expect((await h.act(id, SRE, { action: 'promote' })).status).toBe(200);
      const final = await h.finished(id);
      expect(final.phase, final.message).toBe('Healthy');
      for (const c of CLUSTERS) expect(await tc.read(h.direct.get(c)!, ns), c).toEqual(tc.want(null));
      expect(await splitIn(h.direct, ns, CLUSTERS)).toEqual({
        beijing: { stable: { image: h.at('beijing', v2), replicas: 4, ready: 4 }, canary: null },
        shenzhen: { stable: { image: h.at('shenzhen', v2), replicas: 4, ready: 4 }, canary: null },
      });
    } finally {
      await sampler.stop();
    }
    expect(shareSteps(sampler.samples)).toEqual({ beijing: [0, 20, 50, 100], shenzhen: [0, 20, 50, 100] });
  });
});
