/**
 * A workflow for the analysis tests, and a sketch of the engine's analysis
 * step: measure at initialDelay, then every interval, record a failed
 * activity as an Error measurement, stop at the first verdict that is not
 * Running. The measure activity runs with the retry profile a delivery would
 * give it (AnalysisProviderUnreachable retried briefly, inside the interval).
 */
import { ActivityFailure, ApplicationFailure, proxyActivities, sleep } from '@temporalio/workflow';
import type { AnalysisActivities, MeasureResult } from '../../activities/analysis/types.ts';
import {
  analysisVerdict,
  errorMeasurement,
  nextMeasurementDelayMs,
  type Analysis,
  type AnalysisVars,
  type Measurement,
  type Verdict,
} from '../../model/analysis.ts';

const { measure } = proxyActivities<AnalysisActivities>({
  startToCloseTimeout: '40s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '1s', maximumAttempts: 2 },
});

export interface AnalysisRun {
  verdict: Verdict;
  measurements: (Measurement & { result?: MeasureResult; failureType?: string })[];
}

export async function analysisWorkflow(input: {
  analysis: Analysis;
  vars: AnalysisVars;
}): Promise<AnalysisRun> {
  const measurements: AnalysisRun['measurements'] = [];
  for (;;) {
    const delay = nextMeasurementDelayMs(input.analysis, measurements);
    if (delay === null) break;
    if (delay > 0) await sleep(delay);
    const at = Date.now(); // workflow time
    try {
      const result = await measure({ analysis: input.analysis, vars: input.vars, at });
      measurements.push({ phase: result.phase, at, message: result.message, result });
    } catch (err) {
      const cause = err instanceof ActivityFailure ? err.cause : err;
      const type = cause instanceof ApplicationFailure ? cause.type : undefined;
      measurements.push({
        ...errorMeasurement({ type, message: (cause as Error)?.message }, at),
        ...(type ? { failureType: type } : {}),
      });
    }
  }
  return { verdict: analysisVerdict(input.analysis, measurements), measurements };
}
