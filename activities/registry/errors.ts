/**
 * The one place where what a registry call threw becomes a typed
 * ApplicationFailure (model/registry.ts RegistryFailure):
 *
 *   connection refused/reset/timeout, 408, 429, 5xx   -> RegistryUnreachable (retryable)
 *   401, 403 (and a token server refusing)             -> RegistryAuthFailed  (non-retryable)
 *   404 of a manifest or blob being read               -> ImageNotFound       (non-retryable)
 *   content that does not match its digest or size     -> DigestMismatch      (non-retryable)
 *   any other 4xx, an unsupported manifest             -> RegistryRejected    (non-retryable)
 *
 * Messages name the registry, the repository and the reference; never a
 * credential, a header or an upload URL's query.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { RegistryFailure } from '../../model/registry.ts';
import { connectionErrorCode } from '../kubernetes/errors.ts';

/** What the registry said in an OCI error body: `{"errors":[{"code","message","detail"}]}`. */
export interface RegistryErrorBody {
  code?: string;
  message?: string;
}

/** A response whose status the caller did not expect. */
export class RegistryHttpError extends Error {
  readonly status: number;
  readonly method: string;
  readonly host: string;
  /** The path only (no query: upload URLs carry state there). */
  readonly path: string;
  readonly errors: RegistryErrorBody[];

  constructor(status: number, method: string, host: string, path: string, errors: RegistryErrorBody[]) {
    const said = errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
    super(`${method} ${host}${path}: HTTP ${status}${said ? ` (${said})` : ''}`);
    this.name = 'RegistryHttpError';
    this.status = status;
    this.method = method;
    this.host = host;
    this.path = path;
    this.errors = errors;
  }
  get codes(): string[] {
    return this.errors.map((e) => e.code ?? '').filter(Boolean);
  }
}

/** The token server (or the registry) refused the credentials, or has none to offer. */
export class RegistryAuthError extends Error {
  override name = 'RegistryAuthError';
}

export interface RegistryFailureDetails {
  registry: string;
  repository?: string;
  reference?: string;
  operation: string;
  httpStatus?: number;
  codes?: string[];
  [key: string]: unknown;
}

export function registryFailure(
  type: RegistryFailure,
  message: string,
  details: RegistryFailureDetails,
  cause?: Error,
): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    nonRetryable: type !== RegistryFailure.RegistryUnreachable,
    message,
    details: [details],
    ...(cause ? { cause } : {}),
  });
}

export interface Where extends Record<string, unknown> {
  registry: string;
  repository?: string;
  reference?: string;
  /** What was being done, e.g. "read manifest", "upload blob sha256:..". */
  operation: string;
  /** Whether a 404 means the image (or blob) is missing, as for reads. */
  notFoundIsImage?: boolean;
}

function describe(w: Where): string {
  const what = w.repository
    ? `${w.registry}/${w.repository}${w.reference ? refSuffix(w.reference) : ''}`
    : w.registry;
  return `${w.operation} ${what}`;
}

export const refSuffix = (reference: string) =>
  reference.startsWith('sha256:') ? `@${reference}` : `:${reference}`;

/** Maps anything a registry call threw to an ApplicationFailure; failures and cancellations pass through. */
export function toRegistryFailure(err: unknown, w: Where): Error {
  if (err instanceof ApplicationFailure || err instanceof CancelledFailure) return err;
  const details: RegistryFailureDetails = {
    registry: w.registry,
    ...(w.repository ? { repository: w.repository } : {}),
    ...(w.reference ? { reference: w.reference } : {}),
    operation: w.operation,
  };
  const subject = describe(w);
  if (err instanceof RegistryAuthError) {
    return registryFailure(RegistryFailure.RegistryAuthFailed, `${subject}: ${err.message}`, details);
  }
  if (err instanceof RegistryHttpError) {
    const d = { ...details, httpStatus: err.status, ...(err.codes.length ? { codes: err.codes } : {}) };
    const said = err.errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
    const tail = `(HTTP ${err.status}${said ? `: ${said}` : ''})`;
    const s = err.status;
    if (s === 408 || s === 429 || s >= 500)
      return registryFailure(
        RegistryFailure.RegistryUnreachable,
        `${subject}: the registry is not answering well ${tail}`,
        d,
      );
    if (s === 401)
      return registryFailure(
        RegistryFailure.RegistryAuthFailed,
        `${subject}: not authenticated (check the worker's registry credentials for ${w.registry}) ${tail}`,
        d,
      );
    if (s === 403)
      return registryFailure(RegistryFailure.RegistryAuthFailed, `${subject}: access denied ${tail}`, d);
    if (s === 404 && w.notFoundIsImage)
      return registryFailure(RegistryFailure.ImageNotFound, `${subject}: not found ${tail}`, d);
    return registryFailure(RegistryFailure.RegistryRejected, `${subject}: the registry refused ${tail}`, d);
  }
  const code = connectionErrorCode(err);
  if (code) {
    return registryFailure(
      RegistryFailure.RegistryUnreachable,
      `${subject}: registry ${w.registry} unreachable (${code})`,
      { ...details, errorCode: code },
      err as Error,
    );
  }
  const e = err as Error;
  return registryFailure(
    RegistryFailure.RegistryUnreachable,
    `${subject}: ${e?.message ?? String(err)}`,
    details,
    e instanceof Error ? e : undefined,
  );
}
