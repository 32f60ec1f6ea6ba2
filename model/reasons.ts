/** Condition reasons and failure types, one place (PascalCase, as Kubernetes has them). */
export const Reason = {
  WaveStarted: 'WaveStarted',
  WaveHealthy: 'WaveHealthy',
  WaveFailed: 'WaveFailed',
  AllWavesHealthy: 'AllWavesHealthy',
  WaitingForAction: 'WaitingForAction',
  RetryRequested: 'RetryRequested',
  /** A retry of an Aborted delivery: waves before its stop re-promoted without their gates, its wave resumed at its step. */
  Resumed: 'Resumed',
  ClusterSkipped: 'ClusterSkipped',
  RollbackStarted: 'RollbackStarted',
  RollbackComplete: 'RollbackComplete',
  RollbackFailed: 'RollbackFailed',
  Aborted: 'Aborted',
  FailedAsRequested: 'FailedAsRequested',
  Planned: 'Planned',
  PlanFailed: 'PlanFailed',
  NotUnderLock: 'NotUnderLock',
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
  /** An object exists that Flotilla did not create for this application (and adopt was not asked). */
  NotOwned: 'NotOwned',
  /** A namespace Flotilla never writes into (kube-*, or one the configuration protects). */
  ProtectedNamespace: 'ProtectedNamespace',
  /** The request cannot be planned against the fleet. */
  PlanFailed: 'PlanFailed',
  /** The image (tag or digest) is not in its registry. */
  ImageNotFound: 'ImageNotFound',
  /** The registry could not be reached or answered with a server error. */
  RegistryUnreachable: 'RegistryUnreachable',
  /** The registry refused our credentials. */
  RegistryAuthFailed: 'RegistryAuthFailed',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];
