export { delivery } from './delivery.ts';
export { application } from './application.ts';
export { preflight } from './preflight.ts';
export { replication, replicationPreflight } from './replication.ts';
export { fleetMonitor } from './fleetMonitor.ts';
export { clusterFailover } from './failover.ts';
