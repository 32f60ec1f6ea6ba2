/**
 * The local stack itself, on the real stack of the integration project's global
 * setup: Deployments reach ready in every cluster (and the two simulations do
 * not), faults take a cluster's API away and bring it back intact, Temporal
 * keeps workflows across a stack restart, images copy between registries with
 * their digests, and no process outlives `down`.
 */
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { down, fault, isAlive, recordedProcesses, stackOptions, up } from '../../stack/index.ts';
import { portOpen } from '../../stack/net.ts';
import type { StackClusterInfo, StackInfo } from '../../stack/types.ts';
import { eventually } from './support.ts';

const run = promisify(execFile);
const stack: StackInfo = inject('stack');
const opts = stackOptions(stack);
const ns = `stack-test-${randomUUID().slice(0, 8)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Kube {
  objects: k8s.KubernetesObjectApi;
  apps: k8s.AppsV1Api;
  core: k8s.CoreV1Api;
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
    };
    kubes.set(c.name, k);
  }
  return k;
}

function apply(c: StackClusterInfo, obj: k8s.KubernetesObject) {
  return kube(c).objects.patch(
    obj,
    undefined,
    undefined,
    'flotilla',
    true,
    k8s.PatchStrategy.ServerSideApply,
  );
}

function deployment(name: string, simulate?: 'unready' | 'crashloop'): k8s.V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: {
          labels: { app: name },
          ...(simulate ? { annotations: { 'flotilla.dev/simulate': simulate } } : {}),
        },
        spec: { containers: [{ name: 'web', image: `${stack.registries[0]!.host}/demo/web:v1` }] },
      },
    },
  };
}

/** Polls until `check` returns a value, or fails with the last thing seen. */

const readyReplicas = async (c: StackClusterInfo, name: string) =>
  (await kube(c).apps.readNamespacedDeployment({ name, namespace: ns })).status?.readyReplicas ?? 0;
const podsOf = async (c: StackClusterInfo, name: string) =>
  (await kube(c).core.listNamespacedPod({ namespace: ns, labelSelector: `app=${name}` })).items;

/** True when the error (or one of its causes) is a refused TCP connection. */
function refused(err: unknown): boolean {
  for (
    let e = err as { code?: string; cause?: unknown; message?: string } | undefined;
    e;
    e = e.cause as typeof e
  ) {
    if (e.code === 'ECONNREFUSED' || e.message?.includes('ECONNREFUSED')) return true;
  }
  return false;
}

beforeAll(async () => {
  await Promise.all(
    stack.clusters.map((c) => apply(c, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } })),
  );
});

afterAll(async () => {
  await Promise.all(
    stack.clusters.map((c) =>
      kube(c)
        .core.deleteNamespace({ name: ns })
        .catch(() => undefined),
    ),
  );
});

describe('kubernetes clusters', () => {
  it('a Deployment of 3 replicas becomes 3/3 ready in each cluster within 30 s', async () => {
    expect(stack.clusters.map((c) => c.name)).toEqual(['beijing', 'shenzhen', 'cloud-hk']);
    await Promise.all(stack.clusters.map((c) => apply(c, deployment('web'))));
    await Promise.all(
      stack.clusters.map((c) =>
        eventually(`${c.name}: web 3/3 ready`, 30_000, async () =>
          (await readyReplicas(c, 'web')) === 3 ? true : undefined,
        ),
      ),
    );
    for (const c of stack.clusters) {
      const pods = await podsOf(c, 'web');
      expect(pods.map((p) => p.status?.phase)).toEqual(['Running', 'Running', 'Running']);
      expect(new Set(pods.map((p) => p.spec?.nodeName)).size).toBeGreaterThan(0);
    }
  });

  it('pods annotated flotilla.dev/simulate=unready run but never become ready', async () => {
    const c = stack.clusters[0]!;
    await apply(c, deployment('never-ready', 'unready'));
    await eventually('3 pods Running', 30_000, async () => {
      const pods = await podsOf(c, 'never-ready');
      return pods.length === 3 && pods.every((p) => p.status?.phase === 'Running') ? true : undefined;
    });
    for (let i = 0; i < 10; i++) {
      expect(await readyReplicas(c, 'never-ready')).toBe(0);
      await sleep(500);
    }
    for (const p of await podsOf(c, 'never-ready')) {
      expect(p.status?.conditions?.find((x) => x.type === 'Ready')?.status).toBe('False');
      expect(p.status?.containerStatuses?.[0]?.state?.running).toBeDefined();
    }
  });

  it('pods annotated flotilla.dev/simulate=crashloop report restarts and CrashLoopBackOff', async () => {
    const c = stack.clusters[1]!;
    await apply(c, deployment('crasher', 'crashloop'));
    const pods = await eventually('3 pods crash-looping', 30_000, async () => {
      const pods = await podsOf(c, 'crasher');
      const looping = pods.filter((p) => {
        const s = p.status?.containerStatuses?.[0];
        return (s?.restartCount ?? 0) > 0 && s?.state?.waiting?.reason === 'CrashLoopBackOff';
      });
      return looping.length === 3 ? pods : undefined;
    });
    expect(pods.every((p) => p.status?.containerStatuses?.[0]?.ready === false)).toBe(true);
    expect(await readyReplicas(c, 'crasher')).toBe(0);
    // It keeps crashing: the restart count grows (every 10-15 s).
    const first = Math.max(...pods.map((p) => p.status!.containerStatuses![0]!.restartCount));
    await eventually('restartCount grows', 30_000, async () => {
      const now = await podsOf(c, 'crasher');
      return Math.max(...now.map((p) => p.status?.containerStatuses?.[0]?.restartCount ?? 0)) > first
        ? true
        : undefined;
    });
    expect(await readyReplicas(c, 'crasher')).toBe(0);
  });

  it('cluster-down makes the API refuse connections; cluster-up brings it back with its objects', async () => {
    const c = stack.clusters[2]!;
    await apply(c, deployment('survivor'));
    await eventually('survivor 3/3', 30_000, async () =>
      (await readyReplicas(c, 'survivor')) === 3 ? true : undefined,
    );
    const before = await kube(c).apps.readNamespacedDeployment({ name: 'survivor', namespace: ns });
    const port = Number(new URL(c.apiserverUrl).port);
    try {
      await fault('cluster-down', c.name, opts);
      // Both the proxy's port (the handed-out URL) and the apiserver's own refuse.
      expect(await portOpen(port)).toBe(false);
      expect(await portOpen(Number(new URL(c.directUrl).port))).toBe(false);
      const err = await kube(c)
        .apps.readNamespacedDeployment({ name: 'survivor', namespace: ns })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(refused(err), `expected connection refused, got ${String(err)}`).toBe(true);
      // The other clusters are untouched.
      expect(await readyReplicas(stack.clusters[0]!, 'web')).toBe(3);
    } finally {
      await fault('cluster-up', c.name, opts);
    }
    const after = await kube(c).apps.readNamespacedDeployment({ name: 'survivor', namespace: ns });
    expect(after.metadata?.uid).toBe(before.metadata?.uid);
    expect(after.status?.readyReplicas).toBe(3);
    // And the cluster still works: a scale-up reaches ready.
    const scaled = deployment('survivor');
    scaled.spec!.replicas = 4;
    await apply(c, scaled);
    await eventually('survivor 4/4 after cluster-up', 30_000, async () =>
      (await readyReplicas(c, 'survivor')) === 4 ? true : undefined,
    );
  });
});

describe('registries', () => {
  const central = stack.registries.find((r) => r.name === 'central')!;
  const regional = stack.registries.find((r) => r.name === 'cn-north')!;
  const repo = `stack-test/web-${randomUUID().slice(0, 8)}`;
  const skopeo = (...args: string[]) => run('skopeo', args, { timeout: 60_000 }).then((r) => r.stdout);
  const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

  afterAll(async () => {
    // Leave the regional registry as we found it (empty of our test repository).
    for (const tag of ['v2', 'multi']) {
      await skopeo('delete', '--tls-verify=false', `docker://${regional.host}/${repo}:${tag}`).catch(
        () => undefined,
      );
    }
  });

  it('skopeo copies an image from central to a regional registry with the same digest', async () => {
    const src = `docker://${central.host}/demo/web:v2`;
    const dst = `docker://${regional.host}/${repo}:v2`;
    await skopeo(
      'copy',
      '--insecure-policy',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      '--preserve-digests',
      src,
      dst,
    );
    const [a, b] = await Promise.all([
      skopeo('inspect', '--tls-verify=false', src),
      skopeo('inspect', '--tls-verify=false', dst),
    ]);
    const digest = (JSON.parse(b) as { Digest: string }).Digest;
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(digest).toBe((JSON.parse(a) as { Digest: string }).Digest);
  });

  it('skopeo copies the multi-architecture index with every platform and the same digest', async () => {
    const src = `docker://${central.host}/demo/web:multi`;
    const dst = `docker://${regional.host}/${repo}:multi`;
    await skopeo(
      'copy',
      '--all',
      '--insecure-policy',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      '--preserve-digests',
      src,
      dst,
    );
    const [a, b] = await Promise.all([
      skopeo('inspect', '--raw', '--tls-verify=false', src),
      skopeo('inspect', '--raw', '--tls-verify=false', dst),
    ]);
    expect(sha(b)).toBe(sha(a));
    const index = JSON.parse(b) as { mediaType: string; manifests: { platform: { architecture: string } }[] };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests.map((m) => m.platform.architecture).sort()).toEqual(['amd64', 'arm64']);
    // Each platform's manifest made it too, not only the index.
    const arm = await skopeo('inspect', '--tls-verify=false', '--override-arch', 'arm64', dst);
    expect((JSON.parse(arm) as { Architecture: string }).Architecture).toBe('arm64');
  });
});

