import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  inlineApp,
  ANNOTATION_APP,
  ANNOTATION_CLUSTER,
  ANNOTATION_DELIVERY,
  AppSpecSchema,
  ClusterSchema,
  LABEL_APP,
  LABEL_MANAGED_BY,
  planDeploy,
  renderApp,
  toClusterInfo,
} from '../../model/index.ts';
import type { AppSpecInput, ClusterTarget } from '../../model/index.ts';

const fleet = ['beijing', 'shenzhen'].map((name) =>
  toClusterInfo(
    ClusterSchema.parse({ name, region: name, provider: 'idc', kubeconfig: { path: `/k/${name}` } }),
  ),
);
const spec = (over: Partial<AppSpecInput> = {}) =>
  AppSpecSchema.parse({
    name: 'web',
    namespace: 'shop',
    image: 'registry.local:5000/demo/web:v2',
    replicas: 4,
    placement: { clusters: ['beijing', 'shenzhen'] },
    ...over,
  });
const render = (over: Partial<AppSpecInput> = {}, delivery = 'd-1', cluster = 'beijing') => {
  const app = spec(over);
  return renderApp(inlineApp(app), planDeploy(app, fleet).targets[cluster]!, { deliveryId: delivery, progressDeadlineSeconds: 600 });
};
type Obj = {
  metadata: Record<string, unknown>;
  spec: Record<string, unknown> & {
    template: { metadata: Record<string, unknown>; spec: { containers: Record<string, unknown>[] } };
  };
};
const deployment = (r: ReturnType<typeof renderApp>) => r.find((o) => o.kind === 'Deployment') as unknown as Obj;
const service = (r: ReturnType<typeof renderApp>) => r.find((o) => o.kind === 'Service') as unknown as Obj;
const container = (r: ReturnType<typeof renderApp>) => deployment(r).spec.template.spec.containers[0]!;

