/**
 * Time from a pod turning Ready in the API server to the delivery's wait step
 * seeing it. Each run deploys one replica to a fresh namespace of one cluster.
 * This process watches the pod and the Deployment straight on the API server
 * and notes when the pod turned Ready and when the Deployment reported every
 * replica ready; the step "saw it" when its activity's completion reached
 * Temporal (the ActivityTaskCompleted event of waitReady). Side by side, in
 * the same runs, a poller that reads the Deployment once a second (what the
 * engine did before it watched) and notes when it first sees it ready.
 *
 *   npm run bench -- ready-latency [runs]      (default 10)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { benchRoot, withBenchStack } from './support/stack.ts';
import { eventMs, result, startEngine, watchRollout } from './support/engine.ts';
import { load, median, table } from './support/stats.ts';

export async function main(args: string[]): Promise<void> {
  const runs = Number(args[0] ?? 10);
  await withBenchStack(
    async (stack) => {
      const engine = await startEngine(stack);
      const cluster = stack.clusters[0]!.name;
      const c = engine.direct.get(cluster)!;
      const rows: { podToStep: number; deploymentToStep: number; podToPoll: number }[] = [];
      try {
        await result(await engine.deliver({ namespace: 'bench-ready-warmup', image: `${engine.central}/demo/web:v1`, replicas: 1, placement: { clusters: [cluster] } }));
        for (let r = 0; r < runs; r++) {
          const ns = `bench-ready-${r}-${Date.now().toString(36)}`;
          let podReadyAt: number | undefined;
          const podWatch = await c.watch.watch(`/api/v1/namespaces/${ns}/pods`, {}, (_t: string, p: V1Pod) => {
            if (podReadyAt === undefined && p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True')) podReadyAt = Date.now();
          }, () => undefined);
          const deployment = await watchRollout(c, ns);
          // The once-a-second poller, started with the delivery.
          let polledAt: number | undefined;
          const giveUp = Date.now() + 120_000;
          const poller = (async () => {
            while (polledAt === undefined && Date.now() < giveUp) {
              const d = await c.apps.readNamespacedDeployment({ name: 'web', namespace: ns }).catch(() => undefined);
              const s = d?.status;
              if (d && s && (s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1) && s.readyReplicas === 1 && s.updatedReplicas === 1) polledAt = Date.now();
              else await new Promise((res) => setTimeout(res, 1000));
            }
          })();
          const h = await engine.deliver({ namespace: ns, image: `${engine.central}/demo/web:v2`, replicas: 1, placement: { clusters: [cluster] } });
          const s = await result(h);
          await poller; // it notices at its next tick, up to a second after the step did
          podWatch.abort();
          deployment.stop();
          if (s.phase !== 'Healthy') throw new Error(`delivery ${h.workflowId} ended ${s.phase}: ${s.message}`);
          const events = (await h.fetchHistory()).events ?? [];
          const waits = new Set(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'waitReady').map((e) => String(e.eventId)));
          const done = events.find((e) => waits.has(String(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? '')));
          if (!done || podReadyAt === undefined || deployment.times.readyAt === undefined || polledAt === undefined) throw new Error(`run ${r}: missing a time`);
          const stepAt = eventMs(done);
          rows.push({ podToStep: stepAt - podReadyAt, deploymentToStep: stepAt - deployment.times.readyAt, podToPoll: polledAt - podReadyAt });
          process.stderr.write(`run ${r + 1}/${runs}: pod Ready -> step ${stepAt - podReadyAt} ms, Deployment ready -> step ${stepAt - deployment.times.readyAt} ms, pod Ready -> 1 s poller ${polledAt - podReadyAt} ms\n`);
          await c.core.deleteNamespace({ name: ns }).catch(() => undefined);
        }
      } finally {
        await engine.stop();
      }
      const m = (k: keyof (typeof rows)[number]) => Math.round(median(rows.map((x) => x[k])));
      const worst = (k: keyof (typeof rows)[number]) => Math.max(...rows.map((x) => x[k]));
      console.log(`\nreadiness seen by the wait step: ${runs} runs (load ${load()})\n`);
      console.log(
        table([
          ['from', 'to', 'median ms', 'worst ms'],
          ['pod Ready', 'wait step (watch) done', m('podToStep'), worst('podToStep')],
          ['Deployment ready', 'wait step (watch) done', m('deploymentToStep'), worst('deploymentToStep')],
          ['pod Ready', '1 s poller sees it', m('podToPoll'), worst('podToPoll')],
        ]),
      );
      console.log(`\nratio, 1 s poller / watching step (pod Ready to seen): ${(m('podToPoll') / Math.max(1, m('podToStep'))).toFixed(1)}x`);
      mkdirSync(path.join(benchRoot, 'reports'), { recursive: true });
      writeFileSync(path.join(benchRoot, 'reports', 'bench-ready-latency.json'), JSON.stringify({ runs, rows }, null, 2));
    },
    { parts: 'all' },
  );
}
