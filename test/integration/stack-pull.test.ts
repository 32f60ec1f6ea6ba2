/**
 * Image pulls made real by the stack's puller, on the real stack: a pod becomes
 * Ready only when every image it names is in the registry it names, reporting
 * the digest as imageID; otherwise it goes ErrImagePull then ImagePullBackOff
 * with the registry's words and kubelet-like events, and recovers by itself when
 * the image is pushed or its registry comes back. Read through the handed-out
 * kubeconfig; images copied with skopeo.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { fault, pullerState, stackOptions } from '../../stack/index.ts';
import { manifestDigest } from '../../stack/registry.ts';
import type { StackInfo } from '../../stack/types.ts';

const run = promisify(execFile);
const stack: StackInfo = inject('stack');
const opts = stackOptions(stack);
const ns = `pull-test-${randomUUID().slice(0, 8)}`;
const c = stack.clusters[1]!; // shenzhen
const registry = (name: string) => stack.registries.find((r) => r.name === name)!.host;
const central = registry('central');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const kc = new k8s.KubeConfig();
kc.loadFromFile(c.kubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);
const objects = k8s.KubernetesObjectApi.makeApiClient(kc);

const skopeoCopy = (src: string, dst: string) =>
  run(
    'skopeo',
    [
      'copy',
      '--quiet',
      '--insecure-policy',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      '--preserve-digests',
      `docker://${src}`,
      `docker://${dst}`,
    ],
    { timeout: 60_000 },
  );

function pod(name: string, spec: Partial<k8s.V1PodSpec>, annotations?: Record<string, string>): k8s.V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, ...(annotations ? { annotations } : {}) },
    spec: { containers: [], terminationGracePeriodSeconds: 0, ...spec },
  };
}
const create = (p: k8s.V1Pod) =>
  objects.patch(p, undefined, undefined, 'stack-test', true, k8s.PatchStrategy.ServerSideApply);
const read = (name: string) => core.readNamespacedPod({ name, namespace: ns });
const isReady = (p: k8s.V1Pod) =>
  p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') ?? false;

async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${timeoutMs / 1000}s${last ? ` (${String(last)})` : ''}`);
    await sleep(150);
  }
}

const ready = (name: string, timeoutMs = 30_000) =>
  until(`${name} Ready`, timeoutMs, async () => {
    const p = await read(name);
    return isReady(p) ? p : undefined;
  });

/** Waits until the named container waits with `reason`; returns its message. */
const waitingFor = (name: string, container: string, reason: string, timeoutMs = 30_000) =>
  until(`${name}/${container} waiting ${reason}`, timeoutMs, async () => {
    const p = await read(name);
    const s = [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])].find(
      (x) => x.name === container,
    );
    return s?.state?.waiting?.reason === reason ? (s.state.waiting.message ?? '') : undefined;
  });

