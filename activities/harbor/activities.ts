/**
 * The Harbor activities (types.ts has the contract). For a registry of type
 * harbor, replication may run as Harbor's own replication: ensure the policy,
 * start an execution, wait for it. The worker builds them with the registry
 * inventory and its credentials (the Harbor's robot account, and the target's
 * credentials that Harbor's registry endpoint needs).
 */
import { Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import { z } from 'zod';
import { RegistryFailure, type Registry } from '../../model/registry.ts';
import { credentialFor, type RegistryCredentials } from '../registry/credentials.ts';
import { registryFailure } from '../registry/errors.ts';
import { HarborClient } from './client.ts';
import {
  ensureEndpoint,
  ensurePolicy,
  failedTasks,
  FINAL,
  getExecution,
  replicationFailure,
  resultOf,
  startExecution,
} from './replication.ts';
import type { HarborActivities } from './types.ts';

export type { HarborActivities } from './types.ts';

export interface HarborActivityDeps {
  registries: readonly Registry[];
  credentials: RegistryCredentials;
  logger: Logger;
  /** How often to poll an execution (default 2 s). */
  pollEveryMs?: number;
}

const name = z.string().min(1);
const repository = z
  .string()
  .regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/, 'must be a repository path');
const EnsureSchema = z
  .object({
    harbor: name,
    target: name,
    source: name.optional(),
    repository,
    tag: z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/)
      .optional(),
    destNamespace: z
      .string()
      .regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/)
      .optional(),
  })
  .strict();
const StartSchema = z.object({ harbor: name, policyId: z.number().int().positive() }).strict();
const WaitSchema = z
  .object({
    harbor: name,
    executionId: z.number().int().positive(),
    timeoutMs: z.number().int().positive().optional(),
    requireArtifacts: z.boolean().optional(),
  })
  .strict();

function parse<T>(schema: z.ZodType<T>, input: unknown, activity: string): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ');
  throw registryFailure(RegistryFailure.InvalidReference, `${activity}: invalid input: ${issues}`, {
    registry: '',
    operation: activity,
  });
}

export function createHarborActivities(deps: HarborActivityDeps): HarborActivities {
  const log = deps.logger.child({ component: 'harbor' });
  const pollMs = deps.pollEveryMs ?? 2_000;
  const clients = new Map<string, HarborClient>();

  const registry = (n: string, activity: string): Registry => {
    const r = deps.registries.find((x) => x.name === n);
    if (!r)
      throw registryFailure(
        RegistryFailure.InvalidReference,
        `${activity}: no registry "${n}" in the inventory (have ${deps.registries.map((x) => x.name).join(', ')})`,
        { registry: n, operation: activity },
      );
    return r;
  };
  const harbor = (n: string, activity: string): HarborClient => {
    const r = registry(n, activity);
    if (r.type !== 'harbor')
      throw registryFailure(
        RegistryFailure.InvalidReference,
        `${activity}: registry "${n}" is of type ${r.type}, not harbor`,
        {
          registry: r.host,
          operation: activity,
        },
      );
    let c = clients.get(n);
    if (!c) {
      c = new HarborClient(r, credentialFor(deps.credentials, r.host, r.credentials));
      clients.set(n, c);
    }
    return c;
  };

  return {
    async ensureHarborReplication(input) {
      const a = parse(EnsureSchema, input, 'ensureHarborReplication');
      const h = harbor(a.harbor, 'ensureHarborReplication');
      // The Harbor as the target pulls from the source; otherwise it pushes to the target.
      const pull = a.target === a.harbor;
      if (pull && !a.source)
        throw registryFailure(
          RegistryFailure.InvalidReference,
          `ensureHarborReplication: Harbor ${a.harbor} is the target, so it pulls: name the source registry`,
          { registry: a.harbor, operation: 'ensureHarborReplication' },
        );
      if (!pull && a.source && a.source !== a.harbor)
        throw registryFailure(
          RegistryFailure.InvalidReference,
          `ensureHarborReplication: Harbor ${a.harbor} pushes its own images; source "${a.source}" is another registry`,
          { registry: a.harbor, operation: 'ensureHarborReplication' },
        );
      const remote = registry(pull ? a.source! : a.target, 'ensureHarborReplication');
      const registryId = await ensureEndpoint(
        h,
        remote,
        credentialFor(deps.credentials, remote.host, remote.credentials),
      );
      const p = await ensurePolicy(h, remote, registryId, a.repository, a.tag, a.destNamespace, pull ? 'pull' : 'push');
      log.info(
        { harbor: a.harbor, target: a.target, source: a.source, repository: a.repository, tag: a.tag, ...p, registryId },
        'replication policy ensured',
      );
      return { ...p, registryId };
    },

    async startHarborReplication(input) {
      const a = parse(StartSchema, input, 'startHarborReplication');
      const h = harbor(a.harbor, 'startHarborReplication');
      const executionId = await startExecution(h, a.policyId);
      log.info({ harbor: a.harbor, policyId: a.policyId, executionId }, 'replication started');
      return { executionId };
    },

    async waitForHarborReplication(input) {
      const a = parse(WaitSchema, input, 'waitForHarborReplication');
      const h = harbor(a.harbor, 'waitForHarborReplication');
      const ctx = Context.current();
      const t0 = Date.now();
      const deadline = t0 + (a.timeoutMs ?? 30 * 60_000);
      for (;;) {
        const e = await getExecution(h, a.executionId);
        ctx.heartbeat({
          status: e.status,
          total: e.total,
          succeed: e.succeed,
          failed: e.failed,
          in_progress: e.in_progress,
        });
        if (e.status && FINAL.has(e.status)) {
          if (e.status === 'Success') {
            if ((e.total ?? 0) === 0 && a.requireArtifacts !== false)
              throw replicationFailure(
                h,
                e,
                [],
                `Harbor ${h.name}: replication execution ${e.id} (policy ${e.policy_id}) succeeded without copying anything: the policy matches no image in the Harbor (is the repository or tag missing?)`,
              );
            log.info({ harbor: a.harbor, executionId: e.id, total: e.total }, 'replication succeeded');
            return resultOf(e, t0);
          }
          const tasks = await failedTasks(h, a.executionId);
          throw replicationFailure(h, e, tasks);
        }
        if (Date.now() > deadline) {
          const tasks = await failedTasks(h, a.executionId).catch(() => []);
          throw replicationFailure(
            h,
            e,
            tasks,
            `Harbor ${h.name}: replication execution ${e.id} still ${e.status} after ${Math.round((Date.now() - t0) / 1000)} s`,
          );
        }
        await ctx.sleep(pollMs);
      }
    },
  };
}
