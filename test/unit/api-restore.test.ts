/** What a rollback of a finished delivery restores, and when it refuses (pure: api/restore.ts). */
import { describe, expect, it } from 'vitest';
import {
  AppSpecSchema,
  type AppSpecInput,
  type ClusterInfo,
  type ClusterPhase,
  type DeliveryStatus,
  type Phase,
} from '../../model/index.ts';
import type { AppState } from '../../workflows/messages.ts';
import { HttpError } from '../../api/errors.ts';
import { restoreRequest } from '../../api/restore.ts';

const fleet: ClusterInfo[] = [
  {
    name: 'beijing',
    region: 'cn-north',
    provider: 'private',
    labels: { region: 'cn-north' },
    capacity: 2,
    taskQueue: 'q1',
  },
  {
    name: 'shenzhen',
    region: 'cn-south',
    provider: 'private',
    labels: { region: 'cn-south' },
    capacity: 1,
    taskQueue: 'q2',
  },
  {
    name: 'cloud-hk',
    region: 'ap-east',
    provider: 'public',
    labels: { region: 'ap-east' },
    capacity: 1,
    taskQueue: 'q3',
  },
];
const all = ['beijing', 'shenzhen', 'cloud-hk'];
const spec = (image: string, extra: Partial<AppSpecInput> = {}) =>
  AppSpecSchema.parse({
    name: 'web',
    namespace: 'shop',
    image,
    replicas: 8,
    placement: { clusters: all },
    ...extra,
  });

function finished(
  id: string,
  phase: Phase,
  clusters: Record<string, ClusterPhase>,
  waves: string[][] = [['beijing'], ['shenzhen', 'cloud-hk']],
): DeliveryStatus {
  return {
    id,
    type: 'deploy',
    app: { name: 'web', namespace: 'shop' },
    image: 'reg/web:v2',
    onFailure: 'pause',
    phase,
    conditions: [],
    currentWave: waves.length - 1,
    waves,
    steps: ['apply', 'wait'],
    currentStep: 2,
    clusters: Object.fromEntries(
      Object.entries(clusters).map(([n, p]) => [
        n,
        {
          cluster: n,
          wave: waves.findIndex((w) => w.includes(n)),
          phase: p,
          image: 'reg/web:v2',
          desiredReplicas: 1,
          readyReplicas: 1,
          message: '',
          attempts: 1,
          step: 2,
        },
      ]),
    ),
    audit: [],
    startedAt: '2026-01-01T00:00:00Z',
    finishedAt: '2026-01-01T00:05:00Z',
    message: '',
  };
}

function appState(
  deliveries: [string, Phase][],
  specs: { spec?: string; previousSpec?: string } = { spec: 'reg/web:v2', previousSpec: 'reg/web:v1' },
  extra: Partial<AppState> = {},
): AppState {
  return {
    name: 'web',
    namespace: 'shop',
    ...(specs.spec ? { spec: spec(specs.spec) } : {}),
    ...(specs.previousSpec ? { previousSpec: spec(specs.previousSpec) } : {}),
    clusters: {},
    deliveries: deliveries.map(([id, phase]) => ({ id, type: 'deploy', image: 'x', phase, startedAt: '' })),
    ...extra,
  };
}

const healthyAll = { beijing: 'Healthy', shenzhen: 'Healthy', 'cloud-hk': 'Healthy' } as const;

