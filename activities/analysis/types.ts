/**
 * The contract of the analysis activities (workflows import these types only)
 * and of the providers behind them.
 */
import type { Analysis, AnalysisVars, Measured, MeasurementPhase } from '../../model/analysis.ts';

export interface MeasureInput {
  /** The analysis as AnalysisSchema parsed it (it is parsed again on the worker). */
  analysis: Analysis;
  /** The template variables' values for this measurement (app, namespace, cluster, version, ...). */
  vars: AnalysisVars;
  /** The measurement's time, ms since the epoch, from the workflow's clock: a retried attempt queries the same instant. */
  at: number;
  /** For log lines. */
  deliveryId?: string;
}

export interface MeasureResult {
  phase: MeasurementPhase;
  /** Why: the value and what each condition said, "no data: ...", or the error. */
  message: string;
  /**
   * The value the conditions saw, when it is small and plain JSON (at most 2 KiB; no NaN or
   * infinities, which JSON cannot carry): `display` always has it.
   */
  value?: unknown;
  /** The value for people (NaN, +Inf shown as such; bounded). */
  display: string;
  /** What was asked: the filled PromQL query, or the method and URL (no secret is ever in either). */
  asked: string;
  at: number;
}

export interface AnalysisActivities {
  /** One measurement of one analysis. Failures: model/analysis.ts AnalysisFailure. */
  measure(input: MeasureInput): Promise<MeasureResult>;
}

/** A provider's answer: the value (or no data) and an excerpt of what it said, for people. */
export interface ProviderAnswer {
  value: Measured;
  raw: string;
}

export interface Provider {
  /** What is asked, for messages (no secret in it). */
  readonly asked: string;
  measure(o: { at: number; timeoutMs: number; signal?: AbortSignal }): Promise<ProviderAnswer>;
}

/** The provider answered, but with nothing the conditions can judge (a JSONPath that matched nothing): an Error measurement. */
export class MeasurementError extends Error {
  override name = 'MeasurementError';
}
