/**
 * Metric analysis, as a user writes it in a delivery request, and the pure
 * calculators under it (Argo Rollouts' AnalysisTemplate/AnalysisRun semantics):
 *
 *   {"name": "error-rate",
 *    "provider": {"prometheus": {"query": "sum(rate(x{app=\"{{app}}\",code=~\"5..\"}[30s])) / sum(rate(x{app=\"{{app}}\"}[30s]))"}},
 *    "interval": "10s", "count": 5,
 *    "successCondition": "result < 0.05", "failureCondition": "result >= 0.2",
 *    "failureLimit": 1, "inconclusiveLimit": 2, "consecutiveErrorLimit": 4}
 *
 * Providers: `prometheus` (an instant query on a server the worker's
 * configuration names; the request never holds an address or a credential)
 * and `web` (GET/POST of a URL that answers JSON; a JSONPath picks the value;
 * secret headers come from the worker's configuration by name).
 *
 * Conditions are CEL expressions (@marcbachmann/cel-js), compiled when the
 * request is parsed: a syntax error, an unknown identifier or a non-boolean
 * condition is a 400 naming the field. Never eval.
 *
 * A measurement (one query) is Successful, Failed, Inconclusive or Error
 * (measurementPhase). The analysis (analysisVerdict) is Running until a limit
 * is crossed or `count` measurements were taken.
 */
import { Environment } from '@marcbachmann/cel-js';
import parseJsonPath from 'jsonpath-rfc9535/parser';
import { z } from 'zod';
import { boundedDuration, dnsLabel, durationMs, formatMs } from './names.ts';

// ---------------------------------------------------------------------------
// Template variables

/**
 * Variables the engine fills in from the delivery: `{{app}}` the application's name,
 * `{{namespace}}`, `{{cluster}}` and `{{region}}` of the cluster measured, `{{version}}` the
 * version being delivered (the canary's image tag, or its digest when pinned without one),
 * `{{stableVersion}}` the one it replaces, `{{canary}}` and `{{stable}}` the names of the
 * canary's and the stable's workloads (blue-green: preview and active), `{{delivery}}` the
 * delivery's id.
 */
export const AnalysisVarNames = [
  'app',
  'namespace',
  'cluster',
  'region',
  'version',
  'stableVersion',
  'canary',
  'stable',
  'delivery',
] as const;
export type AnalysisVarName = (typeof AnalysisVarNames)[number];
export type AnalysisVars = Partial<Record<AnalysisVarName, string>>;

const knownVars = new Set<string>(AnalysisVarNames);
const placeholderRe = /\{\{([^{}]*)\}\}/g;

/**
 * A value the engine may put into a query or URL: names, tags, digests, cluster names.
 * Nothing that could end a PromQL string or add a matcher (no quotes, braces, spaces, commas).
 */
const varValueRe = /^[A-Za-z0-9._:@/+-]{1,255}$/;

export class TemplateError extends Error {
  override name = 'TemplateError';
}

/** Problems of a template: unknown variables, stray `{{` or `}}`. Empty when it is fine. */
export function templateProblems(text: string): string[] {
  const problems: string[] = [];
  for (const m of text.matchAll(placeholderRe)) {
    const name = m[1]!.trim();
    if (!knownVars.has(name))
      problems.push(
        `unknown template variable {{${m[1]}}} (known: ${AnalysisVarNames.map((v) => `{{${v}}}`).join(', ')})`,
      );
  }
  const rest = text.replace(placeholderRe, '');
  if (rest.includes('{{') || rest.includes('}}'))
    problems.push('has a "{{" or "}}" that is not a template variable such as {{app}}');
  return problems;
}

/** The variables a template uses. */
export function templateVars(text: string): AnalysisVarName[] {
  const out = new Set<AnalysisVarName>();
  for (const m of text.matchAll(placeholderRe)) {
    const name = m[1]!.trim();
    if (knownVars.has(name)) out.add(name as AnalysisVarName);
  }
  return [...out];
}

/**
 * Fills `{{name}}` (spaces inside the braces allowed) with the delivery's values; `encode`
 * escapes each value for where it goes (encodeURIComponent for a URL). Throws TemplateError
 * for an unknown variable, one the engine has no value for, or a value outside the safe
 * characters (letters, digits, `._:@/+-`).
 */