function refusal(f: () => unknown): { status: number; code: string; message: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof HttpError) return { status: e.status, code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('restoreRequest', () => {
  it('restores the previous spec after a Healthy delivery, on its clusters, in its waves, with the replicas that spec had', () => {
    const req = restoreRequest(
      finished('d2', 'Healthy', healthyAll),
      appState([
        ['d2', 'Healthy'],
        ['d1', 'Healthy'],
      ]),
      fleet,
    );
    expect(req.app.image).toBe('reg/web:v1');
    expect(req.app.placement).toEqual({ clusters: all });
    expect(req.waves).toEqual([['beijing'], ['shenzhen', 'cloud-hk']]);
    expect(Object.fromEntries(Object.entries(req.app.overrides).map(([n, o]) => [n, o.replicas]))).toEqual({
      beijing: 4,
      shenzhen: 2,
      'cloud-hk': 2,
    });
    expect(req.app.replicas).toBe(8);
    expect(req.onFailure).toBe('pause');
  });

  it('after a Degraded or Aborted delivery restores the spec it never replaced, only where it changed something', () => {
    for (const phase of ['Degraded', 'Aborted'] as const) {
      const req = restoreRequest(
        finished('d2', phase, { beijing: 'Healthy', shenzhen: 'Failed', 'cloud-hk': 'Pending' }),
        appState(
          [
            ['d2', phase],
            ['d1', 'Healthy'],
          ],
          { spec: 'reg/web:v1' },
        ),
        fleet,
      );
      expect(req.app.image, phase).toBe('reg/web:v1');
      expect(req.app.placement).toEqual({ clusters: ['beijing', 'shenzhen'] });
      expect(req.waves).toEqual([['beijing'], ['shenzhen']]);
      // Replicas stay what v1 gives each cluster across the whole fleet, not a re-division over two.
      expect(req.app.overrides.beijing?.replicas).toBe(4);
      expect(req.app.overrides.shenzhen?.replicas).toBe(2);
      expect(req.app.replicas).toBe(6);
    }
  });

  it('keeps per-cluster overrides of the restored spec, and duplicated distribution as it was', () => {
    const previous = spec('reg/web:v1', {
      distribution: 'duplicated',
      replicas: 3,
      overrides: { shenzhen: { env: { MIRROR: 'sz' }, registry: 'harbor.sz:5000' } },
    });
    const app = {
      ...appState([
        ['d2', 'Healthy'],
        ['d1', 'Healthy'],
      ]),
      previousSpec: previous,
    };
    const req = restoreRequest(finished('d2', 'Healthy', healthyAll), app, fleet);
    expect(req.app.distribution).toBe('duplicated');
    expect(req.app.replicas).toBe(3);
    expect(req.app.overrides.shenzhen).toEqual({
      env: { MIRROR: 'sz' },
      registry: 'harbor.sz:5000',
      replicas: 3,
    });
  });

  const refusals: [string, () => unknown, string, RegExp][] = [
    [
      'an already rolled-back delivery',
      () => restoreRequest(finished('d2', 'RolledBack', healthyAll), appState([['d2', 'RolledBack']]), fleet),
      'NothingToRollBack',
      /already rolled back/,
    ],
    [
      'while a delivery runs',
      () =>
        restoreRequest(
          finished('d2', 'Healthy', healthyAll),
          appState(
            [
              ['d3', 'Pending'],
              ['d2', 'Healthy'],
            ],
            undefined,
            { activeDelivery: 'd3' },
          ),
          fleet,
        ),
      'DeliveryInProgress',
      /d3/,
    ],
    [
      'a delivery superseded by a later one',
      () =>
        restoreRequest(
          finished('d1', 'Healthy', healthyAll),
          appState([
            ['d2', 'Healthy'],
            ['d1', 'Healthy'],
          ]),
          fleet,
        ),
      'Superseded',
      /d2/,
    ],
    [
      'the first healthy delivery',
      () =>
        restoreRequest(
          finished('d1', 'Healthy', healthyAll),
          appState([['d1', 'Healthy']], { spec: 'reg/web:v1' }),
          fleet,
        ),
      'NothingToRollBack',
      /no earlier healthy state/,
    ],
    [
      'a delivery no longer in the history',
      () => restoreRequest(finished('d0', 'Healthy', healthyAll), appState([['d1', 'Healthy']]), fleet),
      'RollbackUnavailable',
      /no longer/,
    ],
    [
      'a delivery that changed nothing',
      () =>
        restoreRequest(
          finished('d2', 'Aborted', { beijing: 'Pending', shenzhen: 'Skipped', 'cloud-hk': 'Pending' }),
          appState([['d2', 'Aborted']]),
          fleet,
        ),
      'NothingToRollBack',
      /changed no cluster/,
    ],
    [
      'a cluster the earlier spec did not run on',
      () =>
        restoreRequest(
          finished('d2', 'Healthy', healthyAll),
          {
            ...appState([
              ['d2', 'Healthy'],
              ['d1', 'Healthy'],
            ]),
            previousSpec: spec('reg/web:v1', { placement: { clusters: ['beijing', 'shenzhen'] } }),
          },
          fleet,
        ),
      'RollbackUnavailable',
      /did not run on cloud-hk/,
    ],
    [
      'an earlier spec the fleet can no longer carry',
      () =>
        restoreRequest(
          finished('d2', 'Healthy', healthyAll),
          appState([
            ['d2', 'Healthy'],
            ['d1', 'Healthy'],
          ]),
          fleet.slice(0, 2),
        ),
      'RollbackUnavailable',
      /no longer fits the fleet/,
    ],
  ];
  it.each(refusals)('refuses %s with a 409', (_name, f, code, message) => {
    const r = refusal(f);
    expect(r.status).toBe(409);
    expect(r.code).toBe(code);
    expect(r.message).toMatch(message);
  });

  it('allows it when every later delivery was itself rolled back', () => {
    const req = restoreRequest(
      finished('d2', 'Healthy', healthyAll),
      appState([
        ['d3', 'RolledBack'],
        ['d2', 'Healthy'],
        ['d1', 'Healthy'],
      ]),
      fleet,
    );
    expect(req.app.image).toBe('reg/web:v1');
  });
});
