/**
 * The stack's behaviour table: pods of one image (matched by repository and digest, from
 * any of the stack's registries) or carrying one label never become ready, crash-loop, or
 * turn unready some seconds after becoming ready, without any change to their pod
 * template; the other pods, the older version of the same Deployment among them, go on
 * as before. The newest matching rule wins, `ready` makes an exception, and bad rules
 * are refused with the reason.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { clearBehaviour, listBehaviours, setBehaviour, stackOptions } from '../../stack/index.ts';
import { manifestDigest } from '../../stack/registry.ts';
import type { StackClusterInfo, StackInfo } from '../../stack/types.ts';
import { eventually } from './support.ts';

const run = promisify(execFile);
const stack: StackInfo = inject('stack');
const opts = stackOptions(stack);
const ns = `behave-${randomUUID().slice(0, 8)}`;
const central = stack.registries.find((r) => r.name === 'central')!.host;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Kube {
  objects: k8s.KubernetesObjectApi;
  apps: k8s.AppsV1Api;
  core: k8s.CoreV1Api;
  discovery: k8s.DiscoveryV1Api;
}
const kubes = new Map<string, Kube>();
function kube(c: StackClusterInfo): Kube {
  let k = kubes.get(c.name);
  if (!k) {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(c.kubeconfig);
    k = {
      objects: k8s.KubernetesObjectApi.makeApiClient(kc),
      apps: kc.makeApiClient(k8s.AppsV1Api),
      core: kc.makeApiClient(k8s.CoreV1Api),
      discovery: kc.makeApiClient(k8s.DiscoveryV1Api),
    };
    kubes.set(c.name, k);
  }
  return k;
}
const apply = (c: StackClusterInfo, obj: object) =>
  kube(c).objects.patch(
    obj as k8s.KubernetesObject,
    undefined,
    undefined,
    'stack-test',
    true,
    k8s.PatchStrategy.ServerSideApply,
  );


function deployment(
  name: string,
  image: string,
  o: { replicas?: number; labels?: Record<string, string>; annotations?: Record<string, string> } = {},
) {
  const labels = { app: name, ...o.labels };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: {
      replicas: o.replicas ?? 2,
      selector: { matchLabels: { app: name } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels, ...(o.annotations ? { annotations: o.annotations } : {}) },
        spec: { containers: [{ name: 'web', image }] },
      },
    },
  };
}

const podsOf = async (c: StackClusterInfo, app: string) =>
  (await kube(c).core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` })).items.filter(
    (p) => !p.metadata?.deletionTimestamp,
  );
const isReady = (p: k8s.V1Pod) =>
  p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True');
const digestOf = async (host: string, tag: string) => (await manifestDigest(host, 'demo/web', tag))!;

beforeAll(async () => {
  await clearBehaviour({}, opts);
  await Promise.all(
    stack.clusters.map((c) => apply(c, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } })),
  );
});
afterAll(async () => {
  await clearBehaviour({}, opts);
  await Promise.all(
    stack.clusters.map((c) =>
      kube(c)
        .core.deleteNamespace({ name: ns })
        .catch(() => undefined),
    ),
  );
});

describe('the behaviour table', () => {
  it('a rule on an image tag makes that version unready, deployed by digest; the older version of the Deployment is unaffected', async () => {
    const c = stack.clusters[0]!;
    await apply(c, deployment('shop', `${central}/demo/web:v1`, { replicas: 3 }));
    await eventually('v1 3/3 ready', 60_000, async () =>
      (await podsOf(c, 'shop')).filter(isReady).length === 3 ? true : undefined,
    );
    const rules = await setBehaviour({ image: `${central}/demo/web:v2`, behaviour: 'unready' }, opts);
    const v2 = await digestOf(central, 'v2');
    expect(rules).toEqual([
      { image: `${central}/demo/web:v2`, behaviour: 'unready', repository: 'demo/web', digest: v2 },
    ]);
    // A delivery pins the image: the new ReplicaSet's pods pull demo/web@sha256:... (no tag at all).
    await apply(c, deployment('shop', `${central}/demo/web@${v2}`, { replicas: 3 }));
    const canary = await eventually('a v2 pod Running', 60_000, async () => {
      const p = (await podsOf(c, 'shop')).find(
        (x) => x.spec?.containers[0]?.image?.endsWith(v2) && x.status?.phase === 'Running',
      );
      return p;
    });
    expect(canary.metadata?.annotations?.['stack.flotilla.dev/behaviour']).toBe('unready');
    expect(canary.metadata?.annotations?.['stack.flotilla.dev/behaviour-rule']).toBe(
      `image ${central}/demo/web:v2`,
    );
    expect(canary.metadata?.annotations?.['flotilla.dev/simulate']).toBeUndefined(); // the template is untouched
    for (let i = 0; i < 8; i++) {
      const pods = await podsOf(c, 'shop');
      const v1 = pods.filter((p) => p.spec?.containers[0]?.image?.endsWith(':v1'));
      expect(v1.filter(isReady).length, 'v1 pods stay ready').toBe(3);
      expect(pods.filter((p) => p.spec?.containers[0]?.image?.endsWith(v2)).filter(isReady)).toEqual([]);
      await sleep(500);
    }
    const d = await kube(c).apps.readNamespacedDeployment({ name: 'shop', namespace: ns });
    expect(d.status?.readyReplicas).toBe(3);
    expect(d.status?.updatedReplicas).toBe(1); // the rollout is stuck at its first new pod
    const cs = (await kube(c).core.readNamespacedPod({ name: canary.metadata!.name!, namespace: ns })).status
      ?.containerStatuses?.[0];
    expect(cs?.ready).toBe(false);
    expect(cs?.state?.running).toBeDefined();
    expect(cs?.imageID).toBe(`${central}/demo/web@${v2}`);
  });

  it('a rule on a label crash-loops the pods carrying it; pods without the label are ready', async () => {
    const c = stack.clusters[1]!;
    await setBehaviour({ label: 'track=canary', behaviour: 'crashloop' }, opts);
    await apply(c, deployment('crashy', `${central}/demo/web:v1`, { labels: { track: 'canary' } }));
    await apply(c, deployment('steady', `${central}/demo/web:v1`, { labels: { track: 'stable' } }));
    await eventually('crashy pods in CrashLoopBackOff', 60_000, async () => {
      const pods = await podsOf(c, 'crashy');
      return pods.length === 2 &&
        pods.every((p) => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CrashLoopBackOff')
        ? true
        : undefined;
    });
    await eventually('steady pods ready', 60_000, async () =>
      (await podsOf(c, 'steady')).filter(isReady).length === 2 ? true : undefined,
    );
    expect((await podsOf(c, 'crashy')).filter(isReady)).toEqual([]);
  });

  it('unready-after: pods of an image copied to a regional mirror turn ready, then unready after the time set, and leave the Service', async () => {
    const c = stack.clusters[0]!; // beijing pulls from cn-north
    const mirror = stack.registries.find((r) => r.name === c.mirror)!.host;
    await run(
      'skopeo',
      [
        'copy',
        '--insecure-policy',
        '--src-tls-verify=false',
        '--dest-tls-verify=false',
        '--preserve-digests',
        `docker://${central}/demo/web:v3`,
        `docker://${mirror}/demo/web:v3`,
      ],
      { timeout: 60_000 },
    );
    const v3 = await digestOf(central, 'v3');
    // No registry in the rule: the tag is resolved in the stack's registries (central has it).
    await setBehaviour({ image: 'demo/web:v3', behaviour: 'unready-after=4s' }, opts);
    await apply(c, deployment('fading', `${mirror}/demo/web@${v3}`));
    await apply(c, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'fading', namespace: ns },
      spec: { selector: { app: 'fading' }, ports: [{ port: 80 }] },
    });
    const readyEndpoints = async () =>
      (
        await kube(c).discovery.listNamespacedEndpointSlice({
          namespace: ns,
          labelSelector: 'kubernetes.io/service-name=fading',
        })
      ).items
        .flatMap((s) => s.endpoints ?? [])
        .filter((e) => e.conditions?.ready).length;
    await eventually('both pods ready first', 60_000, async () =>
      (await podsOf(c, 'fading')).filter(isReady).length === 2 ? true : undefined,
    );
    const pods = await podsOf(c, 'fading');
    expect(pods.map((p) => p.metadata?.annotations?.['stack.flotilla.dev/unready-after'])).toEqual([
      '4s',
      '4s',
    ]);
    expect(pods.map((p) => p.status?.containerStatuses?.[0]?.imageID)).toEqual([
      `${mirror}/demo/web@${v3}`,
      `${mirror}/demo/web@${v3}`,
    ]);
    await eventually('then both unready', 60_000, async () =>
      (await podsOf(c, 'fading')).filter(isReady).length === 0 ? true : undefined,
    );
    for (const p of await podsOf(c, 'fading')) {
      expect(p.status?.phase).toBe('Running');
      expect(p.status?.containerStatuses?.[0]?.ready).toBe(false);
      expect(p.status?.containerStatuses?.[0]?.state?.running).toBeDefined();
    }
    await eventually('no ready endpoint left', 30_000, async () =>
      (await readyEndpoints()) === 0 ? true : undefined,
    );
    await run('skopeo', ['delete', '--tls-verify=false', `docker://${mirror}/demo/web:v3`]).catch(
      () => undefined,
    );
  });

  it('the newest matching rule wins: `ready` makes an exception to a broader rule, also over the template annotation', async () => {
    const c = stack.clusters[2]!;
    await setBehaviour({ label: 'team=blue', behaviour: 'unready' }, opts);
    await setBehaviour({ image: `${central}/demo/web:v1`, behaviour: 'ready' }, opts);
    // v1 pods with the label: the image rule is newer, they are ready, even with the template's own unready.
    await apply(
      c,
      deployment('blue-v1', `${central}/demo/web:v1`, {
        labels: { team: 'blue' },
        annotations: { 'flotilla.dev/simulate': 'unready' },
      }),
    );
    // v2 pods with the label: only the label rule matches.
    await apply(c, deployment('blue-v2', `${central}/demo/web:v2`, { labels: { team: 'blue' } }));
    await eventually('blue-v1 ready', 60_000, async () =>
      (await podsOf(c, 'blue-v1')).filter(isReady).length === 2 ? true : undefined,
    );
    const v2 = await eventually('blue-v2 running', 60_000, async () => {
      const pods = await podsOf(c, 'blue-v2');
      return pods.length === 2 && pods.every((p) => p.status?.phase === 'Running') ? pods : undefined;
    });
    expect(v2.map((p) => p.metadata?.annotations?.['stack.flotilla.dev/behaviour'])).toEqual([
      'unready',
      'unready',
    ]);
    expect(v2.filter(isReady)).toEqual([]);
    // Cleared, the image rule no longer saves new v1 pods: the label rule decides.
    const left = await clearBehaviour({ image: `${central}/demo/web:v1` }, opts);
    expect(left.removed).toBe(1);
    expect(listBehaviours(opts).map((r) => r.label ?? r.image)).toEqual([
      `${central}/demo/web:v2`,
      'track=canary',
      'demo/web:v3',
      'team=blue',
    ]);
    await apply(c, deployment('blue-late', `${central}/demo/web:v1`, { labels: { team: 'blue' } }));
    await eventually('blue-late unready', 60_000, async () => {
      const pods = await podsOf(c, 'blue-late');
      return pods.length === 2 &&
        pods.every(
          (p) =>
            p.status?.phase === 'Running' &&
            p.metadata?.annotations?.['stack.flotilla.dev/behaviour'] === 'unready',
        )
        ? true
        : undefined;
    });
  });

  it('refuses a rule it cannot apply, saying why', async () => {
    await expect(setBehaviour({ image: 'demo/web:v9', behaviour: 'unready' }, opts)).rejects.toThrow(
      /demo\/web:v9 is in none of the stack's registries/,
    );
    await expect(
      setBehaviour({ image: `${central}/demo/web:v9`, behaviour: 'unready' }, opts),
    ).rejects.toThrow(/MANIFEST_UNKNOWN/);
    await expect(
      setBehaviour({ image: 'demo/web:v1', label: 'a=b', behaviour: 'unready' }, opts),
    ).rejects.toThrow(/exactly one of --image and --label/);
    await expect(setBehaviour({ label: 'no-equals', behaviour: 'unready' }, opts)).rejects.toThrow(
      /key=value/,
    );
    await expect(setBehaviour({ label: 'a=b', behaviour: 'unready-after=soon' }, opts)).rejects.toThrow(
      /unknown behaviour "unready-after=soon"/,
    );
    await expect(setBehaviour({ label: 'a=b', behaviour: 'sleepy' as 'ready' }, opts)).rejects.toThrow(
      /behaviour: /,
    );
  });
});
