/**
 * What the CLI reads from the API's JSON. The CLI talks to the API over HTTP
 * only, so these are its own loose views of the answers (api/schemas.ts is the
 * authority): every field it does not strictly need is optional, so that a
 * server of another version (one that adds canary steps, say) still renders.
 */

export const Phase = {
  Pending: 'Pending',
  Progressing: 'Progressing',
  Paused: 'Paused',
  NeedsAttention: 'NeedsAttention',
  Healthy: 'Healthy',
  Degraded: 'Degraded',
  Aborted: 'Aborted',
  RolledBack: 'RolledBack',
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

export const terminalPhases: readonly string[] = [Phase.Healthy, Phase.Degraded, Phase.Aborted, Phase.RolledBack];
export const isTerminal = (phase: string): boolean => terminalPhases.includes(phase);

/**
 * Exit codes of every command. `--wait` and `--watch` end with 0 only when the
 * delivery reached the phase asked for (Healthy for a deploy, RolledBack for a
 * rollback, Aborted for an abort).
 */
export const ExitCode = {
  ok: 0,
  /** Usage error, bad spec, API error (4xx/5xx), API unreachable. */
  error: 1,
  /** The delivery ended in another phase than the one asked for (Degraded, Aborted, RolledBack). */
  failed: 2,
  /** The delivery waits for an SRE (NeedsAttention) and --fail-on-pause was given. */
  needsAttention: 3,
  /** --timeout passed while the delivery was still running. */
  timeout: 4,
  /** Interrupted (Ctrl-C): the delivery itself goes on. */
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

export interface ClusterView {
  cluster: string;
  wave?: number;
  phase: string;
  image?: string;
  desiredReplicas?: number;
  readyReplicas?: number;
  revision?: number;
  previousRevision?: number;
  message?: string;
  failureType?: string;
  attempts?: number;
  step?: number;
}

export interface AuditView {
  at: string;
  who: string;
  action: string;
  cluster?: string;
  gate?: string;
  comment?: string;
}

export interface StatusView {
  id: string;
  type?: string;
  app?: { name: string; namespace: string };
  image?: string;
  digest?: string;
  phase: string;
  message?: string;
  conditions?: Condition[];
  currentWave?: number;
  waves?: string[][];
  steps?: string[];
  currentStep?: number;
  clusters?: Record<string, ClusterView>;
  audit?: AuditView[];
  startedAt?: string;
  finishedAt?: string;
}

export interface AcceptedView {
  id: string;
  status?: string;
  rollbackOf?: string;
  retryOf?: string;
  digests?: Record<string, string>;
  unchecked?: { cluster: string; reason: string }[];
}

export interface ListItemView {
  id: string;
  app?: string;
  phase?: string;
  type?: string;
  startedAt?: string;
  closedAt?: string;
  image?: string;
  requestedBy?: string;
  rollbackOf?: string;
}

export interface AppView {
  name: string;
  namespace: string;
  spec?: { image?: string; replicas?: number };
  clusters?: Record<
    string,
    {
      image?: string;
      replicas?: number;
      readyReplicas?: number;
      revision?: number;
      deliveryId?: string;
      phase?: string;
      verified?: boolean;
      at?: string;
    }
  >;
  activeDelivery?: string;
  deliveries?: {
    id: string;
    type?: string;
    image?: string;
    phase?: string;
    startedAt?: string;
    finishedAt?: string;
    requestedBy?: string;
    rollbackOf?: string;
  }[];
}

/** Shapes a StatusView must have: anything else from a status endpoint is refused rather than half drawn. */
export function isStatus(v: unknown): v is StatusView {
  return typeof v === 'object' && v !== null && typeof (v as StatusView).id === 'string' && typeof (v as StatusView).phase === 'string';
}
