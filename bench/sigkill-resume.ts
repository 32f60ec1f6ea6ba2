/**
 * Worker SIGKILL: how soon an interrupted cluster step resumes on a new worker.
 * Each run starts a worker process, delivers to one cluster whose nodes are
 * cordoned (so its wait step stays in flight), checks the step really runs on
 * that worker, kills it with SIGKILL, starts a new worker process and notes:
 *   polling   when the new worker starts polling (its log line "workers starting", written just
 *             before its Temporal workers run);
 *   resumed   when the step started again on it (the pending activity's
 *             lastStartedTime with the new worker's identity, attempt > 1).
 * Printed: kill -> new worker polling, new worker polling -> step resumed,
 * kill -> step resumed; medians and worst. The goal is the middle one under 5 s.
 *
 *   npm run bench -- sigkill-resume [runs]      (default 10)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { ClusterClients } from '../activities/kubernetes/clients.ts';
import { benchRoot, withBenchStack } from './support/stack.ts';
import { startEngine } from './support/engine.ts';
import { load, median, table } from './support/stats.ts';

async function cordon(c: ClusterClients, unschedulable: boolean): Promise<void> {
  for (const n of (await c.core.listNode()).items) {
    await c.core.patchNode({ name: n.metadata!.name!, body: { spec: { unschedulable } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  }
}

/** When the worker of this log started polling (pino's time of its "workers starting" line), or 0. */
function startedPolling(log: string): number {
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (!line.includes('workers starting')) continue;
    try {
      return (JSON.parse(line) as { time: number }).time;
    } catch {
      return 0;
    }
  }
  return 0;
}

const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + Math.floor((t?.nanos ?? 0) / 1e6);

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await read().catch(() => undefined as T);
    if (v !== undefined && ok(v)) return v;
    if (Date.now() > end) throw new Error(`${what}: not reached in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function main(args: string[]): Promise<void> {
  const runs = Number(args[0] ?? 10);
  await withBenchStack(
    async (stack) => {
      const engine = await startEngine(stack, { workers: false });
      const dir = mkdtempSync(path.join(tmpdir(), 'flotilla-bench-'));
      const inventoryFile = path.join(dir, 'inventory.yaml');
      writeFileSync(inventoryFile, stringify(engine.inventory));
      const cluster = stack.clusters[1]!.name;
      const c = engine.direct.get(cluster)!;
      const worker = (n: number): ChildProcess =>
        spawn(process.execPath, [path.join(benchRoot, 'worker/main.ts')], {
          env: { ...process.env, FLOTILLA_TEMPORAL_ADDRESS: stack.temporal.address, FLOTILLA_TEMPORAL_NAMESPACE: stack.temporal.namespace, FLOTILLA_INVENTORY: inventoryFile, FLOTILLA_LOG_LEVEL: 'info' },
          stdio: ['ignore', openSync(path.join(dir, `worker-${n}.log`), 'w'), openSync(path.join(dir, `worker-${n}.log`), 'a')],
        });
      const rows: { killToPoll: number; pollToResume: number; killToResume: number }[] = [];
      let current: ChildProcess | undefined = worker(0);
      try {
        for (let r = 0; r < runs; r++) {
          const ns = `bench-kill-${r}-${Date.now().toString(36)}`;
          await cordon(c, true);
          const h = await engine.deliver({ namespace: ns, image: `${engine.central}/demo/web:v2`, replicas: 1, placement: { clusters: [cluster] } }, { grace: { unschedulable: '10m' } });
          const first = current!;
          const identity = (p: ChildProcess) => `${p.pid}@${hostname()}`;
          await until(
            async () => (await h.describe()).raw.pendingActivities ?? [],
            (acts) => acts.some((a) => a.activityType?.name === 'waitReady' && Number(a.state) === 2 && a.lastWorkerIdentity === identity(first)),
            'wait step running on the first worker',
          );
          first.kill('SIGKILL');
          const killedAt = Date.now();
          await new Promise<void>((res) => first.once('exit', () => res()));
          const next = worker(r + 1);
          current = next;
          const pollAt = await until(async () => startedPolling(path.join(dir, `worker-${r + 1}.log`)), (t) => t > 0, 'new worker polling');
          const resumed = await until(
            async () => (await h.describe()).raw.pendingActivities ?? [],
            (acts) => acts.some((a) => a.activityType?.name === 'waitReady' && a.lastWorkerIdentity === identity(next) && Number(a.attempt) > 1),
            'step resumed on the new worker',
          );
          const resumeAt = ms(resumed.find((a) => a.activityType?.name === 'waitReady')!.lastStartedTime);
          await cordon(c, false);
          const s = (await h.result()) as { phase: string; message: string };
          if (s.phase !== 'Healthy') throw new Error(`delivery ${h.workflowId} ended ${s.phase}: ${s.message}`);
          const polling = pollAt;
          rows.push({ killToPoll: polling - killedAt, pollToResume: resumeAt - polling, killToResume: resumeAt - killedAt });
          process.stderr.write(`run ${r + 1}/${runs}: kill -> polling ${polling - killedAt} ms, polling -> resumed ${resumeAt - polling} ms, kill -> resumed ${resumeAt - killedAt} ms\n`);
          await c.core.deleteNamespace({ name: ns }).catch(() => undefined);
        }
      } finally {
        await cordon(c, false).catch(() => undefined);
        current?.kill('SIGTERM');
        await engine.stop();
        rmSync(dir, { recursive: true, force: true });
      }
      const m = (k: keyof (typeof rows)[number]) => Math.round(median(rows.map((x) => x[k])));
      const worst = (k: keyof (typeof rows)[number]) => Math.max(...rows.map((x) => x[k]));
      console.log(`\nworker SIGKILL mid-step, ${runs} runs (heartbeat timeout 4 s; load ${load()})\n`);
      console.log(
        table([
          ['interval', 'median ms', 'worst ms'],
          ['kill -> new worker polling', m('killToPoll'), worst('killToPoll')],
          ['new worker polling -> step resumed', m('pollToResume'), worst('pollToResume')],
          ['kill -> step resumed', m('killToResume'), worst('killToResume')],
        ]),
      );
      mkdirSync(path.join(benchRoot, 'reports'), { recursive: true });
      writeFileSync(path.join(benchRoot, 'reports', 'bench-sigkill-resume.json'), JSON.stringify({ runs, rows }, null, 2));
    },
    { parts: 'all' },
  );
}
