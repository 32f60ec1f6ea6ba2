/**
 * Failover's need: a cluster whose nodes stop their heartbeats while its API server keeps
 * serving (fault nodes-notready). The node-lifecycle controller calls the nodes NotReady
 * within its grace and taints them; their pods turn not Ready and leave their Service;
 * new pods find no node. nodes-ready brings the nodes and the pods back.
 */
import { randomUUID } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { NODE_MONITOR_GRACE_SECONDS } from '../../stack/cluster.ts';
import { fault, stackOptions, status } from '../../stack/index.ts';
import type { StackInfo } from '../../stack/types.ts';
import { eventually } from './support.ts';

const stack: StackInfo = inject('stack');
const opts = stackOptions(stack);
const c = stack.clusters[2]!;
const other = stack.clusters[0]!;
const ns = `nodes-${randomUUID().slice(0, 8)}`;

const client = (kubeconfig: string) => {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  return {
    objects: k8s.KubernetesObjectApi.makeApiClient(kc),
    apps: kc.makeApiClient(k8s.AppsV1Api),
    core: kc.makeApiClient(k8s.CoreV1Api),
    discovery: kc.makeApiClient(k8s.DiscoveryV1Api),
  };
};
const k = client(c.kubeconfig);
const apply = (obj: object) =>
  k.objects.patch(
    obj as k8s.KubernetesObject,
    undefined,
    undefined,
    'stack-test',
    true,
    k8s.PatchStrategy.ServerSideApply,
  );


const deployment = (replicas: number) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: ns },
  spec: {
    replicas,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'web', image: `${stack.registries[0]!.host}/demo/web:v1` }] },
    },
  },
});
const readyCondition = (n: k8s.V1Node) => n.status?.conditions?.find((x) => x.type === 'Ready')?.status;
const readyEndpoints = async () =>
  (
    await k.discovery.listNamespacedEndpointSlice({
      namespace: ns,
      labelSelector: 'kubernetes.io/service-name=web',
    })
  ).items
    .flatMap((s) => s.endpoints ?? [])
    .filter((e) => e.conditions?.ready).length;
const readyReplicas = async () =>
  (await k.apps.readNamespacedDeployment({ name: 'web', namespace: ns })).status?.readyReplicas ?? 0;

beforeAll(async () => {
  await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  await apply(deployment(3));
  await apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: ns },
    spec: { selector: { app: 'web' }, ports: [{ port: 80 }] },
  });
  await eventually('web 3/3 behind its Service', 60_000, async () =>
    (await readyReplicas()) === 3 && (await readyEndpoints()) === 3 ? true : undefined,
  );
});
afterAll(async () => {
  await fault('nodes-ready', c.name, opts).catch(() => undefined);
  await k.core.deleteNamespace({ name: ns }).catch(() => undefined);
});

describe('fault nodes-notready / nodes-ready', () => {
  it('nodes turn NotReady within the grace while the API serves; pods leave the Service; nodes-ready brings all back', async () => {
    const t0 = Date.now();
    await fault('nodes-notready', c.name, opts);
    try {
      const s = await status(opts);
      expect(s.parts.find((p) => p.part === `cluster/${c.name}`)?.fault).toContain('heartbeats stopped');

      const nodes = await eventually(
        `${c.name}: every node NotReady`,
        (NODE_MONITOR_GRACE_SECONDS + 40) * 1000,
        async () => {
          const items = (await k.core.listNode()).items;
          return items.length === c.nodes && items.every((n) => readyCondition(n) === 'Unknown')
            ? items
            : undefined;
        },
      );
      const took = (Date.now() - t0) / 1000;
      console.log(`${c.name}: all ${c.nodes} nodes NotReady ${took.toFixed(1)} s after the fault`);
      for (const n of nodes) {
        expect(n.spec?.taints?.map((t) => `${t.key}:${t.effect}`)).toContain(
          'node.kubernetes.io/unreachable:NoSchedule',
        );
        expect(n.status?.conditions?.find((x) => x.type === 'Ready')?.reason).toBe('NodeStatusUnknown');
      }
      // The API still serves (reads and writes), and the other clusters are untouched.
      expect((await k.core.readNamespace({ name: ns })).metadata?.name).toBe(ns);
      const others = (await client(other.kubeconfig).core.listNode()).items;
      expect(others.map(readyCondition)).toEqual(others.map(() => 'True'));

      await eventually('pods not Ready, out of the Service', 60_000, async () =>
        (await readyReplicas()) === 0 && (await readyEndpoints()) === 0 ? true : undefined,
      );
      // A new pod finds no node it may run on.
      await apply(deployment(4));
      const pending = await eventually('the 4th pod unschedulable', 60_000, async () => {
        const pods = (await k.core.listNamespacedPod({ namespace: ns, labelSelector: 'app=web' })).items;
        return pods.find((p) =>
          p.status?.conditions?.some((x) => x.type === 'PodScheduled' && x.reason === 'Unschedulable'),
        );
      });
      expect(pending.spec?.nodeName).toBeUndefined();
    } finally {
      await fault('nodes-ready', c.name, opts);
    }
    // nodes-ready waited for Ready, untainted nodes; the pods come back and the 4th one lands.
    const nodes = (await k.core.listNode()).items;
    expect(nodes.map(readyCondition)).toEqual(nodes.map(() => 'True'));
    expect(nodes.flatMap((n) => n.spec?.taints ?? [])).toEqual([]);
    await eventually('web 4/4 behind its Service again', 60_000, async () =>
      (await readyReplicas()) === 4 && (await readyEndpoints()) === 4 ? true : undefined,
    );
    const s = await status(opts);
    expect(s.parts.find((p) => p.part === `cluster/${c.name}`)?.fault).toBeUndefined();
  });

  it('refuses an unknown cluster', async () => {
    await expect(fault('nodes-notready', 'atlantis', opts)).rejects.toThrow(/no cluster "atlantis"/);
  });
});
