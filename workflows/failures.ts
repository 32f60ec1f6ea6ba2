/**
 * Reads what failed out of an activity failure by its `type` string and name,
 * never by instanceof: workflow code runs in its own V8 context.
 */
import { FailureType } from '../model/reasons.ts';

export interface FailureSummary {
  type: string;
  message: string;
  /** The cluster could not be reached (or no worker served its queue) within the wait. */
  unreachable: boolean;
}

interface FailureLike {
  name?: string;
  type?: string;
  message?: string;
  timeoutType?: unknown;
  cause?: unknown;
}

export function summarizeFailure(err: unknown): FailureSummary {
  const chain: FailureLike[] = [];
  for (let e = err as FailureLike | undefined; e && chain.length < 10; e = e.cause as FailureLike | undefined) chain.push(e);
  const app = chain.find((e) => e.name === 'ApplicationFailure' && typeof e.type === 'string' && e.type !== '');
  const timeout = chain.find((e) => e.name === 'TimeoutFailure');
  if (app) {
    const unreachable = app.type === FailureType.ClusterUnreachable;
    const prefix = timeout && unreachable ? 'gave up waiting for the cluster: ' : '';
    return { type: app.type!, message: prefix + (app.message ?? ''), unreachable };
  }
  if (timeout) {
    return {
      type: FailureType.ClusterUnreachable,
      message: `no answer from the cluster's worker in time (${String(timeout.timeoutType ?? 'timeout')}): is the cluster's worker running?`,
      unreachable: true,
    };
  }
  const deepest = chain[chain.length - 1];
  return { type: 'Unknown', message: deepest?.message ?? String(err), unreachable: false };
}
