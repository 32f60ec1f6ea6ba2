/**
 * Holes issue #6 found in the engine core that pure code shows: durations
 * without bounds (7), and readiness that meant "the process started" (9).
 */
import { describe, expect, it } from 'vitest';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { assessRollout } from '../../activities/kubernetes/rollout.ts';
import { DeployRequestSchema, durationString } from '../../model/index.ts';

const base = {
  type: 'deploy',
  app: { name: 'web', namespace: 'shop', image: 'r.local:5000/demo/web:v1', replicas: 2, placement: { clusters: ['beijing'] } },
};

describe('hole 7: durations are bounded', () => {
  it.each([
    ['0s', /at least 1s/],
    ['0ms', /at least 1s/],
    ['999ms', /at least 1s/],
    ['25h', /at most 24h/],
    ['1441m', /at most 24h/],
  ])('%s is refused: %s', (d, message) => {
    const r = durationString.safeParse(d);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toMatch(message);
  });

  it('unreachableTimeout "0s" is refused with the field path, not read as "retry forever"', () => {
    const r = DeployRequestSchema.safeParse({ ...base, unreachableTimeout: '0s' });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['unreachableTimeout']);
  });

  it.each(['1s', '90s', '24h', '23h59m59s'])('%s is accepted', (d) => {
    expect(durationString.safeParse(d).success).toBe(true);
  });
});

describe('hole 9: readiness is real', () => {
  it('readiness, liveness and startup probes (HTTP, TCP, exec) are accepted and kept', () => {
    const r = DeployRequestSchema.safeParse({
      ...base,
      app: {
        ...base.app,
        template: {
          readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 5 },
          livenessProbe: { tcpSocket: { port: 8080 }, initialDelaySeconds: 10 },
          startupProbe: { exec: { command: ['cat', '/tmp/ready'] }, failureThreshold: 30 },
        },
      },
    });
    expect(r.success, JSON.stringify(r.error?.issues)).toBe(true);
    const t = r.data!.app.template as Record<string, unknown>;
    expect(t.readinessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 8080 } });
    expect(t.livenessProbe).toMatchObject({ tcpSocket: { port: 8080 } });
    expect(t.startupProbe).toMatchObject({ exec: { command: ['cat', '/tmp/ready'] } });
  });

  const NOW = Date.parse('2030-01-01T00:10:00Z');
  const deployment: V1Deployment = {
    metadata: { name: 'web', namespace: 'shop', generation: 2, annotations: { 'deployment.kubernetes.io/revision': '2' } },
    spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { spec: { containers: [{ name: 'web', image: 'r/web:v2' }] } } },
    status: { observedGeneration: 2, replicas: 2, updatedReplicas: 2 },
  };
  const pulling = (reason: string, sinceMs: number): V1Pod => ({
    metadata: { name: 'web-1', creationTimestamp: new Date(NOW - sinceMs) },
    status: {
      phase: 'Pending',
      containerStatuses: [
        { name: 'web', image: 'r/web:v2', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason, message: 'manifest unknown' } } },
      ],
    },
  });
  const graces = { unschedulableMs: 300_000, imagePullMs: 60_000, unreadyMs: 120_000 };
  const obs = (p: V1Pod) => ({ deployment, generation: 2, newPods: [p], now: NOW, firstSeen: new Map<string, number>(), graces });

  it('the first ErrImagePull is not fatal: a registry that catches up within the grace lets the rollout go on', () => {
    expect(assessRollout(obs(pulling('ErrImagePull', 2_000))).kind).toBe('waiting');
    expect(assessRollout(obs(pulling('ImagePullBackOff', 10_000))).kind).toBe('waiting');
  });

  it('image-pull errors past the delivery’s grace fail the rollout, naming the reason', () => {
    const v = assessRollout(obs(pulling('ImagePullBackOff', 61_000)));
    expect(v.kind).toBe('failed');
    if (v.kind === 'failed') expect(v.pods[0]!.problem).toMatch(/ImagePullBackOff/);
  });
});
