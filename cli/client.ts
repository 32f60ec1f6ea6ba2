/**
 * The API over HTTP: JSON in and out, the bearer token, an Idempotency-Key on
 * every write, and one error type for every answer that is not a success
 * (the API's `{error, message, details: [{path, message}], requestId}`) or
 * for an API that cannot be reached. The token goes into the Authorization
 * header and nowhere else: not into errors, not into output.
 */
import { randomUUID } from 'node:crypto';

export interface FieldIssue {
  path: string;
  message: string;
}

export class ApiError extends Error {
  override name = 'ApiError';
  /** HTTP status; 0 when the API could not be reached. */
  readonly status: number;
  /** The API's PascalCase code (InvalidRequest, DeliveryInProgress, ...), or Unreachable. */
  readonly code: string;
  readonly details: unknown;
  readonly requestId: string | undefined;
  /** "POST /v1/deliveries" */
  readonly route: string;

  constructor(status: number, code: string, message: string, details: unknown, requestId: string | undefined, route: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.requestId = requestId;
    this.route = route;
  }

  /** Field issues when the API sent them as [{path, message}]. */
  get issues(): FieldIssue[] {
    return Array.isArray(this.details)
      ? this.details.filter((d): d is FieldIssue => typeof d?.path === 'string' && typeof d?.message === 'string')
      : [];
  }
}

/**
 * One line for an error: the field at fault first when there is one, then the
 * status, code and request id (what to quote to whoever runs the API).
 */
export function errorLine(e: ApiError, hint?: string): string {
  const issues = e.issues;
  const what = issues.length
    ? issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')
    : e.message;
  const tail = e.status === 0 ? '' : ` (${e.status} ${e.code}${e.requestId ? `, request ${e.requestId}` : ''})`;
  return `error: ${oneLine(what)}${tail}${hint ? `; ${hint}` : ''}`;
}

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' ').trim();

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  /** Sent on writes; one is generated when absent. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

export interface Answer<T> {
  status: number;
  body: T;
  headers: Headers;
}

export interface ClientOptions {
  url: string;
  token?: string;
  userAgent?: string;
  /** Per-request deadline (ms); the event stream has none. */
  timeoutMs?: number;
}

export const newIdempotencyKey = (): string => `flotilla-cli-${randomUUID()}`;

export class ApiClient {
  readonly url: string;
  readonly #token: string | undefined;
  readonly #userAgent: string;
  readonly #timeoutMs: number;

  constructor(opts: ClientOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.#token = opts.token;
    this.#userAgent = opts.userAgent ?? 'flotilla-cli';
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  get hasToken(): boolean {
    return this.#token !== undefined;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      'User-Agent': this.#userAgent,
      Accept: 'application/json',
      ...(this.#token ? { Authorization: `Bearer ${this.#token}` } : {}),
      ...extra,
    };
  }

  target(path: string, query?: RequestOptions['query']): string {
    const u = new URL(this.url + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
  }

  async request<T>(method: 'GET' | 'POST', path: string, opts: RequestOptions = {}): Promise<Answer<T>> {
    const route = `${method} ${path}`;
    const write = method !== 'GET';
    const headers = this.headers(
      write
        ? { 'Content-Type': 'application/json', 'Idempotency-Key': opts.idempotencyKey ?? newIdempotencyKey() }
        : {},
    );
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    let res: Response;
    try {
      res = await fetch(this.target(path, opts.query), {
        method,
        headers,
        ...(write ? { body: JSON.stringify(opts.body ?? {}) } : {}),
        signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout,
      });
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      throw unreachable(this.url, route, e);
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (!res.ok) throw fromAnswer(res.status, body, text, route, res.headers);
    return { status: res.status, body: body as T, headers: res.headers };
  }

  /** Opens the server-sent event stream at `path` (the caller reads and closes the body). */
  async stream(path: string, opts: { lastEventId?: string; signal: AbortSignal }): Promise<Response> {
    const route = `GET ${path}`;
    try {
      return await fetch(this.target(path), {
        headers: this.headers({
          Accept: 'text/event-stream',
          'Cache-Control': 'no-cache',
          ...(opts.lastEventId ? { 'Last-Event-ID': opts.lastEventId } : {}),
        }),
        signal: opts.signal,
      });
    } catch (e) {
      if (opts.signal.aborted) throw e;
      throw unreachable(this.url, route, e);
    }
  }
}

function unreachable(url: string, route: string, e: unknown): ApiError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const why =
    (e as Error).name === 'TimeoutError'
      ? 'no answer in time'
      : (cause?.code ?? cause?.message ?? (e as Error).message);
  return new ApiError(0, 'Unreachable', `cannot reach the API at ${url} (${route}): ${why}`, [], undefined, route);
}

export function fromAnswer(status: number, body: unknown, text: string, route: string, headers?: Headers): ApiError {
  const b = (typeof body === 'object' && body !== null ? body : {}) as {
    error?: unknown;
    message?: unknown;
    details?: unknown;
    requestId?: unknown;
  };
  const code = typeof b.error === 'string' ? b.error : `HTTP${status}`;
  let message = typeof b.message === 'string' ? b.message : text.trim().slice(0, 200) || `HTTP ${status}`;
  if (status === 404 && code === 'NotFound' && message.startsWith('no route'))
    message = `this API does not serve ${route} (yet): ${message}`;
  const requestId = typeof b.requestId === 'string' ? b.requestId : (headers?.get('x-request-id') ?? undefined);
  return new ApiError(status, code, message, b.details ?? [], requestId, route);
}
