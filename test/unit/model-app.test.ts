import { describe, expect, it } from 'vitest';
import { AppSpecSchema, DeliveryRequestSchema, DeployRequestSchema, inlineApp } from '../../model/index.ts';
import type { AppSpecInput } from '../../model/index.ts';

const minimal: AppSpecInput = {
  name: 'web',
  image: 'registry.local:5000/demo/web:v2',
  replicas: 6,
  placement: { clusters: ['beijing'] },
};
const issues = (input: unknown) => {
  const r = AppSpecSchema.safeParse(input);
  expect(r.success).toBe(false);
  return r.error?.issues ?? [];
};

describe('AppSpecSchema defaults', () => {
  it('fills namespace, distribution and overrides; the inline spec gets the default pod template', () => {
    const app = AppSpecSchema.parse(minimal);
    expect(app).toEqual({ ...minimal, namespace: 'default', distribution: 'divided', overrides: {}, selectorOverrides: [] });
    expect(inlineApp(app).template).toEqual({
      sidecars: [],
      labels: {},
      annotations: {},
      env: {},
      ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
    });
  });

  it('fills the template fields left out of a given template, and each port protocol', () => {
    const app = AppSpecSchema.parse({
      ...minimal,
      template: {
        env: { MODE: 'prod' },
        ports: [{ containerPort: 53, protocol: 'UDP' }, { containerPort: 9090 }],
      },
    });
    expect(app.template).toEqual({
      sidecars: [],
      labels: {},
      annotations: {},
      env: { MODE: 'prod' },
      ports: [
        { containerPort: 53, protocol: 'UDP' },
        { containerPort: 9090, protocol: 'TCP' },
      ],
    });
  });

  it('gives every spec its own default template: changing one spec leaves the next alone', () => {
    const a = inlineApp(AppSpecSchema.parse(minimal));
    a.template.labels.team = 'pay';
    a.template.env.DEBUG = '1';
    a.template.ports[0]!.containerPort = 1;
    const b = inlineApp(AppSpecSchema.parse(minimal));
    expect(b.template).toEqual({
      sidecars: [],
      labels: {},
      annotations: {},
      env: {},
      ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
    });
  });

  it('takes sidecar containers with their defaults, and refuses a container name used twice, at its path', () => {
    const app = AppSpecSchema.parse({
      ...minimal,
      template: { sidecars: [{ name: 'envoy', image: 'reg.example/envoy:1.30', ports: [{ containerPort: 15001 }] }] },
    });
    expect(app.template!.sidecars).toEqual([
      { name: 'envoy', image: 'reg.example/envoy:1.30', env: {}, ports: [{ containerPort: 15001, protocol: 'TCP' }] },
    ]);
    const clash = AppSpecSchema.safeParse({
      ...minimal,
      template: { sidecars: [{ name: 'envoy', image: 'reg.example/envoy:1' }, { name: minimal.name, image: 'reg.example/x:1' }] },
    });
    expect(clash.success).toBe(false);
    expect(clash.error!.issues.map((i) => [i.path.join('.'), i.message])).toEqual([
      ['template.sidecars.1.name', expect.stringMatching(/is taken/)],
    ]);
  });

  it('gives every given template its own default port', () => {
    AppSpecSchema.parse({ ...minimal, template: {} }).template!.ports[0]!.containerPort = 1;
    expect(AppSpecSchema.parse({ ...minimal, template: {} }).template!.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
    ]);
  });

  it('keeps what is given', () => {
    const given = {
      ...minimal,
      namespace: 'shop',
      distribution: 'duplicated',
      placement: { selector: { region: 'cn-north' } },
      overrides: {
        beijing: {
          replicas: 2,
          env: { REGION: 'north' },
          registry: 'harbor.bj.local',
          resources: { limits: { cpu: '500m', memory: '256Mi' } },
        },
      },
    } as const;
    expect(AppSpecSchema.parse(given)).toMatchObject(given);
  });
});

