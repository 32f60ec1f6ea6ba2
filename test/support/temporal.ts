import { DefaultLogger, Runtime } from '@temporalio/worker';

/** Installs a Temporal runtime that logs warnings only; a second call in the same process is harmless. */
export function quietRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // installed already in this process
  }
}
