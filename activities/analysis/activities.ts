/**
 * The analysis activity: `measure({analysis, vars, at})` takes one measurement
 * and judges it. The worker builds it once with its analysis configuration
 * and registers it on the hub queue (where Prometheus is reachable).
 *
 * What comes back and what is thrown:
 *   - a measurement (Successful / Failed / Inconclusive / Error, with a message): the provider
 *     answered; Error when the conditions could not judge the value (a list where a number
 *     was expected, a JSONPath that matched nothing);
 *   - AnalysisProviderUnreachable (retryable): let Temporal retry within the measurement's
 *     budget, then record errorMeasurement(failure) (model/analysis.ts);
 *   - AnalysisQueryInvalid, AnalysisAuthFailed, AnalysisConfigInvalid (non-retryable): record
 *     errorMeasurement(failure) too; consecutiveErrorLimit ends the analysis as Error.
 *
 * Proxy profile for workflows: startToCloseTimeout a few seconds above the analysis'
 * `timeout`; retry AnalysisProviderUnreachable a couple of times with a short backoff
 * (well inside `interval`); no heartbeat (a measurement is one request). Cancelling the
 * activity aborts its request.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import {
  AnalysisFailure,
  AnalysisSchema,
  fillTemplate,
  judge,
  MeasurementPhase,
  showValue,
  TemplateError,
  type Analysis,
} from '../../model/analysis.ts';
import { durationMs } from '../../model/names.ts';
import type { AnalysisConfig } from './config.ts';
import { analysisFailure } from './http.ts';
import { prometheusProvider } from './prometheus.ts';
import {
  MeasurementError,
  type AnalysisActivities,
  type MeasureInput,
  type MeasureResult,
  type Provider,
} from './types.ts';
import { webProvider } from './web.ts';

export interface AnalysisActivityDeps {
  config: AnalysisConfig;
  logger: Logger;
}

const MAX_VALUE_JSON = 2048;

/** The value as the result carries it: small plain JSON only (Temporal's JSON would turn NaN into null). */
function portable(value: unknown): unknown {
  const plain = (v: unknown): boolean =>
    v === null ||
    typeof v === 'string' ||
    typeof v === 'boolean' ||
    (typeof v === 'number' && Number.isFinite(v)) ||
    (Array.isArray(v) && v.every(plain)) ||
    (typeof v === 'object' && Object.values(v as object).every(plain));
  if (!plain(value)) return undefined;
  const s = JSON.stringify(value);
  return s !== undefined && s.length <= MAX_VALUE_JSON ? value : undefined;
}

/** The provider of an analysis on this worker, with its templates filled. */
export function providerFor(
  analysis: Analysis,
  vars: MeasureInput['vars'],
  config: AnalysisConfig,
): Provider {
  try {
    const p = analysis.provider;
    if (p.prometheus) {
      const server = config.prometheus[p.prometheus.server];
      if (!server)
        throw analysisFailure(
          AnalysisFailure.AnalysisConfigInvalid,
          p.prometheus.server === 'default'
            ? 'this worker has no Prometheus server (set FLOTILLA_PROMETHEUS_URL, or prometheus.default in FLOTILLA_ANALYSIS_CONFIG)'
            : `this worker has no Prometheus server named "${p.prometheus.server}" (known: ${Object.keys(config.prometheus).join(', ') || 'none'})`,
        );
      return prometheusProvider(
        server,
        p.prometheus.server,
        fillTemplate(p.prometheus.query, vars),
        config.maxResponseBytes,
      );
    }
    if (p.web) return webProvider(p.web, vars, config);
    throw analysisFailure(AnalysisFailure.AnalysisConfigInvalid, 'the analysis names no provider');
  } catch (err) {
    if (err instanceof TemplateError)
      throw analysisFailure(
        AnalysisFailure.AnalysisConfigInvalid,
        `analysis "${analysis.name}": ${err.message}`,
      );
    throw err;
  }
}

/**
 * Problems that keep an analysis from running on a worker with this configuration (no such
 * server, a URL not allowed, unknown credentials), for a preflight before the delivery starts.
 */
export function analysisProblems(
  analysis: Analysis,
  vars: MeasureInput['vars'],
  config: AnalysisConfig,
): string[] {
  try {
    providerFor(analysis, vars, config);
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

/** One measurement, outside Temporal too (tests, a preflight): the activity runs this. */
export async function measureOnce(
  deps: AnalysisActivityDeps,
  input: MeasureInput,
  signal?: AbortSignal,
): Promise<MeasureResult> {
  const parsed = AnalysisSchema.safeParse(input?.analysis);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .map((i) => `${i.path.join('.') || '(analysis)'}: ${i.message}`)
      .join('; ');
    throw analysisFailure(AnalysisFailure.AnalysisConfigInvalid, `measure: invalid analysis: ${issues}`);
  }
  const analysis = parsed.data;
  const at = Number.isFinite(input.at) ? input.at : Date.now();
  const log = deps.logger.child({
    component: 'analysis',
    analysis: analysis.name,
    ...(input.deliveryId ? { deliveryId: input.deliveryId } : {}),
    ...(input.vars?.cluster ? { cluster: input.vars.cluster } : {}),
  });
  const provider = providerFor(analysis, input.vars ?? {}, deps.config);
  const started = performance.now();
  let out: MeasureResult;
  try {
    const answer = await provider.measure({
      at,
      timeoutMs: durationMs(analysis.timeout),
      ...(signal ? { signal } : {}),
    });
    const j = judge(analysis, answer.value);
    const shown = 'noData' in answer.value ? answer.raw : showValue(answer.value.result);
    const value = 'noData' in answer.value ? undefined : portable(answer.value.result);
    out = {
      phase: j.phase,
      message: j.message,
      ...(value !== undefined ? { value } : {}),
      display: shown,
      asked: provider.asked,
      at,
    };
  } catch (err) {
    if (!(err instanceof MeasurementError)) {
      if (!(err instanceof ApplicationFailure) && !(err instanceof CancelledFailure))
        log.error({ err }, 'measurement failed unexpectedly');
      else
        log.warn(
          { type: (err as ApplicationFailure).type, message: (err as Error).message },
          'measurement failed',
        );
      throw err;
    }
    out = { phase: MeasurementPhase.Error, message: err.message, display: '', asked: provider.asked, at };
  }
  log.info(
    { phase: out.phase, value: out.display, ms: Math.round(performance.now() - started) },
    `measurement ${out.phase}: ${out.message}`,
  );
  return out;
}

export function createAnalysisActivities(deps: AnalysisActivityDeps): AnalysisActivities {
  return {
    async measure(input) {
      let signal: AbortSignal | undefined;
      try {
        signal = Context.current().cancellationSignal;
      } catch {
        signal = undefined; // called outside an activity (a test, a preflight)
      }
      return measureOnce(deps, input, signal);
    },
  };
}
