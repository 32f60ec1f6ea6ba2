/**
 * The registry activities (types.ts has the contract): resolveImage,
 * copyImage, checkImage. The worker builds them once with its registry
 * inventory and credentials and registers them on the queue that runs
 * replication (the hub's, or a region's agent next to its registry).
 *
 * copyImage heartbeats its progress (CopyProgress) after every chunk and blob
 * and every few seconds between; the heartbeat holds the uploads under way, so
 * an attempt that failed with RegistryUnreachable (say the target restarted in
 * the middle of a large blob) is resumed by the next attempt instead of sending
 * the blob again. Cancelling the activity aborts its requests.
 *
 * Proxy profile for workflows: a start-to-close timeout that fits the largest
 * image, heartbeatTimeout ~30 s, retry on RegistryUnreachable only (the other
 * types are non-retryable already).
 */
import { Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import { z } from 'zod';
import { RegistryFailure, type Registry } from '../../model/registry.ts';
import { Copier, defaultCopierSettings, type CopierSettings } from './copier.ts';
import type { RegistryCredentials } from './credentials.ts';
import { registryFailure } from './errors.ts';
import { defaultHttpSettings, type HttpSettings } from './http.ts';
import { RegistryPool } from './pool.ts';
import type { CopyProgress, RegistryActivities } from './types.ts';

export type { RegistryActivities } from './types.ts';

export interface RegistryActivityDeps {
  /** The registry inventory (model/registry.ts): tls mode and credentials key per host. */
  registries: readonly Registry[];
  /** The worker's credentials file, parsed (credentials.ts loadCredentials). */
  credentials: RegistryCredentials;
  logger: Logger;
  copier?: Partial<CopierSettings>;
  http?: Partial<HttpSettings>;
  /** A pool to share (its connections outlive the activities); one of its own otherwise. */
  pool?: RegistryPool;
  /** Heartbeat at least this often while copying (default 5 s). */
  heartbeatEveryMs?: number;
  /**
   * Sees each copy's progress after its heartbeat (metrics, tests); awaited, so it runs between two
   * chunks of a blob, never in the middle of one.
   */
  onProgress?: (p: CopyProgress, attempt: number) => void | Promise<void>;
}

const ref = z.string().min(1).max(1024);
const platform = z
  .string()
  .regex(/^[a-z0-9._-]+\/[a-z0-9._-]+(\/[a-z0-9._-]+)?$/, 'must be os/arch[/variant]');
const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'must be sha256:<64 lowercase hex>');
export const ResolveImageInputSchema = z.object({ ref }).strict();
export const CopyImageInputSchema = z
  .object({ source: ref, target: ref, platforms: z.array(platform).min(1).optional() })
  .strict();
export const CheckImageInputSchema = z.object({ ref, digest }).strict();

function parse<T>(schema: z.ZodType<T>, input: unknown, activity: string): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ');
  throw registryFailure(RegistryFailure.InvalidReference, `${activity}: invalid input: ${issues}`, {
    registry: '',
    operation: activity,
  });
}

/** Heartbeat details of an earlier attempt, if they look like CopyProgress. */
function previousProgress(details: unknown): CopyProgress | undefined {
  const d = details as Partial<CopyProgress> | undefined;
  return d && Array.isArray(d.uploads) && typeof d.bytes === 'object' ? (d as CopyProgress) : undefined;
}

export function createRegistryActivities(deps: RegistryActivityDeps): RegistryActivities {
  const log = deps.logger.child({ component: 'registry' });
  const pool =
    deps.pool ??
    new RegistryPool(deps.registries, deps.credentials, log, { ...defaultHttpSettings, ...deps.http });
  const copier = new Copier(pool, { ...defaultCopierSettings, ...deps.copier }, log);
  const every = deps.heartbeatEveryMs ?? 5_000;

  return {
    async resolveImage(input) {
      const { ref: r } = parse(ResolveImageInputSchema, input, 'resolveImage');
      return copier.resolveDigest(r, Context.current().cancellationSignal);
    },

    async copyImage(input) {
      const args = parse(CopyImageInputSchema, input, 'copyImage');
      const ctx = Context.current();
      const prev = previousProgress(ctx.info.heartbeatDetails);
      const uploadedBefore = prev ? prev.uploadedBefore + prev.bytes.uploaded : 0;
      let last: CopyProgress | undefined = prev;
      const timer = setInterval(() => ctx.heartbeat(last), every);
      try {
        return await copier.copy(args, {
          resume: prev?.uploads ?? [],
          uploadedBefore,
          attempt: ctx.info.attempt,
          signal: ctx.cancellationSignal,
          onProgress: async (p) => {
            last = p;
            ctx.heartbeat(p);
            await deps.onProgress?.(p, ctx.info.attempt);
          },
        });
      } finally {
        clearInterval(timer);
      }
    },

    async checkImage(input) {
      const args = parse(CheckImageInputSchema, input, 'checkImage');
      return copier.check(args, Context.current().cancellationSignal);
    },
  };
}
