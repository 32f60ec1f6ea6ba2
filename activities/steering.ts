/**
 * The traffic-steering hook: called when a cluster is failed over and when it is failed back, so a GSLB
 * or DNS system can follow (stop sending users to the failed cluster; send them back once its replicas
 * are ready again). One small interface; the default does nothing, and `webhookSteering` posts the
 * `cluster.failedOver` / `cluster.failedBack` event (activities/notify/events.ts), HMAC-signed, to the
 * sinks of a notify configuration file (FLOTILLA_TRAFFIC_STEERING on the worker), with the notify
 * activity's retry and signature rules.
 *
 * When it is called: on failover, as the replicas start moving (the failed cluster serves nobody anyway;
 * a hook that is down never holds a move); on failback, after the replicas are back and ready.
 */
import type { Logger } from 'pino';
import { createNotifyActivities, loadNotifyConfig, type NotifyConfig } from './notify/index.ts';

export interface SteeringEvent {
  type: 'cluster.failedOver' | 'cluster.failedBack';
  /** Stable across retries: receivers drop repeats. */
  id: string;
  at: string;
  cluster: string;
  /** failedOver: the clusters that took the replicas. */
  to?: string[];
  /** failedBack: the clusters the replicas came back from. */
  from?: string[];
  reason: string;
  /** `<namespace>/<name>` of every application moved. */
  apps: string[];
}

export interface TrafficSteering {
  steer(event: SteeringEvent): Promise<void>;
}

/** The default: nothing follows. */
export const noSteering: TrafficSteering = { steer: async () => undefined };

/** Posts each event, signed, to the configured sinks (must run inside an activity: it heartbeats its progress). */
export function webhookSteering(config: NotifyConfig, logger: Logger): TrafficSteering {
  const notify = createNotifyActivities({ config, logger: logger.child({ component: 'steering' }), userAgent: 'flotilla-steering/1' });
  return {
    async steer(e) {
      const event =
        e.type === 'cluster.failedOver'
          ? { type: e.type, id: e.id, at: e.at, cluster: e.cluster, to: e.to ?? [], reason: e.reason, apps: e.apps }
          : { type: e.type, id: e.id, at: e.at, cluster: e.cluster, from: e.from ?? [], reason: e.reason, apps: e.apps };
      await notify.notify({ event });
    },
  };
}

/** The worker's hook: a webhook when FLOTILLA_TRAFFIC_STEERING names a sinks file, else none. */
export function steeringFromEnv(env: Readonly<Record<string, string | undefined>>, logger: Logger): TrafficSteering {
  const file = env.FLOTILLA_TRAFFIC_STEERING;
  return file ? webhookSteering(loadNotifyConfig(file, env), logger) : noSteering;
}
