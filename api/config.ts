/**
 * The API's configuration: one zod schema over the environment, parsed once at
 * start and frozen, then passed explicitly. Nothing secret has a default: the
 * bearer tokens live in a file (FLOTILLA_API_TOKENS_FILE) that only the
 * operator writes.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { InventorySchema, toClusterInfo, type ClusterInfo } from '../model/index.ts';
import { toRegistryInfo, type RegistryInfo } from '../model/registry.ts';
import { Role, TokensFileSchema, type TokensFile } from './auth.ts';

export const ConfigSchema = z.object({
  FLOTILLA_TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  FLOTILLA_TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /** The fleet inventory (YAML or JSON); the API reads only what a workflow may know of each cluster. */
  FLOTILLA_INVENTORY: z.string().min(1),
  FLOTILLA_API_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  FLOTILLA_API_HOST: z.string().min(1).default('127.0.0.1'),
  /** YAML or JSON mapping each bearer token to {name, role}. */
  FLOTILLA_API_TOKENS_FILE: z.string().min(1),
  FLOTILLA_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** How long SIGTERM waits for requests in flight before closing their sockets. */
  FLOTILLA_API_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(10_000),
  /** How many Healthy versions of each application are kept (listed, and restorable by rollback). */
  FLOTILLA_VERSION_HISTORY: z.coerce.number().int().min(1).max(100).default(10),
  /** Comma list of namespaces no delivery may write into, besides every kube-* one. */
  FLOTILLA_PROTECTED_NAMESPACES: z
    .string()
    .default('')
    .transform((v) => v.split(',').map((x) => x.trim()).filter(Boolean)),
});
export type Config = Readonly<z.infer<typeof ConfigSchema>>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment; throws a ConfigError naming every variable that is missing or wrong. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const r = ConfigSchema.safeParse(env);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return Object.freeze(r.data);
}

async function readStructured(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read the ${what} file ${path}: ${(e as Error).message}`);
  }
  try {
    return parseYaml(text) as unknown; // YAML is a superset of JSON: one parser for both
  } catch (e) {
    throw new ConfigError(`the ${what} file ${path} is neither YAML nor JSON: ${(e as Error).message}`);
  }
}

export async function loadInventory(path: string): Promise<ClusterInfo[]> {
  const r = InventorySchema.safeParse(await readStructured(path, 'inventory'));
  if (!r.success) {
    throw new ConfigError(
      `invalid inventory ${path}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  return r.data.clusters.map(toClusterInfo);
}

/** The inventory's registries, as workflows may know them (no credentials key). */
export async function loadRegistries(path: string): Promise<RegistryInfo[]> {
  const r = InventorySchema.safeParse(await readStructured(path, 'inventory'));
  if (!r.success) throw new ConfigError(`invalid inventory ${path}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data.registries.map(toRegistryInfo);
}

/** Never echoes a token in its errors: only the position of the bad entry. */
export async function loadTokens(path: string): Promise<TokensFile> {
  const raw = await readStructured(path, 'tokens');
  const r = TokensFileSchema.safeParse(raw);
  if (!r.success) {
    const keys = raw && typeof raw === 'object' ? Object.keys(raw) : [];
    const where = r.error.issues.map((i) => {
      if (i.path.length === 0) return i.message;
      const rest = i.path.slice(1).join('.');
      return `entry #${keys.indexOf(String(i.path[0])) + 1}${rest ? ` ${rest}` : ''}: ${i.message}`;
    });
    throw new ConfigError(
      `invalid tokens file ${path} (expected {<token>: {name, role: ${Object.values(Role).join('|')}}}): ${where.join('; ')}`,
    );
  }
  return r.data;
}
