/** Harbor replication activities, for the worker (README.md beside this file). */
export { createHarborActivities, type HarborActivityDeps } from './activities.ts';
export { HarborClient, harborUrl } from './client.ts';
export type * from './types.ts';
