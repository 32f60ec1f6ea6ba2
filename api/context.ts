/**
 * Per-request context kept in `res.locals`: the request id (echoed in
 * X-Request-Id and in every error body), a child logger carrying it, and the
 * authenticated caller. One access-log line per request, without headers.
 */
import { randomUUID } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { Caller } from './auth.ts';

export interface RequestLocals {
  requestId: string;
  log: Logger;
  caller?: Caller;
}

export function locals(res: Response): RequestLocals {
  return res.locals as RequestLocals;
}

const requestIdRe = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestContext(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const given = req.get('x-request-id');
    const requestId = given && requestIdRe.test(given) ? given : randomUUID();
    const l = locals(res);
    l.requestId = requestId;
    l.log = logger.child({ requestId });
    res.set('X-Request-Id', requestId);
    const t0 = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const line = {
        method: req.method,
        path: req.path,
        status: res.statusCode,
        ms: Math.round(ms * 10) / 10,
        caller: l.caller?.name,
      };
      if (res.statusCode >= 500 && res.statusCode !== 503) l.log.error(line, 'request');
      else if (res.statusCode === 503) l.log.warn(line, 'request');
      else l.log.info(line, 'request');
    });
    next();
  };
}
