/**
 * Argo Rollouts' side of a side-by-side: its controller (stack/argo.ts, built on first use)
 * against the first cluster of a bench stack, a Rollout of R replicas with canary steps
 * setWeight 20/40/100 and no traffic router, updated v1 <-> v2 once per run. For each
 * run, from the update (the apply's answer) to the Rollout Healthy at the new generation
 * (seen by a watch), and the part of it beyond pod readiness: from the last new pod
 * turning Ready (seen by a watch) to Healthy. Also the controller's CPU per run and its RSS.
 *
 *   npm run bench -- argo-rollout [runs] [replicas]      (default 10 runs of 5 replicas)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { argoUp } from '../stack/argo.ts';
import { rssBytes } from '../stack/process.ts';
import { benchRoot, withBenchStack } from './support/stack.ts';
import { cpuMs, load, median, table } from './support/stats.ts';

interface RolloutView {
  metadata?: { generation?: number };
  status?: { phase?: string; observedGeneration?: string; readyReplicas?: number; currentStepIndex?: number };
}

export async function main(args: string[]): Promise<void> {
  const runs = Number(args[0] ?? 10);
  const replicas = Number(args[1] ?? 5);
  await withBenchStack(
    async (stack) => {
      const c = stack.clusters[0]!;
      const opts = { dataDir: stack.dataDir, ...(stack.portBase ? { portBase: stack.portBase } : {}) };
      const argo = await argoUp(c.name, { ...opts, log: (l) => process.stderr.write(`${l}\n`) });
      const central = stack.registries.find((r) => r.name === 'central')!.host;
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(c.kubeconfig);
      const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
      const watch = new k8s.Watch(kc);
      const ns = `bench-argo-${Date.now().toString(36)}`;
      const apply = (o: object) =>
        objects.patch(
          o as k8s.KubernetesObject,
          undefined,
          undefined,
          'bench',
          true,
          k8s.PatchStrategy.ServerSideApply,
        );
      const rollout = (tag: string) => ({
        apiVersion: 'argoproj.io/v1alpha1',
        kind: 'Rollout',
        metadata: { name: 'web', namespace: ns },
        spec: {
          replicas,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: { containers: [{ name: 'web', image: `${central}/demo/web:${tag}` }] },
          },
          strategy: { canary: { steps: [{ setWeight: 20 }, { setWeight: 40 }, { setWeight: 100 }] } },
        },
      });

      // Watches: when each pod (by name) turned Ready, and when the Rollout was Healthy at a generation.
      const podReady = new Map<string, { at: number; image: string }>();
      const healthyAt = new Map<number, number>();
      const pods = await watch.watch(
        `/api/v1/namespaces/${ns}/pods`,
        {},
        (_t: string, p: k8s.V1Pod) => {
          const name = p.metadata!.name!;
          if (
            !podReady.has(name) &&
            p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True')
          )
            podReady.set(name, { at: performance.now(), image: p.spec!.containers[0]!.image! });
        },
        () => undefined,
      );
      const ro = await watch.watch(
        `/apis/argoproj.io/v1alpha1/namespaces/${ns}/rollouts`,
        {},
        (_t: string, r: RolloutView) => {
          const gen = Number(r.status?.observedGeneration ?? 0);
          if (r.status?.phase === 'Healthy' && r.status.readyReplicas === replicas && !healthyAt.has(gen))
            healthyAt.set(gen, performance.now());
        },
        () => undefined,
      );
      const healthy = async (gen: number, timeoutMs = 300_000) => {
        const deadline = performance.now() + timeoutMs;
        while (!healthyAt.has(gen)) {
          if (performance.now() > deadline)
            throw new Error(`Rollout not Healthy at generation ${gen} in ${timeoutMs / 1000} s`);
          await new Promise((r) => setTimeout(r, 20));
        }
        return healthyAt.get(gen)!;
      };
      const rows: { total: number; beyondPods: number; cpu: number }[] = [];
      try {
        await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
        const first = (await apply(rollout('v1'))) as RolloutView;
        await healthy(first.metadata!.generation!);
        for (let r = 0; r < runs; r++) {
          const tag = r % 2 === 0 ? 'v2' : 'v1';
          const cpu0 = cpuMs(argo.pid);
          const t0 = performance.now();
          const applied = (await apply(rollout(tag))) as RolloutView;
          const t1 = await healthy(applied.metadata!.generation!);
          const lastPod = Math.max(
            ...[...podReady.values()]
              .filter((p) => p.at >= t0 && p.image.endsWith(`:${tag}`))
              .map((p) => p.at),
          );
          const row = {
            total: Math.round(t1 - t0),
            beyondPods: Math.round(t1 - lastPod),
            cpu: cpuMs(argo.pid) - cpu0,
          };
          rows.push(row);
          process.stderr.write(
            `run ${r + 1}/${runs}: ${tag} Healthy ${row.total} ms after the update, ${row.beyondPods} ms after its last pod Ready; controller CPU ${row.cpu} ms\n`,
          );
          await new Promise((res) => setTimeout(res, 1000)); // let the old ReplicaSet's scale-down settle
        }
      } finally {
        pods.abort();
        ro.abort();
        await objects
          .delete({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } })
          .catch(() => undefined);
      }
      const m = (k: keyof (typeof rows)[number]) => Math.round(median(rows.map((x) => x[k])));
      const worst = (k: keyof (typeof rows)[number]) => Math.max(...rows.map((x) => x[k]));
      console.log(
        `\nArgo Rollouts v${argo.version}, setWeight 20/40/100, ${replicas} replicas, ${runs} runs (load ${load()})\n`,
      );
      console.log(
        table([
          ['', 'median ms', 'worst ms'],
          ['update -> Healthy', m('total'), worst('total')],
          ['last new pod Ready -> Healthy', m('beyondPods'), worst('beyondPods')],
          ['controller CPU per rollout', m('cpu'), worst('cpu')],
        ]),
      );
      console.log(`controller RSS ${(rssBytes(argo.pid) / 1024 / 1024).toFixed(0)} MiB`);
      mkdirSync(path.join(benchRoot, 'reports'), { recursive: true });
      writeFileSync(
        path.join(benchRoot, 'reports', 'bench-argo-rollout.json'),
        JSON.stringify({ version: argo.version, replicas, runs, rows }, null, 2),
      );
    },
    { parts: 'all' },
  );
}
