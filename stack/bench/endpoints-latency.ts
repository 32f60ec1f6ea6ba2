/**
 * How soon a Service's EndpointSlice follows its pods (the endpoint-slice controller the
 * stack's clusters run): pods of a Deployment become Ready one after another, then turn
 * not Ready one after another (their Ready condition patched, as a kubelet reports a failed
 * readiness probe); for each, the time from the pod's watch event to the EndpointSlice
 * watch event that shows the change. Runs on a stack that is up, in its first cluster.
 *
 *   FLOTILLA_STACK_DIR=... FLOTILLA_PORT_BASE=... bash scripts/node.sh stack/bench/endpoints-latency.ts [--pods 20]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { resolveConfig, stackInfoFile } from '../index.ts';
import type { StackInfo } from '../types.ts';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '20' } } });
const n = Number(values.pods);
const cfg = resolveConfig();
const info = JSON.parse(readFileSync(stackInfoFile(cfg.dataDir), 'utf8')) as StackInfo;
const c = info.clusters[0]!;
const central = info.registries.find((r) => r.name === 'central')!.host;
const kc = new k8s.KubeConfig();
kc.loadFromFile(c.kubeconfig);
const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
const core = kc.makeApiClient(k8s.CoreV1Api);
const apply = (o: object) =>
  objects.patch(
    o as k8s.KubernetesObject,
    undefined,
    undefined,
    'bench',
    true,
    k8s.PatchStrategy.ServerSideApply,
  );
const ns = `endpoints-bench-${Date.now().toString(36)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** pod IP -> when its pod was seen Ready / not Ready, and when the slice showed it ready / not. */
const podReady = new Map<string, number>();
const podUnready = new Map<string, number>();
const sliceReady = new Map<string, number>();
const sliceUnready = new Map<string, number>();

await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
const w = new k8s.Watch(kc);
const podWatch = await w.watch(
  `/api/v1/namespaces/${ns}/pods`,
  {},
  (_t: string, p: k8s.V1Pod) => {
    const ip = p.status?.podIP;
    const ready = p.status?.conditions?.find((x) => x.type === 'Ready')?.status;
    if (!ip) return;
    if (ready === 'True' && !podReady.has(ip)) podReady.set(ip, performance.now());
    if (ready === 'False' && podReady.has(ip) && !podUnready.has(ip)) podUnready.set(ip, performance.now());
  },
  () => {},
);
const sliceWatch = await w.watch(
  `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
  {},
  (_t: string, s: k8s.V1EndpointSlice) => {
    for (const e of s.endpoints ?? []) {
      for (const ip of e.addresses) {
        if (e.conditions?.ready && !sliceReady.has(ip)) sliceReady.set(ip, performance.now());
        if (e.conditions?.ready === false && sliceReady.has(ip) && !sliceUnready.has(ip))
          sliceUnready.set(ip, performance.now());
      }
    }
  },
  () => {},
);
await apply({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: ns },
  spec: { selector: { app: 'web' }, ports: [{ port: 80 }] },
});
const deployment = (replicas: number) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: ns },
  spec: {
    replicas,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'web', image: `${central}/demo/web:v1` }] },
    },
  },
});
// One pod at a time, so the controller handles one change at once.
for (let i = 1; i <= n; i++) {
  await apply(deployment(i));
  const deadline = performance.now() + 30_000;
  while (sliceReady.size < i && performance.now() < deadline) await sleep(50);
}
await sleep(1000);
const pods = (await core.listNamespacedPod({ namespace: ns })).items;
for (const p of pods) {
  await core.patchNamespacedPodStatus(
    {
      name: p.metadata!.name!,
      namespace: ns,
      body: { status: { conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: new Date() }] } },
    },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
  );
  const deadline = performance.now() + 30_000;
  while (!sliceUnready.has(p.status!.podIP!) && performance.now() < deadline) await sleep(50);
}
podWatch.abort();
sliceWatch.abort();
await core.deleteNamespace({ name: ns });

const lat = (from: Map<string, number>, to: Map<string, number>) =>
  [...from].flatMap(([ip, t]) => (to.has(ip) ? [to.get(ip)! - t] : [])).sort((a, b) => a - b);
const q = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
for (const [what, xs] of [
  ['pod Ready -> ready in the EndpointSlice', lat(podReady, sliceReady)],
  ['pod not Ready -> not ready in the EndpointSlice', lat(podUnready, sliceUnready)],
] as const) {
  console.log(
    `${what.padEnd(48)} n=${xs.length}  median ${q(xs, 0.5).toFixed(0)} ms  p90 ${q(xs, 0.9).toFixed(0)} ms  max ${xs.at(-1)?.toFixed(0)} ms`,
  );
}
console.log(`(load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
process.exit(0);
