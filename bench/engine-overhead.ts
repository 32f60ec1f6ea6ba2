/**
 * Engine overhead beyond pod readiness: one deploy (one wave, every cluster in
 * parallel) to 1, 3 and 6 clusters of the six-cluster fleet, several runs
 * each. For each delivery:
 *   total      from the start request to the delivery's result;
 *   rollout    the longest time any cluster took from its Deployment changing
 *              to every replica ready, seen by this process's own watches
 *              straight on each API server (the part Kubernetes and kwok own);
 *   overhead   total - rollout: planning (digests, rendering), recording what
 *              stood, applying, noticing readiness, reading back, concluding.
 * Medians, and how the overhead grows per cluster, printed side by side.
 *
 *   npm run bench -- engine-overhead [runs]      (default 5 per size)
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { benchRoot, withBenchStack } from './support/stack.ts';
import { result, startEngine, watchRollout } from './support/engine.ts';
import { load, median, table } from './support/stats.ts';

export async function main(args: string[]): Promise<void> {
  const runs = Number(args[0] ?? 5);
  const sizes = [1, 3, 6];
  await withBenchStack(
    async (stack) => {
      const engine = await startEngine(stack);
      const clusters = stack.clusters.map((c) => c.name);
      const rows: { size: number; total: number; rollout: number; overhead: number }[] = [];
      try {
        // One warm-up delivery: the first ones pay for bundle caches, discovery and connections.
        await result(await engine.deliver({ namespace: 'bench-warmup', image: `${engine.central}/demo/web:v1`, placement: { clusters } }));
        for (let r = 0; r < runs; r++) {
          for (const size of sizes) {
            const placed = clusters.slice(0, size);
            const ns = `bench-overhead-${size}`;
            const tag = r % 2 === 0 ? 'v2' : 'v3'; // every run changes the pod template
            const watches = await Promise.all(placed.map((c) => watchRollout(engine.direct.get(c)!, ns)));
            const t0 = Date.now();
            const h = await engine.deliver({ namespace: ns, image: `${engine.central}/demo/web:${tag}`, placement: { clusters: placed } });
            const s = await result(h);
            const total = Date.now() - t0;
            watches.forEach((w) => w.stop());
            if (s.phase !== 'Healthy') throw new Error(`delivery ${h.workflowId} ended ${s.phase}: ${s.message}`);
            const spans = watches.map((w) => (w.times.readyAt ?? NaN) - (w.times.changedAt ?? NaN));
            const rollout = Math.max(...spans);
            rows.push({ size, total, rollout, overhead: total - rollout });
            process.stderr.write(`run ${r + 1}/${runs}, ${size} cluster(s): total ${total} ms, rollout ${rollout} ms, overhead ${total - rollout} ms (load ${load()})\n`);
          }
        }
      } finally {
        await engine.stop();
      }
      const med = (size: number, k: 'total' | 'rollout' | 'overhead') => Math.round(median(rows.filter((x) => x.size === size).map((x) => x[k])));
      const base = med(1, 'overhead');
      const out = [['clusters', 'total ms', 'rollout ms', 'overhead ms', 'overhead / 1 cluster', 'added per cluster ms']];
      for (const size of sizes) {
        out.push([size, med(size, 'total'), med(size, 'rollout'), med(size, 'overhead'), (med(size, 'overhead') / base).toFixed(2), size === 1 ? '-' : Math.round((med(size, 'overhead') - base) / (size - 1))] as never);
      }
      console.log(`\nengine overhead beyond pod readiness: medians of ${runs} runs per size (load ${load()})\n`);
      console.log(table(out));
      mkdirSync(path.join(benchRoot, 'reports'), { recursive: true });
      writeFileSync(path.join(benchRoot, 'reports', 'bench-engine-overhead.json'), JSON.stringify({ runs, rows }, null, 2));
    },
    { parts: 'all', fleetFile: path.join(benchRoot, 'stack', 'fleet-6.yaml') },
  );
}
