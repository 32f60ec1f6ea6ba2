/**
 * The six-cluster fleet of the benchmarks (stack/fleet-6.yaml), brought up as a
 * second stack beside the integration project's own (its data dir + "-fleet6",
 * its port base + 250, inside the same slot), with the API-server proxy and
 * the image puller: a Deployment becomes ready in all six clusters through the
 * handed-out kubeconfigs, a new cluster takes a proxy fault, later commands
 * remember the fleet. Stopped and purged at the end.
 */
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StackOptions } from '../../stack/index.ts';
import { down, fault, isAlive, recordedProcesses, status, up } from '../../stack/index.ts';
import { loadFleet, repoRoot } from '../../stack/config.ts';
import type { StackInfo } from '../../stack/types.ts';

const main: StackInfo = inject('stack');
const fleetFile = path.join(repoRoot, 'stack', 'fleet-6.yaml');
const opts: StackOptions = { dataDir: `${main.dataDir}-fleet6`, portBase: main.portBase! + 250, fleetFile };
let info: StackInfo;

beforeAll(async () => {
  await down({ ...opts, purge: true });
  info = await up(opts);
}, 300_000);

afterAll(async () => {
  const procs = Object.values(recordedProcesses(opts));
  await down({ ...opts, purge: true });
  expect(procs.filter((p) => isAlive(p))).toEqual([]);
});

describe('stack/fleet-6.yaml', () => {
  it('is the default fleet plus tianjin, guangzhou and cloud-sg, a registry per region; the default is unchanged', () => {
    const six = loadFleet(fleetFile);
    const three = loadFleet();
    expect(three.clusters.map((c) => c.name)).toEqual(['beijing', 'shenzhen', 'cloud-hk']);
    expect(six.clusters.slice(0, 3)).toEqual(three.clusters);
    expect(six.clusters.map((c) => `${c.name}:${c.region}:${c.mirror}`)).toEqual([
      'beijing:cn-north:cn-north',
      'shenzhen:cn-south:cn-south',
      'cloud-hk:ap-east:ap-east',
      'tianjin:cn-north:cn-north',
      'guangzhou:cn-south:cn-south',
      'cloud-sg:ap-southeast:ap-southeast',
    ]);
    const regions = new Set(six.clusters.map((c) => c.region));
    expect(six.registries.map((r) => r.region).sort()).toEqual(['central', ...regions].sort());
  });

  it('stack/fleet-4.yaml (failover) is the default fleet plus tianjin, a second cn-north cluster on the cn-north registry', () => {
    const four = loadFleet(path.join(repoRoot, 'stack', 'fleet-4.yaml'));
    const three = loadFleet();
    expect(four.clusters.slice(0, 3)).toEqual(three.clusters);
    expect(four.registries).toEqual(three.registries);
    expect(four.clusters.slice(3)).toEqual([
      {
        name: 'tianjin',
        region: 'cn-north',
        zone: 'cn-north-1b',
        provider: 'private',
        labels: { env: 'prod', tier: 'core' },
        capacity: 2,
        nodes: 3,
        mirror: 'cn-north',
      },
    ]);
  });

  it('comes up healthy: six clusters behind the proxy, the puller watching all six', async () => {
    expect(info.clusters.map((c) => c.name)).toEqual([
      'beijing',
      'shenzhen',
      'cloud-hk',
      'tianjin',
      'guangzhou',
      'cloud-sg',
    ]);
    // No option: the data dir remembers its fleet.
    const s = await status({ dataDir: opts.dataDir });
    expect(s.parts.filter((p) => !p.healthy).map((p) => p.part)).toEqual([]);
    expect(s.parts.find((p) => p.part === 'proxy')?.detail).toBe('6/6 listening');
    expect(s.parts.find((p) => p.part === 'puller')?.detail).toBe('6/6 watching');
  });

  it('a Deployment is ready in all six clusters through the handed-out kubeconfigs, with pulled digests', async () => {
    const central = info.registries.find((r) => r.name === 'central')!.host;
    await Promise.all(
      info.clusters.map(async (c) => {
        const kc = new k8s.KubeConfig();
        kc.loadFromFile(c.kubeconfig);
        expect(kc.getCurrentCluster()?.server).toBe(c.apiserverUrl);
        const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
        const apps = kc.makeApiClient(k8s.AppsV1Api);
        const core = kc.makeApiClient(k8s.CoreV1Api);
        const apply = (o: k8s.KubernetesObject) =>
          objects.patch(o, undefined, undefined, 'stack-test', true, k8s.PatchStrategy.ServerSideApply);
        await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'six' } });
        await apply({
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: 'web', namespace: 'six' },
          spec: {
            replicas: 2,
            selector: { matchLabels: { app: 'web' } },
            template: {
              metadata: { labels: { app: 'web' } },
              spec: { containers: [{ name: 'web', image: `${central}/demo/web:v2` }] },
            },
          },
        } as k8s.KubernetesObject);
        const deadline = Date.now() + 60_000;
        while (
          (await apps.readNamespacedDeployment({ name: 'web', namespace: 'six' })).status?.readyReplicas !== 2
        ) {
          if (Date.now() > deadline) throw new Error(`${c.name}: web not 2/2 ready in 60 s`);
          await new Promise((r) => setTimeout(r, 250));
        }
        const pods = await core.listNamespacedPod({ namespace: 'six', labelSelector: 'app=web' });
        for (const p of pods.items)
          expect(p.status?.containerStatuses?.[0]?.imageID).toMatch(
            new RegExp(`^${central}/demo/web@sha256:`),
          );
      }),
    );
  });

  it('a proxy fault on a new cluster answers 503 there only; heal ends it', async () => {
    const sg = info.clusters.find((c) => c.name === 'cloud-sg')!;
    const tj = info.clusters.find((c) => c.name === 'tianjin')!;
    const core = (c: typeof sg) => {
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(c.kubeconfig);
      return kc.makeApiClient(k8s.CoreV1Api);
    };
    await fault('cluster-5xx', 'cloud-sg', { dataDir: opts.dataDir });
    try {
      const err = await core(sg)
        .readNamespace({ name: 'six' })
        .then(
          () => undefined,
          (e: { code?: number }) => e,
        );
      expect(err?.code).toBe(503);
      expect((await core(tj).readNamespace({ name: 'six' })).metadata?.name).toBe('six');
    } finally {
      await fault('cluster-heal', 'cloud-sg', { dataDir: opts.dataDir });
    }
    expect((await core(sg).readNamespace({ name: 'six' })).metadata?.name).toBe('six');
  });

  it('up with another fleet on the running data dir is refused, naming what would be left behind', async () => {
    await expect(
      up({ dataDir: opts.dataDir, fleetFile: path.join(repoRoot, 'stack', 'fleet.yaml') }),
    ).rejects.toThrow(/cluster\/tianjin.*does not have: run `down` first/);
  });
});