const eventsOf = async (name: string) =>
  (await core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${name}` })).items;

/** Samples the pod for `ms`: it must never become Ready. */
async function neverReady(name: string, ms: number): Promise<k8s.V1Pod> {
  const end = Date.now() + ms;
  let p = await read(name);
  while (Date.now() < end) {
    p = await read(name);
    expect(isReady(p), `${name} became Ready`).toBe(false);
    await sleep(500);
  }
  return p;
}

beforeAll(async () => {
  await create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } as k8s.KubernetesObject);
});
afterAll(async () => {
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
});

describe('image pulls', () => {
  it('a pod of a present image (by tag, by digest) becomes Ready and reports the digest as imageID', async () => {
    const digest = (await manifestDigest(central, 'demo/web', 'v1'))!;
    expect(digest).toMatch(/^sha256:/);
    await create(pod('by-tag', { containers: [{ name: 'web', image: `${central}/demo/web:v1` }] }));
    await create(pod('by-digest', { containers: [{ name: 'web', image: `${central}/demo/web@${digest}` }] }));
    for (const name of ['by-tag', 'by-digest']) {
      const p = await ready(name);
      expect(p.status?.phase).toBe('Running');
      expect(p.status?.containerStatuses?.[0]?.imageID).toBe(`${central}/demo/web@${digest}`);
    }
  });

  it('a missing tag goes ErrImagePull then ImagePullBackOff, with the registry error and events; pushing it makes the pod Ready', async () => {
    const regional = registry('cn-south');
    const repo = `pull-test-${randomUUID().slice(0, 8)}/web`;
    const image = `${regional}/${repo}:v2`;
    await create(pod('late-push', { containers: [{ name: 'web', image }] }));
    const pulled = await waitingFor('late-push', 'web', 'ErrImagePull');
    expect(pulled).toContain(`failed to pull and unpack image "${image}"`);
    expect(pulled).toMatch(/manifest unknown|repository name not known/);
    const backoff = await waitingFor('late-push', 'web', 'ImagePullBackOff');
    expect(backoff).toMatch(/^Back-off pulling image ".*": ErrImagePull: /);
    const events = await eventsOf('late-push');
    const failed = events.find((e) => e.reason === 'Failed' && e.message?.startsWith('Failed to pull image'));
    expect(failed?.type).toBe('Warning');
    expect(failed?.message).toContain(`Failed to pull image "${image}": `);
    expect(failed?.source?.component).toBe('kubelet');
    expect(
      events.some((e) => e.reason === 'BackOff' && e.message === `Back-off pulling image "${image}"`),
    ).toBe(true);
    const p = await read('late-push');
    expect(p.status?.phase).toBe('Pending');
    expect(isReady(p)).toBe(false);
    expect((await pullerState(opts)).find((v) => v.name === c.name)?.waiting.map((w) => w.name)).toContain(
      'late-push',
    );

    // Replication, as Flotilla will do it: the pod is not touched.
    await skopeoCopy(`${central}/demo/web:v2`, image);
    const after = await ready('late-push', 45_000);
    const digest = await manifestDigest(central, 'demo/web', 'v2');
    expect(after.status?.containerStatuses?.[0]?.imageID).toBe(`${regional}/${repo}@${digest}`);
    expect(after.metadata?.uid).toBe(p.metadata?.uid);
  });

  it('a missing digest goes ErrImagePull / ImagePullBackOff with "manifest unknown" and never becomes Ready', async () => {
    const image = `${central}/demo/web@sha256:${'0'.repeat(64)}`;
    await create(pod('no-digest', { containers: [{ name: 'web', image }] }));
    expect(await waitingFor('no-digest', 'web', 'ErrImagePull')).toMatch(/manifest unknown/);
    expect(await waitingFor('no-digest', 'web', 'ImagePullBackOff')).toMatch(/manifest unknown/);
    await neverReady('no-digest', 3_000);
  });

  it('an image from a registry outside the stack cannot be pulled (no such host)', async () => {
    await create(pod('outside', { containers: [{ name: 'web', image: 'nginx:1.27' }] }));
    const message = await waitingFor('outside', 'web', 'ErrImagePull');
    expect(message).toContain('docker.io/library/nginx:1.27');
    expect(message).toMatch(/no such host/);
  });

  it('registry-down: a new pod waits in ImagePullBackOff (connection refused); registry-up: it becomes Ready by itself', async () => {
    const regional = registry('ap-east');
    const repo = `pull-test-${randomUUID().slice(0, 8)}/web`;
    await skopeoCopy(`${central}/demo/web:v3`, `${regional}/${repo}:v3`);
    try {
      await fault('registry-down', 'ap-east', opts);
      await create(pod('reg-down', { containers: [{ name: 'web', image: `${regional}/${repo}:v3` }] }));
      expect(await waitingFor('reg-down', 'web', 'ImagePullBackOff')).toMatch(/connection refused/);
      await neverReady('reg-down', 2_000);
    } finally {
      await fault('registry-up', 'ap-east', opts);
    }
    const p = await ready('reg-down', 45_000);
    expect(p.status?.containerStatuses?.[0]?.imageID).toMatch(new RegExp(`^${regional}/${repo}@sha256:`));
  });

  it('every container counts: a missing sidecar image or init container image keeps the pod from Ready', async () => {
    const missing = `${central}/demo/web:absent-${randomUUID().slice(0, 6)}`;
    await create(
      pod('two-containers', {
        containers: [
          { name: 'web', image: `${central}/demo/web:v1` },
          { name: 'proxy', image: missing },
        ],
      }),
    );
    await create(
      pod('init-missing', {
        initContainers: [{ name: 'migrate', image: missing }],
        containers: [{ name: 'web', image: `${central}/demo/web:v1` }],
      }),
    );
    expect(await waitingFor('two-containers', 'proxy', 'ImagePullBackOff')).toMatch(/manifest unknown/);
    expect(await waitingFor('init-missing', 'migrate', 'ImagePullBackOff')).toMatch(/manifest unknown/);
    const two = await neverReady('two-containers', 3_000);
    expect(two.status?.containerStatuses?.find((s) => s.name === 'web')?.state?.waiting?.reason).toBe(
      'ContainerCreating',
    );
    const init = await read('init-missing');
    expect(isReady(init)).toBe(false);
    expect(init.status?.conditions?.find((x) => x.type === 'Initialized')?.status).toBe('False');
    expect(init.status?.containerStatuses?.[0]?.state?.waiting?.reason).toBe('PodInitializing');
    // Once the init image exists, init runs (Completed) and the pod is Ready.
    await skopeoCopy(`${central}/demo/web:v1`, missing);
    const done = await ready('init-missing', 45_000);
    expect(done.status?.initContainerStatuses?.[0]?.state?.terminated?.reason).toBe('Completed');
    expect(done.status?.initContainerStatuses?.[0]?.imageID).toMatch(/@sha256:/);
  });

  it('the simulations work on top of a successful pull, and not before it', async () => {
    await create(
      pod(
        'sim-unready',
        { containers: [{ name: 'web', image: `${central}/demo/web:v1` }] },
        { 'flotilla.dev/simulate': 'unready' },
      ),
    );
    await create(
      pod(
        'sim-missing',
        { containers: [{ name: 'web', image: `${central}/demo/web:nope` }] },
        { 'flotilla.dev/simulate': 'crashloop' },
      ),
    );
    const unready = await until('sim-unready Running', 30_000, async () => {
      const p = await read('sim-unready');
      return p.status?.phase === 'Running' ? p : undefined;
    });
    expect(isReady(unready)).toBe(false);
    expect(unready.status?.containerStatuses?.[0]?.imageID).toMatch(/@sha256:/);
    // A crash-looping app whose image is missing never gets to crash: it waits for its image.
    expect(await waitingFor('sim-missing', 'web', 'ImagePullBackOff')).toMatch(/manifest unknown/);
    expect((await read('sim-missing')).status?.containerStatuses?.[0]?.restartCount).toBe(0);
  });
});
