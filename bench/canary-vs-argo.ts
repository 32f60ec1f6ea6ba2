/**
 * A five-step canary without pauses (setWeight 20, 40, 60, 80, 100; 10 replicas), side by
 * side in one run: Argo Rollouts in the first cluster of the bench stack, Flotilla in the
 * same cluster, and Flotilla across all three clusters in one wave. Each round runs the
 * three once (their order rotates), each one updating v1 <-> v2 (a new pod template).
 *
 * What each side counts:
 *   Argo      from the Rollout's update (the apply's answer) to the Rollout Healthy at the
 *             new generation with 10 ready replicas, seen by a watch. At setWeight 100 the
 *             canary ReplicaSet already runs all 10 pods; Argo then marks it stable and
 *             scales the old one down: no new pods after the last step.
 *   Flotilla  from the start request to the delivery's result (Healthy): planning (digest
 *             resolution, rendering), recording what stood, the canary objects, the five
 *             weights (each waits for the replicas of both sides to be ready and reads them
 *             back), then its promote step: the stable Deployment becomes the new version
 *             (10 new pods, waited ready), the canary Deployment goes, and prune. Also printed:
 *             start to the last setTrafficWeight done (weight 100 reached: the span that
 *             compares with Argo's whole rollout) and the promote tail after it.
 *
 *   npm run bench -- canary-vs-argo [runs]      (default 5 rounds)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { benchRoot, withBenchStack } from './support/stack.ts';
import { eventMs, result, startEngine, type Engine } from './support/engine.ts';
import { healthyAt, startArgoSide } from './support/argo.ts';
import { load, median, table } from './support/stats.ts';
import { canaryBreakdown, timeline, type CanaryBreakdown } from './support/history.ts';

const REPLICAS = 10;
const WEIGHTS = [20, 40, 60, 80, 100];

/** The weight a setTrafficWeight activity was given (its input, JSON-encoded), -1 when unreadable. */
function weightOf(data: Uint8Array | null | undefined): number {
  try {
    return (JSON.parse(Buffer.from(data!).toString()) as { weight: number }).weight;
  } catch {
    return -1;
  }
}

/**
 * From a delivery's history (Temporal's clock, ms): when its first setTrafficWeight activity
 * was scheduled, when the last one completed, and the time the weight activities themselves
 * ran (scheduled to completed, summed over the steps, longest cluster of each step).
 */
async function weightSpans(h: WorkflowHandle): Promise<{ firstScheduled: number; lastDone: number; inWeights: number }> {
  const events = (await h.fetchHistory()).events ?? [];
  const sched = new Map(
    events
      .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'setTrafficWeight')
      .map((e) => [String(e.eventId), { at: eventMs(e), weight: weightOf(e.activityTaskScheduledEventAttributes!.input?.payloads?.[0]?.data) }]),
  );
  const done = events.filter((e) => sched.has(String(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? '')));
  const perWeight = new Map<number, number>();
  for (const e of done) {
    const s = sched.get(String(e.activityTaskCompletedEventAttributes!.scheduledEventId))!;
    perWeight.set(s.weight, Math.max(perWeight.get(s.weight) ?? 0, eventMs(e) - s.at));
  }
  return { firstScheduled: Math.min(...[...sched.values()].map((s) => s.at)), lastDone: Math.max(...done.map(eventMs)), inWeights: [...perWeight.values()].reduce((a, b) => a + b, 0) };
}

