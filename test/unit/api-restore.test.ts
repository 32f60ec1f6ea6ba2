/** What a rollback of a finished delivery restores, and when it refuses (pure: api/restore.ts). */
import { describe, expect, it } from 'vitest';
import {
  type ClusterInfo,
  type ClusterPhase,
  type DeliveryStatus,
  type Phase,
} from '../../model/index.ts';
import type { AppState, AppVersion } from '../../workflows/messages.ts';
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

/** Versions newest first: v2 (delivery d2) on every cluster, v1 (d1) on every cluster unless said. */
const versions = (v1Clusters = all): AppVersion[] => [
  { number: 2, deliveryId: 'd2', at: '', source: 'inline', image: 'reg/web@sha256:2', clusters: all },
  { number: 1, deliveryId: 'd1', at: '', source: 'inline', image: 'reg/web@sha256:1', clusters: v1Clusters },
];

function finished(id: string, phase: Phase, clusters: Record<string, ClusterPhase>, version?: number, waves: string[][] = [['beijing'], ['shenzhen', 'cloud-hk']]): DeliveryStatus {
  return {
    id,
    type: 'deploy',
    app: { name: 'web', namespace: 'shop' },
    image: 'reg/web:v2',
    source: 'inline',
    ...(version !== undefined ? { version } : {}),
    onFailure: 'pause',
    phase,
    conditions: [],
    currentWave: waves.length - 1,
    waves,
    steps: ['apply', 'wait', 'prune'],
    currentStep: 3,
    clusters: Object.fromEntries(
      Object.entries(clusters).map(([n, p]) => [n, { cluster: n, wave: waves.findIndex((w) => w.includes(n)), phase: p, image: 'reg/web:v2', desiredReplicas: 1, readyReplicas: 1, message: '', attempts: 1, step: 3 }]),
    ),
    audit: [],
    startedAt: '',
    message: '',
  };
}

function appState(deliveries: [string, Phase][], vs: AppVersion[] = versions(), extra: Partial<AppState> = {}): AppState {
  return {
    name: 'web',
    namespace: 'shop',
    clusters: {},
    deliveries: deliveries.map(([id, phase]) => ({ id, type: 'deploy', image: 'x', phase, startedAt: '' })),
    versions: vs,
    nextVersion: (vs[0]?.number ?? 0) + 1,
    inventory: {},
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
  it('after a Healthy delivery restores the version before it, exactly, on its clusters, in its waves', () => {
    const req = restoreRequest(finished('d2', 'Healthy', healthyAll, 2), appState([['d2', 'Healthy'], ['d1', 'Healthy']]), fleet);
    expect(req.app.source).toEqual({ version: 1 });
    expect(req.app.placement).toEqual({ clusters: all });
    expect(req.waves).toEqual([['beijing'], ['shenzhen', 'cloud-hk']]);
    expect(req.onFailure).toBe('pause');
  });

  it('after a Degraded or Aborted delivery restores the newest version, which it never replaced, only where it changed something', () => {
    for (const phase of ['Degraded', 'Aborted'] as const) {
      const req = restoreRequest(
        finished('d3', phase, { beijing: 'Healthy', shenzhen: 'Failed', 'cloud-hk': 'Pending' }, 3),
        appState([['d3', phase], ['d2', 'Healthy']]),
        fleet,
      );
      expect(req.app.source, phase).toEqual({ version: 2 });
      expect(req.app.placement).toEqual({ clusters: ['beijing', 'shenzhen'] });
      expect(req.waves).toEqual([['beijing'], ['shenzhen']]);
    }
  });

  const refusals: [string, () => unknown, string, RegExp][] = [
    ['an already rolled-back delivery', () => restoreRequest(finished('d2', 'RolledBack', healthyAll, 2), appState([['d2', 'RolledBack']]), fleet), 'NothingToRollBack', /already rolled back/],
    [
      'while a delivery runs',
      () => restoreRequest(finished('d2', 'Healthy', healthyAll, 2), appState([['d3', 'Pending'], ['d2', 'Healthy']], versions(), { activeDelivery: 'd3' }), fleet),
      'DeliveryInProgress',
      /d3/,
    ],
    ['a delivery superseded by a later one', () => restoreRequest(finished('d1', 'Healthy', healthyAll, 1), appState([['d2', 'Healthy'], ['d1', 'Healthy']]), fleet), 'Superseded', /d2/],
    ['the first healthy delivery', () => restoreRequest(finished('d1', 'Healthy', healthyAll, 1), appState([['d1', 'Healthy']], versions().slice(1)), fleet), 'NothingToRollBack', /no earlier version/],
    ['a delivery no longer in the history', () => restoreRequest(finished('d0', 'Healthy', healthyAll, 1), appState([['d1', 'Healthy']]), fleet), 'RollbackUnavailable', /no longer/],
    [
      'a delivery that changed nothing',
      () => restoreRequest(finished('d3', 'Aborted', { beijing: 'Pending', shenzhen: 'Skipped', 'cloud-hk': 'Pending' }, 3), appState([['d3', 'Aborted']]), fleet),
      'NothingToRollBack',
      /changed no cluster/,
    ],
    [
      'a cluster the earlier version did not run on',
      () => restoreRequest(finished('d2', 'Healthy', healthyAll, 2), appState([['d2', 'Healthy'], ['d1', 'Healthy']], versions(['beijing', 'shenzhen'])), fleet),
      'RollbackUnavailable',
      /version 1 .* did not run on cloud-hk/,
    ],
    ['a cluster no longer in the fleet', () => restoreRequest(finished('d2', 'Healthy', healthyAll, 2), appState([['d2', 'Healthy'], ['d1', 'Healthy']]), fleet.slice(0, 2)), 'RollbackUnavailable', /cloud-hk is no longer in the fleet/],
  ];
  it.each(refusals)('refuses %s with a 409', (_name, f, code, message) => {
    const r = refusal(f);
    expect(r.status).toBe(409);
    expect(r.code).toBe(code);
    expect(r.message).toMatch(message);
  });

  it('allows it when every later delivery was itself rolled back', () => {
    const req = restoreRequest(finished('d2', 'Healthy', healthyAll, 2), appState([['d3', 'RolledBack'], ['d2', 'Healthy'], ['d1', 'Healthy']]), fleet);
    expect(req.app.source).toEqual({ version: 1 });
  });
});