describe('stack down/up', () => {
  it('stops every process on down, and Temporal keeps a started workflow across the restart', async () => {
    const workflowId = `stack-test-${randomUUID()}`;
    let conn = await Connection.connect({ address: stack.temporal.address });
    try {
      const client = new Client({ connection: conn, namespace: stack.temporal.namespace });
      await client.workflow.start('noSuchWorkflow', { taskQueue: 'nobody', workflowId, args: [] });
    } finally {
      await conn.close();
    }

    const recorded = recordedProcesses(opts);
    const procs = Object.values(recorded);
    // Its own parts (other tests may have recorded more, a worker say; down stops those too).
    const parts = Object.keys(recorded).filter((n) =>
      /^(temporal|proxy|puller|prometheus|metrics-target|registry\/|cluster\/)/.test(n),
    );
    expect(parts.length).toBe(5 + stack.registries.length + 5 * stack.clusters.length);
    expect(parts.filter((n) => !isAlive(recorded[n]))).toEqual([]);
    await down(opts);
    expect(procs.filter((p) => isAlive(p)).map((p) => p.command.slice(0, 2).join(' '))).toEqual([]);
    expect(await portOpen(Number(stack.temporal.address.split(':')[1]))).toBe(false);
    expect(await portOpen(Number(new URL(stack.prometheus.url).port))).toBe(false);
    expect(await portOpen(Number(new URL(stack.metricsTarget.url).port))).toBe(false);

    const info = await up(opts);
    expect(info).toEqual(stack);
    conn = await Connection.connect({ address: stack.temporal.address });
    try {
      const client = new Client({ connection: conn, namespace: stack.temporal.namespace });
      const d = await client.workflow.getHandle(workflowId).describe();
      expect(d.status.name).toBe('RUNNING');
      expect(d.type).toBe('noSuchWorkflow');
      await client.workflow.getHandle(workflowId).terminate('stack test done');
    } finally {
      await conn.close();
    }
    // The clusters came back with what they held, and new pods still go through their lifecycle.
    for (const c of stack.clusters) expect(await readyReplicas(c, 'web')).toBe(3);
    await Promise.all(stack.clusters.map((c) => apply(c, deployment('after-restart'))));
    await Promise.all(
      stack.clusters.map((c) =>
        eventually(`${c.name}: after-restart 3/3`, 30_000, async () =>
          (await readyReplicas(c, 'after-restart')) === 3 ? true : undefined,
        ),
      ),
    );
  });
});
