/**
 * Harbor replication, as Harbor's own API does it: a registry endpoint for the
 * target, a manual-trigger policy with name and tag filters (found by name,
 * created or updated, never duplicated), an execution started by
 * POST /replication/executions (201 + Location), followed to its end; on
 * failure, the failed tasks and their logs.
 */
import { RegistryFailure, RegistryTls, type Registry } from '../../model/registry.ts';
import type { Credential } from '../registry/credentials.ts';
import { registryFailure } from '../registry/errors.ts';
import {
  idFromLocation,
  type HarborClient,
  type HarborExecution,
  type HarborFilter,
  type HarborPolicy,
} from './client.ts';
import type { EnsureHarborReplicationResult, HarborFailedTask, HarborReplicationResult } from './types.ts';

/** Execution statuses that end it (Harbor: Pending, Running, Stopped, Error, Success). */
export const FINAL = new Set(['Success', 'Error', 'Stopped']);
const LOG_LINES = 20;
const MAX_FAILED_TASKS = 10;

/** Which way a policy moves images: `push` from the Harbor to the remote registry, `pull` from it into the Harbor. */
export type Direction = 'push' | 'pull';

export const endpointName = (remote: Registry) => `flotilla-${remote.name}`;
export const policyName = (remote: Registry, repository: string, direction: Direction = 'push') =>
  `flotilla-${direction === 'pull' ? 'from-' : ''}${remote.name}-${repository.replace(/[^a-z0-9]+/gi, '-')}`
    .toLowerCase()
    .slice(0, 255);

const scheme = (r: Registry) => (r.tls === RegistryTls.none ? 'http' : 'https');

/** The target's registry endpoint in Harbor (`flotilla-<name>`): its id, created or brought up to date. */
export async function ensureEndpoint(
  h: HarborClient,
  target: Registry,
  cred: Readonly<Credential> | undefined,
): Promise<number> {
  const name = endpointName(target);
  const url = `${scheme(target)}://${target.host}`;
  const type = target.type === 'harbor' ? 'harbor' : 'docker-registry';
  const insecure = target.tls !== RegistryTls.verify;
  const basic = cred && 'username' in cred ? cred : undefined;
  const { data: found } = await h.call(`list registries named ${name}`, () =>
    h.api.GET('/registries', { params: { query: { q: `name=${name}`, page_size: 100 } } }),
  );
  const existing = (found ?? []).find((r) => r.name === name);
  if (existing?.id !== undefined) {
    if (existing.url !== url || existing.insecure !== insecure || basic) {
      await h.call(`update registry ${name}`, () =>
        h.api.PUT('/registries/{id}', {
          params: { path: { id: existing.id! } },
          body: {
            url,
            insecure,
            ...(basic
              ? { credential_type: 'basic', access_key: basic.username, access_secret: basic.password }
              : {}),
          },
        }),
      );
    }
    return existing.id;
  }
  const { response } = await h.call(`create registry ${name}`, () =>
    h.api.POST('/registries', {
      body: {
        name,
        url,
        type,
        insecure,
        description: `${target.region} registry, managed by Flotilla`,
        ...(basic
          ? { credential: { type: 'basic', access_key: basic.username, access_secret: basic.password } }
          : {}),
      },
    }),
  );
  const id = idFromLocation(response.headers.get('location'));
  if (id === undefined)
    throw registryFailure(
      RegistryFailure.RegistryRejected,
      `Harbor ${h.name}: created registry ${name} but got no Location`,
      {
        registry: h.url,
        operation: 'create registry',
      },
    );
  return id;
}

function desiredPolicy(
  name: string,
  registryId: number,
  remote: Registry,
  repository: string,
  tag: string | undefined,
  destNamespace: string | undefined,
  direction: Direction,
): HarborPolicy {
  const filters: HarborFilter[] = [{ type: 'name', value: repository }];
  if (tag) filters.push({ type: 'tag', value: tag });
  return {
    name,
    // A pull policy names its source registry and no destination (Harbor itself); a push policy the reverse.
    ...(direction === 'pull'
      ? { description: `Flotilla: ${repository} from ${remote.name} (${remote.region})`, src_registry: { id: registryId } }
      : { description: `Flotilla: ${repository} to ${remote.name} (${remote.region})`, dest_registry: { id: registryId } }),
    ...(destNamespace ? { dest_namespace: destNamespace, dest_namespace_replace_count: 1 } : {}),
    trigger: { type: 'manual' },
    filters,
    replicate_deletion: false,
    override: true,
    enabled: true,
  };
}

const filterKey = (fs: HarborFilter[] | undefined) =>
  JSON.stringify((fs ?? []).map((f) => [f.type, f.value, f.decoration ?? '']).sort());

function differs(have: HarborPolicy, want: HarborPolicy): boolean {
  return (
    (have.dest_registry?.id ?? 0) !== (want.dest_registry?.id ?? 0) ||
    (have.src_registry?.id ?? 0) !== (want.src_registry?.id ?? 0) ||
    (have.dest_namespace ?? '') !== (want.dest_namespace ?? '') ||
    filterKey(have.filters) !== filterKey(want.filters) ||
    have.trigger?.type !== want.trigger?.type ||
    have.override !== want.override ||
    have.enabled !== want.enabled
  );
}

