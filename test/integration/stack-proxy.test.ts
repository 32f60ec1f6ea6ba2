/**
 * The API-server proxy of the local stack, on the real stack: clients with the
 * handed-out kubeconfig (@kubernetes/client-node, as Flotilla's worker uses it)
 * meet hanging, failing and answer-losing API servers, while what really
 * happened is read back straight from the apiserver (`directKubeconfig`). A
 * watch streams through, and the cluster's own components keep working under
 * a proxy fault.
 */
import { randomUUID } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { fault, proxyRules, proxyState, stackOptions, status } from '../../stack/index.ts';
import type { StackClusterInfo, StackInfo } from '../../stack/types.ts';

const stack: StackInfo = inject('stack');
const opts = stackOptions(stack);
const ns = `proxy-test-${randomUUID().slice(0, 8)}`;
const c: StackClusterInfo = stack.clusters[0]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Clients {
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  objects: k8s.KubernetesObjectApi;
  kc: k8s.KubeConfig;
}

/** Clients on a kubeconfig whose every request gives up after `timeoutMs` (the client's own timeout). */
function clients(kubeconfig: string, timeoutMs = 10_000): Clients {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const config = k8s.createConfiguration({
    baseServer: new k8s.ServerConfiguration(kc.getCurrentCluster()!.server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [
      {
        pre: async (ctx: k8s.RequestContext) => {
          ctx.setSignal(AbortSignal.timeout(timeoutMs));
          return ctx;
        },
        post: async (res: k8s.ResponseContext) => res,
      },
    ],
  });
  return {
    core: new k8s.CoreV1Api(config),
    apps: new k8s.AppsV1Api(config),
    objects: new k8s.KubernetesObjectApi(config),
    kc,
  };
}

const viaProxy = clients(c.kubeconfig, 3_000);
const direct = clients(c.directKubeconfig);

const configMap = (name: string, value: string): k8s.V1ConfigMap => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: ns },
  data: { value },
});
const applyVia = (cl: Clients, obj: k8s.KubernetesObject) =>
  cl.objects.patch(obj, undefined, undefined, 'flotilla', true, k8s.PatchStrategy.ServerSideApply);
const valueDirect = async (name: string) =>
  (await direct.core.readNamespacedConfigMap({ name, namespace: ns })).data?.value;

