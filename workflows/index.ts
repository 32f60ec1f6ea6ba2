export { delivery } from './delivery.ts';
export { application } from './application.ts';
export { preflight } from './preflight.ts';
export { replication, replicationPreflight } from './replication.ts';