export async function ensurePolicy(
  h: HarborClient,
  remote: Registry,
  registryId: number,
  repository: string,
  tag: string | undefined,
  destNamespace: string | undefined,
  direction: Direction = 'push',
): Promise<Omit<EnsureHarborReplicationResult, 'registryId'>> {
  const name = policyName(remote, repository, direction);
  const want = desiredPolicy(name, registryId, remote, repository, tag, destNamespace, direction);
  const { data: found } = await h.call(`list replication policies named ${name}`, () =>
    h.api.GET('/replication/policies', { params: { query: { q: `name=${name}`, page_size: 100 } } }),
  );
  const existing = (found ?? []).filter((p) => p.name === name);
  if (existing.length > 1)
    throw registryFailure(
      RegistryFailure.RegistryRejected,
      `Harbor ${h.name}: ${existing.length} replication policies are named ${name} (ids ${existing.map((p) => p.id).join(', ')}); delete all but one`,
      { registry: h.url, operation: 'ensure policy' },
    );
  const have = existing[0];
  if (have?.id !== undefined) {
    if (!differs(have, want)) return { policyId: have.id, policyName: name, created: false, updated: false };
    await h.call(`update replication policy ${name}`, () =>
      h.api.PUT('/replication/policies/{id}', {
        params: { path: { id: have.id! } },
        body: { ...want, id: have.id },
      }),
    );
    return { policyId: have.id, policyName: name, created: false, updated: true };
  }
  const { response } = await h.call(`create replication policy ${name}`, () =>
    h.api.POST('/replication/policies', { body: want }),
  );
  const id = idFromLocation(response.headers.get('location'));
  if (id === undefined)
    throw registryFailure(
      RegistryFailure.RegistryRejected,
      `Harbor ${h.name}: created policy ${name} but got no Location`,
      {
        registry: h.url,
        operation: 'create policy',
      },
    );
  return { policyId: id, policyName: name, created: true, updated: false };
}

export async function startExecution(h: HarborClient, policyId: number): Promise<number> {
  const { response } = await h.call(
    `start replication of policy ${policyId}`,
    () => h.api.POST('/replication/executions', { body: { policy_id: policyId } }),
    { notFound: RegistryFailure.RegistryRejected },
  );
  const id = idFromLocation(response.headers.get('location'));
  if (id === undefined)
    throw registryFailure(
      RegistryFailure.RegistryRejected,
      `Harbor ${h.name}: started policy ${policyId} but the answer has no Location`,
      { registry: h.url, operation: 'start replication' },
    );
  return id;
}

export async function getExecution(h: HarborClient, id: number): Promise<HarborExecution> {
  const { data } = await h.call(
    `read replication execution ${id}`,
    () => h.api.GET('/replication/executions/{id}', { params: { path: { id } } }),
    { notFound: RegistryFailure.RegistryRejected },
  );
  return data!;
}

/** The tasks that did not succeed, each with the last lines of its log. */
export async function failedTasks(h: HarborClient, executionId: number): Promise<HarborFailedTask[]> {
  const { data } = await h.call(`list tasks of execution ${executionId}`, () =>
    h.api.GET('/replication/executions/{id}/tasks', {
      params: { path: { id: executionId }, query: { page_size: 100 } },
    }),
  );
  const failed = (data ?? []).filter((t) => t.status !== 'Success').slice(0, MAX_FAILED_TASKS);
  return Promise.all(
    failed.map(async (t): Promise<HarborFailedTask> => {
      let log: string[];
      try {
        const { data: text } = await h.call(`read log of task ${t.id}`, () =>
          h.api.GET('/replication/executions/{id}/tasks/{task_id}/log', {
            params: { path: { id: executionId, task_id: t.id! } },
            parseAs: 'text',
          }),
        );
        log = String(text ?? '')
          .split('\n')
          .filter((l) => l.trim())
          .slice(-LOG_LINES);
      } catch (err) {
        log = [`(log not available: ${(err as Error).message})`];
      }
      return {
        id: t.id!,
        status: t.status ?? 'unknown',
        ...(t.src_resource ? { srcResource: t.src_resource } : {}),
        ...(t.dst_resource ? { dstResource: t.dst_resource } : {}),
        log,
      };
    }),
  );
}

export function resultOf(e: HarborExecution, t0: number): HarborReplicationResult {
  return {
    executionId: e.id!,
    status: e.status ?? 'unknown',
    ...(e.status_text ? { statusText: e.status_text } : {}),
    total: e.total ?? 0,
    succeed: e.succeed ?? 0,
    failed: e.failed ?? 0,
    stopped: e.stopped ?? 0,
    durationMs: Date.now() - t0,
  };
}

/** The failure of an execution that ended badly: every failed task named, with its log's last lines. */
export function replicationFailure(
  h: HarborClient,
  e: HarborExecution,
  tasks: HarborFailedTask[],
  why?: string,
) {
  const lines = tasks.map(
    (t) =>
      `  task ${t.id} ${t.status}: ${t.srcResource ?? '?'} -> ${t.dstResource ?? '?'}\n` +
      t.log.map((l) => `      ${l}`).join('\n'),
  );
  const head =
    why ??
    `Harbor ${h.name}: replication execution ${e.id} (policy ${e.policy_id}) ended ${e.status}: ` +
      `${e.failed ?? 0} of ${e.total ?? 0} tasks failed${e.status_text ? ` (Harbor says: ${e.status_text})` : ''}`;
  return registryFailure(RegistryFailure.ReplicationFailed, [head, ...lines].join('\n'), {
    registry: h.url,
    operation: 'replication',
    executionId: e.id,
    policyId: e.policy_id,
    status: e.status,
    tasks,
  });
}