describe('AppSpecSchema rejections carry the field path', () => {
  it.each<[string, unknown, (string | number)[], RegExp?]>([
    ['a missing name', { ...minimal, name: undefined }, ['name']],
    ['an uppercase name', { ...minimal, name: 'Web' }, ['name'], /RFC 1123/],
    ['a bad namespace', { ...minimal, namespace: 'shop_1' }, ['namespace'], /RFC 1123/],
    [
      'an uppercase image',
      { ...minimal, image: 'Demo/Web:v1' },
      ['image'],
      /"Demo\/Web:v1": repository "Demo\/Web" must be lowercase/,
    ],
    ['a bad digest', { ...minimal, image: 'web@sha256:abc' }, ['image'], /digest must be sha256/],
    ['an empty image', { ...minimal, image: '' }, ['image'], /is not an image reference/],
    ['negative replicas', { ...minimal, replicas: -1 }, ['replicas']],
    ['fractional replicas', { ...minimal, replicas: 1.5 }, ['replicas']],
    ['too many replicas', { ...minimal, replicas: 10_001 }, ['replicas']],
    ['an unknown distribution', { ...minimal, distribution: 'spread' }, ['distribution']],
    ['no placement', { ...minimal, placement: undefined }, ['placement']],
    ['an empty cluster list', { ...minimal, placement: { clusters: [] } }, ['placement', 'clusters']],
    [
      'both clusters and selector',
      { ...minimal, placement: { clusters: ['a'], selector: { region: 'x' } } },
      ['placement'],
    ],
    [
      'an empty selector',
      { ...minimal, placement: { selector: {} } },
      ['placement', 'selector'],
      /at least one label/,
    ],
    [
      'a cluster name that is not a label',
      { ...minimal, placement: { clusters: ['ok', 'Not OK'] } },
      ['placement', 'clusters', 1],
      /RFC 1123/,
    ],
    [
      'an override for a bad cluster name',
      { ...minimal, overrides: { Beijing: {} } },
      ['overrides', 'Beijing'],
    ],
    [
      'negative override replicas',
      { ...minimal, overrides: { beijing: { replicas: -1 } } },
      ['overrides', 'beijing', 'replicas'],
    ],
    [
      'an unknown override field',
      { ...minimal, overrides: { beijing: { image: 'x' } } },
      ['overrides', 'beijing'],
    ],
    [
      'an empty override registry',
      { ...minimal, overrides: { beijing: { registry: '' } } },
      ['overrides', 'beijing', 'registry'],
    ],
    [
      'a bad override env name',
      { ...minimal, overrides: { beijing: { env: { '1X': 'y' } } } },
      ['overrides', 'beijing', 'env', '1X'],
    ],
    [
      'a bad quantity',
      { ...minimal, overrides: { beijing: { resources: { limits: { cpu: 'lots' } } } } },
      ['overrides', 'beijing', 'resources', 'limits', 'cpu'],
      /Kubernetes quantity/,
    ],
    [
      'a bad env name',
      { ...minimal, template: { env: { 'MY-VAR': 'x' } } },
      ['template', 'env', 'MY-VAR'],
      /environment variable name/,
    ],
    [
      'port 0',
      { ...minimal, template: { ports: [{ containerPort: 0 }] } },
      ['template', 'ports', 0, 'containerPort'],
    ],
    [
      'port 65536',
      { ...minimal, template: { ports: [{ containerPort: 65536 }] } },
      ['template', 'ports', 0, 'containerPort'],
    ],
    [
      'a port name past 15',
      { ...minimal, template: { ports: [{ name: 'a'.repeat(16), containerPort: 80 }] } },
      ['template', 'ports', 0, 'name'],
    ],
    [
      'SCTP',
      { ...minimal, template: { ports: [{ containerPort: 80, protocol: 'SCTP' }] } },
      ['template', 'ports', 0, 'protocol'],
    ],
    ['an unknown top-level field', { ...minimal, replica: 3 }, []],
  ])('%s', (_what, input, path, message) => {
    const found = issues(input).find((i) => JSON.stringify(i.path) === JSON.stringify(path));
    expect(found, JSON.stringify(issues(input))).toBeDefined();
    // A record key's own message sits in the nested issues of an invalid_key issue.
    const nested = found && 'issues' in found ? (found.issues as { message: string }[]) : [];
    if (message) expect([found?.message, ...nested.map((n) => n.message)].join('\n')).toMatch(message);
  });

  it('names the unknown key', () => {
    expect(issues({ ...minimal, replica: 3 })).toEqual([
      expect.objectContaining({ code: 'unrecognized_keys', keys: ['replica'] }),
    ]);
  });
});

