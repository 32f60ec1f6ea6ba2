/**
 * Bearer tokens mapped to a caller name and a role. Tokens are compared in
 * constant time (digests of equal length, every entry checked) and never logged:
 * only the caller's name travels on, into logs and audit entries.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { z } from 'zod';
import { HttpError } from './errors.ts';
import { locals } from './context.ts';

export const Role = { ci: 'ci', releaseManager: 'release-manager', sre: 'sre', viewer: 'viewer' } as const;
export type Role = (typeof Role)[keyof typeof Role];

export const Permission = {
  /** Start a delivery. */
  start: 'start',
  /** Read deliveries and applications. */
  read: 'read',
  /** retry, skip, rollback, abort. */
  act: 'act',
  /** Approve or reject a gate (the rollout issue). */
  decide: 'decide',
} as const;
export type Permission = (typeof Permission)[keyof typeof Permission];

export const grants: Readonly<Record<Role, readonly Permission[]>> = {
  ci: [Permission.start, Permission.read],
  'release-manager': [Permission.read, Permission.decide],
  sre: [Permission.start, Permission.read, Permission.act, Permission.decide],
  viewer: [Permission.read],
};

export const TokensFileSchema = z.record(
  z
    .string()
    .min(16, 'a token needs at least 16 characters')
    .regex(/^[\x21-\x7e]+$/, 'a token is printable ASCII without spaces'),
  z.object({ name: z.string().min(1).max(100), role: z.enum(Role) }).strict(),
);
export type TokensFile = z.infer<typeof TokensFileSchema>;

export interface Caller {
  name: string;
  role: Role;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class TokenStore {
  readonly #entries: { digest: Buffer; caller: Caller }[];

  constructor(tokens: TokensFile) {
    this.#entries = Object.entries(tokens).map(([token, caller]) => ({
      digest: digest(token),
      caller: Object.freeze({ ...caller }),
    }));
  }

  get size(): number {
    return this.#entries.length;
  }

  /** The caller a token belongs to. Same work whatever the token: no early exit, equal-length compares. */
  verify(token: string): Caller | undefined {
    const d = digest(token);
    let found: Caller | undefined;
    for (const e of this.#entries) {
      const same = timingSafeEqual(d, e.digest);
      if (same && found === undefined) found = e.caller;
    }
    return found;
  }
}

const challenge = (error?: string) => ({
  'WWW-Authenticate': `Bearer realm="flotilla"${error ? `, error="${error}"` : ''}`,
});

/** 401 without a bearer token or with one no entry has; sets the caller on the response locals. */
export function authenticate(store: TokenStore): RequestHandler {
  return (req, res, next) => {
    const header = req.get('authorization');
    if (!header)
      throw new HttpError(401, 'Unauthorized', 'a bearer token is required (Authorization: Bearer <token>)', {
        headers: challenge(),
      });
    const m = /^Bearer +([^\s]+) *$/i.exec(header);
    if (!m)
      throw new HttpError(401, 'Unauthorized', 'the Authorization header must be "Bearer <token>"', {
        headers: challenge('invalid_request'),
      });
    const caller = store.verify(m[1]!);
    if (!caller)
      throw new HttpError(401, 'Unauthorized', 'the bearer token is not valid', {
        headers: challenge('invalid_token'),
      });
    locals(res).caller = caller;
    next();
  };
}

/** 403 for a caller whose role lacks the permission. Use after authenticate. */
export function requirePermission(...permissions: Permission[]): RequestHandler {
  return (_req, res, next) => {
    const caller = locals(res).caller;
    if (!caller)
      throw new HttpError(401, 'Unauthorized', 'a bearer token is required', { headers: challenge() });
    if (!permissions.some((p) => grants[caller.role].includes(p))) {
      const allowed = (Object.keys(grants) as Role[]).filter((r) => permissions.some((p) => grants[r].includes(p)));
      throw new HttpError(
        403,
        'Forbidden',
        `role ${caller.role} may not do this (allowed: ${allowed.join(', ')})`,
      );
    }
    next();
  };
}
