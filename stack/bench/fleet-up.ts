/**
 * A fleet's start-up and footprint, from nothing: `down --purge`, a cold `up`
 * (timed), a Deployment of 3 replicas of demo/web:v1 in every cluster through
 * the handed-out kubeconfig (so through the API-server proxy, and ready only
 * once the puller found the image), RSS and PSS per part, then `down`, a warm
 * `up`, an `up` of the running stack, and `down` again (unless --keep).
 *
 *   FLOTILLA_STACK_DIR=.flotilla/stack6 FLOTILLA_PORT_BASE=25000 \
 *     bash scripts/node.sh stack/bench/fleet-up.ts --fleet stack/fleet-6.yaml [--keep]
 */
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { down, status, up } from '../index.ts';
import type { StackOptions } from '../index.ts';

const { values } = parseArgs({ options: { fleet: { type: 'string' }, keep: { type: 'boolean' } } });
const opts: StackOptions = values.fleet ? { fleetFile: values.fleet } : {};
const say = (line: string) => console.log(line);
const secs = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
const mib = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MiB`;

async function timed<T>(what: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const v = await f();
  say(`${what.padEnd(34)} ${secs(t0)}`);
  return v;
}

await timed('down --purge', () => down({ ...opts, purge: true }));
const info = await timed('cold up', () => up(opts));
say(`  ${info.clusters.length} clusters, ${info.registries.length} registries; data ${info.dataDir}`);

const central = info.registries.find((r) => r.name === 'central')!.host;
const ns = `fleet-bench`;
await timed(`3 ready replicas in each cluster`, () =>
  Promise.all(
    info.clusters.map(async (c) => {
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(c.kubeconfig);
      const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
      const apps = kc.makeApiClient(k8s.AppsV1Api);
      const apply = (o: k8s.KubernetesObject) =>
        objects.patch(o, undefined, undefined, 'bench', true, k8s.PatchStrategy.ServerSideApply);
      await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
      await apply({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: ns },
        spec: {
          replicas: 3,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: { containers: [{ name: 'web', image: `${central}/demo/web:v1` }] },
          },
        },
      } as k8s.KubernetesObject);
      const deadline = performance.now() + 60_000;
      while (
        (await apps.readNamespacedDeployment({ name: 'web', namespace: ns })).status?.readyReplicas !== 3
      ) {
        if (performance.now() > deadline) throw new Error(`${c.name}: web not 3/3 ready in 60 s`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }),
  ),
);

const s = await status(opts);
say(`healthy: ${s.healthy}; total RSS ${mib(s.totalRssBytes)}, PSS ${mib(s.totalPssBytes)}`);
for (const p of s.parts) {
  const rss = p.processes.reduce((n, x) => n + x.rssBytes, 0);
  const pss = p.processes.reduce((n, x) => n + x.pssBytes, 0);
  say(`  ${p.part.padEnd(22)} RSS ${mib(rss).padStart(8)}  PSS ${mib(pss).padStart(8)}`);
}

await timed('down', () => down(opts));
await timed('warm up (data kept)', () => up(opts));
await timed('up of the running stack', () => up(opts));
if (!values.keep) await timed('down', () => down(opts));
process.exit(0);
