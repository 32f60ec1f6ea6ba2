/**
 * One error shape for every answer that is not a success:
 *   {error: <PascalCase code>, message, details, requestId}
 * HttpError carries its status; zod errors become 400 (malformed) or 422 (well
 * formed but impossible: an unparsable image reference); body-parser errors
 * keep their 4xx; Temporal being unreachable is a 503; anything else is a 500
 * whose details stay in the log under the request id.
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { z } from 'zod';
import { locals } from './context.ts';

export interface FieldIssue {
  /** Dotted path into the request body or query, e.g. "app.replicas" or "waves.1.0". */
  path: string;
  message: string;
}

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: string,
    message: string,
    opts: { details?: unknown; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.details = opts.details ?? [];
    this.headers = opts.headers ?? {};
  }
}

export const notFound = (what: string): HttpError => new HttpError(404, 'NotFound', what);

const joinPath = (path: readonly PropertyKey[]): string => path.map(String).join('.');

/** Flattens zod issues into {path, message}; a union's branches are summarised in one message. */
export function zodIssues(error: z.ZodError, prefix: readonly PropertyKey[] = []): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const issue of error.issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: joinPath([...path, key]), message: 'unknown field' });
    } else if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const branches = issue.errors.map(
        (branch) =>
          `(${branch.map((i) => `${i.path.length ? `${joinPath(i.path)}: ` : ''}${i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : i.message}`).join('; ')})`,
      );
      out.push({
        path: joinPath(path),
        message: `matches none of the allowed forms: ${branches.join(' or ')}`,
      });
    } else {
      out.push({ path: joinPath(path), message: issue.message });
    }
  }
  return out;
}

/** Issues the schema marks as semantic (well-formed JSON of the right type, but impossible): 422 rather than 400. */
const isSemantic = (issue: z.core.$ZodIssue): boolean =>
  issue.code === 'custom' && (issue.params as { flotilla?: string } | undefined)?.flotilla === 'image';

export function validationError(error: z.ZodError, where = 'request body'): HttpError {
  const details = zodIssues(error);
  if (error.issues.length > 0 && error.issues.every(isSemantic)) {
    return new HttpError(
      422,
      'Unprocessable',
      `the ${where} is well formed but cannot be carried out: ${details.map((d) => d.message).join('; ')}`,
      { details },
    );
  }
  return new HttpError(
    400,
    'InvalidRequest',
    `the ${where} is malformed: ${details.map((d) => `${d.path || '(root)'}: ${d.message}`).join('; ')}`,
    { details },
  );
}

/** Parses with a zod schema, throwing the 400/422 HttpError on failure. */
export function parseOr<T extends z.ZodType>(schema: T, input: unknown, where = 'request body'): z.output<T> {
  const r = schema.safeParse(input);
  if (!r.success) throw validationError(r.error, where);
  return r.data;
}

interface BodyParserError {
  type: string;
  status: number;
  message: string;
}
const isBodyParserError = (e: unknown): e is BodyParserError =>
  typeof e === 'object' &&
  e !== null &&
  typeof (e as BodyParserError).type === 'string' &&
  typeof (e as BodyParserError).status === 'number';

const grpcUnavailable = new Set([4 /* DEADLINE_EXCEEDED */, 14 /* UNAVAILABLE */]);
/** Temporal could not be reached (or did not answer in time): worth a retry by the caller. */
export function isTemporalUnavailable(err: unknown): boolean {
  for (
    let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0;
    e && depth < 8;
    e = e.cause as typeof e, depth++
  ) {
    if (typeof e.code === 'number' && grpcUnavailable.has(e.code)) return true;
  }
  return false;
}

function toHttpError(err: unknown): HttpError | undefined {
  if (err instanceof HttpError) return err;
  if (err instanceof z.ZodError) return validationError(err);
  if (isBodyParserError(err) && err.status >= 400 && err.status < 500) {
    if (err.type === 'entity.parse.failed')
      return new HttpError(400, 'MalformedJson', `the request body is not valid JSON: ${err.message}`);
    if (err.type === 'entity.too.large')
      return new HttpError(413, 'PayloadTooLarge', 'the request body is larger than 1.5 MiB (a delivery request travels in Temporal history, which refuses payloads over 2 MiB); push a large Helm chart to a registry and name it as oci://...');
    return new HttpError(err.status, 'BadRequestBody', err.message);
  }
  if (isTemporalUnavailable(err))
    return new HttpError(
      503,
      'TemporalUnavailable',
      'Temporal (or the worker that answers queries and updates) did not answer in time; try again',
      {
        headers: { 'Retry-After': '5' },
      },
    );
  return undefined;
}

export const errorHandler: ErrorRequestHandler = (err, _req, res, next) => {
  if (res.headersSent) {
    next(err);
    return;
  }
  const l = locals(res);
  let e = toHttpError(err);
  if (!e) {
    l.log?.error({ err }, 'unhandled error');
    e = new HttpError(500, 'Internal', 'internal error; the API log has the details under this requestId');
  } else if (e.status >= 500) {
    l.log?.warn({ err }, e.message);
  }
  res
    .status(e.status)
    .set(e.headers)
    .json({ error: e.code, message: e.message, details: e.details, requestId: l.requestId });
};

export const routeNotFound: RequestHandler = (req) => {
  throw notFound(`no route ${req.method} ${req.path}`);
};
