/**
 * Prometheus and the metrics target of the stack: traffic set at run time comes
 * back from PromQL through Prometheus' HTTP API as the rate and error ratio that
 * were set; clearing removes the series; bad input is refused with the reason;
 * an extra scrape target added at run time is scraped, and dropped when removed.
 * (That both stop with `down` is checked in stack.test.ts's down/up test.)
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import {
  addScrapeTarget,
  clearTraffic,
  listTraffic,
  prometheusQuery,
  prometheusState,
  removeScrapeTarget,
  scrapeTargets,
  setTraffic,
  stackOptions,
} from '../../stack/index.ts';
import { httpRequest } from '../../stack/net.ts';
import type { StackInfo } from '../../stack/types.ts';
import { eventually } from './support.ts';

const stack: StackInfo = inject('stack');
const opts = stackOptions(stack);
const app = `metrics-${randomUUID().slice(0, 8)}/web`;


/** One number from an instant query, undefined while there is none. */
async function scalar(query: string): Promise<number | undefined> {
  const r = await prometheusQuery(query, opts);
  return r.length === 1 && Number.isFinite(r[0]!.value) ? r[0]!.value : undefined;
}

afterAll(async () => {
  await clearTraffic({ app }, opts).catch(() => undefined);
});

describe('Prometheus and the metrics target', () => {
  it('are in the stack info and Prometheus scrapes the target every second', async () => {
    expect(stack.prometheus.url).toBe(`http://127.0.0.1:${stack.portBase! + 6}`);
    expect(stack.metricsTarget.url).toBe(`http://127.0.0.1:${stack.portBase! + 7}`);
    const targets = await eventually('the metrics target scraped', 30_000, async () => {
      const t = await prometheusState(opts);
      return t.find((x) => x.job === 'metrics-target')?.health === 'up' ? t : undefined;
    });
    expect(targets.find((x) => x.job === 'metrics-target')!.url).toBe(`${stack.metricsTarget.url}/metrics`);
    const config = await httpRequest(`${stack.prometheus.url}/api/v1/status/config`);
    expect(config.body).toContain('scrape_interval: 1s');
  });

  it('gives back through PromQL the request rate and the error ratio that were set, per version and cluster', async () => {
    await setTraffic({ app, version: 'v2', cluster: 'beijing', rps: 50, errorRate: 0.2 }, opts);
    await setTraffic({ app, version: 'v1', cluster: 'beijing', rps: 100 }, opts);
    await setTraffic({ app, version: 'v1', cluster: 'shenzhen', rps: 20, errorRate: 0.5 }, opts);
    expect((await listTraffic(opts)).filter((t) => t.app === app)).toHaveLength(3);

    // The target itself: both codes exist from the start, the 500s at the set share.
    const text = (await httpRequest(`${stack.metricsTarget.url}/metrics`)).body;
    expect(text).toContain(`http_requests_total{app="${app}",version="v1",cluster="beijing",code="500"} 0`);
    expect(text).toMatch(
      new RegExp(`http_requests_total\\{app="${app}",version="v2",cluster="beijing",code="200"\\} \\d+`),
    );

    const sel = (labels: string) => `http_requests_total{app="${app}",${labels}}`;
    const rate = (labels: string) => `sum(rate(${sel(labels)}[10s]))`;
    const ratio = (labels: string) => `${rate(`${labels},code="500"`)} / ${rate(labels)}`;
    // rate() over 10 s is exact only once the series is older than 10 s (a series that
    // starts inside the window is not extrapolated back to its start): 12 s of samples.
    await eventually('12 s of samples', 60_000, async () => {
      const n = await scalar(`count_over_time(${sel('version="v2",cluster="beijing",code="200"')}[15s])`);
      return n !== undefined && n >= 13 ? true : undefined;
    });
    expect(await scalar(rate('version="v2",cluster="beijing"'))).toBeCloseTo(50, -1); // |x - 50| < 5
    expect(await scalar(rate('version="v1",cluster="beijing"'))).toBeCloseTo(100, -1);
    expect(await scalar(rate('version="v1",cluster="shenzhen"'))).toBeCloseTo(20, -0.5); // < 1.6
    expect(await scalar(ratio('version="v2",cluster="beijing"'))).toBeCloseTo(0.2, 1); // < 0.05
    expect(await scalar(ratio('version="v1",cluster="beijing"'))).toBe(0);
    expect(await scalar(ratio('version="v1",cluster="shenzhen"'))).toBeCloseTo(0.5, 1);
    // Summed over clusters, as an analysis of a version across the fleet would.
    expect(await scalar(rate('version="v1"'))).toBeCloseTo(120, -1);

    // A change of rates keeps the counters: no reset, and the rate follows.
    const before = await scalar(`sum(${sel('version="v2",cluster="beijing"')})`);
    await setTraffic({ app, version: 'v2', cluster: 'beijing', rps: 10, errorRate: 0 }, opts);
    await eventually('v2 at 10 rps, no errors', 60_000, async () => {
      const [r, e] = await Promise.all([
        scalar(`sum(rate(${sel('version="v2",cluster="beijing"')}[5s]))`),
        scalar(`sum(rate(${sel('version="v2",cluster="beijing",code="500"')}[5s]))`),
      ]);
      return r !== undefined && Math.abs(r - 10) < 2 && e === 0 ? true : undefined;
    });
    expect(await scalar(`sum(resets(${sel('version="v2"')}[1m]))`)).toBe(0);
    expect(await scalar(`sum(${sel('version="v2",cluster="beijing"')})`)).toBeGreaterThan(before!);
  });

  it('clear removes the entries and their series; the others keep going', async () => {
    const r = await clearTraffic({ app, version: 'v1' }, opts);
    expect(r.removed).toBe(2);
    expect(r.traffic.filter((t) => t.app === app).map((t) => t.version)).toEqual(['v2']);
    const text = (await httpRequest(`${stack.metricsTarget.url}/metrics`)).body;
    expect(text).not.toContain(`app="${app}",version="v1"`);
    expect(text).toContain(`app="${app}",version="v2"`);
    // Prometheus marks the series stale at the next scrape: they drop out of instant queries.
    await eventually('v1 series gone from Prometheus', 30_000, async () =>
      (await prometheusQuery(`http_requests_total{app="${app}",version="v1"}`, opts)).length === 0
        ? true
        : undefined,
    );
    expect(await scalar(`count(http_requests_total{app="${app}",version="v2"})`)).toBe(2);
    expect((await clearTraffic({ app }, opts)).removed).toBe(1);
    expect((await listTraffic(opts)).filter((t) => t.app === app)).toEqual([]);
  });

  it('refuses bad traffic with the field and the reason', async () => {
    await expect(setTraffic({ app, version: 'v1', cluster: 'atlantis', rps: 1 }, opts)).rejects.toThrow(
      /no cluster "atlantis" \(have beijing, shenzhen, cloud-hk\)/,
    );
    await expect(
      setTraffic({ app: 'web', version: 'v1', cluster: 'beijing', rps: -1, errorRate: 1.5 }, opts),
    ).rejects.toThrow(/app: namespace\/name; rps: .*>=0; errorRate: .*<=1/);
    // Straight at the target too (no client-side check in between): a 400 with the reason.
    const res = await httpRequest(`${stack.metricsTarget.url}/v1/traffic`, {
      method: 'PUT',
      body: JSON.stringify({ app, version: 'v1', cluster: 'beijing', rps: 'many' }),
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).message).toMatch(/^rps: /);
    expect((await listTraffic(opts)).filter((t) => t.app === app)).toEqual([]);
  });

  it('scrapes an extra target added at run time (file_sd, no restart) and stops when it is removed', async () => {
    const job = `extra-${randomUUID().slice(0, 6)}`;
    // Temporal's own metrics endpoint (B+3) stands in for the API's or the worker's /metrics.
    const url = `http://127.0.0.1:${stack.portBase! + 3}/metrics`;
    try {
      expect(addScrapeTarget({ job, url, labels: { component: 'temporal' } }, opts)).toContainEqual({
        job,
        url,
        labels: { component: 'temporal' },
      });
      await eventually(`up{job="${job}"} == 1`, 60_000, async () =>
        (await scalar(`up{job="${job}",component="temporal"}`)) === 1 ? true : undefined,
      );
      expect(() => addScrapeTarget({ job: 'bad job', url: 'ftp://x' }, opts)).toThrow(/job: .*; url: /);
    } finally {
      removeScrapeTarget(job, undefined, opts);
    }
    expect(scrapeTargets(opts).some((t) => t.job === job)).toBe(false);
    await eventually(`${job} no longer a target`, 60_000, async () =>
      (await prometheusState(opts)).some((t) => t.job === job) ? undefined : true,
    );
  });
});
