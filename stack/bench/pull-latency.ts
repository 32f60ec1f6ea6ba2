/**
 * What the image puller adds to a pod's readiness: N pods of a present image,
 * created one after another in a throwaway namespace; a watch (started first)
 * timestamps when each is scheduled, marked pulled by the puller, and Ready.
 * Scheduled -> pulled is the puller's share (before it existed, kwok's own
 * 0.2-1 s pod-ready delay started at scheduling). Needs a running stack.
 *
 *   bash scripts/node.sh stack/bench/pull-latency.ts [--cluster beijing] [--n 30]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { resolveConfig, stackInfoFile } from '../index.ts';
import type { StackInfo } from '../types.ts';

const { values } = parseArgs({
  options: { cluster: { type: 'string' }, n: { type: 'string', default: '30' } },
});
const n = Number(values.n);
const cfg = resolveConfig({});
const info = JSON.parse(readFileSync(stackInfoFile(cfg.dataDir), 'utf8')) as StackInfo;
const c = values.cluster ? info.clusters.find((x) => x.name === values.cluster) : info.clusters[0];
if (!c) throw new Error(`no cluster ${values.cluster}`);
const image = `${info.registries.find((r) => r.name === 'central')!.host}/demo/web:v1`;

const kc = new k8s.KubeConfig();
kc.loadFromFile(c.directKubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);
const ns = `pull-bench-${Date.now().toString(36)}`;
await core.createNamespace({ body: { metadata: { name: ns } } });

const t: Record<string, { created?: number; scheduled?: number; pulled?: number; ready?: number }> = {};
const waiters = new Map<string, () => void>();
const ctrl = await new k8s.Watch(kc).watch(
  `/api/v1/namespaces/${ns}/pods`,
  {},
  (_type: string, p: k8s.V1Pod) => {
    const at = performance.now();
    const x = (t[p.metadata!.name!] ??= {});
    if (p.spec?.nodeName) x.scheduled ??= at;
    if (p.metadata?.annotations?.['stack.flotilla.dev/pulled']) x.pulled ??= at;
    if (p.status?.conditions?.some((k) => k.type === 'Ready' && k.status === 'True')) {
      x.ready ??= at;
      waiters.get(p.metadata!.name!)?.();
    }
  },
  () => {},
);
try {
  for (let i = 0; i < n; i++) {
    const name = `p${i}`;
    const done = new Promise<void>((resolve) => waiters.set(name, resolve));
    (t[name] ??= {}).created = performance.now();
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name },
        spec: { containers: [{ name: 'web', image }], terminationGracePeriodSeconds: 0 },
      },
    });
    await Promise.race([
      done,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`${name}: not Ready in 30 s`)), 30_000)),
    ]);
  }
} finally {
  ctrl.abort();
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
}

const rows = Object.values(t);
const med = (f: (x: (typeof rows)[number]) => number) => {
  const xs = rows.map(f).sort((a, b) => a - b);
  return `median ${xs[Math.floor(xs.length / 2)]!.toFixed(0)} ms, p90 ${xs[Math.floor(xs.length * 0.9)]!.toFixed(0)} ms`;
};
console.log(`${c.name}: ${n} pods of ${image}, one after another`);
console.log(`  created   -> scheduled  ${med((x) => x.scheduled! - x.created!)}`);
console.log(
  `  scheduled -> pulled     ${med((x) => x.pulled! - x.scheduled!)}   (the puller: watch event, registry HEAD, annotation patch)`,
);
console.log(
  `  pulled    -> Ready      ${med((x) => x.ready! - x.pulled!)}   (kwok's pod-ready stage: 0.2-1 s by design)`,
);
console.log(`  created   -> Ready      ${med((x) => x.ready! - x.created!)}`);
process.exit(0); // the aborted watch leaves a kept-alive connection that would hold the process ~30 s
