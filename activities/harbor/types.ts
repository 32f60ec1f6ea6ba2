/**
 * The Harbor activities' contract, for the workflow side (`import type`).
 * Registries are named as in the registry inventory; no credentials here.
 */

export interface EnsureHarborReplicationInput {
  /** The Harbor that replicates (a registry of type harbor in the inventory). */
  harbor: string;
  /**
   * Where to (a registry of the inventory). Another registry: the Harbor pushes to it (a push policy to its
   * registry endpoint, ensured too). The Harbor itself: it pulls from `source` (a pull policy).
   */
  target: string;
  /** Where from, when the Harbor is the target (a registry of the inventory: its endpoint in Harbor is ensured). */
  source?: string;
  /** Repository in the Harbor, `<project>/<name>` (the policy's name filter). */
  repository: string;
  /** Tag to replicate (the policy's tag filter); absent: every tag. */
  tag?: string;
  /** Destination namespace (Harbor replaces the repository's namespace with it); absent: the same path. */
  destNamespace?: string;
}

export interface EnsureHarborReplicationResult {
  policyId: number;
  policyName: string;
  /** Harbor's id of the target's registry endpoint. */
  registryId: number;
  created: boolean;
  /** Found, and changed to match (filters, destination). */
  updated: boolean;
}

export interface StartHarborReplicationInput {
  harbor: string;
  policyId: number;
}

export interface StartHarborReplicationResult {
  executionId: number;
}

export interface WaitForHarborReplicationInput {
  harbor: string;
  executionId: number;
  /** Fail with ReplicationFailed when the execution has not ended by then (default 30 min). */
  timeoutMs?: number;
  /** A successful execution that copied nothing fails (the policy matched no image); default true. */
  requireArtifacts?: boolean;
}

export interface HarborFailedTask {
  id: number;
  status: string;
  srcResource?: string;
  dstResource?: string;
  /** The last lines of the task's log. */
  log: string[];
}

export interface HarborReplicationResult {
  executionId: number;
  status: string;
  statusText?: string;
  total: number;
  succeed: number;
  failed: number;
  stopped: number;
  durationMs: number;
}

/** As workflows see them (`proxyActivities<HarborActivities>`). */
export interface HarborActivities {
  /** Finds the policy by name (`flotilla-<target>-<repository>`), creates or updates it; never duplicates. */
  ensureHarborReplication(input: EnsureHarborReplicationInput): Promise<EnsureHarborReplicationResult>;
  /** POST /replication/executions: not idempotent, so a step of its own (retry only on RegistryUnreachable). */
  startHarborReplication(input: StartHarborReplicationInput): Promise<StartHarborReplicationResult>;
  /**
   * Polls the execution to its end with heartbeats. Success -> the counts; Error or Stopped ->
   * ReplicationFailed naming each failed task with the last lines of its log.
   */
  waitForHarborReplication(input: WaitForHarborReplicationInput): Promise<HarborReplicationResult>;
}
