/**
 * The analysis wave step: every analysis of the step measured side by side on
 * the hub (initialDelay, then every interval; a failed activity counts as an
 * Error measurement), until each has a verdict. Successful goes on; Failed or
 * Error aborts the delivery; Inconclusive pauses for a human, whose `promote`
 * goes on (abort and rollback work as anywhere).
 */
import { ActivityFailure, ApplicationFailure, condition, proxyActivities, sleep } from '@temporalio/workflow';
import type { AnalysisActivities, MeasureResult } from '../../activities/analysis/types.ts';
import {
  analysisVerdict,
  combinedPhase,
  errorMeasurement,
  nextMeasurementDelayMs,
  Reason,
  type Analysis,
  type AnalysisVars,
  type Measurement,
  type PlanStep,
} from '../../model/index.ts';
import type { RunContext } from '../context.ts';
import { HUB_TASK_QUEUE } from '../messages.ts';
import { StopDelivery } from '../stop.ts';

const { measure } = proxyActivities<AnalysisActivities>({
  taskQueue: HUB_TASK_QUEUE,
  startToCloseTimeout: '6m',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 3, nonRetryableErrorTypes: ['AnalysisQueryInvalid', 'AnalysisAuthFailed', 'AnalysisConfigInvalid'] },
});

async function runOne(x: RunContext, analysis: Analysis, vars: AnalysisVars): Promise<{ name: string; phase: string; message: string }> {
  const measurements: (Measurement & { result?: MeasureResult })[] = [];
  for (;;) {
    const delay = nextMeasurementDelayMs(analysis, measurements);
    if (delay === null) break;
    if (delay > 0) await sleep(delay);
    const at = new Date().getTime(); // the workflow's clock (deterministic)
    try {
      const result = await measure({ analysis, vars, at, deliveryId: x.deliveryId });
      measurements.push({ phase: result.phase, at, message: result.message, result });
    } catch (err) {
      const cause = err instanceof ActivityFailure ? err.cause : err;
      const type = cause instanceof ApplicationFailure ? cause.type : undefined;
      measurements.push(errorMeasurement({ type, message: (cause as Error)?.message }, at));
    }
  }
  const v = analysisVerdict(analysis, measurements);
  const last = measurements[measurements.length - 1];
  return { name: analysis.name, phase: v.phase, message: `${analysis.name}: ${v.phase} (${v.message ?? ''}${last ? `; last: ${last.message}` : ''})` };
}

export async function analysisStep(x: RunContext, wave: number, clusters: string[], step: PlanStep): Promise<void> {
  if (step.kind !== 'analysis') throw new Error(`analysis module got ${step.kind}`);
  if (x.canary.full) return;
  const first = x.plan().clusters[clusters[0]!];
  const vars: AnalysisVars = {
    app: x.owner.name,
    namespace: x.owner.namespace,
    delivery: x.deliveryId,
    ...(clusters.length === 1 ? { cluster: clusters[0]! } : {}),
    ...(x.request.app.image ? { version: tagOf(x.request.app.image) } : first?.image ? { version: tagOf(first.image) } : {}),
  };
  for (const n of clusters) x.state.setCluster(n, 'Progressing', `analysis ${step.analyses.map((a) => a.name).join(', ')} running`);
  const results = await Promise.all(step.analyses.map((a) => runOne(x, a, vars)));
  const phase = combinedPhase(results.map((r) => r.phase as Parameters<typeof combinedPhase>[0][number]));
  const summary = results.map((r) => r.message).join('; ');
  x.state.audit({ who: 'flotilla', action: `analysis:${phase}`, comment: summary.slice(0, 2000) });
  if (phase === 'Successful') {
    for (const n of clusters) x.state.setCluster(n, 'Progressing', `analysis passed: ${summary}`);
    return;
  }
  if (phase === 'Inconclusive') {
    const seen = x.canary.promotions;
    const message = `wave ${wave + 1}: analysis inconclusive, waiting for a human (promote goes on; abort or rollback stops): ${summary}`;
    for (const n of clusters) x.state.setCluster(n, 'Progressing', message);
    x.state.setPhase('Paused', message);
    x.state.condition('Paused', 'True', Reason.WaitingForAction, message);
    await condition(() => x.canary.promotions > seen || x.canary.full);
    x.state.setPhase('Progressing', `analysis overridden by ${x.canary.lastPromoter ?? 'someone'}`);
    x.state.condition('Paused', 'False', Reason.WaitingForAction, 'promoted past an inconclusive analysis');
    return;
  }
  throw new StopDelivery('abort', `analysis of wave ${wave + 1} ${phase === 'Error' ? 'could not measure' : 'failed'}: ${summary}`);
}

/** The tag (or digest) that names a version in metrics: `repo:tag` -> tag, `repo@sha256:x` -> sha256:x. */
function tagOf(image: string): string {
  const at = image.indexOf('@');
  if (at >= 0) return image.slice(at + 1);
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  return colon > slash ? image.slice(colon + 1) : 'latest';
}
