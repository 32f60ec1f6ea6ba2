/**
 * The one place where what a Kubernetes call threw becomes a typed
 * ApplicationFailure. Workflows branch on `type` (model/reasons.ts FailureType);
 * `nonRetryable` is set where retrying cannot help.
 *
 *   connection refused/reset/timeout, DNS, TLS, 408, 429, 5xx  -> ClusterUnreachable (retryable)
 *   400, 422; 500 of server-side apply that cannot decode it   -> InvalidManifest   (non-retryable)
 *   401, 403                                                   -> Forbidden         (non-retryable)
 *   403 because the namespace is terminating                   -> Conflict          (retryable)
 *   404, 410 on a read                                         -> NotFound          (non-retryable)
 *   409                                                        -> Conflict          (retryable)
 */
import { ApiException } from '@kubernetes/client-node';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { FailureType } from '../../model/reasons.ts';

/** What the apiserver says in a Status body. */
export interface KubeStatus {
  message?: string;
  reason?: string;
  details?: { causes?: { reason?: string; message?: string; field?: string }[] };
}

/** Details attached to the failure (no credentials, no headers). */
export interface KubeFailureDetails {
  cluster: string;
  operation: string;
  httpStatus?: number;
  reason?: string;
  causes?: string[];
  errorCode?: string;
}

const connectionCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_ABORTED',
]);

const tlsCode =
  /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET|VERIFY)_)/;

const ssaConversionError =
  /failed to convert new object|unable to convert unstructured object|failed to create typed (patch|live) object/;

interface ErrorLike {
  name?: string;
  message?: string;
  code?: unknown;
  cause?: unknown;
  errors?: unknown[];
}

/** Every error reachable through `cause` and AggregateError's `errors` (undici wraps the socket error). */
function errorChain(err: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  const todo: unknown[] = [err];
  while (todo.length > 0 && out.length < 20) {
    const e = todo.shift();
    if (!e || typeof e !== 'object') continue;
    const el = e as ErrorLike;
    out.push(el);
    if (el.cause) todo.push(el.cause);
    if (Array.isArray(el.errors)) todo.push(...el.errors);
  }
  return out;
}

/** The network-level reason a request never got an HTTP answer, if that is what happened. */
export function connectionErrorCode(err: unknown): string | undefined {
  for (const e of errorChain(err)) {
    if (typeof e.code === 'string' && (connectionCodes.has(e.code) || tlsCode.test(e.code))) return e.code;
    // AbortSignal.timeout() from the client's request timeout
    if (e.name === 'TimeoutError') return 'ETIMEDOUT';
  }
  return undefined;
}

export function isApiException(err: unknown): err is ApiException<unknown> {
  return (
    err instanceof ApiException ||
    (typeof err === 'object' &&
      err !== null &&
      typeof (err as { code?: unknown }).code === 'number' &&
      'body' in err)
  );
}

/** The Status object in an ApiException body (a JSON string in client-node 1.x/2.x, or already parsed). */
export function kubeStatus(err: ApiException<unknown>): KubeStatus {
  const body = err.body;
  if (typeof body === 'string') {
    try {
      const parsed: unknown = JSON.parse(body);
      return typeof parsed === 'object' && parsed !== null
        ? (parsed as KubeStatus)
        : { message: body.slice(0, 500) };
    } catch {
      return body.trim() ? { message: body.trim().slice(0, 500) } : {};
    }
  }
  return typeof body === 'object' && body !== null ? (body as KubeStatus) : {};
}

function failure(
  type: FailureType,
  nonRetryable: boolean,
  message: string,
  details: KubeFailureDetails,
  cause?: Error,
): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    nonRetryable,
    message,
    details: [details],
    ...(cause ? { cause } : {}),
  });
}

/**
 * Maps what a call to cluster `cluster` threw while doing `operation` (such as
 * "apply Deployment shop/web") to an ApplicationFailure. ApplicationFailures and
 * cancellations pass through unchanged.
 */
