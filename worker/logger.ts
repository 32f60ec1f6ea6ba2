/**
 * pino, with redaction of anything that could carry a credential: tokens,
 * passwords, Authorization headers, kubeconfigs and their client key/cert data.
 * Also an adapter so the Temporal SDK logs through the same logger.
 */
import { pino, type DestinationStream, type Level, type Logger } from 'pino';
import type { Logger as TemporalLogger, LogLevel, LogMetadata } from '@temporalio/common';

const secretKeys = [
  'token',
  'accessToken',
  'bearerToken',
  'password',
  'authorization',
  'Authorization',
  'kubeconfig',
  'client-key-data',
  'client-certificate-data',
  'clientKeyData',
  'clientCertificateData',
  'keyData',
  'certData',
];

/** Each secret key at the top level and up to three levels down (pino's wildcards match one level each). */
export const REDACT_PATHS: string[] = secretKeys.flatMap((k) => {
  const key = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
  const join = (prefix: string) => (key.startsWith('[') ? `${prefix}${key}` : `${prefix}.${key}`);
  return [key, join('*'), join('*.*'), join('*.*.*')];
});

export function createLogger(level: Level | 'silent' = 'info', destination?: DestinationStream): Logger {
  return pino(
    {
      name: 'flotilla-worker',
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    destination,
  );
}

const toPino: Record<LogLevel, Level> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/** SDK warnings that are the design here: activity-only workers on cluster queues poll no workflows. */
const expected = new Set(['No workflows registered, not polling for workflow tasks']);

/** The Temporal SDK's Logger on top of pino (for Runtime.install and bundleWorkflowCode). */
export function temporalLogger(log: Logger): TemporalLogger {
  const at = (level: LogLevel) => (message: string, meta?: LogMetadata) =>
    log[expected.has(message) ? 'debug' : toPino[level]]({ ...(meta ?? {}) }, message);
  return {
    log: (level, message, meta) => at(level)(message, meta),
    trace: at('TRACE'),
    debug: at('DEBUG'),
    info: at('INFO'),
    warn: at('WARN'),
    error: at('ERROR'),
  };
}