describe('renderApp: the Deployment', () => {
  it('renders the Service, then the Deployment (apply order)', () => {
    expect(render().map((o) => o.kind)).toEqual(['Service', 'Deployment']);
  });

  it('has the whole expected shape for a minimal app', () => {
    expect(deployment(render())).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: 'web',
        namespace: 'shop',
        labels: { [LABEL_APP]: 'web', [LABEL_MANAGED_BY]: 'flotilla' },
        annotations: { [ANNOTATION_APP]: 'shop/web', [ANNOTATION_DELIVERY]: 'd-1', [ANNOTATION_CLUSTER]: 'beijing' },
      },
      spec: {
        replicas: 2,
        selector: { matchLabels: { [LABEL_APP]: 'web' } },
        progressDeadlineSeconds: 600,
        revisionHistoryLimit: 10,
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } },
        template: {
          metadata: { labels: { [LABEL_APP]: 'web', [LABEL_MANAGED_BY]: 'flotilla' }, annotations: {} },
          spec: {
            containers: [
              {
                name: 'web',
                image: 'registry.local:5000/demo/web:v2',
                ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
                env: [],
              },
            ],
          },
        },
      },
    });
  });

  it('takes replicas, image, env and resources from the cluster target', () => {
    const app = spec({ template: { env: { A: '1' } } });
    const target: ClusterTarget = {
      cluster: 'shenzhen',
      wave: 1,
      taskQueue: 'q',
      replicas: 7,
      image: 'harbor.sz.local/demo/web:v2',
      env: { B: '2' },
      resources: { limits: { cpu: '1' } },
    };
    const r = renderApp(inlineApp(app), target, { deliveryId: 'd-9', progressDeadlineSeconds: 90 });
    expect(deployment(r).spec.progressDeadlineSeconds).toBe(90);
    expect(deployment(r).spec.replicas).toBe(7);
    expect(container(r)).toMatchObject({
      image: 'harbor.sz.local/demo/web:v2',
      env: [{ name: 'B', value: '2' }],
      resources: { limits: { cpu: '1' } },
    });
    expect(deployment(r).metadata.annotations).toEqual({
      [ANNOTATION_APP]: 'shop/web',
      [ANNOTATION_DELIVERY]: 'd-9',
      [ANNOTATION_CLUSTER]: 'shenzhen',
    });
  });

  it('keeps the pod template labels and annotations, with Flotilla labels winning', () => {
    const r = render({
      template: {
        labels: { team: 'pay', [LABEL_APP]: 'spoofed' },
        annotations: { 'prometheus.io/scrape': 'true' },
      },
    });
    const meta = deployment(r).spec.template.metadata;
    expect(meta.labels).toEqual({ team: 'pay', [LABEL_APP]: 'web', [LABEL_MANAGED_BY]: 'flotilla' });
    expect(meta.annotations).toEqual({ 'prometheus.io/scrape': 'true' });
    expect(deployment(r).spec.selector).toEqual({ matchLabels: { [LABEL_APP]: 'web' } });
  });

  it('the selector matches the pod labels, whatever the template labels', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.stringMatching(/^[a-z]{1,8}(\/[a-z]{1,8})?$/), fc.stringMatching(/^[a-z0-9]{0,8}$/)),
        (labels) => {
          const d = deployment(render({ template: { labels } }));
          const podLabels = d.spec.template.metadata.labels as Record<string, string>;
          const matchLabels = (d.spec.selector as { matchLabels: Record<string, string> }).matchLabels;
          for (const [k, v] of Object.entries(matchLabels)) expect(podLabels[k]).toBe(v);
        },
      ),
    );
  });

  it('sorts env by name, in code-unit order whatever the locale', () => {
    const r = render({ template: { env: { b: '2', B: '3', _x: '4', a_b: '5', A: '1', aB: '6' } } });
    expect((container(r).env as { name: string }[]).map((e) => e.name)).toEqual([
      'A',
      'B',
      '_x',
      'aB',
      'a_b',
      'b',
    ]);
    expect(container(r).env).toContainEqual({ name: 'a_b', value: '5' });
  });

  it('renders the same env list for any insertion order', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.tuple(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,6}$/), fc.string({ maxLength: 4 })),
          { selector: ([k]) => k, maxLength: 8 },
        ),
        (pairs) => {
          const forward = container(render({ template: { env: Object.fromEntries(pairs) } })).env;
          const backward = container(
            render({ template: { env: Object.fromEntries([...pairs].reverse()) } }),
          ).env;
          expect(forward).toEqual(backward);
          expect((forward as { name: string }[]).map((e) => e.name)).toEqual(pairs.map(([k]) => k).sort());
        },
      ),
    );
  });

  it('includes command, args and resources only when given', () => {
    expect(Object.keys(container(render())).sort()).toEqual(['env', 'image', 'name', 'ports']);
    const r = render({
      template: {
        command: ['/bin/web'],
        args: ['--port', '8080'],
        resources: { requests: { memory: '64Mi' } },
      },
    });
    expect(container(r)).toMatchObject({
      command: ['/bin/web'],
      args: ['--port', '8080'],
      resources: { requests: { memory: '64Mi' } },
    });
  });
});

describe('renderApp: sidecars', () => {
  it('puts each sidecar after the application container, with its own image, env and ports', () => {
    const r = render({
      template: {
        env: { MODE: 'prod' },
        sidecars: [
          { name: 'envoy', image: 'reg.example/envoy:1.30', env: { Z: '1', A: '2' }, ports: [{ name: 'admin', containerPort: 9901 }], args: ['-c', '/etc/envoy.yaml'] },
        ],
      },
    });
    const containers = deployment(r).spec.template.spec.containers;
    expect(containers.map((c) => [c.name, c.image])).toEqual([
      ['web', 'registry.local:5000/demo/web:v2'],
      ['envoy', 'reg.example/envoy:1.30'],
    ]);
    expect(containers[1]).toEqual({
      name: 'envoy',
      image: 'reg.example/envoy:1.30',
      env: [
        { name: 'A', value: '2' },
        { name: 'Z', value: '1' },
      ],
      ports: [{ name: 'admin', containerPort: 9901, protocol: 'TCP' }],
      args: ['-c', '/etc/envoy.yaml'],
    });
    expect(containers[0]!.env).toEqual([{ name: 'MODE', value: 'prod' }]); // the app's env is not the sidecar's
  });
});

