/**
 * The worker's analysis configuration: where Prometheus is and how to reach it,
 * which URLs the web provider may call and the secret headers it adds. Read by
 * the worker only; a delivery request names a server or a credentials entry,
 * never an address or a secret.
 *
 *   FLOTILLA_PROMETHEUS_URL               the `default` Prometheus server (http(s)://host:port[/prefix])
 *   FLOTILLA_ANALYSIS_WEB_ALLOWED_URLS    comma list of URL prefixes the web provider may call (none: it may call nothing)
 *   FLOTILLA_ANALYSIS_CONFIG              a YAML or JSON file of the whole shape below (mode 0600 when it holds
 *                                         a secret); the two variables above win over it
 *
 *   prometheus:
 *     default:   {url: http://prometheus:9090}
 *     beijing:   {url: https://prom.bj.example.com, tls: skip-verify,
 *                 bearerTokenFile: /var/run/secrets/prom-token,     # or bearerToken, or basicAuth {username, password}
 *                 headers: {X-Scope-OrgID: shop}}
 *   web:
 *     allowedUrls: [https://metrics.example.com/api/]
 *     credentials:
 *       metrics-api: {headers: {Authorization: "Bearer ..."}}
 *   maxResponseBytes: 1048576
 */
import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { dnsLabel } from '../../model/names.ts';

const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/, 'must be an HTTP header name');

const httpUrl = z.string().superRefine((raw, ctx) => {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be an absolute http:// or https:// URL' });
    return;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    ctx.addIssue({ code: 'custom', message: `must be http:// or https:// (got ${u.protocol})` });
  if (u.username || u.password)
    ctx.addIssue({
      code: 'custom',
      message: 'must not hold credentials: use basicAuth, bearerToken or bearerTokenFile',
    });
  if (u.search || u.hash) ctx.addIssue({ code: 'custom', message: 'must have no query or fragment' });
});

const Tls = z.enum(['verify', 'skip-verify']).default('verify');

export const PrometheusServerSchema = z
  .object({
    url: httpUrl,
    tls: Tls,
    /** Extra headers on every query (a tenant header, say); they may be secret. */
    headers: z.record(headerName, z.string()).default({}),
    bearerToken: z.string().min(1).optional(),
    /** Read at each query, so a rotated token is picked up. */
    bearerTokenFile: z.string().min(1).optional(),
    basicAuth: z
      .object({ username: z.string().min(1), password: z.string().min(1) })
      .strict()
      .optional(),
  })
  .strict()
  .refine((s) => [s.bearerToken, s.bearerTokenFile, s.basicAuth].filter(Boolean).length <= 1, {
    message: 'give at most one of bearerToken, bearerTokenFile and basicAuth',
  });
export type PrometheusServer = z.output<typeof PrometheusServerSchema>;

export const WebConfigSchema = z
  .object({
    /** URL prefixes the web provider may call (same scheme, host and port; path under the prefix's). */
    allowedUrls: z.array(httpUrl).default([]),
    tls: Tls,
    /** Named sets of secret headers a request may ask for with `credentials: <name>`. */
    credentials: z
      .record(dnsLabel, z.object({ headers: z.record(headerName, z.string()) }).strict())
      .default({}),
  })
  .strict();

export const AnalysisConfigSchema = z
  .object({
    prometheus: z.record(dnsLabel, PrometheusServerSchema).default({}),
    web: WebConfigSchema.default({ allowedUrls: [], tls: 'verify', credentials: {} }),
    /** Largest response body read from a provider. */
    maxResponseBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(1024 * 1024),
  })
  .strict();
export type AnalysisConfig = Readonly<z.output<typeof AnalysisConfigSchema>>;
export type AnalysisConfigInput = z.input<typeof AnalysisConfigSchema>;

export class AnalysisConfigError extends Error {
  override name = 'AnalysisConfigError';
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.values(o).forEach(deepFreeze);
    Object.freeze(o);
  }
  return o;
}

/** Validates an already-read configuration (messages name the field, never a value). */
export function parseAnalysisConfig(doc: unknown, source = 'analysis configuration'): AnalysisConfig {
  const r = AnalysisConfigSchema.safeParse(doc ?? {});
  if (!r.success) {
    const issues = r.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`).join('\n');
    throw new AnalysisConfigError(`invalid ${source}:\n${issues}`);
  }
  return deepFreeze(r.data);
}

/** Whether a parsed configuration document holds anything secret (so its file must be private). */
function holdsSecrets(doc: unknown): boolean {
  const d = doc as {
    prometheus?: Record<string, Record<string, unknown>>;
    web?: { credentials?: Record<string, unknown> };
  };
  const servers = Object.values(d?.prometheus ?? {});
  return (
    servers.some(
      (s) => s?.bearerToken || s?.basicAuth || Object.keys((s?.headers as object) ?? {}).length > 0,
    ) || Object.keys(d?.web?.credentials ?? {}).length > 0
  );
}

/**
 * The configuration from the environment (and the file FLOTILLA_ANALYSIS_CONFIG names). A file
 * that holds a secret must not be readable by group or others.
 */
export function loadAnalysisConfig(env: NodeJS.ProcessEnv = process.env): AnalysisConfig {
  const v = (k: string) => (env[k] !== undefined && env[k]!.trim() !== '' ? env[k]!.trim() : undefined);
  let doc: Record<string, unknown> = {};
  const file = v('FLOTILLA_ANALYSIS_CONFIG');
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new AnalysisConfigError(
        `cannot read FLOTILLA_ANALYSIS_CONFIG ${file}: ${(err as Error).message}`,
      );
    }
    try {
      doc = (parseYaml(text) as Record<string, unknown>) ?? {};
    } catch (err) {
      throw new AnalysisConfigError(
        `FLOTILLA_ANALYSIS_CONFIG ${file} is not YAML or JSON: ${(err as Error).message}`,
      );
    }
    if (holdsSecrets(doc) && (statSync(file).mode & 0o077) !== 0)
      throw new AnalysisConfigError(
        `${file} holds credentials and is readable by group or others (mode ${(statSync(file).mode & 0o777).toString(8)}): chmod 600 it`,
      );
  }
  const promUrl = v('FLOTILLA_PROMETHEUS_URL');
  if (promUrl) {
    const servers = { ...((doc.prometheus as Record<string, Record<string, unknown>>) ?? {}) };
    servers.default = { ...(servers.default ?? {}), url: promUrl };
    doc = { ...doc, prometheus: servers };
  }
  const allowed = v('FLOTILLA_ANALYSIS_WEB_ALLOWED_URLS');
  if (allowed) {
    const list = allowed
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
    doc = { ...doc, web: { ...((doc.web as object) ?? {}), allowedUrls: list } };
  }
  return parseAnalysisConfig(
    doc,
    file ? `analysis configuration (${file} and the environment)` : 'analysis configuration (environment)',
  );
}

/** Whether the web provider may call `url`: under one of the allowed prefixes (same origin, path below). */
export function urlAllowed(url: string, allowedUrls: readonly string[]): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  return allowedUrls.some((p) => {
    const a = new URL(p);
    if (a.origin !== u.origin) return false;
    const base = a.pathname.endsWith('/') ? a.pathname : `${a.pathname}/`;
    return a.pathname === '/' || u.pathname === a.pathname || u.pathname.startsWith(base);
  });
}
