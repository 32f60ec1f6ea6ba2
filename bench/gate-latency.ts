/**
 * Gate decision to the next weight, Flotilla beside Argo Rollouts, in one run.
 *
 * Flotilla: canaries of 10 replicas across the three clusters in one wave, each with the
 * steps setWeight 10, approval g1, setWeight 20, approval g2, ... setWeight 90 (8 gates).
 * At each gate, once the wave waits there and the weight before it is in place, this
 * process sends `POST /v1/deliveries/{id}/actions {"action":"approve","gate":...}` to
 * Flotilla's HTTP API (in this process, over the worker's Temporal server) and notes, with
 * its own watches straight on each API server:
 *   answered   the POST's answer (the gate closed in the workflow);
 *   applied    the canary Deployment's replicas set to the next weight's share in EVERY
 *              cluster of the wave (the weight written: what the router changes);
 *   ready      those canary pods ready in every cluster (the weight in effect).
 * Argo Rollouts (one cluster): a Rollout of 10 replicas with setWeight 10, pause {}, 20,
 * pause {}, ... 90, pause {}; at each pause it is promoted the way `kubectl argo rollouts
 * promote` does it (bench/support/argo.ts), and the same two times are noted on the canary
 * ReplicaSet. Both routers are replica ratios (no traffic router): a weight is a replica count.
 *
 *   npm run bench -- gate-latency [canaries]      (default 4 each: 32 decisions per side)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { V1Deployment } from '@kubernetes/client-node';
import type { DeliveryStatus } from '../model/index.ts';
import { statusQuery } from '../workflows/messages.ts';
import { benchRoot, withBenchStack } from './support/stack.ts';
import { result, startApi, startEngine } from './support/engine.ts';
import { healthyAt, startArgoSide } from './support/argo.ts';
import { load, median, table } from './support/stats.ts';
import { timeline } from './support/history.ts';

const REPLICAS = 10;
const WEIGHTS = [10, 20, 30, 40, 50, 60, 70, 80, 90];
const canaryShare = (w: number) => (REPLICAS * w) / 100; // 10 replicas: exact, and the same for both sides

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, read: () => T | undefined | Promise<T | undefined>, timeoutMs = 180_000, everyMs = 10): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(everyMs);
  }
}

/** Nearest-rank percentile. */
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]!;
};

interface Row {
  side: 'flotilla' | 'argo';
  answered: number;
  applied: number;
  ready: number;
  /** Flotilla, from the delivery's history (ms after the decision was sent): the update accepted in a workflow task, the weight activities scheduled, the last of them started by its cluster's worker. */
  accepted?: number;
  scheduled?: number;
  started?: number;
}

