/**
 * The rollout judgement, one observation at a time: when a rollout is done,
 * still going, or clearly failed (deadline, crash-looping or never-ready pods).
 */
import { describe, expect, it } from 'vitest';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import {
  assessRollout,
  podProblem,
  progressOf,
  type Observation,
} from '../../activities/kubernetes/rollout.ts';
import { replicaSetHasRevision } from '../../activities/kubernetes/deployment.ts';

const NOW = Date.parse('2030-01-01T00:10:00Z');

function deployment(
  spec: number,
  status: Partial<NonNullable<V1Deployment['status']>>,
  generation = 2,
): V1Deployment {
  return {
    metadata: {
      name: 'web',
      namespace: 'shop',
      generation,
      annotations: { 'deployment.kubernetes.io/revision': '2' },
    },
    spec: {
      replicas: spec,
      selector: { matchLabels: { app: 'web' } },
      template: { spec: { containers: [{ name: 'web', image: 'r/web:v2' }] } },
    },
    status: { observedGeneration: generation, ...status },
  };
}

function pod(
  name: string,
  opts: { ready?: boolean; waiting?: string; since?: string; restarts?: number; phase?: string },
): V1Pod {
  const since = opts.since ?? new Date(NOW - 1000).toISOString();
  return {
    metadata: { name },
    status: {
      phase: opts.phase ?? 'Running',
      startTime: new Date(since),
      conditions: [
        {
          type: 'Ready',
          status: opts.ready ? 'True' : 'False',
          lastTransitionTime: new Date(since),
          reason: 'ContainersNotReady',
        },
      ],
      containerStatuses: [
        {
          name: 'web',
          image: 'r/web:v2',
          imageID: '',
          ready: Boolean(opts.ready),
          restartCount: opts.restarts ?? 0,
          state: opts.waiting
            ? { waiting: { reason: opts.waiting, message: 'back-off 10s restarting failed container' } }
            : { running: { startedAt: new Date(since) } },
        },
      ],
    },
  };
}

const graces = (ms: number) => ({ unschedulableMs: ms, imagePullMs: ms, unreadyMs: ms });
function obs(d: V1Deployment, newPods: V1Pod[] = [], graceMs = 20_000, generation = 2): Observation {
  return { deployment: d, generation, newPods, now: NOW, firstSeen: new Map(), graces: graces(graceMs) };
}

