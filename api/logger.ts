/**
 * pino with redaction: whatever path a token, an Authorization header or a
 * kubeconfig could take into a log line is censored, even though the API
 * itself logs neither headers nor bodies.
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export const redactPaths = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  '*.headers.authorization',
  'token',
  'tokens',
  '*.token',
  '*.tokens',
  'password',
  '*.password',
  'kubeconfig',
  '*.kubeconfig',
];

export function createLogger(level: LevelWithSilent = 'info', destination?: DestinationStream): Logger {
  const options = { name: 'flotilla-api', level, redact: { paths: redactPaths, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}
