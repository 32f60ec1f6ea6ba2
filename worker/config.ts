/**
 * Worker configuration: one zod schema over an optional file (FLOTILLA_CONFIG,
 * YAML or JSON, same shape as WorkerConfig) and the environment, which wins.
 * Parsed once, frozen, passed explicitly. Nothing secret has a default; the
 * kubeconfigs the inventory points to are read by the worker only.
 *
 *   FLOTILLA_TEMPORAL_ADDRESS    host:port of the Temporal frontend      (default 127.0.0.1:7233)
 *   FLOTILLA_TEMPORAL_NAMESPACE  Temporal namespace                       (default "default")
 *   FLOTILLA_INVENTORY           path of the inventory (YAML or JSON)     (required)
 *   FLOTILLA_CLUSTERS            comma list: serve only these clusters' queues (agent mode); default all;
 *                                empty: none (a hub-only worker, with FLOTILLA_HUB=true)
 *   FLOTILLA_HUB                 true/false: run the workflows and hub activities on the hub queue;
 *                                default true unless FLOTILLA_CLUSTERS is set
 *   FLOTILLA_LOG_LEVEL           trace|debug|info|warn|error|fatal|silent (default info)
 *   FLOTILLA_SHUTDOWN_GRACE_MS   how long running activities may finish on shutdown (default 10000)
 *   FLOTILLA_PROTECTED_NAMESPACES comma list of namespaces never written into, besides every kube-* one
 *   FLOTILLA_REGISTRY_CREDENTIALS the registry credentials file (keyed by host, mode 0600); none: anonymous
 *   FLOTILLA_MAX_CACHED_WORKFLOWS workflows the hub keeps in memory between their tasks (default: the SDK's,
 *                                about 600 per GiB of heap); one evicted is replayed from its history at its
 *                                next task (a gate's decision), which bounds the worker's memory
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { dnsLabel } from '../model/names.ts';

const truthy: Record<string, boolean> = {
  true: true,
  false: false,
  '1': true,
  '0': false,
  yes: true,
  no: false,
};
const bool = z.preprocess(
  (v) => (typeof v === 'string' ? (truthy[v.trim().toLowerCase()] ?? v) : v),
  z.boolean({ error: 'must be true or false' }),
);

/** A comma list in the environment, a list in the file. Empty: no cluster queue (a hub-only worker). */
const clusterList = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? v
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
      : v,
  z.array(dnsLabel, { error: 'must be a comma-separated list of cluster names' }),
);

export const WorkerConfigSchema = z
  .object({
    temporal: z
      .object({
        address: z.string().trim().min(1).default('127.0.0.1:7233'),
        namespace: z.string().trim().min(1).default('default'),
      })
      .strict()
      .default({ address: '127.0.0.1:7233', namespace: 'default' }),
    inventoryPath: z
      .string({ error: 'is required (the path of the cluster inventory)' })
      .trim()
      .min(1, 'is required (the path of the cluster inventory)'),
    /** Agent mode: serve only these clusters' task queues. Absent: every cluster in the inventory. */
    clusters: clusterList.optional(),
    /** Whether this worker runs the workflows and hub activities (HUB_TASK_QUEUE). */
    hub: bool.optional(),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    shutdownGraceMs: z.coerce
      .number({ error: 'must be a number of milliseconds' })
      .int()
      .min(0)
      .max(3_600_000)
      .default(10_000),
    /** Workflows kept in memory between their tasks (Temporal's sticky cache); undefined: the SDK's default. */
    maxCachedWorkflows: z.coerce.number({ error: 'must be a number of workflows' }).int().min(0).max(100_000).optional(),
    /** The registry credentials file (activities/registry/credentials.ts), read by this worker only. */
    registryCredentialsPath: z.string().trim().min(1).optional(),
    /** Namespaces this worker never writes into, whatever the hub asks (besides every kube-* one). */
    protectedNamespaces: z
      .preprocess(
        (v) => (typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v),
        z.array(dnsLabel, { error: 'must be a comma-separated list of namespaces' }),
      )
      .default([]),
  })
  .strict()
  .transform((c) => ({ ...c, hub: c.hub ?? c.clusters === undefined }))
  .refine((c) => c.hub || c.clusters === undefined || c.clusters.length > 0, {
    message: 'nothing to serve: FLOTILLA_HUB is false and FLOTILLA_CLUSTERS names no cluster',
    path: ['hub'],
  });

