/**
 * Webhook signatures: a vector computed by openssl (not by our code), a round
 * trip, and every way verification refuses a request: a body changed, another
 * secret, a replay older than the max age, a timestamp from the future, a
 * missing or malformed header. A rotated secret is accepted under either.
 */
import { describe, expect, it } from 'vitest';
import { computeSignature, signatureHeader, verifySignature } from '../../activities/notify/sign.ts';

const secret = 'whsec-test-secret';
const body = '{"id":"e-1","type":"delivery.finished"}';
const t = 1_764_000_000;
const at = (seconds: number) => seconds * 1000;

describe('signing', () => {
  it('is HMAC-SHA256 of "<t>.<body>", as openssl computes it', () => {
    // printf '%s' '1764000000.{"id":"e-1","type":"delivery.finished"}' | openssl dgst -sha256 -hmac whsec-test-secret
    expect(computeSignature(secret, t, body)).toBe('3c3070e4499a87709fcee418a2c633d01c7f5435c8f3221861b92ec2d58f151c');
    expect(signatureHeader(secret, t, body)).toBe(`t=${t},v1=3c3070e4499a87709fcee418a2c633d01c7f5435c8f3221861b92ec2d58f151c`);
    expect(computeSignature(secret, t, Buffer.from(body))).toBe(computeSignature(secret, t, body));
  });
});

describe('verifySignature', () => {
  const header = signatureHeader(secret, t, body);

  it('accepts the request as sent, within the max age either way', () => {
    expect(verifySignature({ body, header, secret, now: at(t) })).toEqual({ ok: true, timestamp: t });
    expect(verifySignature({ body: Buffer.from(body), header: [header], secret, now: at(t + 299) }).ok).toBe(true);
    expect(verifySignature({ body, header, secret, now: at(t - 299) }).ok).toBe(true);
  });

  it('refuses a changed body, another secret, a changed timestamp', () => {
    expect(verifySignature({ body: body.replace('e-1', 'e-2'), header, secret, now: at(t) })).toMatchObject({ ok: false, reason: 'mismatch' });
    expect(verifySignature({ body, header, secret: 'another-secret', now: at(t) })).toMatchObject({ ok: false, reason: 'mismatch' });
    expect(verifySignature({ body, header: header.replace(`t=${t}`, `t=${t + 1}`), secret, now: at(t) })).toMatchObject({ ok: false, reason: 'mismatch' });
  });

  it('refuses a replay older than the max age, and one from the future', () => {
    expect(verifySignature({ body, header, secret, now: at(t + 301) })).toEqual({ ok: false, reason: 'expired', message: 'signed 301s ago; at most 300s is accepted (a replay?)' });
    expect(verifySignature({ body, header, secret, maxAgeSeconds: 10, now: at(t + 11) })).toMatchObject({ ok: false, reason: 'expired' });
    expect(verifySignature({ body, header, secret, now: at(t - 301) })).toMatchObject({ ok: false, reason: 'future' });
  });

  it('refuses missing and malformed headers without throwing', () => {
    const bad = ['', 't=abc,v1=00', `v1=${'a'.repeat(64)}`, `t=${t}`, `t=${t},v1=${'A'.repeat(64)}`, `t=${t},t=${t},v1=${'a'.repeat(64)}`, 'garbage'];
    expect(verifySignature({ body, header: undefined, secret })).toMatchObject({ ok: false, reason: 'missing' });
    for (const h of bad) expect(verifySignature({ body, header: h, secret, now: at(t) }).ok, h).toBe(false);
  });

  it('during a rotation: a header with two v1 entries, and a receiver holding two secrets', () => {
    const both = `${signatureHeader('old-secret', t, body)},v1=${computeSignature('new-secret', t, body)}`;
    expect(verifySignature({ body, header: both, secret: 'new-secret', now: at(t) }).ok).toBe(true);
    expect(verifySignature({ body, header: both, secret: 'old-secret', now: at(t) }).ok).toBe(true);
    expect(verifySignature({ body, header: signatureHeader('old-secret', t, body), secret: ['new-secret', 'old-secret'], now: at(t) }).ok).toBe(true);
  });
});
