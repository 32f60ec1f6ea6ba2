/** Condition reasons and failure types, one place (PascalCase, as Kubernetes has them). */
export const Reason = {
  WaveStarted: 'WaveStarted',
  WaveHealthy: 'WaveHealthy',
  WaveFailed: 'WaveFailed',
  AllWavesHealthy: 'AllWavesHealthy',
  WaitingForAction: 'WaitingForAction',
  RetryRequested: 'RetryRequested',
  ClusterSkipped: 'ClusterSkipped',
  RollbackStarted: 'RollbackStarted',
  RollbackComplete: 'RollbackComplete',
  RollbackFailed: 'RollbackFailed',
  Aborted: 'Aborted',
  FailedAsRequested: 'FailedAsRequested',
} as const;

export const FailureType = {
  ClusterUnreachable: 'ClusterUnreachable',
  InvalidManifest: 'InvalidManifest',
  Forbidden: 'Forbidden',
  NotFound: 'NotFound',
  Conflict: 'Conflict',
  RolloutFailed: 'RolloutFailed',
  RolloutTimeout: 'RolloutTimeout',
  NoPreviousRevision: 'NoPreviousRevision',
  UnknownCluster: 'UnknownCluster',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];
