/**
 * The replicate wave step: before a wave's clusters are touched, every image
 * they pull from their regional registry is copied there by digest (every
 * target registry in parallel, every image of a target in parallel) and then
 * checked present. A registry that is down is waited for: the copy is retried
 * with backoff (heartbeats carry a large blob's upload, so the next attempt
 * resumes it) until the request's `replicationTimeout`. A failure names the
 * registry and the image; the interpreter then fails the wave's clusters at
 * this step, untouched, so onFailure and retry work as for any step.
 *
 * Targets whose source or target registry is a Harbor go through Harbor's own
 * replication (a policy, an execution followed to its end: a source Harbor
 * pushes, a target Harbor pulls), then the same check; a failed execution
 * names each failed task with its log.
 */
import { ActivityCancellationType, ApplicationFailure, isCancellation, proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { HarborActivities } from '../../activities/harbor/types.ts';
import type { RegistryActivities } from '../../activities/registry/types.ts';
import { DEFAULT_REPLICATION_TIMEOUT, durationMs, parseImageRef, type ImageCopy, type PlanStep, type ReplicationTarget } from '../../model/index.ts';
import { RegistryFailure } from '../../model/registry.ts';
import type { RunContext } from '../context.ts';

export type { RegistryActivities, ResolvedImage } from '../../activities/registry/types.ts';

const noRetry = [
  RegistryFailure.ImageNotFound,
  RegistryFailure.RegistryAuthFailed,
  RegistryFailure.DigestMismatch,
  RegistryFailure.RegistryRejected,
  RegistryFailure.InvalidReference,
  RegistryFailure.ReplicationFailed,
];

/**
 * Copying: retried with backoff while the registry is unreachable, for at most `timeoutMs` in all; a copy
 * heartbeats every few seconds, so a worker that dies mid-copy is noticed within 30 s and the copy resumes.
 */
export function replicationCopy(timeoutMs: number): ActivityOptions {
  return {
    startToCloseTimeout: Math.min(timeoutMs, 30 * 60_000),
    scheduleToCloseTimeout: timeoutMs,
    heartbeatTimeout: '30s',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', nonRetryableErrorTypes: noRetry },
  };
}

/** Short calls (check, Harbor's policy and start): the same bound, no heartbeat. */
export function replicationCall(timeoutMs: number): ActivityOptions {
  return {
    startToCloseTimeout: '60s',
    scheduleToCloseTimeout: timeoutMs,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', nonRetryableErrorTypes: noRetry },
  };
}

interface FailureLike {
  name?: string;
  type?: string;
  message?: string;
  timeoutType?: unknown;
  cause?: unknown;
}

/** The deepest typed reason in an activity failure, and whether the bound ran out. */
export function reasonOf(err: unknown): { type: string; message: string; timedOut: boolean } {
  const chain: FailureLike[] = [];
  for (let e = err as FailureLike | undefined; e && chain.length < 10; e = e.cause as FailureLike | undefined) chain.push(e);
  const app = chain.find((e) => e.name === 'ApplicationFailure' && typeof e.type === 'string' && e.type !== '');
  const timedOut = chain.some((e) => e.name === 'TimeoutFailure');
  return { type: app?.type ?? (timedOut ? RegistryFailure.RegistryUnreachable : 'Unknown'), message: app?.message ?? chain[chain.length - 1]?.message ?? String(err), timedOut };
}

/** `host/repo` of a pinned reference: copyImage's target (the digest is the source's). */
const repoOf = (pinned: string): string => {
  const r = parseImageRef(pinned);
  return `${r.registry}/${r.repository}`;
};

export interface Replicated {
  copy: ImageCopy;
  pinned: string;
  blobs?: { total: number; copied: number; skipped: number; mounted: number };
}

export interface ReplicationProxies {
  copy: RegistryActivities;
  call: RegistryActivities;
  harbor: HarborActivities;
  harborWait: HarborActivities;
}

export function replicationProxies(timeoutMs: number): ReplicationProxies {
  return {
    copy: proxyActivities<RegistryActivities>(replicationCopy(timeoutMs)),
    call: proxyActivities<RegistryActivities>(replicationCall(timeoutMs)),
    harbor: proxyActivities<HarborActivities>(replicationCall(timeoutMs)),
    harborWait: proxyActivities<HarborActivities>(replicationCopy(timeoutMs)),
  };
}

/** One image into one registry, then checked there. Failures name both. */
export async function replicateOne(p: ReplicationProxies, t: ReplicationTarget, c: ImageCopy, timeoutMs: number, timeoutText: string): Promise<Replicated> {
  const digest = parseImageRef(c.target).digest!;
  try {
    let blobs: Replicated['blobs'];
    if (t.via === 'harbor') {
      const src = parseImageRef(c.source);
      // The source Harbor pushes to the target, or the target Harbor pulls from the source (pullFrom).
      const policy = await p.harbor.ensureHarborReplication({ harbor: t.harbor!, target: t.registry, ...(t.pullFrom ? { source: t.pullFrom } : {}), repository: src.repository, ...(c.tag ? { tag: c.tag } : {}) });
      const { executionId } = await p.harbor.startHarborReplication({ harbor: t.harbor!, policyId: policy.policyId });
      await p.harborWait.waitForHarborReplication({ harbor: t.harbor!, executionId, timeoutMs });
    } else {
      const r = await p.copy.copyImage({ source: c.source, target: repoOf(c.target) });
      blobs = r.blobs;
    }
    const checked = await p.call.checkImage({ ref: repoOf(c.target), digest });
    return { copy: c, pinned: checked.pinned, ...(blobs ? { blobs } : {}) };
  } catch (err) {
    if (isCancellation(err)) throw err;
    const r = reasonOf(err);
    const what = `replicating ${c.source} to registry ${t.registry} (${t.host})`;
    throw ApplicationFailure.create({
      type: r.type,
      nonRetryable: true,
      // RegistryUnreachable is retried until the bound: reaching here with it means the bound ran out.
      message: r.timedOut || r.type === RegistryFailure.RegistryUnreachable ? `${what} did not finish within ${timeoutText}: ${r.message}` : `${what}: ${r.message}`,
    });
  }
}

/** Runs every copy of every target in parallel; resolves with all of them, or throws once all have settled. */
export async function replicateAll(p: ReplicationProxies, targets: readonly ReplicationTarget[], timeoutMs: number, timeoutText: string): Promise<Replicated[]> {
  const runs = targets.flatMap((t) => t.copies.map((c) => replicateOne(p, t, c, timeoutMs, timeoutText)));
  const settled = await Promise.allSettled(runs);
  const cancelled = settled.find((s) => s.status === 'rejected' && isCancellation(s.reason));
  if (cancelled) throw (cancelled as PromiseRejectedResult).reason;
  const failed = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed.length) {
    const first = reasonOf(failed[0]!.reason);
    throw ApplicationFailure.create({ type: first.type, nonRetryable: true, message: failed.map((f) => reasonOf(f.reason).message).join('; ') });
  }
  return settled.map((s) => (s as PromiseFulfilledResult<Replicated>).value);
}

