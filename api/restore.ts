/**
 * What a `rollback` of a FINISHED delivery restores: a new deploy of the
 * application's last good spec to the clusters that delivery changed, with the
 * replicas each cluster had under that spec. Pure: it reads the finished
 * delivery's status and the application's durable state, and refuses (409)
 * when restoring would not mean what the caller thinks.
 */
import {
  DeployRequestSchema,
  planDeploy,
  PlanError,
  resolvePlacement,
  type AppSpec,
  type ClusterInfo,
  type DeliveryStatus,
  type DeployRequest,
} from '../model/index.ts';
import type { AppState } from '../workflows/messages.ts';
import { HttpError } from './errors.ts';

const refuse = (code: string, message: string, details?: unknown): HttpError =>
  new HttpError(409, code, message, details === undefined ? {} : { details });

/** Cluster phases that mean the finished delivery never changed the cluster. */
const untouched = new Set(['Pending', 'Skipped']);

export function restoreRequest(
  finished: DeliveryStatus,
  app: AppState,
  fleet: readonly ClusterInfo[],
): DeployRequest {
  const ref = `${app.namespace}/${app.name}`;
  if (finished.phase === 'RolledBack')
    throw refuse('NothingToRollBack', `delivery ${finished.id} was already rolled back`);
  if (app.activeDelivery) {
    throw refuse('DeliveryInProgress', `delivery ${app.activeDelivery} of ${ref} is still running`, {
      activeDelivery: app.activeDelivery,
      status: `/v1/deliveries/${app.activeDelivery}`,
    });
  }
  const at = app.deliveries.findIndex((d) => d.id === finished.id);
  if (at < 0)
    throw refuse(
      'RollbackUnavailable',
      `delivery ${finished.id} is no longer in the recent history of ${ref}`,
    );
  // Only a later delivery that itself rolled back leaves the clusters where this one put them.
  const later = app.deliveries.slice(0, at).find((d) => d.phase !== 'RolledBack');
  if (later) {
    throw refuse(
      'Superseded',
      `delivery ${later.id} (${later.phase}) changed ${ref} after ${finished.id}; roll back that one instead`,
      { laterDelivery: later.id },
    );
  }

  // A Healthy delivery became the application's spec: go back to the one before it. A delivery that ended
  // otherwise never became the spec: the spec is still the last good state, which it may have half replaced.
  const target: AppSpec | undefined = finished.phase === 'Healthy' ? app.previousSpec : app.spec;
  if (!target) {
    throw refuse(
      'NothingToRollBack',
      `${ref} has no earlier healthy state to restore (delivery ${finished.id} was its first)`,
    );
  }

  const changed = finished.waves
    .flat()
    .filter((n) => finished.clusters[n] && !untouched.has(finished.clusters[n].phase));
  if (changed.length === 0) throw refuse('NothingToRollBack', `delivery ${finished.id} changed no cluster`);

  let placed: string[];
  let replicas: Record<string, number>;
  try {
    placed = resolvePlacement(target.placement, fleet).map((c) => c.name);
    const plan = planDeploy(target, fleet);
    replicas = Object.fromEntries(Object.values(plan.targets).map((t) => [t.cluster, t.replicas]));
  } catch (e) {
    if (e instanceof PlanError)
      throw refuse(
        'RollbackUnavailable',
        `the earlier spec of ${ref} no longer fits the fleet: ${e.message}`,
      );
    throw e;
  }
  const outside = changed.filter((n) => !placed.includes(n));
  if (outside.length > 0) {
    // Restoring there would mean removing the application, which a deploy does not do.
    throw refuse(
      'RollbackUnavailable',
      `the earlier spec of ${ref} did not run on ${outside.join(', ')}; remove it there by hand or deliver again`,
      { clusters: outside },
    );
  }

  const overrides = Object.fromEntries(
    changed.map((n) => [n, { ...(target.overrides[n] ?? {}), replicas: replicas[n]! }]),
  );
  const total =
    target.distribution === 'divided' ? changed.reduce((sum, n) => sum + replicas[n]!, 0) : target.replicas;
  const waves = finished.waves.map((w) => w.filter((n) => changed.includes(n))).filter((w) => w.length > 0);
  return DeployRequestSchema.parse({
    type: 'deploy',
    app: { ...target, replicas: total, placement: { clusters: changed }, overrides },
    waves,
    // A restore that fails should wait for an SRE, not roll back to the state it is undoing.
    onFailure: 'pause',
  });
}