describe('assessRollout', () => {
  const cases: { name: string; o: Observation; kind: 'done' | 'waiting' | 'failed'; message?: RegExp }[] = [
    {
      name: 'all updated, ready and available',
      o: obs(deployment(3, { replicas: 3, updatedReplicas: 3, readyReplicas: 3, availableReplicas: 3 })),
      kind: 'done',
    },
    { name: 'zero replicas', o: obs(deployment(0, {})), kind: 'done' },
    {
      name: 'controller has not seen the generation',
      o: obs(
        deployment(3, {
          observedGeneration: 1,
          replicas: 3,
          updatedReplicas: 3,
          readyReplicas: 3,
          availableReplicas: 3,
        }),
        [],
        20_000,
        2,
      ),
      kind: 'waiting',
      message: /generation 2/,
    },
    {
      name: 'old replicas still there',
      o: obs(deployment(3, { replicas: 4, updatedReplicas: 3, readyReplicas: 4, availableReplicas: 4 })),
      kind: 'waiting',
      message: /1 old replicas/,
    },
    {
      name: 'new replicas not all ready',
      o: obs(deployment(3, { replicas: 3, updatedReplicas: 3, readyReplicas: 2, availableReplicas: 2 }), [
        pod('web-a', { ready: false }),
      ]),
      kind: 'waiting',
    },
    {
      name: 'progress deadline exceeded',
      o: obs(
        deployment(3, {
          replicas: 3,
          updatedReplicas: 1,
          readyReplicas: 2,
          availableReplicas: 2,
          conditions: [
            {
              type: 'Progressing',
              status: 'False',
              reason: 'ProgressDeadlineExceeded',
              message: 'ReplicaSet "web-abc" has timed out progressing.',
            },
          ],
        }),
      ),
      kind: 'failed',
    },
    {
      name: 'a new pod in CrashLoopBackOff',
      o: obs(deployment(2, { replicas: 3, updatedReplicas: 1, readyReplicas: 2, availableReplicas: 2 }), [
        pod('web-b', { waiting: 'CrashLoopBackOff', restarts: 3 }),
      ]),
      kind: 'failed',
    },
    {
      name: 'a new pod that cannot pull its image, within the grace',
      o: obs(deployment(2, { replicas: 3, updatedReplicas: 1 }), [
        pod('web-c', { waiting: 'ImagePullBackOff', phase: 'Pending' }),
      ]),
      kind: 'waiting',
    },
    {
      name: 'a new pod that could not pull its image for longer than the grace',
      o: obs(deployment(2, { replicas: 3, updatedReplicas: 1 }), [
        { ...pod('web-c', { waiting: 'ErrImagePull', phase: 'Pending' }), metadata: { name: 'web-c', creationTimestamp: new Date(NOW - 30_000) } },
      ]),
      kind: 'failed',
    },
    {
      name: 'a new pod whose image name is invalid (never fixes itself)',
      o: obs(deployment(2, { replicas: 3, updatedReplicas: 1 }), [pod('web-c', { waiting: 'InvalidImageName', phase: 'Pending' })]),
      kind: 'failed',
    },
    {
      name: 'a new pod unready for longer than the grace',
      o: obs(deployment(2, { replicas: 3, updatedReplicas: 1 }), [
        pod('web-d', { since: new Date(NOW - 30_000).toISOString() }),
      ]),
      kind: 'failed',
    },
    {
      name: 'a new pod unready within the grace',
      o: obs(deployment(2, { replicas: 3, updatedReplicas: 1 }), [
        pod('web-e', { since: new Date(NOW - 5_000).toISOString() }),
      ]),
      kind: 'waiting',
    },
  ];

  it.each(cases)('$name -> $kind', ({ o, kind, message }) => {
    const v = assessRollout(o);
    expect(v.kind).toBe(kind);
    if (message) expect(v.progress.message).toMatch(message);
  });

  it('names the failing pods and what is wrong with them', () => {
    const v = assessRollout(
      obs(deployment(2, { replicas: 2, updatedReplicas: 1 }), [
        pod('web-x', { waiting: 'CrashLoopBackOff', restarts: 4 }),
        pod('web-y', { ready: true }),
      ]),
    );
    expect(v.kind).toBe('failed');
    if (v.kind !== 'failed') return;
    expect(v.pods).toEqual([
      { pod: 'web-x', problem: expect.stringMatching(/container web is CrashLoopBackOff \(restarts: 4\)/) },
    ]);
  });

  it('counts unready time from when the activity first saw it, when the pod clock says less', () => {
    const seen = new Map<string, number>();
    const p = pod('web-z', { since: new Date(NOW + 60_000).toISOString() }); // a pod clock ahead of ours
    expect(podProblem(p, { now: NOW, firstSeen: seen, graces: graces(10_000) })).toBeUndefined();
    expect(podProblem(p, { now: NOW + 9_000, firstSeen: seen, graces: graces(10_000) })).toBeUndefined();
    expect(podProblem(p, { now: NOW + 11_000, firstSeen: seen, graces: graces(10_000) })).toMatch(
      /Running but not Ready for 11s/,
    );
  });

  it('starts no grace clock before the step began: a retry asked for later gets a fresh grace', () => {
    const p = pod('web-r', { since: new Date(NOW - 600_000).toISOString() }); // unready for 10 minutes already
    const o = (now: number) => ({ now, firstSeen: new Map<string, number>(), graces: graces(60_000), notBefore: NOW });
    expect(podProblem(p, o(NOW + 30_000))).toBeUndefined();
    expect(podProblem(p, o(NOW + 61_000))).toMatch(/not Ready for 61s/);
    // Without notBefore (a retry of the same attempt after a crash), the pod's own clock counts.
    expect(podProblem(p, { now: NOW, firstSeen: new Map(), graces: graces(60_000) })).toMatch(/not Ready for 600s/);
  });

  it('each kind of trouble has its own grace', () => {
    const stuck: V1Pod = {
      metadata: { name: 'web-s' },
      status: {
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: 'no nodes', lastTransitionTime: new Date(NOW - 120_000) }],
      },
    };
    const o = { now: NOW, firstSeen: new Map<string, number>(), graces: { unschedulableMs: 300_000, imagePullMs: 1_000, unreadyMs: 1_000 } };
    expect(podProblem(stuck, o)).toBeUndefined(); // 2 minutes unschedulable: a cluster autoscaler may still add a node
    expect(podProblem(stuck, { ...o, graces: { ...o.graces, unschedulableMs: 60_000 } })).toMatch(/unschedulable for 120s \(grace 60s\)/);
  });

  it('fails on new pods that no node will schedule, after the grace', () => {
    const unschedulable = (since: number): V1Pod => ({
      metadata: { name: 'web-p' },
      status: {
        phase: 'Pending',
        conditions: [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message: '0/3 nodes are available: 3 node(s) were unschedulable.',
            lastTransitionTime: new Date(since),
          },
        ],
      },
    });
    const d = deployment(2, { replicas: 2, updatedReplicas: 2 });
    expect(assessRollout(obs(d, [unschedulable(NOW - 5_000)])).kind).toBe('waiting');
    const v = assessRollout(obs(d, [unschedulable(NOW - 25_000)]));
    expect(v.kind).toBe('failed');
    if (v.kind !== 'failed') return;
    expect(v.pods[0]!.problem).toMatch(/Pending, unschedulable for 25s \(grace 20s\): 0\/3 nodes are available/);
  });

  it('reports progress counts', () => {
    expect(
      progressOf(
        deployment(3, { replicas: 4, updatedReplicas: 2, readyReplicas: 3, availableReplicas: 3 }),
        2,
      ),
    ).toMatchObject({
      replicas: 3,
      updatedReplicas: 2,
      readyReplicas: 3,
      availableReplicas: 3,
      oldReplicas: 2,
      message: '2 of 3 new replicas updated',
    });
  });
});

describe('replicaSetHasRevision', () => {
  it('finds a revision renumbered by an earlier rollback through revision-history', () => {
    const rs = {
      metadata: {
        annotations: {
          'deployment.kubernetes.io/revision': '4',
          'deployment.kubernetes.io/revision-history': '1,3',
        },
      },
    };
    expect(replicaSetHasRevision(rs, 4)).toBe(true);
    expect(replicaSetHasRevision(rs, 1)).toBe(true);
    expect(replicaSetHasRevision(rs, 2)).toBe(false);
  });
});
