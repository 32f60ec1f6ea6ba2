/**
 * Where the API is and which token to send, each from the first of:
 *   1. flags      --api, --token
 *   2. env        FLOTILLA_API_URL, FLOTILLA_TOKEN
 *   3. a file     FLOTILLA_CONFIG_FILE, else ~/.config/flotilla/config.yaml
 *                 (YAML: `api: <url>`, `token: <token>`)
 *   4. the local stack: `.flotilla/stack.json` (written by `npm start`) of the
 *      checkout the CLI runs in: its `api.url` and one of its `api.tokens`,
 *      by --role or by what the command needs.
 * Each of url and token is resolved on its own. A token of the local stack is
 * only ever sent to the local stack's own URL. Tokens are never printed: the
 * resolved connection says where each came from, not what it is.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

export const Role = { ci: 'ci', releaseManager: 'release-manager', sre: 'sre', viewer: 'viewer' } as const;
export type Role = (typeof Role)[keyof typeof Role];
const roles = Object.values(Role) as [Role, ...Role[]];

/** What a command needs of the caller; picks the local stack's token when no --role is given. */
export const Need = { read: 'read', start: 'start', act: 'act', decide: 'decide' } as const;
export type Need = (typeof Need)[keyof typeof Need];
const roleFor: Record<Need, Role> = { read: 'viewer', start: 'ci', act: 'sre', decide: 'release-manager' };

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const ConfigFileSchema = z
  .object({
    api: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
    token: z.string().min(1).optional(),
  })
  .strict();
export type ConfigFile = z.infer<typeof ConfigFileSchema>;

const StackFileSchema = z.object({
  api: z.object({ url: z.string(), tokens: z.record(z.string(), z.string()).default({}) }),
});

export interface Sources {
  flags: { api?: string; token?: string; role?: string };
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  home: string;
  /** The checkout the CLI itself runs from (its .flotilla/stack.json is the last resort). */
  cliRoot: string;
  need: Need;
  /** Reads a file, or undefined when it does not exist. */
  readFile?: (file: string) => string | undefined;
  /** Warnings (a config file others may read) go here. */
  warn?: (line: string) => void;
}

export interface Connection {
  url: string;
  token?: string;
  /** Where the URL came from: "--api", "FLOTILLA_API_URL", a file name. */
  urlFrom: string;
  /** Where the token came from, e.g. "FLOTILLA_TOKEN" or ".flotilla/stack.json (role sre)"; "none". */
  tokenFrom: string;
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw new ConfigError(`cannot read ${file}: ${(e as Error).message}`);
  }
}

const normalUrl = (u: string): string => u.replace(/\/+$/, '');