export function toFailure(err: unknown, cluster: string, operation: string): Error {
  if (err instanceof ApplicationFailure || err instanceof CancelledFailure) return err;
  const where = `cluster "${cluster}": ${operation}`;
  if (isApiException(err)) {
    const status = kubeStatus(err);
    const code = err.code;
    const causes = (status.details?.causes ?? [])
      .map((c) => [c.field, c.message ?? c.reason].filter(Boolean).join(': '))
      .filter(Boolean);
    const what = status.message || status.reason;
    const details: KubeFailureDetails = {
      cluster,
      operation,
      httpStatus: code,
      ...(status.reason ? { reason: status.reason } : {}),
      ...(causes.length ? { causes } : {}),
    };
    const msg = (summary: string) =>
      `${where}: ${summary} (HTTP ${code}${status.reason ? ` ${status.reason}` : ''})${what ? `: ${what}` : ''}`;
    if (code === 400 || code === 422)
      return failure(FailureType.InvalidManifest, true, msg('the apiserver rejected the object'), details);
    if (code === 401)
      return failure(
        FailureType.Forbidden,
        true,
        msg('not authenticated (check the kubeconfig credentials)'),
        details,
      );
    if (code === 403) {
      // Writing into a namespace that is being deleted: it will be gone (and can be created again) shortly.
      if (
        status.details?.causes?.some((c) => c.reason === 'NamespaceTerminating') ||
        /is being terminated/.test(what ?? '')
      ) {
        return failure(FailureType.Conflict, false, msg('the namespace is being deleted'), details);
      }
      return failure(FailureType.Forbidden, true, msg('forbidden'), details);
    }
    if (code === 404 || code === 410) return failure(FailureType.NotFound, true, msg('not found'), details);
    if (code === 409) return failure(FailureType.Conflict, false, msg('conflict'), details);
    // Server-side apply answers 500 when it cannot convert the applied object (a bad quantity, a wrong
    // type): nothing a retry can fix (kubernetes/kubernetes#118476).
    if (code === 500 && ssaConversionError.test(what ?? '')) {
      return failure(
        FailureType.InvalidManifest,
        true,
        msg('the apiserver cannot decode the object'),
        details,
      );
    }
    if (code === 408 || code === 429 || code >= 500)
      return failure(
        FailureType.ClusterUnreachable,
        false,
        msg('the apiserver could not serve the request'),
        details,
      );
    return failure(FailureType.InvalidManifest, true, msg('unexpected answer'), details);
  }
  const netCode = connectionErrorCode(err);
  if (netCode) {
    // The deepest message is the socket's ("connect ECONNREFUSED 127.0.0.1:6443"), not undici's "fetch failed".
    const deepest = errorChain(err).findLast(
      (e) => typeof e.message === 'string' && e.message !== '',
    )?.message;
    return failure(
      FailureType.ClusterUnreachable,
      false,
      `${where}: cannot reach the apiserver (${netCode})${deepest ? `: ${deepest}` : ''}`,
      {
        cluster,
        operation,
        errorCode: netCode,
      },
    );
  }
  // Anything else is a bug or a surprise: keep it retryable, say where it happened.
  const e = err instanceof Error ? err : new Error(String(err));
  return ApplicationFailure.create({
    type: e.name || 'Error',
    message: `${where}: ${e.message}`,
    details: [{ cluster, operation }],
  });
}

/** Runs one Kubernetes call, mapping what it throws. */
export async function kube<T>(cluster: string, operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toFailure(err, cluster, operation);
  }
}

/** The HTTP status of a Kubernetes error, raw or already mapped (undefined for network errors). */
export function httpStatusOf(err: unknown): number | undefined {
  if (isApiException(err)) return err.code;
  if (err instanceof ApplicationFailure) {
    const d = err.details?.[0] as KubeFailureDetails | undefined;
    return d?.httpStatus;
  }
  return undefined;
}
