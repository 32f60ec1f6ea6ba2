/**
 * What a `rollback` of a FINISHED delivery restores: the version the
 * application had before it (after a Healthy delivery, the version before that
 * delivery's; after one that failed or stopped, the last version, which it
 * never replaced), exactly as that version rendered it, on the clusters the
 * delivery changed. Pure: it reads the finished delivery's status and the
 * application's record, and refuses (409) when restoring would not mean what
 * the caller thinks.
 */
import { DeployRequestSchema, type ClusterInfo, type DeliveryStatus, type DeployRequest } from '../model/index.ts';
import type { AppState, AppVersion } from '../workflows/messages.ts';
import { HttpError } from './errors.ts';

const refuse = (code: string, message: string, details?: unknown): HttpError =>
  new HttpError(409, code, message, details === undefined ? {} : { details });

/** Cluster phases that mean the finished delivery never changed the cluster. */
const untouched = new Set(['Pending', 'Skipped']);

/** A delivery that puts version `v` back on `clusters` (exactly what it rendered there, read from each cluster). */
export function versionRequest(app: Pick<AppState, 'name' | 'namespace'>, v: AppVersion, clusters: string[], waves?: string[][]): DeployRequest {
  return DeployRequestSchema.parse({
    type: 'deploy',
    app: { name: app.name, namespace: app.namespace, source: { version: v.number }, placement: { clusters } },
    ...(waves ? { waves } : {}),
    // A restore that fails should wait for an SRE, not roll back to the state it is undoing.
    onFailure: 'pause',
  });
}

export function restoreRequest(finished: DeliveryStatus, app: AppState, fleet: readonly ClusterInfo[]): DeployRequest {
  const ref = `${app.namespace}/${app.name}`;
  if (finished.phase === 'RolledBack') throw refuse('NothingToRollBack', `delivery ${finished.id} was already rolled back`);
  if (app.activeDelivery) {
    throw refuse('DeliveryInProgress', `delivery ${app.activeDelivery} of ${ref} is still running`, {
      activeDelivery: app.activeDelivery,
      status: `/v1/deliveries/${app.activeDelivery}`,
    });
  }
  const at = app.deliveries.findIndex((d) => d.id === finished.id);
  if (at < 0) throw refuse('RollbackUnavailable', `delivery ${finished.id} is no longer in the recent history of ${ref}`);
  // Only a later delivery that itself rolled back leaves the clusters where this one put them.
  const later = app.deliveries.slice(0, at).find((d) => d.phase !== 'RolledBack');
  if (later) {
    throw refuse('Superseded', `delivery ${later.id} (${later.phase}) changed ${ref} after ${finished.id}; roll back that one instead`, { laterDelivery: later.id });
  }

  // A Healthy delivery became a version: go back to the one before it. One that ended otherwise never did: the
  // newest version is still the last good state, which it may have half replaced.
  const target = finished.phase === 'Healthy' ? app.versions.find((v) => finished.version !== undefined && v.number < finished.version) : app.versions[0];
  if (!target) {
    throw refuse('NothingToRollBack', `${ref} has no earlier version to restore (${finished.phase === 'Healthy' ? `delivery ${finished.id} was its first, or the ones before are past the history limit` : 'no delivery of it ended Healthy yet'})`);
  }

  const changed = finished.waves.flat().filter((n) => finished.clusters[n] && !untouched.has(finished.clusters[n].phase));
  if (changed.length === 0) throw refuse('NothingToRollBack', `delivery ${finished.id} changed no cluster`);
  const gone = changed.filter((n) => !fleet.some((c) => c.name === n));
  if (gone.length) throw refuse('RollbackUnavailable', `${gone.join(', ')} ${gone.length > 1 ? 'are' : 'is'} no longer in the fleet`, { clusters: gone });
  const outside = changed.filter((n) => !target.clusters.includes(n));
  if (outside.length > 0) {
    // Restoring there would mean removing the application, which a deploy does not do.
    throw refuse('RollbackUnavailable', `version ${target.number} of ${ref} did not run on ${outside.join(', ')}; remove it there by hand or deliver again`, { clusters: outside });
  }
  const waves = finished.waves.map((w) => w.filter((n) => changed.includes(n))).filter((w) => w.length > 0);
  return versionRequest(app, target, changed, waves);
}
