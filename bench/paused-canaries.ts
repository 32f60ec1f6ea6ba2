/**
 * Canaries paused at gates on one worker: its memory and each delivery's history length.
 *
 * The worker runs as its own process (worker/main.ts, as deployed: its RSS is the figure,
 * not this process's). Deliveries are started in batches up to each target count (default
 * 200, then 500, then 1000), each a canary of 1 replica in a namespace of its own, placed on
 * one of the three clusters in turn, with the steps setWeight 50 and an approval `hold`
 * with no deadline: it waits there until told. Each target is reached when every delivery
 * so far shows its gate Waiting; then the worker's RSS (after 10 s of quiet), and history
 * length and size of a sample of deliveries, are noted. A time limit (default 20 min)
 * stops adding targets; the run says how far it got.
 *
 * These are first deliveries of their application (nothing stood in the namespace): the
 * engine deploys a first version whole and skips its weight steps, then waits at the gate.
 * The history is therefore that of a first delivery paused at a gate, a little shorter than
 * a canary that has moved weight before its gate (one setTrafficWeight activity, ~6 events).
 *
 * The worker takes FLOTILLA_MAX_CACHED_WORKFLOWS from this process's environment (each delivery
 * is two workflows held: the delivery and its application's).
 *
 *   npm run bench -- paused-canaries [targets] [minutes] [concurrency]   (default 200,500,1000, 20 and 2 starts at a time)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { stringify } from 'yaml';
import type { WorkflowHandle } from '@temporalio/client';
import type { DeliveryStatus } from '../model/index.ts';
import { rssBytes } from '../stack/process.ts';
import { statusQuery } from '../workflows/messages.ts';
import { benchRoot, withBenchStack } from './support/stack.ts';
import { startEngine } from './support/engine.ts';
import { cpuMs, load, median, table } from './support/stats.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = (b: number) => Math.round(b / 1024 / 1024);

export async function main(args: string[]): Promise<void> {
  const targets = (args[0] ?? '200,500,1000').split(',').map(Number);
  const limitMs = Number(args[1] ?? 20) * 60_000;
  // Deliveries started at once: each new workflow's first task costs the one workflow thread CPU, and on a loaded
  // 2-core machine 8 at once took workflow tasks past 10 s (timed out; the start's update then fails).
  const concurrency = Number(args[2] ?? 2);
  const began = Date.now();
  const load0 = load();
  await withBenchStack(
    async (stack) => {
      const engine = await startEngine(stack, { workers: false });
      const clusters = stack.clusters.map((c) => c.name);
      const dir = mkdtempSync(path.join(tmpdir(), 'flotilla-bench-paused-'));
      const inventoryFile = path.join(dir, 'inventory.yaml');
      writeFileSync(inventoryFile, stringify(engine.inventory));
      const worker: ChildProcess = spawn(process.execPath, [path.join(benchRoot, 'worker/main.ts')], {
        env: { ...process.env, FLOTILLA_TEMPORAL_ADDRESS: stack.temporal.address, FLOTILLA_TEMPORAL_NAMESPACE: stack.temporal.namespace, FLOTILLA_INVENTORY: inventoryFile, FLOTILLA_LOG_LEVEL: 'warn' },
        stdio: ['ignore', openSync(path.join(dir, 'worker.log'), 'w'), openSync(path.join(dir, 'worker.log'), 'a')],
      });
      const rows: { paused: number; rssMiB: number; workerCpuS: number; historyEvents: number; historyKiB: number; startSeconds: number }[] = [];
      const handles: WorkflowHandle[] = [];
      let stoppedBy = '';
      let failure: unknown;
      const limit = pLimit(concurrency);
      try {
        // One delivery first: the worker has bundled its workflows and polls once it completes.
        const warm = await engine.deliver({ namespace: 'bench-paused-warmup', image: `${engine.central}/demo/web:v1`, replicas: 1, placement: { clusters: [clusters[0]!] } });
        await warm.result();
        await sleep(5000);
        const idle = rssBytes(worker.pid!);
        process.stderr.write(`worker pid ${worker.pid}: idle RSS ${MiB(idle)} MiB\n`);
        for (const target of targets) {
          if (Date.now() - began > limitMs) {
            stoppedBy = `time limit (${limitMs / 60_000} min) before ${target}`;
            break;
          }
          const t0 = Date.now();
          const from = handles.length;
          // Settled, not Promise.all: a start that fails must not leave others in flight when the connection closes.
          const settled = await Promise.allSettled(
            Array.from({ length: target - from }, (_, k) =>
              limit(() =>
                engine.deliver(
                  { namespace: `bench-paused-${from + k}`, image: `${engine.central}/demo/web:v2`, replicas: 1, placement: { clusters: [clusters[(from + k) % clusters.length]!] } },
                  { type: 'canary', canary: { steps: [{ setWeight: 50 }, { approval: { name: 'hold', roles: ['sre'] } }] } },
                ),
              ),
            ),
          );
          handles.push(...settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])));
          const failed = settled.filter((r) => r.status === 'rejected');
          if (failed.length) throw new Error(`${failed.length} of ${settled.length} deliveries did not start; the first: ${String((failed[0] as PromiseRejectedResult).reason)}`);
          // Every delivery so far waits at its gate (asked once each until it does).
          let pending = handles.map((h) => h);
          while (pending.length) {
            if (Date.now() - began > limitMs + 10 * 60_000) throw new Error(`${pending.length} deliveries not paused at their gate 10 min past the time limit`);
            const states = await Promise.all(pending.map((h) => limit(async () => ((await h.query(statusQuery).catch(() => undefined)) as DeliveryStatus | undefined))));
            if (!worker.pid || worker.exitCode !== null) throw new Error(`the worker exited (${worker.exitCode}); its log: ${path.join(dir, 'worker.log')}`);
            const bad = states.find((s) => s && s.phase !== 'Paused' && s.phase !== 'Progressing' && s.phase !== 'Pending');
            if (bad) throw new Error(`a delivery ended ${bad.phase}: ${bad.message}`);
            pending = pending.filter((_, i) => !states[i]?.gates?.some((g) => g.name === 'hold' && g.state === 'Waiting'));
            process.stderr.write(`target ${target}: ${handles.length - pending.length} paused at their gate (${Math.round((Date.now() - t0) / 1000)} s, worker RSS ${MiB(rssBytes(worker.pid!))} MiB, load ${load()})\n`);
            if (pending.length) await sleep(3000);
          }
          const startSeconds = Math.round((Date.now() - t0) / 1000);
          await sleep(10_000);
          const sample = handles.filter((_, i) => i % Math.max(1, Math.floor(handles.length / 20)) === 0);
          const described = await Promise.all(sample.map((h) => limit(() => h.describe())));
          const row = {
            paused: handles.length,
            rssMiB: MiB(rssBytes(worker.pid!)),
            workerCpuS: Math.round(cpuMs(worker.pid!) / 1000),
            historyEvents: Math.round(median(described.map((d) => d.historyLength))),
            historyKiB: Math.round(median(described.map((d) => Number(d.raw.workflowExecutionInfo?.historySizeBytes ?? 0))) / 1024),
            startSeconds,
          };
          rows.push(row);
          process.stderr.write(`${JSON.stringify(row)}\n`);
        }
        if (!stoppedBy) stoppedBy = 'every target reached';
        console.log(`\ncanaries paused at a gate on one worker (idle RSS ${MiB(idle)} MiB; FLOTILLA_MAX_CACHED_WORKFLOWS ${process.env.FLOTILLA_MAX_CACHED_WORKFLOWS ?? 'unset (the SDK default)'}; load ${load0} -> ${load()}; ${stoppedBy})\n`);
        console.log(
          table([
            ['paused deliveries', 'worker RSS MiB', 'RSS per delivery KiB', 'worker CPU s (total)', 'history events (median)', 'history KiB (median)', 'time to pause this batch s'],
            ...rows.map((r) => [r.paused, r.rssMiB, Math.round(((r.rssMiB - MiB(idle)) * 1024) / r.paused), r.workerCpuS, r.historyEvents, r.historyKiB, r.startSeconds]),
          ]),
        );
        console.log('\ngoal: 1,000 paused canaries under 1 GB of worker memory');
        mkdirSync(path.join(benchRoot, 'reports'), { recursive: true });
        writeFileSync(path.join(benchRoot, 'reports', 'bench-paused-canaries.json'), JSON.stringify({ idleMiB: MiB(idle), stoppedBy, rows }, null, 2));
      } catch (err) {
        failure = err;
        process.stderr.write(`paused-canaries failed: ${(err as Error).stack ?? String(err)}\nthe worker's log is kept: ${path.join(dir, 'worker.log')}\n`);
        throw err;
      } finally {
        await Promise.all(handles.map((h) => limit(() => h.terminate('benchmark over').catch(() => undefined))));
        if (worker.exitCode === null && worker.signalCode === null) {
          const exited = once(worker, 'exit');
          worker.kill('SIGTERM');
          await exited;
        }
        await engine.stop();
        if (!failure) rmSync(dir, { recursive: true, force: true });
      }
    },
    { parts: 'all' },
  );
}
