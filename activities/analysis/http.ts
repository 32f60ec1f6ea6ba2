/**
 * The one place where a provider's HTTP call happens and where what it threw
 * becomes a typed ApplicationFailure (model/analysis.ts AnalysisFailure):
 *
 *   connection refused/reset, DNS, TLS, a timeout; 408, 429, 5xx   -> AnalysisProviderUnreachable (retryable)
 *   401, 403                                                       -> AnalysisAuthFailed          (non-retryable)
 *   any other 4xx, a redirect (never followed), a body too large   -> AnalysisQueryInvalid        (non-retryable)
 *
 * Messages name the provider and the URL's origin and path; never a header, a
 * token or a query string.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { Agent, errors as undiciErrors, request, type Dispatcher } from 'undici';
import { AnalysisFailure } from '../../model/analysis.ts';
import { connectionErrorCode } from '../kubernetes/errors.ts';

export function analysisFailure(
  type: AnalysisFailure,
  message: string,
  details: Record<string, unknown> = {},
): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: type !== AnalysisFailure.AnalysisProviderUnreachable,
    details: [details],
  });
}

/** A URL for messages: origin and path, no credentials, no query. */
export const where = (url: string): string => {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
};

export interface HttpCall {
  /** "Prometheus default", "web": for messages. */
  provider: string;
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
  maxBytes: number;
  signal?: AbortSignal;
  dispatcher: Dispatcher;
}

export interface HttpAnswer {
  status: number;
  text: string;
  contentType: string;
}

const agents = new Map<string, Agent>();

/** A shared keep-alive agent per TLS mode. */
export function agentFor(tls: 'verify' | 'skip-verify'): Agent {
  let a = agents.get(tls);
  if (!a) {
    a = new Agent({ connections: 8, connect: { rejectUnauthorized: tls === 'verify' } });
    agents.set(tls, a);
  }
  return a;
}

class TooLarge extends Error {}

/**
 * Sends one request and reads the whole body (up to maxBytes). Statuses of 2xx and 4xx with a
 * body the caller may want to read (Prometheus explains a 400/422 in JSON) come back; the rest
 * throws a typed failure.
 */
export async function call(c: HttpCall): Promise<HttpAnswer> {
  const timeout = AbortSignal.timeout(c.timeoutMs);
  const signal = c.signal ? AbortSignal.any([c.signal, timeout]) : timeout;
  const subject = `${c.provider} ${c.method} ${where(c.url)}`;
  try {
    const res = await request(c.url, {
      method: c.method,
      headers: c.headers,
      ...(c.body !== undefined ? { body: c.body } : {}),
      signal,
      dispatcher: c.dispatcher,
      headersTimeout: c.timeoutMs,
      bodyTimeout: c.timeoutMs,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > c.maxBytes) throw new TooLarge();
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      res.body.destroy();
      throw err;
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const contentType = String(res.headers['content-type'] ?? '');
    const s = res.statusCode;
    const excerpt = text.trim().slice(0, 300);
    if (s >= 200 && s < 300) return { status: s, text, contentType };
    if (s === 408 || s === 429 || s >= 500)
      throw analysisFailure(
        AnalysisFailure.AnalysisProviderUnreachable,
        `${subject}: HTTP ${s}${excerpt ? `: ${excerpt}` : ''}`,
        {
          httpStatus: s,
        },
      );
    if (s === 401 || s === 403)
      throw analysisFailure(
        AnalysisFailure.AnalysisAuthFailed,
        `${subject}: HTTP ${s}, the provider refused the worker's credentials (check the worker's analysis configuration)`,
        { httpStatus: s },
      );
    if (s >= 300 && s < 400)
      throw analysisFailure(
        AnalysisFailure.AnalysisQueryInvalid,
        `${subject}: HTTP ${s} redirect (redirects are not followed: give the final URL)`,
        {
          httpStatus: s,
        },
      );
    return { status: s, text, contentType };
  } catch (err) {
    if (err instanceof ApplicationFailure) throw err;
    if (c.signal?.aborted)
      throw c.signal.reason instanceof CancelledFailure ? c.signal.reason : new CancelledFailure('cancelled');
    if (err instanceof TooLarge)
      throw analysisFailure(
        AnalysisFailure.AnalysisQueryInvalid,
        `${subject}: the answer is larger than ${c.maxBytes} bytes`,
      );
    if (
      timeout.aborted ||
      err instanceof undiciErrors.HeadersTimeoutError ||
      err instanceof undiciErrors.BodyTimeoutError
    )
      throw analysisFailure(
        AnalysisFailure.AnalysisProviderUnreachable,
        `${subject}: no answer within ${c.timeoutMs} ms`,
        {
          errorCode: 'ETIMEDOUT',
        },
      );
    const code = connectionErrorCode(err);
    throw analysisFailure(
      AnalysisFailure.AnalysisProviderUnreachable,
      `${subject}: unreachable (${code ?? (err as Error)?.message ?? String(err)})`,
      code ? { errorCode: code } : {},
    );
  }
}

/** Parses a JSON body or throws AnalysisQueryInvalid naming the provider. */
export function parseJson(answer: HttpAnswer, subject: string): unknown {
  try {
    return JSON.parse(answer.text);
  } catch {
    const ct = answer.contentType ? ` (${answer.contentType})` : '';
    throw analysisFailure(
      AnalysisFailure.AnalysisQueryInvalid,
      `${subject}: HTTP ${answer.status}: the answer is not JSON${ct}: ${answer.text.trim().slice(0, 120)}`,
      { httpStatus: answer.status },
    );
  }
}