export async function main(args: string[]): Promise<void> {
  const runs = Number(args[0] ?? 5);
  const load0 = load();
  await withBenchStack(
    async (stack) => {
      const clusters = stack.clusters.map((c) => c.name);
      const first = clusters[0]!;
      const argo = await startArgoSide(stack, first, `bench-cva-argo-${Date.now().toString(36)}`);
      const engine = await startEngine(stack);
      const steps = WEIGHTS.map((w) => ({ setWeight: w }));
      const argoSteps = WEIGHTS.map((w) => ({ setWeight: w }));
      const rows: { side: 'argo' | 'one' | 'three'; total: number; beforeWeights?: number; inWeights?: number; toWeight100?: number; promoteTail?: number; breakdown?: CanaryBreakdown }[] = [];
      const flotilla = (e: Engine, ns: string, placed: string[]) => async (tag: string) => {
        const t0 = Date.now();
        const h = await e.deliver({ namespace: ns, image: `${e.central}/demo/web:${tag}`, replicas: REPLICAS, placement: { clusters: placed } }, { type: 'canary', waves: [placed], canary: { steps } });
        const s = await result(h);
        const t1 = Date.now();
        if (s.phase !== 'Healthy') throw new Error(`delivery ${h.workflowId} ended ${s.phase}: ${s.message}`);
        const w = await weightSpans(h);
        const breakdown = canaryBreakdown(await timeline(h));
        return { total: t1 - t0, beforeWeights: w.firstScheduled - t0, inWeights: w.inWeights, toWeight100: w.lastDone - t0, promoteTail: t1 - w.lastDone, breakdown };
      };
      const nsOne = 'bench-cva-one';
      const nsThree = 'bench-cva-three';
      const one = flotilla(engine, nsOne, [first]);
      const three = flotilla(engine, nsThree, clusters);
      try {
        // Baselines at v1 (a first delivery deploys whole: nothing to split yet), and Argo's Rollout at v1.
        process.stderr.write('baselines: v1 everywhere\n');
        const b0 = performance.now();
        const a = await argo.apply(argo.rollout('v1', REPLICAS, argoSteps));
        await argo.until(healthyAt(a.metadata!.generation!, REPLICAS), b0, 'baseline Healthy');
        process.stderr.write('baselines: Argo Healthy at v1\n');
        for (const [ns, placed] of [[nsOne, [first]], [nsThree, clusters]] as const) {
          const s = await result(await engine.deliver({ namespace: ns, image: `${engine.central}/demo/web:v1`, replicas: REPLICAS, placement: { clusters: [...placed] } }));
          if (s.phase !== 'Healthy') throw new Error(`baseline in ${ns} ended ${s.phase}: ${s.message}`);
        }
        const sides = {
          argo: async (tag: string) => {
            const t0 = performance.now();
            const applied = await argo.apply(argo.rollout(tag, REPLICAS, argoSteps));
            const t1 = await argo.until(healthyAt(applied.metadata!.generation!, REPLICAS), t0, `${tag} Healthy`);
            return { total: Math.round(t1 - t0) };
          },
          one,
          three,
        };
        const order = ['argo', 'one', 'three'] as const;
        for (let r = 0; r < runs; r++) {
          const tag = r % 2 === 0 ? 'v2' : 'v1';
          for (let i = 0; i < order.length; i++) {
            const side = order[(i + r) % order.length]!;
            const row = await sides[side](tag);
            rows.push({ side, ...row });
            process.stderr.write(`round ${r + 1}/${runs} ${side}: ${JSON.stringify(row)} (load ${load()})\n`);
            await new Promise((res) => setTimeout(res, 1000)); // let scale-downs settle
          }
        }
      } finally {
        await engine.stop();
        await argo.stop();
      }
      const med = (side: string, k: 'total' | 'beforeWeights' | 'inWeights' | 'toWeight100' | 'promoteTail') => Math.round(median(rows.filter((x) => x.side === side).map((x) => x[k] ?? NaN)));
      const range = (side: string) => {
        const xs = rows.filter((x) => x.side === side).map((x) => x.total);
        return `${Math.min(...xs)}..${Math.max(...xs)}`;
      };
      const A = med('argo', 'total');
      console.log(`\nfive-step canary (setWeight ${WEIGHTS.join('/')}), ${REPLICAS} replicas, ${runs} rounds; Argo Rollouts v${argo.argo.version} (load ${load0} -> ${load()})\n`);
      console.log(
        table([
          ['side', 'total median ms', 'range ms', 'start -> weight 100 ms', 'promote tail ms', 'total / Argo', 'weight 100 / Argo'],
          ['Argo Rollouts, 1 cluster', A, range('argo'), '-', '-', '1.00', '-'],
          ['Flotilla, 1 cluster', med('one', 'total'), range('one'), med('one', 'toWeight100'), med('one', 'promoteTail'), (med('one', 'total') / A).toFixed(2), (med('one', 'toWeight100') / A).toFixed(2)],
          ['Flotilla, 3 clusters (1 wave)', med('three', 'total'), range('three'), med('three', 'toWeight100'), med('three', 'promoteTail'), (med('three', 'total') / A).toFixed(2), (med('three', 'toWeight100') / A).toFixed(2)],
        ]),
      );
      console.log(
        `\nFlotilla's time up to weight 100 (medians): start -> first weight activity ${med('one', 'beforeWeights')} ms (1 cluster) / ${med('three', 'beforeWeights')} ms (3); ` +
          `the five weight activities themselves ${med('one', 'inWeights')} / ${med('three', 'inWeights')} ms; the rest is the workflow between them.`,
      );
      // Where Flotilla's time went, from each delivery's history (medians over the rounds).
      const bd = (side: string) => rows.filter((x) => x.side === side && x.breakdown).map((x) => x.breakdown!);
      const m = (xs: number[]) => (xs.length ? Math.round(median(xs)) : '-');
      const kinds = (side: string, k: 'headByActivity' | 'tailByActivity') => [...new Set(bd(side).flatMap((b) => Object.keys(b[k])))];
      const breakdownRows: (string | number)[][] = [['span (history, ms)', 'Flotilla 1 cluster', 'Flotilla 3 clusters']];
      const add = (label: string, f: (b: CanaryBreakdown) => number | undefined) =>
        breakdownRows.push([label, m(bd('one').map(f).filter((v): v is number => v !== undefined)), m(bd('three').map(f).filter((v): v is number => v !== undefined))]);
      add('workflow start -> first weight scheduled', (b) => b.beforeWeights);
      for (const k of [...new Set([...kinds('one', 'headByActivity'), ...kinds('three', 'headByActivity')])]) add(`  ${k} (longest cluster)`, (b) => b.headByActivity[k]);
      for (const w of WEIGHTS) {
        add(`setWeight ${w}: dispatch (scheduled -> started)`, (b) => b.weights.find((x) => x.weight === w)?.dispatch);
        add(`setWeight ${w}: run (started -> completed)`, (b) => b.weights.find((x) => x.weight === w)?.run);
      }
      add('between weight steps (workflow), summed, per cluster', (b) => b.gaps);
      add('last weight completed -> workflow end', (b) => b.tail);
      for (const k of [...new Set([...kinds('one', 'tailByActivity'), ...kinds('three', 'tailByActivity')])]) add(`  ${k} (longest cluster)`, (b) => b.tailByActivity[k]);
      console.log(`\nwhere Flotilla's time goes (medians from the delivery histories)\n`);
      console.log(table(breakdownRows));
      console.log('\ngoals: Flotilla 1 cluster <= 1.00 x Argo; 3 clusters <= 1.20 x Argo');
      mkdirSync(path.join(benchRoot, 'reports'), { recursive: true });
      writeFileSync(path.join(benchRoot, 'reports', 'bench-canary-vs-argo.json'), JSON.stringify({ version: argo.argo.version, replicas: REPLICAS, runs, rows }, null, 2));
    },
    { parts: 'all' },
  );
}