describe('renderApp: re-delivery', () => {
  it('puts the delivery annotation on the Deployment metadata, not in the pod template', () => {
    const d = deployment(render({}, 'delivery-42'));
    expect((d.metadata.annotations as Record<string, string>)[ANNOTATION_DELIVERY]).toBe('delivery-42');
    expect(JSON.stringify(d.spec.template)).not.toContain('delivery-42');
    expect(JSON.stringify(d.spec.template)).not.toContain(ANNOTATION_DELIVERY);
  });

  it('re-delivering the same spec changes no pod: the pod template is the same for any delivery id', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (a, b) => {
        const first = render({ template: { env: { MODE: 'prod' }, annotations: { note: 'x' } } }, a);
        const second = render({ template: { env: { MODE: 'prod' }, annotations: { note: 'x' } } }, b);
        expect(deployment(second).spec.template).toEqual(deployment(first).spec.template);
        expect(deployment(second).spec.selector).toEqual(deployment(first).spec.selector);
      }),
    );
  });

  it('a new image does change the pod template', () => {
    expect(container(render({ image: 'registry.local:5000/demo/web:v3' }))).toMatchObject({
      image: 'registry.local:5000/demo/web:v3',
    });
    expect(deployment(render({ image: 'registry.local:5000/demo/web:v3' })).spec.template).not.toEqual(
      deployment(render()).spec.template,
    );
  });
});

describe('renderApp: the Service', () => {
  it('selects the pods and exposes each container port', () => {
    const r = render({
      template: {
        ports: [
          { name: 'http', containerPort: 8080 },
          { containerPort: 53, protocol: 'UDP' },
        ],
      },
    });
    expect(service(r)).toEqual({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: 'web',
        namespace: 'shop',
        labels: { [LABEL_APP]: 'web', [LABEL_MANAGED_BY]: 'flotilla' },
        annotations: { [ANNOTATION_APP]: 'shop/web', [ANNOTATION_DELIVERY]: 'd-1', [ANNOTATION_CLUSTER]: 'beijing' },
      },
      spec: {
        type: 'ClusterIP',
        selector: { [LABEL_APP]: 'web' },
        ports: [
          { name: 'http', port: 8080, targetPort: 8080, protocol: 'TCP' },
          { name: 'port-1', port: 53, targetPort: 53, protocol: 'UDP' },
        ],
      },
    });
    expect(container(r).ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { containerPort: 53, protocol: 'UDP' },
    ]);
  });

  it('its selector equals the Deployment selector', () => {
    const r = render();
    expect(service(r).spec.selector).toEqual(
      (deployment(r).spec.selector as { matchLabels: unknown }).matchLabels,
    );
  });
});

describe('renderApp: probes and pinned images', () => {
  it('puts readiness, liveness and startup probes on the container as given', () => {
    const r = render({
      template: {
        readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 2 },
        livenessProbe: { tcpSocket: { port: 8080 } },
        startupProbe: { exec: { command: ['test', '-f', '/ok'] }, failureThreshold: 30 },
      },
    });
    expect(container(r)).toMatchObject({
      readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 2 },
      livenessProbe: { tcpSocket: { port: 8080 } },
      startupProbe: { exec: { command: ['test', '-f', '/ok'] }, failureThreshold: 30 },
    });
  });

  it('refuses a probe with no handler or two, naming the field', () => {
    for (const probe of [{ periodSeconds: 2 }, { tcpSocket: { port: 1 }, exec: { command: ['x'] } }]) {
      const r = AppSpecSchema.safeParse({ ...spec(), template: { readinessProbe: probe } });
      expect(r.success).toBe(false);
      expect(r.error?.issues[0]?.path).toEqual(['template', 'readinessProbe']);
    }
  });

  it('refuses an unknown template field instead of dropping it', () => {
    const r = AppSpecSchema.safeParse({ ...spec(), template: { readinesProbe: { tcpSocket: { port: 1 } } } });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.code).toBe('unrecognized_keys');
  });

  it('renders pinned images when planned with digests: the app image and every sidecar', () => {
    const app = spec({ template: { sidecars: [{ name: 'envoy', image: 'reg.example/envoy:1.30' }] } });
    const digests = { 'registry.local:5000/demo/web:v2': `sha256:${'a'.repeat(64)}`, 'reg.example/envoy:1.30': `sha256:${'b'.repeat(64)}` };
    const r = renderApp(inlineApp(app), planDeploy(app, fleet, undefined, digests).targets.beijing!, { deliveryId: 'd', progressDeadlineSeconds: 600 });
    expect(deployment(r).spec.template.spec.containers.map((c) => c.image)).toEqual([
      `registry.local:5000/demo/web@sha256:${'a'.repeat(64)}`,
      `reg.example/envoy@sha256:${'b'.repeat(64)}`,
    ]);
  });
});
