/**
 * Argo Rollouts beside a stack cluster (stack/argo.ts), for the side-by-side benchmark:
 * its controller, built from the Go module proxy, runs against one cluster as a
 * supervised process; a Rollout with canary steps setWeight 20/40/100 and no traffic
 * router (weights by replica ratio) goes from v1 to v2 through every step and ends
 * Healthy with all its pods ready on v2. argoDown stops the controller.
 *
 * The first run on a machine builds the controller (scripts/build-binaries.sh argo:
 * ~10 min of CPU, 35 min measured on two busy cores); later runs find it cached.
 */
import { randomUUID } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ArgoInfo } from '../../stack/index.ts';
import { argoDown, argoUp, isAlive, recordedProcesses, stackOptions, status } from '../../stack/index.ts';
import { httpRequest } from '../../stack/net.ts';
import type { StackInfo } from '../../stack/types.ts';

const stack: StackInfo = inject('stack');
const opts = stackOptions(stack);
const c = stack.clusters[1]!;
const ns = `argo-${randomUUID().slice(0, 8)}`;
const central = stack.registries.find((r) => r.name === 'central')!.host;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const kc = new k8s.KubeConfig();
kc.loadFromFile(c.kubeconfig);
const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
const core = kc.makeApiClient(k8s.CoreV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);
const apply = (obj: object) =>
  objects.patch(
    obj as k8s.KubernetesObject,
    undefined,
    undefined,
    'stack-test',
    true,
    k8s.PatchStrategy.ServerSideApply,
  );

interface RolloutStatus {
  phase?: string;
  message?: string;
  currentStepIndex?: number;
  stableRS?: string;
  currentPodHash?: string;
  readyReplicas?: number;
  updatedReplicas?: number;
  observedGeneration?: string;
}
const readRollout = async () =>
  (await objects.read({
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Rollout',
    metadata: { name: 'web', namespace: ns },
  })) as k8s.KubernetesObject & { status?: RolloutStatus };

const rollout = (tag: string) => ({
  apiVersion: 'argoproj.io/v1alpha1',
  kind: 'Rollout',
  metadata: { name: 'web', namespace: ns },
  spec: {
    replicas: 5,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'web', image: `${central}/demo/web:${tag}` }] },
    },
    strategy: { canary: { steps: [{ setWeight: 20 }, { setWeight: 40 }, { setWeight: 100 }] } },
  },
});

let argo: ArgoInfo;
beforeAll(async () => {
  argo = await argoUp(c.name, { ...opts, log: (l) => process.stderr.write(`${l}\n`) });
  await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
}, 60 * 60_000); // a first run builds the controller

afterAll(async () => {
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
  await argoDown(c.name, opts);
});

describe('Argo Rollouts beside a stack cluster', () => {
  it('runs as a supervised, healthy process of the stack', async () => {
    expect(argo.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(isAlive(recordedProcesses(opts)[`argo/${c.name}`])).toBe(true);
    expect((await httpRequest(argo.healthzUrl)).status).toBe(200);
    expect((await httpRequest(argo.metricsUrl)).body).toContain('controller_info');
    const s = await status(opts);
    expect(s.parts.find((p) => p.part === `argo/${c.name}`)?.healthy).toBe(true);
  });

  it('takes a Rollout with steps setWeight 20/40/100 (replica ratio) from v1 to v2, Healthy with every pod ready on v2', async () => {
    await apply(rollout('v1'));
    const healthy = async (what: string, timeoutMs: number, gen?: number) => {
      const deadline = Date.now() + timeoutMs;
      let last: RolloutStatus | undefined;
      for (;;) {
        const r = await readRollout();
        last = r.status;
        const observed = gen === undefined || Number(r.status?.observedGeneration) >= gen;
        if (observed && r.status?.phase === 'Healthy' && r.status.readyReplicas === 5) return r;
        if (Date.now() > deadline)
          throw new Error(`${what}: not Healthy in ${timeoutMs / 1000}s: ${JSON.stringify(last)}`);
        await sleep(250);
      }
    };
    await healthy('v1', 120_000);

    // The update: through each step, the canary ReplicaSet scaled to its share of 5 replicas.
    await apply(rollout('v2'));
    const generation = (await readRollout()).metadata?.generation ?? 2;
    const seen = new Set<string>();
    const deadline = Date.now() + 180_000;
    let last: RolloutStatus | undefined;
    for (;;) {
      const r = await readRollout();
      last = r.status;
      const rss = (await apps.listNamespacedReplicaSet({ namespace: ns, labelSelector: 'app=web' })).items;
      const canary = rss.find((rs) => rs.spec?.template?.spec?.containers[0]?.image?.endsWith(':v2'));
      if (canary) seen.add(`${r.status?.currentStepIndex}:${canary.spec?.replicas}`);
      if (
        Number(r.status?.observedGeneration) >= generation &&
        r.status?.phase === 'Healthy' &&
        r.status.readyReplicas === 5
      )
        break;
      if (Date.now() > deadline)
        throw new Error(`v2 not Healthy in 180 s: ${JSON.stringify(last)}; seen ${[...seen]}`);
      await sleep(100);
    }
    const done = await healthy('v2', 10_000, generation);
    expect(done.status?.currentStepIndex).toBe(3);
    expect(done.status?.stableRS).toBe(done.status?.currentPodHash);
    // setWeight 20 of 5 replicas is 1 canary pod, 40 is 2 (by replica ratio, no traffic router).
    expect([...seen]).toContain('0:1');
    expect([...seen].some((s) => s.endsWith(':2'))).toBe(true);
    const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=web' })).items.filter(
      (p) => !p.metadata?.deletionTimestamp,
    );
    expect(pods).toHaveLength(5);
    for (const p of pods) {
      expect(p.spec?.containers[0]?.image).toBe(`${central}/demo/web:v2`);
      expect(p.status?.conditions?.find((x) => x.type === 'Ready')?.status).toBe('True');
      expect(p.metadata?.labels?.['rollouts-pod-template-hash']).toBe(done.status?.currentPodHash);
    }
  });

  it('argoDown stops the controller', async () => {
    const rec = recordedProcesses(opts)[`argo/${c.name}`]!;
    expect(await argoDown(c.name, opts)).toBe(true);
    expect(isAlive(rec)).toBe(false);
    expect(recordedProcesses(opts)[`argo/${c.name}`]).toBeUndefined();
  });
});