function checkUrl(url: string, from: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(`${from}: "${url}" is not a URL (e.g. http://127.0.0.1:27080)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`${from}: the API URL must be http or https, not ${u.protocol}`);
  return normalUrl(url);
}

export function configFilePath(env: Sources['env'], home: string): { file: string; explicit: boolean } {
  if (env.FLOTILLA_CONFIG_FILE) return { file: path.resolve(env.FLOTILLA_CONFIG_FILE), explicit: true };
  const base = env.XDG_CONFIG_HOME || path.join(home, '.config');
  return { file: path.join(base, 'flotilla', 'config.yaml'), explicit: false };
}

export function loadConfigFile(src: Pick<Sources, 'env' | 'home' | 'readFile' | 'warn'>): { file: string; config: ConfigFile } | undefined {
  const { file, explicit } = configFilePath(src.env, src.home);
  const text = (src.readFile ?? readIfExists)(file);
  if (text === undefined) {
    if (explicit) throw new ConfigError(`FLOTILLA_CONFIG_FILE names ${file}, which does not exist`);
    return undefined;
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (e) {
    throw new ConfigError(`${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const r = ConfigFileSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const where = i.path.join('.') || '(root)';
    throw new ConfigError(`${file}: ${where}: ${i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')} (known: api, token)` : i.message}`);
  }
  if (r.data.token && !src.readFile) warnIfReadable(file, src.warn);
  return { file, config: r.data };
}

function warnIfReadable(file: string, warn: Sources['warn']): void {
  try {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) warn?.(`warning: ${file} holds a token and others may read it (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 it`);
  } catch {
    // gone since: nothing to say
  }
}

/** The local stack's info files to try, nearest first. */
export function stackFiles(src: Pick<Sources, 'env' | 'cwd' | 'cliRoot'>): string[] {
  const out: string[] = [];
  const dir = src.env.FLOTILLA_STACK_DIR;
  if (dir) {
    const d = path.resolve(src.cwd, dir);
    out.push(path.join(d, 'stack.json'));
    // The default data dir (<checkout>/.flotilla/stack) keeps its info one level up.
    if (path.basename(d) === 'stack' && path.basename(path.dirname(d)) === '.flotilla') out.push(path.join(path.dirname(d), 'stack.json'));
  }
  for (let d = path.resolve(src.cwd); ; d = path.dirname(d)) {
    out.push(path.join(d, '.flotilla', 'stack.json'));
    if (path.dirname(d) === d) break;
  }
  out.push(path.join(src.cliRoot, '.flotilla', 'stack.json'));
  return [...new Set(out)];
}

interface StackApi {
  file: string;
  url: string;
  tokens: Record<string, string>;
}

function findStack(src: Sources): StackApi | undefined {
  const read = src.readFile ?? readIfExists;
  for (const file of stackFiles(src)) {
    const text = read(file);
    if (text === undefined) continue;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      continue; // being written, or not ours
    }
    const r = StackFileSchema.safeParse(raw);
    if (r.success) return { file, url: normalUrl(r.data.api.url), tokens: r.data.api.tokens };
  }
  return undefined;
}

function pickRole(src: Sources): Role {
  const asked = src.flags.role ?? src.env.FLOTILLA_ROLE;
  if (asked === undefined) return roleFor[src.need];
  if (!(roles as readonly string[]).includes(asked)) throw new ConfigError(`--role must be one of ${roles.join(', ')} (got "${asked}")`);
  return asked as Role;
}

/** A file as the user best recognises it: relative below the working directory, else absolute. */
const shown = (file: string, cwd: string): string => {
  const rel = path.relative(cwd, file);
  return rel && !rel.startsWith('..') ? rel : file;
};

export function resolveConnection(src: Sources): Connection {
  // The file is read only when flags and env leave something open: a CI job that passes both never trips on it.
  const needFile = !(src.flags.api || src.env.FLOTILLA_API_URL) || !(src.flags.token || src.env.FLOTILLA_TOKEN);
  const flagUrl = src.flags.api ? checkUrl(src.flags.api, '--api') : undefined;
  const file = needFile ? loadConfigFile(src) : undefined;
  const fileLabel = file ? file.file.replace(src.home, '~') : '';
  let url: string | undefined;
  let urlFrom = '';
  if (flagUrl) [url, urlFrom] = [flagUrl, '--api'];
  else if (src.env.FLOTILLA_API_URL) [url, urlFrom] = [checkUrl(src.env.FLOTILLA_API_URL, 'FLOTILLA_API_URL'), 'FLOTILLA_API_URL'];
  else if (file?.config.api) [url, urlFrom] = [normalUrl(file.config.api), fileLabel];

  let token: string | undefined;
  let tokenFrom = 'none';
  if (src.flags.token) [token, tokenFrom] = [src.flags.token, '--token'];
  else if (src.env.FLOTILLA_TOKEN) [token, tokenFrom] = [src.env.FLOTILLA_TOKEN, 'FLOTILLA_TOKEN'];
  else if (file?.config.token) [token, tokenFrom] = [file.config.token, fileLabel];

  const role = pickRole(src);
  if (url === undefined || token === undefined) {
    const stack = findStack(src);
    if (stack && url === undefined) [url, urlFrom] = [stack.url, shown(stack.file, src.cwd)];
    // The stack's tokens go to the stack's API only, never to a URL someone else named.
    if (stack && token === undefined && url === stack.url) {
      const t = stack.tokens[role] ?? (src.flags.role ? undefined : stack.tokens.sre);
      if (t === undefined) throw new ConfigError(`${stack.file} has no token of role ${role} (it has: ${Object.keys(stack.tokens).join(', ') || 'none'})`);
      [token, tokenFrom] = [t, `${shown(stack.file, src.cwd)} (role ${stack.tokens[role] ? role : 'sre'})`];
    }
  }
  if (url === undefined) {
    throw new ConfigError(
      'no API URL: pass --api <url>, set FLOTILLA_API_URL, write "api: <url>" in ~/.config/flotilla/config.yaml, or run `npm start` in this checkout for the local stack',
    );
  }
  return { url, urlFrom, tokenFrom, ...(token !== undefined ? { token } : {}) };
}
