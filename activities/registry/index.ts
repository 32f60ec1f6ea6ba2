/** The OCI copier and its activities, for the worker (README.md beside this file). */
export { createRegistryActivities, type RegistryActivityDeps } from './activities.ts';
export { Copier, defaultCopierSettings, type CopierSettings, type CopyOptions } from './copier.ts';
export {
  CredentialsFileError,
  credentialFor,
  loadCredentials,
  parseCredentials,
  type RegistryCredentials,
} from './credentials.ts';
export { RegistryPool } from './pool.ts';
export type * from './types.ts';