export function fillTemplate(
  text: string,
  vars: AnalysisVars,
  encode: (v: string) => string = (v) => v,
): string {
  const problems = templateProblems(text);
  if (problems.length) throw new TemplateError(problems.join('; '));
  return text.replace(placeholderRe, (_, raw: string) => {
    const name = raw.trim() as AnalysisVarName;
    const value = vars[name];
    if (value === undefined) throw new TemplateError(`no value for {{${name}}} in this delivery`);
    if (!varValueRe.test(value))
      throw new TemplateError(
        `the value of {{${name}}} (${JSON.stringify(value.slice(0, 80))}) has characters a query may not take`,
      );
    return encode(value);
  });
}

/** A string that may hold template variables, refused at parse time when it names an unknown one. */
function templated(max: number) {
  return z
    .string()
    .min(1)
    .max(max)
    .superRefine((s, ctx) => {
      for (const message of templateProblems(s)) ctx.addIssue({ code: 'custom', message });
    });
}

// ---------------------------------------------------------------------------
// Conditions (CEL)

/**
 * The CEL environment of conditions: `result` is the measured value (a number; a list of
 * numbers for a Prometheus vector of several samples; any JSON value for `web`), `values`
 * always a list (the vector's samples, `[result]` for one value). Limits keep a condition small.
 */
const celEnv = new Environment({
  limits: { maxAstNodes: 256, maxDepth: 24, maxListElements: 64, maxMapEntries: 64, maxCallArguments: 8 },
})
  .registerVariable('result', 'dyn')
  .registerVariable('values', 'list<dyn>');

export type CompiledCondition = (bindings: { result: unknown; values: unknown[] }) => unknown;

const compiled = new Map<string, CompiledCondition>();

export class ConditionError extends Error {
  override name = 'ConditionError';
}

/** First line of a CEL error (the rest is a caret drawing of the source). */
const firstLine = (e: unknown) =>
  String((e as Error)?.message ?? e)
    .split('\n')[0]!
    .trim();

/** Parses and type-checks a condition; throws ConditionError with what is wrong. Cached. */
export function compileCondition(expr: string): CompiledCondition {
  const hit = compiled.get(expr);
  if (hit) return hit;
  let program: ReturnType<Environment['parse']>;
  try {
    program = celEnv.parse(expr);
  } catch (e) {
    throw new ConditionError(`is not a valid CEL expression: ${firstLine(e)}`);
  }
  const checked = program.check();
  if (!checked.valid) throw new ConditionError(`does not type-check: ${firstLine(checked.error)}`);
  if (checked.type !== 'bool' && checked.type !== 'dyn')
    throw new ConditionError(
      `must be a boolean expression such as "result < 0.05" (this one is of type ${checked.type})`,
    );
  const fn: CompiledCondition = (b) => program(b);
  if (compiled.size > 1000) compiled.clear();
  compiled.set(expr, fn);
  return fn;
}

const condition = z
  .string()
  .trim()
  .min(1)
  .max(1024)
  .superRefine((s, ctx) => {
    try {
      compileCondition(s);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
    }
  });

// ---------------------------------------------------------------------------
// Providers

/** An instant query on a Prometheus server of the worker's configuration (`default` unless named). */
export const PrometheusProviderSchema = z
  .object({
    query: templated(8192),
    /** The name of a server in the worker's analysis configuration, never an address. */
    server: dnsLabel.default('default'),
  })
  .strict();

/** Headers that carry secrets: they belong in the worker's configuration (`credentials`). */
const secretHeaders = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'x-api-key',
  'api-key',
  'x-auth-token',
  'x-access-token',
  'private-token',
]);
/** Query parameters that carry secrets. */
const secretParams = new Set([
  'token',
  'access_token',
  'api_key',
  'apikey',
  'api-key',
  'password',
  'secret',
  'client_secret',
  'sig',
  'signature',
  'x-amz-signature',
  'x-amz-credential',
]);

const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/, 'must be an HTTP header name');

