/**
 * The replication workflow (`POST /v1/replications`): one image, resolved to
 * its digest once, copied to each target registry in parallel (the OCI
 * copier; Harbor's own replication when the source is a Harbor), each target
 * then checked to hold that digest. The result is each target's reference
 * pinned by digest. A registry that is down is waited for (retries with
 * backoff) up to the request's timeout; one target failing does not stop the
 * others, and the failure names the registry and the image.
 *
 * `replicationPreflight` resolves the image only, so the API can answer 422
 * for an image its registry lacks before anything starts.
 */
import { isCancellation, proxyActivities, setHandler, workflowInfo, defineQuery } from '@temporalio/workflow';
import { durationMs, parseImageRef, replicationRoute, type ReplicationStatus, type ReplicationTarget, type ReplicationWorkflowInput } from '../model/index.ts';
import { replicateAll, replicationProxies, reasonOf, type RegistryActivities, type ResolvedImage } from './steps/replicate.ts';

export const REPLICATION_WORKFLOW = 'replication';
export const REPLICATION_PREFLIGHT_WORKFLOW = 'replicationPreflight';
export const replicationWorkflowId = (key: string): string => `replication-${key}`;
export const replicationStatusQuery = defineQuery<ReplicationStatus>('replicationStatus');

export async function replicationPreflight(input: { image: string }): Promise<ResolvedImage> {
  const reg = proxyActivities<RegistryActivities>({
    startToCloseTimeout: '15s',
    scheduleToCloseTimeout: '25s',
    retry: { initialInterval: '500ms', maximumInterval: '2s', nonRetryableErrorTypes: ['ImageNotFound', 'RegistryAuthFailed', 'InvalidReference'] },
  });
  return reg.resolveImage({ ref: input.image });
}

export async function replication(input: ReplicationWorkflowInput): Promise<ReplicationStatus> {
  const info = workflowInfo();
  const now = () => new Date().toISOString(); // the workflow's clock
  const s: ReplicationStatus = {
    id: info.workflowId,
    image: input.image,
    phase: 'Pending',
    targets: Object.fromEntries(input.targets.map((t) => [t.name, { registry: t.name, host: t.host, phase: 'Pending', message: 'waiting for the source to be resolved' }])),
    requestedBy: input.requestedBy,
    startedAt: new Date(info.startTime).toISOString(),
    message: 'resolving the image',
  };
  setHandler(replicationStatusQuery, () => s);
  const timeoutMs = durationMs(input.timeout);
  const p = replicationProxies(timeoutMs);

  let source: ResolvedImage;
  try {
    source = await p.call.resolveImage({ ref: input.image });
  } catch (err) {
    if (isCancellation(err)) throw err;
    const r = reasonOf(err);
    s.phase = 'Failed';
    s.message = `cannot resolve ${input.image}: ${r.message}`;
    for (const t of Object.values(s.targets)) Object.assign(t, { phase: 'Failed', message: 'not started: the source could not be resolved' });
    s.finishedAt = now();
    return s;
  }
  s.source = source.pinned;
  s.digest = source.digest;
  s.phase = 'Progressing';
  s.message = `copying ${source.pinned} to ${input.targets.map((t) => t.name).join(', ')}`;
  const { repository } = parseImageRef(source.pinned);

  await Promise.all(
    input.targets.map(async (reg) => {
      const ts = s.targets[reg.name]!;
      ts.phase = 'Progressing';
      ts.message = 'copying (a registry that is down is waited for)';
      const target: ReplicationTarget = {
        registry: reg.name,
        host: reg.host,
        // A platform subset is the copier's (a new index); otherwise a Harbor on either side replicates.
        ...(input.platforms ? { via: 'copier' as const } : replicationRoute(input.source, reg)),
        copies: [{ source: source.pinned, target: `${reg.host}/${repository}@${source.digest}`, ...(parseImageRef(input.image).tag ? { tag: parseImageRef(input.image).tag! } : {}) }],
      };
      try {
        if (input.platforms) {
          // A platform subset is a new index with its own digest: copy, then check what was pushed.
          const r = await p.copy.copyImage({ source: source.pinned, target: `${reg.host}/${repository}`, platforms: input.platforms });
          const c = await p.call.checkImage({ ref: `${reg.host}/${repository}`, digest: r.digest });
          Object.assign(ts, { phase: 'Succeeded', pinned: c.pinned, digest: c.digest, blobs: r.blobs, attempts: r.attempt, message: `holds ${r.platforms?.join(', ') ?? 'the image'}` });
          return;
        }
        const [done] = await replicateAll(p, [target], timeoutMs, input.timeout);
        const b = done!.blobs;
        Object.assign(ts, { phase: 'Succeeded', pinned: done!.pinned, digest: source.digest, ...(b ? { blobs: b } : {}), message: b ? `blobs copied ${b.copied}, already there ${b.skipped}, mounted ${b.mounted}` : 'replicated by Harbor' });
      } catch (err) {
        if (isCancellation(err)) throw err;
        const r = reasonOf(err);
        Object.assign(ts, { phase: 'Failed', message: r.message });
      }
    }),
  );
  const failed = Object.values(s.targets).filter((t) => t.phase === 'Failed');
  s.phase = failed.length ? 'Failed' : 'Succeeded';
  s.message = failed.length
    ? `failed in ${failed.map((t) => t.registry).join(', ')}: ${failed.map((t) => t.message).join('; ')}`
    : `${source.pinned} is in ${input.targets.map((t) => t.name).join(', ')}`;
  s.finishedAt = now();
  return s;
}