export type WorkerConfig = Readonly<z.output<typeof WorkerConfigSchema>>;
export type WorkerConfigInput = z.input<typeof WorkerConfigSchema>;

/** Where each field comes from in the environment, for messages. */
const envNames: Record<string, string> = {
  'temporal.address': 'FLOTILLA_TEMPORAL_ADDRESS',
  'temporal.namespace': 'FLOTILLA_TEMPORAL_NAMESPACE',
  inventoryPath: 'FLOTILLA_INVENTORY',
  clusters: 'FLOTILLA_CLUSTERS',
  hub: 'FLOTILLA_HUB',
  logLevel: 'FLOTILLA_LOG_LEVEL',
  shutdownGraceMs: 'FLOTILLA_SHUTDOWN_GRACE_MS',
  protectedNamespaces: 'FLOTILLA_PROTECTED_NAMESPACES',
  registryCredentialsPath: 'FLOTILLA_REGISTRY_CREDENTIALS',
  maxCachedWorkflows: 'FLOTILLA_MAX_CACHED_WORKFLOWS',
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.values(o).forEach(deepFreeze);
    Object.freeze(o);
  }
  return o;
}

function fromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const v = (k: string) => (env[k] !== undefined && env[k] !== '' ? env[k] : undefined);
  const out: Record<string, unknown> = {};
  const temporal: Record<string, unknown> = {};
  if (v('FLOTILLA_TEMPORAL_ADDRESS')) temporal.address = v('FLOTILLA_TEMPORAL_ADDRESS');
  if (v('FLOTILLA_TEMPORAL_NAMESPACE')) temporal.namespace = v('FLOTILLA_TEMPORAL_NAMESPACE');
  if (Object.keys(temporal).length) out.temporal = temporal;
  if (v('FLOTILLA_INVENTORY')) out.inventoryPath = v('FLOTILLA_INVENTORY');
  if (env.FLOTILLA_CLUSTERS !== undefined) out.clusters = env.FLOTILLA_CLUSTERS;
  if (v('FLOTILLA_HUB')) out.hub = v('FLOTILLA_HUB');
  if (v('FLOTILLA_LOG_LEVEL')) out.logLevel = v('FLOTILLA_LOG_LEVEL');
  if (v('FLOTILLA_SHUTDOWN_GRACE_MS')) out.shutdownGraceMs = v('FLOTILLA_SHUTDOWN_GRACE_MS');
  if (v('FLOTILLA_PROTECTED_NAMESPACES')) out.protectedNamespaces = v('FLOTILLA_PROTECTED_NAMESPACES');
  if (v('FLOTILLA_REGISTRY_CREDENTIALS')) out.registryCredentialsPath = v('FLOTILLA_REGISTRY_CREDENTIALS');
  if (v('FLOTILLA_MAX_CACHED_WORKFLOWS')) out.maxCachedWorkflows = v('FLOTILLA_MAX_CACHED_WORKFLOWS');
  return out;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `FLOTILLA_CONFIG: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text); // YAML is a superset of JSON
  } catch (err) {
    throw new ConfigError(
      `FLOTILLA_CONFIG: ${path} is not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed))
    throw new ConfigError(`FLOTILLA_CONFIG: ${path} must hold an object`);
  return parsed as Record<string, unknown>;
}

/**
 * Parses the worker configuration from the environment (and FLOTILLA_CONFIG,
 * if set). Throws ConfigError naming each bad setting.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const file = env.FLOTILLA_CONFIG ? readConfigFile(env.FLOTILLA_CONFIG) : {};
  const e = fromEnv(env);
  const merged = {
    ...file,
    ...e,
    ...(file.temporal || e.temporal
      ? { temporal: { ...(file.temporal as object | undefined), ...(e.temporal as object | undefined) } }
      : {}),
  };
  return parseConfig(merged);
}

export function parseConfig(input: unknown): WorkerConfig {
  const r = WorkerConfigSchema.safeParse(input);
  if (!r.success) {
    const lines = r.error.issues.map((i) => {
      const path = i.path.join('.');
      const env = envNames[path] ?? envNames[String(i.path[0])];
      const where = env ? `${env} (${path})` : path || '(config)';
      return `  - ${where}: ${i.message}`;
    });
    throw new ConfigError(`invalid worker configuration:\n${lines.join('\n')}`);
  }
  return deepFreeze(r.data);
}