const webUrl = templated(2048).superRefine((raw, ctx) => {
  let u: URL;
  try {
    // Variables are letters, digits and ._:@/+-, so a stand-in keeps the URL's shape.
    u = new URL(raw.replace(placeholderRe, 'x'));
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be an absolute http:// or https:// URL' });
    return;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    ctx.addIssue({ code: 'custom', message: `must be http:// or https:// (got ${u.protocol})` });
  if (u.username || u.password)
    ctx.addIssue({
      code: 'custom',
      message: 'must not hold credentials: name the worker\'s credentials in "credentials" instead',
    });
  for (const k of u.searchParams.keys())
    if (secretParams.has(k.toLowerCase()))
      ctx.addIssue({
        code: 'custom',
        message: `must not carry the secret query parameter "${k}": put it in the worker's credentials`,
      });
});

const jsonPath = z
  .string()
  .min(1)
  .max(512)
  .superRefine((p, ctx) => {
    try {
      parseJsonPath(p);
    } catch (e) {
      ctx.addIssue({
        code: 'custom',
        message: `is not an RFC 9535 JSONPath such as "$.data.ratio": ${firstLine(e)}`,
      });
    }
  });

/** A URL that answers JSON; `jsonPath` picks the value (default: the whole document). */
export const WebProviderSchema = z
  .object({
    url: webUrl,
    method: z.enum(['GET', 'POST']).default('GET'),
    /** Headers that are no secret (templated values allowed). */
    headers: z
      .record(headerName, templated(1024))
      .default({})
      .superRefine((h, ctx) => {
        for (const k of Object.keys(h))
          if (secretHeaders.has(k.toLowerCase()))
            ctx.addIssue({
              code: 'custom',
              path: [k],
              message: `is a secret header: the request may not carry it; name the worker's credentials in "credentials"`,
            });
      }),
    /** A body for POST (templated), sent as application/json. */
    body: templated(65536).optional(),
    jsonPath: jsonPath.default('$'),
    /** The name of an entry in the worker's web credentials (headers added by the worker). */
    credentials: dnsLabel.optional(),
  })
  .strict()
  .refine((w) => w.method === 'POST' || w.body === undefined, {
    message: 'a body needs method POST',
    path: ['body'],
  });

export const ProviderSchema = z
  .object({ prometheus: PrometheusProviderSchema.optional(), web: WebProviderSchema.optional() })
  .strict()
  .superRefine((p, ctx) => {
    const n = (p.prometheus ? 1 : 0) + (p.web ? 1 : 0);
    if (n !== 1)
      ctx.addIssue({
        code: 'custom',
        message: 'must name exactly one provider: {"prometheus": {...}} or {"web": {...}}',
      });
  });

// ---------------------------------------------------------------------------
// The analysis

const MAX_TOTAL_MS = 24 * 3_600_000;
const limit = z.number().int().min(0).max(1000);

export const AnalysisSchema = z
  .object({
    name: dnsLabel,
    provider: ProviderSchema,
    /** Time between two measurements (required when count > 1). */
    interval: boundedDuration(1000, 3_600_000).optional(),
    /** Wait before the first measurement (e.g. to let the canary take traffic). */
    initialDelay: boundedDuration(1000, 3_600_000).optional(),
    /** Measurements that end the analysis as Successful when no limit was crossed (errors do not count). */
    count: z.number().int().min(1).max(1000).default(1),
    successCondition: condition.optional(),
    failureCondition: condition.optional(),
    /** The analysis fails when more measurements than this failed. */
    failureLimit: limit.default(0),
    /** The analysis is Inconclusive (waits for a human) when more measurements than this were. */
    inconclusiveLimit: limit.default(0),
    /** The analysis is Error when more measurements than this errored in a row. */
    consecutiveErrorLimit: limit.default(4),
    /** Longest a single measurement may take. */
    timeout: boundedDuration(1000, 300_000).default('30s'),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (!a.successCondition && !a.failureCondition)
      ctx.addIssue({
        code: 'custom',
        path: ['successCondition'],
        message:
          'an analysis needs a successCondition, a failureCondition or both (without either it could never fail)',
      });
    if (a.count > 1 && !a.interval)
      ctx.addIssue({
        code: 'custom',
        path: ['interval'],
        message: `is required when count is more than 1 (count is ${a.count})`,
      });
    if (a.failureLimit >= a.count)
      ctx.addIssue({
        code: 'custom',
        path: ['failureLimit'],
        message: `must be less than count (${a.count}): with ${a.failureLimit} failures allowed the analysis could never fail`,
      });
    if (a.inconclusiveLimit >= a.count)
      ctx.addIssue({
        code: 'custom',
        path: ['inconclusiveLimit'],
        message: `must be less than count (${a.count}): otherwise an analysis without any data would pass`,
      });
    const total =
      (a.initialDelay ? durationMs(a.initialDelay) : 0) +
      (a.interval ? durationMs(a.interval) * (a.count - 1) : 0);
    if (total > MAX_TOTAL_MS)
      ctx.addIssue({
        code: 'custom',
        path: ['count'],
        message: `initialDelay + interval x (count - 1) must be at most 24h (it is ${formatMs(total)})`,
      });
  });
export type Analysis = z.output<typeof AnalysisSchema>;
export type AnalysisInput = z.input<typeof AnalysisSchema>;

/** Several analyses of one step: names unique. */
export const AnalysesSchema = z
  .array(AnalysisSchema)
  .min(1)
  .max(16)
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((a, i) => {
      if (seen.has(a.name))
        ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate analysis name "${a.name}"` });
      seen.add(a.name);
    });
  });

// ---------------------------------------------------------------------------
// Measurements

export const MeasurementPhase = {
  Successful: 'Successful',
  Failed: 'Failed',
  Inconclusive: 'Inconclusive',
  Error: 'Error',
} as const;
export type MeasurementPhase = (typeof MeasurementPhase)[keyof typeof MeasurementPhase];

export const AnalysisPhase = { Running: 'Running', ...MeasurementPhase } as const;
export type AnalysisPhase = (typeof AnalysisPhase)[keyof typeof AnalysisPhase];

/**
 * A measurement's phase from its two conditions (Argo Rollouts' table). `undefined`: the
 * condition is not given.
 *
 *   success    failure    phase
 *   true       true       Failed        (the failure condition wins)
 *   true       false      Successful
 *   false      true       Failed
 *   false      false      Inconclusive  (neither met)
 *   true       -          Successful
 *   false      -          Failed        (only a success condition: not met is a failure)
 *   -          true       Failed
 *   -          false      Successful    (only a failure condition: not met is a success)
 *   -          -          Successful    (refused by the schema; kept total)
 */
export function measurementPhase(
  success: boolean | undefined,
  failure: boolean | undefined,
): MeasurementPhase {
  if (failure === true) return MeasurementPhase.Failed;
  if (success === undefined) return MeasurementPhase.Successful;
  if (failure === undefined) return success ? MeasurementPhase.Successful : MeasurementPhase.Failed;
  return success ? MeasurementPhase.Successful : MeasurementPhase.Inconclusive;
}

/** What a provider measured: a value for the conditions, or no data at all. */
export type Measured = { result: unknown; values: unknown[] } | { noData: string };

export interface Judgement {
  phase: MeasurementPhase;
  message: string;
}

const show = (v: unknown): string => {
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (Array.isArray(v))
    return `[${v.slice(0, 8).map(show).join(', ')}${v.length > 8 ? `, ... (${v.length})` : ''}]`;
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
};

/** Shows a measured value in a message (bounded). */
export const showValue = show;

/**
 * Judges one measurement: no data is Inconclusive (the conditions are not run); a condition
 * that errors on this value (a missing field, a list where a number was expected) or is not
 * boolean is an Error; otherwise the table of measurementPhase.
 */
export function judge(
  analysis: Pick<Analysis, 'successCondition' | 'failureCondition'>,
  measured: Measured,
): Judgement {
  if ('noData' in measured)
    return { phase: MeasurementPhase.Inconclusive, message: `no data: ${measured.noData}` };
  const run = (field: 'successCondition' | 'failureCondition'): boolean | undefined => {
    const expr = analysis[field];
    if (!expr) return undefined;
    let out: unknown;
    try {
      out = compileCondition(expr)(measured);
    } catch (e) {
      throw new ConditionError(`${field} "${expr}" on result ${show(measured.result)}: ${firstLine(e)}`);
    }
    if (typeof out !== 'boolean')
      throw new ConditionError(
        `${field} "${expr}" gave ${show(out)} on result ${show(measured.result)}, not true or false`,
      );
    return out;
  };
  let success: boolean | undefined;
  let failure: boolean | undefined;
  try {
    success = run('successCondition');
    failure = run('failureCondition');
  } catch (e) {
    return { phase: MeasurementPhase.Error, message: (e as Error).message };
  }
  const phase = measurementPhase(success, failure);
  const said = [
    success !== undefined ? `${analysis.successCondition} is ${success}` : '',
    failure !== undefined ? `${analysis.failureCondition} is ${failure}` : '',
  ]
    .filter(Boolean)
    .join(', ');
  return { phase, message: `result ${show(measured.result)}: ${said}` };
}

/** One measurement as the engine records it. */
export interface Measurement {
  phase: MeasurementPhase;
  /** When it was taken (ms since the epoch, workflow time). */
  at: number;
  message?: string;
}

/** The measurement the engine records when the measure activity failed for good. */
export function errorMeasurement(
  failure: { type?: string | null; message?: string },
  at: number,
): Measurement {
  return {
    phase: MeasurementPhase.Error,
    at,
    message: `${failure.type ?? 'Error'}: ${failure.message ?? 'the measurement failed'}`,
  };
}

// ---------------------------------------------------------------------------
// The verdict

export const AnalysisReason = {
  Measuring: 'Measuring',
  CountReached: 'CountReached',
  FailureLimitExceeded: 'FailureLimitExceeded',
  InconclusiveLimitExceeded: 'InconclusiveLimitExceeded',
  ConsecutiveErrorLimitExceeded: 'ConsecutiveErrorLimitExceeded',
} as const;
export type AnalysisReason = (typeof AnalysisReason)[keyof typeof AnalysisReason];

export interface AnalysisCounts {
  /** Measurements that count towards `count` (every phase but Error). */
  count: number;
  successful: number;
  failed: number;
  inconclusive: number;
  error: number;
  consecutiveErrors: number;
}

export interface Verdict {
  phase: AnalysisPhase;
  reason: AnalysisReason;
  message: string;
  counts: AnalysisCounts;
  /** Index of the measurement that decided a finished analysis. */
  decidedBy?: number;
}

export type Limits = Pick<Analysis, 'count' | 'failureLimit' | 'inconclusiveLimit' | 'consecutiveErrorLimit'>;

/**
 * The analysis now, from its measurements in the order they were taken (Argo Rollouts'
 * assessment): after each one, more failures than failureLimit is Failed, more inconclusive
 * ones than inconclusiveLimit is Inconclusive, more errors in a row than consecutiveErrorLimit
 * is Error (a measurement that is not an Error resets that run); `count` measurements that are
 * not errors with no limit crossed is Successful. The first of these decides; measurements
 * after it are not looked at. Otherwise Running.
 */
export function analysisVerdict(
  limits: Limits,
  measurements: readonly Pick<Measurement, 'phase'>[],
): Verdict {
  const c: AnalysisCounts = {
    count: 0,
    successful: 0,
    failed: 0,
    inconclusive: 0,
    error: 0,
    consecutiveErrors: 0,
  };
  const done = (phase: AnalysisPhase, reason: AnalysisReason, message: string, i: number): Verdict => ({
    phase,
    reason,
    message,
    counts: { ...c },
    decidedBy: i,
  });
  for (let i = 0; i < measurements.length; i++) {
    const phase = measurements[i]!.phase;
    if (phase === MeasurementPhase.Error) {
      c.error++;
      c.consecutiveErrors++;
    } else {
      c.count++;
      c.consecutiveErrors = 0;
      if (phase === MeasurementPhase.Successful) c.successful++;
      else if (phase === MeasurementPhase.Failed) c.failed++;
      else c.inconclusive++;
    }
    if (c.failed > limits.failureLimit)
      return done(
        AnalysisPhase.Failed,
        AnalysisReason.FailureLimitExceeded,
        `failed (${c.failed}) > failureLimit (${limits.failureLimit})`,
        i,
      );
    if (c.inconclusive > limits.inconclusiveLimit)
      return done(
        AnalysisPhase.Inconclusive,
        AnalysisReason.InconclusiveLimitExceeded,
        `inconclusive (${c.inconclusive}) > inconclusiveLimit (${limits.inconclusiveLimit})`,
        i,
      );
    if (c.consecutiveErrors > limits.consecutiveErrorLimit)
      return done(
        AnalysisPhase.Error,
        AnalysisReason.ConsecutiveErrorLimitExceeded,
        `consecutiveErrors (${c.consecutiveErrors}) > consecutiveErrorLimit (${limits.consecutiveErrorLimit})`,
        i,
      );
    if (c.count >= limits.count)
      return done(
        AnalysisPhase.Successful,
        AnalysisReason.CountReached,
        `count (${limits.count}) reached: ${c.successful} successful, ${c.failed} failed, ${c.inconclusive} inconclusive, ${c.error} errors`,
        i,
      );
  }
  return {
    phase: AnalysisPhase.Running,
    reason: AnalysisReason.Measuring,
    message: `${c.count} of ${limits.count} measurements (${c.failed} failed, ${c.inconclusive} inconclusive, ${c.consecutiveErrors} errors in a row)`,
    counts: c,
  };
}

/** Whether a phase ends the analysis. */
export const isFinished = (p: AnalysisPhase): boolean => p !== AnalysisPhase.Running;

/** Worst first, as Argo Rollouts orders them: Failed, Error, Inconclusive, Successful, Running. */
const severity: Record<AnalysisPhase, number> = {
  Running: 0,
  Successful: 1,
  Inconclusive: 2,
  Error: 3,
  Failed: 4,
};

/**
 * The phase of several analyses run together: Running while any runs (unless one already
 * Failed: a failed analysis ends the step at once), else the worst of them.
 */
export function combinedPhase(phases: readonly AnalysisPhase[]): AnalysisPhase {
  if (phases.includes(AnalysisPhase.Failed)) return AnalysisPhase.Failed;
  if (phases.includes(AnalysisPhase.Running)) return AnalysisPhase.Running;
  return phases.reduce<AnalysisPhase>(
    (w, p) => (severity[p] > severity[w] ? p : w),
    AnalysisPhase.Successful,
  );
}

/**
 * How long to wait before the next measurement, given how many were taken (errors included):
 * initialDelay (or 0) before the first, interval after each; null when the verdict says the
 * analysis is finished. Measurements that errored are retaken at the same interval (after
 * RETAKE_AFTER when the analysis has none: count 1).
 */
export function nextMeasurementDelayMs(
  analysis: Analysis,
  measurements: readonly Pick<Measurement, 'phase'>[],
): number | null {
  if (isFinished(analysisVerdict(analysis, measurements).phase)) return null;
  if (measurements.length === 0) return analysis.initialDelay ? durationMs(analysis.initialDelay) : 0;
  return durationMs(analysis.interval ?? RETAKE_AFTER);
}

/** When an analysis of count 1 (no interval) has to retake an errored measurement. */
export const RETAKE_AFTER = '10s';

// ---------------------------------------------------------------------------
// Failures of the measure activity (ApplicationFailure types)

export const AnalysisFailure = {
  /** The provider could not be reached, timed out or answered 5xx/429: retryable. */
  AnalysisProviderUnreachable: 'AnalysisProviderUnreachable',
  /** The provider refused the query (PromQL error, 4xx, a range vector, not JSON): non-retryable. */
  AnalysisQueryInvalid: 'AnalysisQueryInvalid',
  /** The provider refused the worker's credentials (401/403): non-retryable. */
  AnalysisAuthFailed: 'AnalysisAuthFailed',
  /**
   * The analysis cannot run on this worker: invalid input, a template variable without a value,
   * no such Prometheus server or web credentials, a URL the worker does not allow: non-retryable.
   */
  AnalysisConfigInvalid: 'AnalysisConfigInvalid',
} as const;
export type AnalysisFailure = (typeof AnalysisFailure)[keyof typeof AnalysisFailure];
