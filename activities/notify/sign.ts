/**
 * Signatures of webhook bodies, and their verification for receivers.
 *
 * The sender puts `Flotilla-Signature: t=<unix seconds>,v1=<hex>` on each
 * request, where hex = HMAC-SHA256(secret, `${t}.${raw body}`). A receiver
 * recomputes it over the raw body bytes it got (before parsing the JSON),
 * compares in constant time, and refuses a timestamp older than its max age:
 * a captured request replayed later fails, because changing `t` breaks the
 * signature. Several `v1=` entries may be present (a secret being rotated);
 * one matching is enough.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'Flotilla-Signature';
export const EVENT_ID_HEADER = 'Flotilla-Event-Id';
export const EVENT_TYPE_HEADER = 'Flotilla-Event';
/** Requests older (or further in the future) than this are refused by default. */
export const DEFAULT_MAX_AGE_SECONDS = 300;

type Body = string | Uint8Array;

export function computeSignature(secret: string, timestamp: number, body: Body): string {
  return createHmac('sha256', secret)
    .update(`${timestamp}.`)
    .update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body)
    .digest('hex');
}

/** The header value for a body, signed at `timestamp` (unix seconds). */
export function signatureHeader(secret: string, timestamp: number, body: Body): string {
  return `t=${timestamp},v1=${computeSignature(secret, timestamp, body)}`;
}

export interface VerifyInput {
  /** The raw body as received (not re-serialized JSON). */
  body: Body;
  /** The Flotilla-Signature header value. */
  header: string | string[] | undefined | null;
  /** The shared secret; several during a rotation. */
  secret: string | readonly string[];
  /** Oldest acceptable signature, in seconds (default 300). */
  maxAgeSeconds?: number;
  /** The receiver's clock, ms since the epoch (default now). */
  now?: number;
}

export type VerifyFailure = 'missing' | 'malformed' | 'expired' | 'future' | 'mismatch';
export type VerifyResult = { ok: true; timestamp: number } | { ok: false; reason: VerifyFailure; message: string };

function parseHeader(value: string): { t: number; v1: string[] } | undefined {
  let t: number | undefined;
  const v1: string[] = [];
  for (const part of value.split(',')) {
    const i = part.indexOf('=');
    if (i < 0) return undefined;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    if (k === 't') {
      if (!/^\d{1,12}$/.test(v) || t !== undefined) return undefined;
      t = Number(v);
    } else if (k === 'v1') {
      if (!/^[0-9a-f]{64}$/.test(v)) return undefined;
      v1.push(v);
    } // other schemes (v0, v2...) are ignored
  }
  return t === undefined || v1.length === 0 ? undefined : { t, v1 };
}

/**
 * Checks a request's signature and age. Never throws for a bad request: the
 * result says why it is refused (answer 401 and drop it).
 */
export function verifySignature(input: VerifyInput): VerifyResult {
  const raw = Array.isArray(input.header) ? input.header[0] : input.header;
  if (!raw) return { ok: false, reason: 'missing', message: `no ${SIGNATURE_HEADER} header` };
  const parsed = parseHeader(raw);
  if (!parsed) return { ok: false, reason: 'malformed', message: `${SIGNATURE_HEADER} must be "t=<unix seconds>,v1=<64 hex>"` };
  const maxAge = input.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS;
  const now = Math.floor((input.now ?? Date.now()) / 1000);
  if (now - parsed.t > maxAge) return { ok: false, reason: 'expired', message: `signed ${now - parsed.t}s ago; at most ${maxAge}s is accepted (a replay?)` };
  if (parsed.t - now > maxAge) return { ok: false, reason: 'future', message: `signed ${parsed.t - now}s in the future; check the clocks` };
  const secrets = typeof input.secret === 'string' ? [input.secret] : input.secret;
  for (const secret of secrets) {
    const expected = Buffer.from(computeSignature(secret, parsed.t, input.body), 'hex');
    for (const given of parsed.v1) {
      if (timingSafeEqual(expected, Buffer.from(given, 'hex'))) return { ok: true, timestamp: parsed.t };
    }
  }
  return { ok: false, reason: 'mismatch', message: 'the signature does not match the body and secret' };
}