describe('placement', () => {
  it('is either a list of clusters or a selector', () => {
    expect(AppSpecSchema.parse({ ...minimal, placement: { clusters: ['a', 'b'] } }).placement).toEqual({
      clusters: ['a', 'b'],
    });
    expect(
      AppSpecSchema.parse({ ...minimal, placement: { selector: { region: 'cn-north', provider: 'idc' } } })
        .placement,
    ).toEqual({
      selector: { region: 'cn-north', provider: 'idc' },
    });
  });
});

describe('DeployRequestSchema', () => {
  const request = { type: 'deploy', app: minimal };

  it('fills onFailure, the timeouts, the graces and adopt, leaves waves out', () => {
    const r = DeployRequestSchema.parse(request);
    expect(r).toEqual({
      type: 'deploy',
      app: AppSpecSchema.parse(minimal),
      onFailure: 'pause',
      unreachableTimeout: '2m',
      rolloutTimeout: '10m',
      grace: { unschedulable: '5m', imagePull: '2m', unready: '3m' },
      adopt: false,
    });
    expect(r).not.toHaveProperty('waves');
  });

  it('keeps given waves, onFailure and timeouts', () => {
    const given = {
      ...request,
      waves: [['beijing'], ['shenzhen', 'cloud-hk']],
      onFailure: 'rollback',
      unreachableTimeout: '30s',
      rolloutTimeout: '1h30m',
    };
    expect(DeployRequestSchema.parse(given)).toMatchObject({ ...given, app: { name: 'web' } });
  });

  it.each<[string, unknown, (string | number)[]]>([
    ['another type', { ...request, type: 'rollout' }, ['type']],
    ['a canary without its steps', { ...request, type: 'canary' }, ['canary']],
    ['canary steps on a deploy', { ...request, canary: { steps: [{ setWeight: 10 }] } }, ['canary']],
    ['a canary step with two keys', { ...request, type: 'canary', canary: { steps: [{ setWeight: 10, pause: {} }] } }, ['canary', 'steps', 0]],
    ['a gate with an unknown role', { ...request, type: 'canary', canary: { steps: [{ approval: { name: 'go', roles: ['ci'] } }] } }, ['canary', 'steps', 0, 'approval', 'roles', 0]],
    ['setCanaryScale without a traffic router', { ...request, type: 'canary', canary: { steps: [{ setCanaryScale: { replicas: 2 } }] } }, ['canary', 'steps', 0, 'setCanaryScale']],
    ['two gates of one name', { ...request, type: 'canary', canary: { steps: [{ approval: { name: 'go' } }, { approval: { name: 'go' } }] } }, ['canary', 'steps', 1, 'approval', 'name']],
    ['no app', { type: 'deploy' }, ['app']],
    ['an app error, under app', { ...request, app: { ...minimal, image: 'Web' } }, ['app', 'image']],
    ['no waves at all', { ...request, waves: [] }, ['waves']],
    ['an empty wave', { ...request, waves: [['a'], []] }, ['waves', 1]],
    ['a bad cluster in a wave', { ...request, waves: [['a', 'B']] }, ['waves', 0, 1]],
    ['an unknown onFailure', { ...request, onFailure: 'ignore' }, ['onFailure']],
    ['a bad duration', { ...request, rolloutTimeout: '5 minutes' }, ['rolloutTimeout']],
    ['an unknown field', { ...request, dryRun: true }, []],
  ])('rejects %s at its path', (_what, input, path) => {
    const r = DeployRequestSchema.safeParse(input);
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.path)).toContainEqual(path);
  });

  it('is the deploy arm of the delivery request union', () => {
    expect(DeliveryRequestSchema.parse(request)).toEqual(DeployRequestSchema.parse(request));
    expect(DeliveryRequestSchema.safeParse({ ...request, type: 'teleport' }).success).toBe(false);
  });
});