const describeBlobs = (done: Replicated[]): string => {
  const b = done.reduce((a, d) => ({ copied: a.copied + (d.blobs?.copied ?? 0), skipped: a.skipped + (d.blobs?.skipped ?? 0), mounted: a.mounted + (d.blobs?.mounted ?? 0) }), { copied: 0, skipped: 0, mounted: 0 });
  return `blobs copied ${b.copied}, already there ${b.skipped}, mounted ${b.mounted}`;
};

export async function replicateStep(x: RunContext, _wave: number, clusters: string[], step: PlanStep): Promise<void> {
  if (step.kind !== 'replicate') return;
  const targets = step.targets;
  if (targets.length === 0) {
    for (const n of clusters) x.state.setCluster(n, 'Pending', 'nothing to replicate: every image is pulled from its own registry');
    return;
  }
  const timeoutText = x.request.replicationTimeout ?? DEFAULT_REPLICATION_TIMEOUT;
  const timeoutMs = durationMs(timeoutText);
  const names = targets.map((t) => t.registry).join(', ');
  const count = new Set(targets.flatMap((t) => t.copies.map((c) => c.source))).size;
  for (const n of clusters) x.state.setCluster(n, 'Pending', `replicating ${count} image(s) to ${names} (waits for a registry that is down, up to ${timeoutText})`);
  const done = await replicateAll(replicationProxies(timeoutMs), targets, timeoutMs, timeoutText);
  for (const n of clusters) x.state.setCluster(n, 'Pending', `replicated to ${names}: ${done.map((d) => d.pinned).join(', ')} (${describeBlobs(done)})`);
}
