/**
 * Fault rules of the API-server proxy (stack/proxy/main.ts): what they look
 * like (a zod schema, shared by the proxy and the stack's TypeScript API) and
 * which rule a request meets.
 *
 * A rule matches requests by method and a regular expression over the request
 * target (path and query string, e.g. `/api/v1/namespaces/a/pods?watch=true`),
 * both optional, and applies its action to the next `count` matching requests
 * (every one when `count` is left out). Rules are tried in order; the first
 * one with requests left wins; a request no rule matches is forwarded as is.
 *
 *   hang        never forwarded, never answered; the connection stays open
 *   drop-reply  forwarded (the apiserver acts on it), its answer never sent
 *   error       answered by the proxy: `status` (default 503) and a Kubernetes Status body
 *   delay       forwarded after `delayMs`
 *
 * `reset: true` (hang, drop-reply) closes the client's connection at once
 * instead of holding it (the client sees "socket hang up" / ECONNRESET).
 */
import { z } from 'zod';

export const ACTIONS = ['hang', 'drop-reply', 'error', 'delay'] as const;
export type ProxyAction = (typeof ACTIONS)[number];

const regex = z.string().superRefine((s, ctx) => {
  try {
    new RegExp(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a regular expression: ${(err as Error).message}` });
  }
});

export const ProxyRuleSchema = z
  .object({
    action: z.enum(ACTIONS),
    /** HTTP method(s), any case; every method when left out. */
    method: z
      .union([z.string().regex(/^[A-Za-z]+$/), z.array(z.string().regex(/^[A-Za-z]+$/)).min(1)])
      .optional(),
    /** A regular expression searched in the request target (path and query string). */
    path: regex.optional(),
    /** How many matching requests get the action; all of them when left out. */
    count: z.number().int().positive().optional(),
    /** `error`: the status to answer, 400-599 (default 503). */
    status: z.number().int().min(400).max(599).optional(),
    /** `error`: the Status message (default: says the proxy injected it). */
    message: z.string().max(1000).optional(),
    /** `error` with 429 or 503: a Retry-After header and details.retryAfterSeconds. */
    retryAfterSeconds: z.number().int().min(0).max(3600).optional(),
    /** `delay`: milliseconds before the request is forwarded. */
    delayMs: z.number().int().min(0).max(600_000).optional(),
    /** `hang` and `drop-reply`: close the client's connection instead of holding it open. */
    reset: z.boolean().optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    const only = (field: keyof typeof r, actions: ProxyAction[]) => {
      if (r[field] !== undefined && !actions.includes(r.action))
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: `only for action ${actions.join(' or ')}, not ${r.action}`,
        });
    };
    only('status', ['error']);
    only('message', ['error']);
    only('retryAfterSeconds', ['error']);
    only('delayMs', ['delay']);
    only('reset', ['hang', 'drop-reply']);
    if (r.action === 'delay' && r.delayMs === undefined)
      ctx.addIssue({ code: 'custom', path: ['delayMs'], message: 'action delay needs delayMs' });
  });
export type ProxyRule = z.infer<typeof ProxyRuleSchema>;

export const ProxyRulesSchema = z.object({ rules: z.array(ProxyRuleSchema).max(100) }).strict();

/** A rule as the proxy holds it: how many requests it still takes and how many it took. */
export interface ActiveRule extends ProxyRule {
  /** Requests left; null = every request. 0 = used up (kept to show what it matched). */
  remaining: number | null;
  matched: number;
}

export function activate(rules: ProxyRule[]): ActiveRule[] {
  return rules.map((r) => ({ ...r, remaining: r.count ?? null, matched: 0 }));
}

function methodMatches(rule: ProxyRule, method: string): boolean {
  if (rule.method === undefined) return true;
  const list = Array.isArray(rule.method) ? rule.method : [rule.method];
  return list.some((m) => m.toUpperCase() === method.toUpperCase());
}

const compiled = new Map<string, RegExp>();
const re = (source: string) => {
  let r = compiled.get(source);
  if (!r) compiled.set(source, (r = new RegExp(source)));
  return r;
};

/** The rule that takes this request (its counters updated), or undefined to forward it untouched. */
export function takeRule(rules: ActiveRule[], method: string, target: string): ActiveRule | undefined {
  for (const r of rules) {
    if (r.remaining === 0) continue;
    if (!methodMatches(r, method)) continue;
    if (r.path !== undefined && !re(r.path).test(target)) continue;
    if (r.remaining !== null) r.remaining--;
    r.matched++;
    return r;
  }
  return undefined;
}

/** True while some rule can still take a request. */
export const hasActiveRules = (rules: ActiveRule[]) => rules.some((r) => r.remaining !== 0);

/** One line per active rule, for `status`: "hang (all)", "error 503 PATCH ^/apis/apps (2 left)". */
export function describeRules(rules: ActiveRule[]): string {
  return rules
    .filter((r) => r.remaining !== 0)
    .map((r) => {
      const what =
        r.action === 'error'
          ? `error ${r.status ?? 503}`
          : r.action === 'delay'
            ? `delay ${r.delayMs} ms`
            : `${r.action}${r.reset ? ' (reset)' : ''}`;
      const method = r.method ? ` ${[r.method].flat().join('|').toUpperCase()}` : '';
      const path = r.path ? ` ${r.path}` : '';
      const left = r.remaining === null ? 'all' : `${r.remaining} left`;
      return `${what}${method}${path} (${left})`;
    })
    .join('; ');
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

/** The body an apiserver would send with this status: a `meta/v1` Status. */
export function statusBody(code: number, message: string, retryAfterSeconds?: number) {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: REASONS[code] ?? '',
    ...(retryAfterSeconds !== undefined ? { details: { retryAfterSeconds } } : {}),
    code,
  };
}