export async function main(args: string[]): Promise<void> {
  const canaries = Number(args[0] ?? 4);
  const load0 = load();
  await withBenchStack(
    async (stack) => {
      const clusters = stack.clusters.map((c) => c.name);
      const argo = await startArgoSide(stack, clusters[0]!, `bench-gate-argo-${Date.now().toString(36)}`);
      const engine = await startEngine(stack);
      const api = await startApi(engine);
      const ns = 'bench-gate';
      const rows: Row[] = [];
      const decisions: { row: Row; t0: number; weight: number }[] = [];
      // The canary Deployment in each cluster: every change, with this process's clock.
      const seen = new Map<string, { at: number; replicas: number; ready: number }[]>(clusters.map((c) => [c, []]));
      // Restarted when the API server ends them; a restart reads the Deployment first (a change is seen late, never missed; said on stderr).
      const stopped = { now: false };
      const record = (c: string, d: V1Deployment | undefined) => d && seen.get(c)!.push({ at: Date.now(), replicas: d.spec?.replicas ?? 0, ready: d.status?.readyReplicas ?? 0 });
      const watchCanary = async (c: string, restart = false): Promise<void> => {
        if (stopped.now) return;
        const cc = engine.direct.get(c)!;
        if (restart) {
          process.stderr.write(`${c}: the watch of web-canary ended; reading and watching again\n`);
          record(c, await cc.apps.readNamespacedDeployment({ name: 'web-canary', namespace: ns }).catch(() => undefined));
        }
        const ctl = await cc.watch.watch(`/apis/apps/v1/namespaces/${ns}/deployments`, { fieldSelector: 'metadata.name=web-canary' }, (_t: string, d: V1Deployment) => record(c, d), () => {
          void watchCanary(c, true).catch(() => setTimeout(() => void watchCanary(c, true).catch(() => undefined), 1000));
        });
        watches.set(c, ctl);
      };
      const watches = new Map<string, { abort: () => void }>();
      await Promise.all(clusters.map((c) => watchCanary(c)));
      const everywhere = (since: number, ok: (e: { replicas: number; ready: number }) => boolean) => {
        const times = clusters.map((c) => seen.get(c)!.find((e) => e.at >= since && ok(e))?.at);
        return times.every((t) => t !== undefined) ? Math.max(...(times as number[])) : undefined;
      };
      const steps = WEIGHTS.flatMap((w, i) => (i === 0 ? [{ setWeight: w }] : [{ approval: { name: `g${i}`, roles: ['sre' as const] } }, { setWeight: w }]));
      const argoSteps = WEIGHTS.flatMap((w) => [{ setWeight: w }, { pause: {} }]);
      try {
        const base = await result(await engine.deliver({ namespace: ns, image: `${engine.central}/demo/web:v1`, replicas: REPLICAS, placement: { clusters } }));
        if (base.phase !== 'Healthy') throw new Error(`baseline ended ${base.phase}: ${base.message}`);
        const b0 = performance.now();
        const first = await argo.apply(argo.rollout('v1', REPLICAS, argoSteps));
        await argo.until(healthyAt(first.metadata!.generation!, REPLICAS), b0, 'baseline Healthy');
        for (let r = 0; r < canaries; r++) {
          const tag = r % 2 === 0 ? 'v2' : 'v1';
          // --- Flotilla: one canary, 8 gates ---
          const h = await engine.deliver({ namespace: ns, image: `${engine.central}/demo/web:${tag}`, replicas: REPLICAS, placement: { clusters } }, { type: 'canary', waves: [clusters], canary: { steps } });
          for (let g = 1; g < WEIGHTS.length; g++) {
            const gate = `g${g}`;
            await until(`${h.workflowId} waiting at ${gate}`, async () => {
              const s = (await h.query(statusQuery)) as DeliveryStatus;
              if (s.phase !== 'Paused' && s.phase !== 'Progressing' && s.phase !== 'Pending') throw new Error(`delivery ${h.workflowId} ${s.phase}: ${s.message}`);
              return s.gates?.some((x) => x.name === gate && x.state === 'Waiting') ? true : undefined;
            }, 180_000, 50);
            const before = canaryShare(WEIGHTS[g - 1]!);
            await until(`weight ${WEIGHTS[g - 1]} ready before ${gate}`, () => everywhere(0, (e) => e.replicas === before && e.ready === before));
            await sleep(300); // let the last watch events and status writes pass
            const want = canaryShare(WEIGHTS[g]!);
            const t0 = Date.now();
            const res = await api.post(`/v1/deliveries/${h.workflowId}/actions`, { action: 'approve', gate, comment: 'bench' });
            const answered = Date.now() - t0;
            if (res.status !== 200) throw new Error(`approve ${gate}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
            const applied = (await until(`${gate}: weight ${WEIGHTS[g]} applied everywhere`, () => everywhere(t0, (e) => e.replicas === want))) - t0;
            const ready = (await until(`${gate}: weight ${WEIGHTS[g]} ready everywhere`, () => everywhere(t0, (e) => e.replicas === want && e.ready === want))) - t0;
            const row: Row = { side: 'flotilla', answered, applied, ready };
            rows.push(row);
            decisions.push({ row, t0, weight: WEIGHTS[g]! });
            process.stderr.write(`flotilla canary ${r + 1}/${canaries} ${gate}: answered ${answered} ms, applied in all ${clusters.length} ${applied} ms, ready ${ready} ms (load ${load()})\n`);
          }
          // The last weight (90) then the promote; no gate after it.
          const s = await result(h);
          if (s.phase !== 'Healthy') throw new Error(`delivery ${h.workflowId} ended ${s.phase}: ${s.message}`);
          // Where each decision's time went, from the history (the server's clock: the same machine's).
          const t = await timeline(h);
          for (const d of decisions.splice(0)) {
            const accepted = t.updates.find((u) => u.at >= d.t0 - 50);
            const spans = t.activities.filter((a) => a.type === 'setTrafficWeight' && Number(a.input.weight) === d.weight);
            if (accepted) d.row.accepted = accepted.at - d.t0;
            if (spans.length) {
              d.row.scheduled = Math.min(...spans.map((a) => a.scheduled)) - d.t0;
              d.row.started = Math.max(...spans.map((a) => a.started ?? a.scheduled)) - d.t0;
            }
          }

          // --- Argo Rollouts: one rollout, 8 promotes between its pauses ---
          const a0 = performance.now();
          const applied0 = await argo.apply(argo.rollout(tag, REPLICAS, argoSteps));
          const gen = applied0.metadata!.generation!;
          const hash = () => argo.rollouts.at(-1)?.r.status?.currentPodHash;
          for (let g = 1; g < WEIGHTS.length; g++) {
            const pauseIndex = 2 * (g - 1) + 1; // the pause after setWeight WEIGHTS[g-1]
            const before = canaryShare(WEIGHTS[g - 1]!);
            await argo.until(
              (x) => Number(x.status?.observedGeneration ?? 0) >= gen && x.status?.currentStepIndex === pauseIndex && (x.status.pauseConditions?.length ?? 0) > 0,
              a0,
              `paused at step ${pauseIndex}`,
            );
            const podHash = hash()!;
            await until(`argo weight ${WEIGHTS[g - 1]} ready`, () => {
              const last = argo.replicaSets.filter((e) => e.hash === podHash).at(-1);
              return last && last.replicas === before && last.ready === before ? true : undefined;
            });
            await sleep(300);
            const want = canaryShare(WEIGHTS[g]!);
            const t0 = performance.now();
            await argo.promote();
            const answered = performance.now() - t0;
            const applied = (await until('argo applied', () => argo.replicaSets.find((e) => e.at >= t0 && e.hash === podHash && e.replicas === want)?.at)) - t0;
            const ready = (await until('argo ready', () => argo.replicaSets.find((e) => e.at >= t0 && e.hash === podHash && e.replicas === want && e.ready === want)?.at)) - t0;
            rows.push({ side: 'argo', answered: Math.round(answered), applied: Math.round(applied), ready: Math.round(ready) });
            process.stderr.write(`argo rollout ${r + 1}/${canaries} pause ${g}: patched ${Math.round(answered)} ms, applied ${Math.round(applied)} ms, ready ${Math.round(ready)} ms\n`);
          }
          await argo.until((x) => Number(x.status?.observedGeneration ?? 0) >= gen && x.status?.currentStepIndex === 2 * WEIGHTS.length - 1 && (x.status.pauseConditions?.length ?? 0) > 0, a0, 'last pause');
          await argo.promote();
          await argo.until(healthyAt(gen, REPLICAS), a0, `${tag} Healthy`);
        }
      } finally {
        stopped.now = true;
        watches.forEach((w) => w.abort());
        await api.close();
        await engine.stop();
        await argo.stop();
      }
      const of = (side: Row['side'], k: keyof Omit<Row, 'side'>) => rows.filter((x) => x.side === side && x[k] !== undefined).map((x) => x[k]!);
      const line = (label: string, side: Row['side'], k: keyof Omit<Row, 'side'>) => [label, Math.round(median(of(side, k))), pct(of(side, k), 99), Math.max(...of(side, k))];
      const n = (side: Row['side']) => rows.filter((x) => x.side === side).length;
      console.log(`\ngate decision -> next weight, ${REPLICAS} replicas; Flotilla ${n('flotilla')} decisions over ${clusters.length} clusters (1 wave), Argo Rollouts v${argo.argo.version} ${n('argo')} promotes in 1 cluster (load ${load0} -> ${load()})\n`);
      console.log(
        table([
          ['from decision to', 'p50 ms', 'p99 ms', 'max ms'],
          line('Flotilla: POST approve answered', 'flotilla', 'answered'),
          line('Flotilla: update accepted (history)', 'flotilla', 'accepted'),
          line('Flotilla: weight activities scheduled (history)', 'flotilla', 'scheduled'),
          line('Flotilla: last weight activity started (history)', 'flotilla', 'started'),
          line(`Flotilla: weight applied in all ${clusters.length} clusters`, 'flotilla', 'applied'),
          line(`Flotilla: weight ready in all ${clusters.length} clusters`, 'flotilla', 'ready'),
          line('Argo: promote patch answered', 'argo', 'answered'),
          line('Argo: weight applied (canary ReplicaSet)', 'argo', 'applied'),
          line('Argo: weight ready', 'argo', 'ready'),
        ]),
      );
      console.log('\ngoal: decision -> weight applied in every cluster of the wave under 300 ms at p99');
      mkdirSync(path.join(benchRoot, 'reports'), { recursive: true });
      writeFileSync(path.join(benchRoot, 'reports', 'bench-gate-latency.json'), JSON.stringify({ version: argo.argo.version, replicas: REPLICAS, canaries, clusters, rows }, null, 2));
    },
    { parts: 'all' },
  );
}
