/**
 * Recovery time: `cluster-down` on a cluster running an application -> every replica of it ready on
 * the other clusters (read from their API servers every 250 ms), over several runs, at the default
 * probe settings (5 s interval, 2 s bound, 3 failures); then `cluster-up` and the failback before the
 * next run (cooldown 5 s here, to keep the runs short; it does not enter the figure).
 *
 *   npm run bench -- recovery [--runs 10]      (FLOTILLA_BENCH_PORT_BASE, default 29000)
 *
 * Splits each figure into detection (fault -> the monitor's Unhealthy, from GET /v1/clusters) and the
 * move (Unhealthy -> all replicas ready elsewhere). Prints median and worst; never fails on a time.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { fault } from '../stack/index.ts';
import { replicasByCluster, toClusterInfo, type ClusterInfo } from '../model/index.ts';
import { FailoverRig, waitFor } from '../test/support/failover-rig.ts';
import { benchRoot } from './support/stack.ts';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export async function main(args: string[]): Promise<void> {
  const runs = Number(args[args.indexOf('--runs') + 1] ?? 10) || 10;
  const portBase = Number(process.env.FLOTILLA_BENCH_PORT_BASE ?? 29000);
  const dataDir = path.resolve(process.env.FLOTILLA_BENCH_STACK_DIR ?? path.join(benchRoot, '.flotilla', 'bench-recovery'));
  const rig = new FailoverRig({ dataDir, portBase }, { cooldown: '5s' });
  const onSignal = () => void rig.stop().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const results: { cluster: string; totalMs: number; detectMs: number; moveMs: number; load: number }[] = [];
  try {
    await rig.start();
    const fleet: ClusterInfo[] = rig.inventory.clusters.map(toClusterInfo);
    const names = fleet.map((c) => c.name);
    const ns = `bench-recovery-${Date.now().toString(36)}`;
    const TOTAL = 12;
    await rig.deliver(ns, { clusters: names }, TOTAL);
    const split = (failed?: string) => {
      const placed = fleet.filter((c) => c.name !== failed);
      return replicasByCluster(TOTAL, placed, {}, 'divided');
    };
    const s = rig.settings;
    console.log(`probe settings: interval ${s.probeInterval}, timeout ${s.probeTimeout}, failureThreshold ${s.failureThreshold}, successThreshold ${s.successThreshold}, cooldown ${s.cooldown} (failback only)`);
    await waitFor('every cluster Healthy', 60_000, async () => ((await rig.view()).items.every((c) => c.health === 'Healthy') ? true : undefined));
    for (let i = 0; i < runs; i++) {
      const cluster = names[i % names.length]!;
      const load = loadavg()[0]!;
      const t0 = Date.now();
      await fault('cluster-down', cluster, rig.opts);
      const want = split(cluster);
      const totalMs = await waitFor(`run ${i + 1}: replicas elsewhere`, 180_000, async () => ((await rig.runs(ns, want, [cluster])) ? Date.now() - t0 : undefined));
      const since = new Date((await rig.view()).clusters[cluster]!.since).getTime();
      const detectMs = since - t0;
      results.push({ cluster, totalMs, detectMs, moveMs: totalMs - detectMs, load });
      console.log(`run ${i + 1}/${runs}: ${cluster} down -> ${TOTAL} replicas ready elsewhere in ${secs(totalMs)} (detected ${secs(detectMs)}, moved ${secs(totalMs - detectMs)}; load ${load.toFixed(1)})`);
      await fault('cluster-up', cluster, rig.opts);
      await waitFor(`run ${i + 1}: failed back`, 180_000, async () => {
        const v = (await rig.view()).clusters[cluster];
        return v?.health === 'Healthy' && !v.failover && (await rig.runs(ns, split())) ? true : undefined;
      });
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await rig.cleanup().catch(() => undefined);
    await rig.stop();
  }
  const total = results.map((r) => r.totalMs);
  const detect = results.map((r) => r.detectMs);
  const move = results.map((r) => r.moveMs);
  console.log(`\nrecovery (${results.length} runs, cluster-down -> every replica ready elsewhere): median ${secs(median(total))}, worst ${secs(Math.max(...total))} (goal: < 20 s median, < 30 s worst)`);
  console.log(`  detection: median ${secs(median(detect))}, worst ${secs(Math.max(...detect))}; the move: median ${secs(median(move))}, worst ${secs(Math.max(...move))}`);
  console.log(`  load average (1 min) at the faults: ${Math.min(...results.map((r) => r.load)).toFixed(1)}-${Math.max(...results.map((r) => r.load)).toFixed(1)}`);
  mkdirSync(path.join(benchRoot, 'reports'), { recursive: true });
  writeFileSync(path.join(benchRoot, 'reports', 'bench-recovery.json'), JSON.stringify({ results, median: median(total), worst: Math.max(...total) }, null, 2));
}
