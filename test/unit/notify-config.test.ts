/**
 * Sinks and events: the configuration's schema (with the field at fault in
 * each refusal, and secrets checked at load), the event union, and the Slack
 * body of each event type.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNotifyConfig, parseNotifyConfig, subscribed } from '../../activities/notify/config.ts';
import { FlotillaEventSchema, type FlotillaEventInput } from '../../activities/notify/events.ts';
import { slackBody, summary } from '../../activities/notify/slack.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'notify-config-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sinks', () => {
  it('parses a sink with defaults: every event, flotilla format, 10 s timeout', () => {
    const c = parseNotifyConfig({ sinks: [{ name: 'bot', url: 'https://hooks.example/x', secret: { env: 'HOOK_SECRET' } }] });
    expect(c.sinks[0]).toEqual({ name: 'bot', url: 'https://hooks.example/x', secret: { env: 'HOOK_SECRET' }, events: ['*'], format: 'flotilla', timeout: 10_000 });
    expect(subscribed(c.sinks[0]!, 'gate.waiting')).toBe(true);
    const only = parseNotifyConfig({ sinks: [{ name: 'slack', url: { file: '/run/slack-url' }, secret: { file: '/run/s' }, events: ['delivery.failed'], format: 'slack', timeout: '500ms' }] });
    expect(only.sinks[0]).toMatchObject({ timeout: 500, format: 'slack' });
    expect(subscribed(only.sinks[0]!, 'delivery.failed')).toBe(true);
    expect(subscribed(only.sinks[0]!, 'delivery.finished')).toBe(false);
  });

  it('refuses what is wrong, naming the field', () => {
    const base = { name: 'bot', url: 'https://hooks.example/x', secret: { env: 'S' } };
    const cases: [unknown, RegExp][] = [
      [{ sinks: [{ ...base, events: ['delivery.exploded'] }] }, /sinks\.0\.events\.0: /],
      [{ sinks: [{ ...base, url: 'ftp://x' }] }, /sinks\.0\.url: /],
      [{ sinks: [{ ...base, secret: 'inline-secret' }] }, /sinks\.0\.secret: /],
      [{ sinks: [{ ...base, format: 'teams' }] }, /sinks\.0\.format: /],
      [{ sinks: [{ ...base, timeout: '5m' }] }, /sinks\.0\.timeout: must be a duration/],
      [{ sinks: [{ ...base, timeout: '90s' }] }, /sinks\.0\.timeout: must be between 100ms and 60s/],
      [{ sinks: [base, base] }, /sinks\.1\.name: sink name "bot" is used twice/],
      [{ sinks: [{ ...base, extra: 1 }] }, /sinks\.0: Unrecognized key: "extra"/i],
      [{ hooks: [] }, /\(root\): Unrecognized key: "hooks"/i],
    ];
    for (const [raw, re] of cases) expect(() => parseNotifyConfig(raw), JSON.stringify(raw)).toThrow(re);
  });

  it('loading checks every secret and secret URL now, and never repeats a secret in its message', () => {
    const file = path.join(dir, 'sinks.yaml');
    const secretFile = path.join(dir, 'secret');
    writeFileSync(secretFile, 'file-secret\n');
    writeFileSync(file, ['sinks:', '  - name: a', '    url: {env: HOOK_URL}', `    secret: {file: ${secretFile}}`, '  - name: b', '    url: https://b.example/hook', '    secret: {env: B_SECRET}'].join('\n'));
    expect(loadNotifyConfig(file, { HOOK_URL: 'https://a.example/T000/B000/xyz', B_SECRET: 'b' }).sinks.map((s) => s.name)).toEqual(['a', 'b']);
    expect(() => loadNotifyConfig(file, { HOOK_URL: 'https://a.example/x' })).toThrow('sink b: secret: environment variable B_SECRET is not set');
    expect(() => loadNotifyConfig(file, { HOOK_URL: 'not-a-url-but-secret', B_SECRET: 'b' })).toThrow(/^sink a: url must be an http\(s\) URL$/);
    rmSync(secretFile);
    expect(() => loadNotifyConfig(file, { HOOK_URL: 'https://a.example/x', B_SECRET: 'b' })).toThrow(`sink a: secret: cannot read ${secretFile} (ENOENT)`);
  });
});

const app = { namespace: 'shop', name: 'web' };
const at = '2026-11-24T10:00:00Z';
const events: FlotillaEventInput[] = [
  { type: 'gate.waiting', id: 'd1/gate.waiting/canary/1', at, deliveryId: 'd1', app, gate: 'canary', deadline: '2026-11-24T12:00:00Z', defaultAction: 'abort' },
  { type: 'gate.reminder', id: 'd1/gate.reminder/canary/1', at, deliveryId: 'd1', app, gate: 'canary', deadline: '2026-11-24T12:00:00Z' },
  { type: 'gate.decided', id: 'd1/gate.decided/canary', at, deliveryId: 'd1', app, gate: 'canary', decision: 'approved', by: 'rita', comment: 'metrics <fine> & dandy' },
  { type: 'delivery.finished', id: 'd1/finished', at, deliveryId: 'd1', app, phase: 'Healthy', image: 'reg/web:v2', message: 'every cluster runs v2' },
  { type: 'delivery.failed', id: 'd1/failed', at, deliveryId: 'd1', app, phase: 'RolledBack', message: 'wave 2 failed', clusters: [{ cluster: 'shenzhen', phase: 'Failed', failureType: 'RolloutFailed' }, { cluster: 'beijing', phase: 'Healthy' }] },
  { type: 'delivery.needsAttention', id: 'd1/attention/1', at, deliveryId: 'd1', app, message: 'wave 1 failed', clusters: [{ cluster: 'beijing', phase: 'Unreachable' }] },
  { type: 'cluster.failedOver', id: 'fo/beijing/1', at, cluster: 'beijing', to: ['shenzhen'], reason: 'apiserver unreachable for 30s', apps: ['shop/web'] },
  { type: 'cluster.failedBack', id: 'fb/beijing/1', at, cluster: 'beijing', from: ['shenzhen'] },
];

describe('events', () => {
  it('every event type parses, and its summary and Slack body say what happened', () => {
    const summaries = events.map((e) => summary(FlotillaEventSchema.parse(e)));
    expect(summaries).toEqual([
      'Gate canary of shop/web waits for a decision until 2026-11-24T12:00:00Z (then: abort)',
      'Reminder: gate canary of shop/web still waits; deadline 2026-11-24T12:00:00Z',
      'Gate canary of shop/web approved by rita: metrics <fine> & dandy',
      'Delivery of shop/web reg/web:v2 is Healthy',
      'Delivery of shop/web ended RolledBack (shenzhen: RolloutFailed)',
      'Delivery of shop/web needs an SRE (beijing: Unreachable)',
      'Cluster beijing failed over to shenzhen: apiserver unreachable for 30s',
      'Cluster beijing failed back from shenzhen',
    ]);
    const decided = slackBody(FlotillaEventSchema.parse(events[2]));
    expect(decided.text).toBe(summaries[2]);
    expect(decided.blocks[0]).toEqual({ type: 'section', text: { type: 'mrkdwn', text: ':ballot_box_with_check: Gate canary of shop/web approved by rita: metrics &lt;fine&gt; &amp; dandy' } });
    expect(decided.blocks[1]).toEqual({ type: 'context', elements: [{ type: 'mrkdwn', text: `delivery d1 · ${at}` }] });
  });

  it('refuses events that do not match: unknown type, missing fields, extra fields, bad times', () => {
    const bad: unknown[] = [
      { ...events[3], type: 'delivery.exploded' },
      { ...events[3], phase: 'Degraded' },
      { ...events[0], gate: undefined },
      { ...events[6], to: [] },
      { ...events[3], kubeconfig: 'x' },
      { ...events[3], at: 'yesterday' },
    ];
    for (const e of bad) expect(FlotillaEventSchema.safeParse(e).success, JSON.stringify(e)).toBe(false);
  });
});