/** The error a promise rejects with (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<Error & { code?: number; body?: unknown }> {
  const got = await p.then(
    (v) => ({ ok: v }),
    (e: unknown) => ({ err: e }),
  );
  if ('ok' in got) throw new Error(`expected a failure, got ${JSON.stringify(got.ok)?.slice(0, 200)}`);
  return got.err as Error & { code?: number; body?: unknown };
}
const timedOut = (e: Error) => e.name === 'TimeoutError' || /timeout|aborted/i.test(e.message);

beforeAll(async () => {
  expect(c.apiserverUrl).not.toBe(c.directUrl);
  await direct.core.createNamespace({ body: { metadata: { name: ns } } });
});

afterEach(async () => {
  await proxyRules(c.name, [], opts);
});

afterAll(async () => {
  await direct.core.deleteNamespace({ name: ns }).catch(() => undefined);
});

describe('the API-server proxy', () => {
  it('forwards: what a client writes through the handed-out kubeconfig is in the apiserver', async () => {
    await applyVia(viaProxy, configMap('plain', 'a'));
    expect(await valueDirect('plain')).toBe('a');
    const [state] = (await proxyState(opts)).filter((v) => v.name === c.name);
    expect(state).toMatchObject({ listening: true, faulty: false });
    expect(state!.counts.forwarded).toBeGreaterThan(0);
  });

  it('hang: the request times out on the client, nothing changes, and clearing the rules closes the held connection', async () => {
    await applyVia(direct, configMap('hung', 'before'));
    await proxyRules(c.name, [{ action: 'hang' }], opts);
    const err = await failure(applyVia(viaProxy, configMap('hung', 'after')));
    expect(timedOut(err), `expected the client's timeout, got ${err.name}: ${err.message}`).toBe(true);
    expect(await valueDirect('hung')).toBe('before');
    const [held] = (await proxyState(opts)).filter((v) => v.name === c.name);
    expect(held!.counts.hang).toBeGreaterThanOrEqual(1);
    expect(held!.faulty).toBe(true);

    const healed = await proxyRules(c.name, [], opts);
    expect(healed.held).toBe(0);
    await applyVia(viaProxy, configMap('hung', 'after'));
    expect(await valueDirect('hung')).toBe('after');
  });

  it('drop-reply on PATCH: the change reaches the apiserver, the client never hears back; the next PATCH is answered', async () => {
    await applyVia(direct, configMap('lost', 'v1'));
    await proxyRules(c.name, [{ action: 'drop-reply', method: 'PATCH', count: 1 }], opts);
    const err = await failure(applyVia(viaProxy, configMap('lost', 'v2')));
    expect(timedOut(err), `expected the client's timeout, got ${err.name}: ${err.message}`).toBe(true);
    expect(await valueDirect('lost')).toBe('v2'); // it took effect
    // GETs were never matched, and the rule is used up: the next PATCH gets its answer.
    expect((await viaProxy.core.readNamespacedConfigMap({ name: 'lost', namespace: ns })).data?.value).toBe(
      'v2',
    );
    const applied = await applyVia(viaProxy, configMap('lost', 'v3'));
    expect((applied as k8s.V1ConfigMap).data?.value).toBe('v3');
    const [view] = (await proxyState(opts)).filter((v) => v.name === c.name);
    expect(view!.rules).toEqual([
      expect.objectContaining({ action: 'drop-reply', remaining: 0, matched: 1 }),
    ]);
    expect(view!.faulty).toBe(false);
  });

  it('error: `fault cluster-5xx` answers 503 with a Kubernetes Status, status shows it, `cluster-heal` ends it', async () => {
    await fault('cluster-5xx', c.name, opts);
    const err = await failure(viaProxy.core.listNamespacedConfigMap({ namespace: ns }));
    expect(err.code).toBe(503);
    const body = JSON.parse(String(err.body)) as { kind: string; reason: string; code: number };
    expect(body).toMatchObject({ kind: 'Status', reason: 'ServiceUnavailable', code: 503 });
    const s = await status(opts);
    const part = s.parts.find((p) => p.part === `cluster/${c.name}`)!;
    expect(part.fault).toMatch(/^proxy: error 503 \(all\)/);
    expect(part.healthy).toBe(false);
    expect(s.healthy).toBe(false);

    await fault('cluster-heal', c.name, opts);
    const list = await viaProxy.core.listNamespacedConfigMap({ namespace: ns });
    expect(list.items.length).toBeGreaterThan(0);
    expect((await status(opts)).parts.find((p) => p.part === `cluster/${c.name}`)!.fault).toBeUndefined();
  });

  it('a rule matches by method and path: a 500 for one object only, others pass', async () => {
    await applyVia(direct, configMap('target', 'x'));
    await applyVia(direct, configMap('bystander', 'y'));
    await proxyRules(
      c.name,
      [{ action: 'error', status: 500, method: 'get', path: '/configmaps/target$', message: 'etcd is sad' }],
      opts,
    );
    const err = await failure(viaProxy.core.readNamespacedConfigMap({ name: 'target', namespace: ns }));
    expect(err.code).toBe(500);
    expect(JSON.parse(String(err.body))).toMatchObject({ reason: 'InternalError', message: 'etcd is sad' });
    expect(
      (await viaProxy.core.readNamespacedConfigMap({ name: 'bystander', namespace: ns })).data?.value,
    ).toBe('y');
  });

  it('delay: the request is forwarded after the delay and answered', async () => {
    await proxyRules(c.name, [{ action: 'delay', delayMs: 1500, method: 'GET', count: 1 }], opts);
    const t0 = performance.now();
    const ns0 = await viaProxy.core.readNamespace({ name: ns });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1400); // a lower bound: the delay happened
    expect(ns0.metadata?.name).toBe(ns);
  });

  it('refuses bad rules with the reason', async () => {
    await expect(proxyRules(c.name, [{ action: 'delay' }], opts)).rejects.toThrow(/delayMs/);
    await expect(proxyRules(c.name, [{ action: 'error', path: '(' }], opts)).rejects.toThrow(
      /not a regular expression/,
    );
    await expect(proxyRules('atlantis', [], opts)).rejects.toThrow(/no cluster "atlantis"/);
  });

  it('a watch streams through: each event arrives while the watch stays open, across idle gaps', async () => {
    const events: { type: string; name: string }[] = [];
    let ended: unknown = 'open';
    const watch = new k8s.Watch(viaProxy.kc);
    const ctrl = await watch.watch(
      `/api/v1/namespaces/${ns}/configmaps`,
      { labelSelector: 'watched=yes' },
      (type: string, obj: k8s.V1ConfigMap) => events.push({ type, name: obj.metadata!.name! }),
      (err: unknown) => {
        ended = err ?? 'done';
      },
    );
    try {
      const waitFor = async (name: string) => {
        for (let i = 0; i < 100 && !events.some((e) => e.name === name); i++) await sleep(100);
        expect(events.map((e) => e.name)).toContain(name);
      };
      const labelled = (name: string) => ({
        ...configMap(name, '1'),
        metadata: { name, namespace: ns, labels: { watched: 'yes' } },
      });
      await applyVia(direct, labelled('w1'));
      await waitFor('w1');
      await sleep(6_000); // idle longer than the proxy's keep-alive timeout: a watch is not idle
      await applyVia(direct, labelled('w2'));
      await waitFor('w2');
      expect(events).toEqual([
        { type: 'ADDED', name: 'w1' },
        { type: 'ADDED', name: 'w2' },
      ]);
      expect(ended).toBe('open');
    } finally {
      ctrl.abort();
    }
  });

  it('a proxy fault does not stop the cluster: under cluster-hang a Deployment still becomes ready (read directly)', async () => {
    await fault('cluster-hang', c.name, opts);
    const d: k8s.V1Deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'under-hang', namespace: ns },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'under-hang' } },
        template: {
          metadata: { labels: { app: 'under-hang' } },
          spec: { containers: [{ name: 'web', image: `${stack.registries[0]!.host}/demo/web:v1` }] },
        },
      },
    };
    await applyVia(direct, d);
    let ready = 0;
    for (let i = 0; i < 120 && ready < 2; i++) {
      await sleep(250);
      ready =
        (await direct.apps.readNamespacedDeployment({ name: 'under-hang', namespace: ns })).status
          ?.readyReplicas ?? 0;
    }
    expect(ready).toBe(2);
    const err = await failure(viaProxy.apps.readNamespacedDeployment({ name: 'under-hang', namespace: ns }));
    expect(timedOut(err)).toBe(true);
    await fault('cluster-heal', c.name, opts);
    expect(
      (await viaProxy.apps.readNamespacedDeployment({ name: 'under-hang', namespace: ns })).status
        ?.readyReplicas,
    ).toBe(2);
  });
});
