/**
 * Text output of the read commands (status, list, app, clusters): aligned
 * columns a person reads; `--output json` prints the API's JSON instead.
 */
import { clusterLine, header, plainStyle, type Style } from './progress.ts';
import type { AppView, ListItemView, StatusView } from './types.ts';

/** Aligned columns; the last one is not padded. */
export function table(head: string[], rows: (string | undefined)[][]): string[] {
  const cells = [head, ...rows.map((r) => r.map((c) => c ?? ''))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

const shortTime = (iso: string | undefined): string => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');

export function statusText(s: StatusView, style: Style = plainStyle): string[] {
  const out = [header(s), `phase:    ${s.phase}${s.message ? `: ${s.message}` : ''}`];
  if (s.digest) out.push(`digest:   ${s.digest}`);
  if (s.startedAt) out.push(`started:  ${shortTime(s.startedAt)}${s.finishedAt ? `   finished: ${shortTime(s.finishedAt)}` : ''}`);
  if (s.steps?.length) out.push(`steps:    ${s.steps.join(' -> ')}`);
  const waves = s.waves?.length ? s.waves : [Object.keys(s.clusters ?? {})];
  waves.forEach((names, i) => {
    const current = i === (s.currentWave ?? 0) ? '  (current)' : '';
    out.push(`wave ${i + 1}/${waves.length}${current}`);
    for (const n of names) {
      const c = s.clusters?.[n];
      out.push(`  ${c ? clusterLine(s, c, style) : `${n}  (not started)`}`);
    }
  });
  const conds = (s.conditions ?? []).filter((c) => c.status !== 'Unknown');
  if (conds.length) {
    out.push('conditions:');
    out.push(...table(['TYPE', 'STATUS', 'REASON', 'MESSAGE'], conds.map((c) => [c.type, c.status, c.reason, c.message])).map((l) => `  ${l}`));
  }
  if (s.audit?.length) {
    out.push('audit:');
    out.push(
      ...table(
        ['AT', 'WHO', 'ACTION', 'CLUSTER', 'COMMENT'],
        s.audit.map((a) => [shortTime(a.at), a.who, a.gate ? `${a.action} ${a.gate}` : a.action, a.cluster, a.comment]),
      ).map((l) => `  ${l}`),
    );
  }
  return out;
}

export function listText(items: ListItemView[]): string[] {
  if (items.length === 0) return ['no deliveries'];
  return table(
    ['ID', 'APP', 'TYPE', 'PHASE', 'IMAGE', 'STARTED', 'BY'],
    items.map((d) => [d.id, d.app, d.rollbackOf ? `${d.type ?? ''} of ${d.rollbackOf}` : d.type, d.phase, d.image, shortTime(d.startedAt), d.requestedBy]),
  );
}

export function appText(a: AppView): string[] {
  const out = [`${a.namespace}/${a.name}${a.spec?.image ? `  ${a.spec.image}` : ''}${a.spec?.replicas !== undefined ? `  ${a.spec.replicas} replicas` : ''}`];
  out.push(a.activeDelivery ? `active delivery: ${a.activeDelivery}` : 'active delivery: none');
  const clusters = Object.entries(a.clusters ?? {});
  if (clusters.length) {
    out.push(
      ...table(
        ['CLUSTER', 'IMAGE', 'READY', 'REVISION', 'PHASE', 'DELIVERY', 'VERIFIED'],
        clusters.map(([name, c]) => [
          name,
          c.image,
          c.replicas !== undefined ? `${c.readyReplicas ?? 0}/${c.replicas}` : '',
          c.revision !== undefined ? String(c.revision) : '',
          c.phase,
          c.deliveryId,
          c.verified === false ? 'no' : 'yes',
        ]),
      ),
    );
  } else out.push('runs on no cluster');
  if (a.deliveries?.length) {
    out.push('recent deliveries:');
    out.push(
      ...table(
        ['ID', 'TYPE', 'PHASE', 'IMAGE', 'STARTED', 'BY'],
        a.deliveries.map((d) => [d.id, d.rollbackOf ? `${d.type ?? ''} of ${d.rollbackOf}` : d.type, d.phase, d.image, shortTime(d.startedAt), d.requestedBy]),
      ).map((l) => `  ${l}`),
    );
  }
  return out;
}

/**
 * GET /v1/clusters: the columns are read from what each
 * item has (name, region, zone, provider, state or phase, drained, message),
 * so whichever shape the route takes, the table shows it.
 */
export function clustersText(body: unknown): string[] {
  const items: unknown[] = Array.isArray(body) ? body : Array.isArray((body as { items?: unknown[] })?.items) ? (body as { items: unknown[] }).items : [];
  if (items.length === 0) return ['no clusters'];
  const str = (v: unknown): string => (v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return table(
    ['NAME', 'REGION', 'HEALTH', 'SINCE', 'LAST PROBE', 'DRAINED', 'FAILOVER'],
    items.map((raw) => {
      const c = (raw ?? {}) as Record<string, unknown>;
      const probe = c.lastProbe as { at?: string; ok?: boolean; latencyMs?: number; message?: string } | undefined;
      const f = c.failover as { phase?: string; to?: string[] } | undefined;
      return [
        str(c.name ?? c.cluster),
        str(c.region),
        str(c.health ?? c.state ?? c.phase ?? c.status),
        str(c.since),
        probe ? `${probe.ok ? 'ok' : 'failed'}${probe.latencyMs !== undefined ? ` ${probe.latencyMs}ms` : ''}${probe.message ? ` (${probe.message})` : ''}` : '',
        c.drained === undefined ? '' : c.drained ? 'yes' : 'no',
        f ? `${str(f.phase)}${f.to?.length ? ` -> ${f.to.join(',')}` : ''}` : '',
      ];
    }),
  );
}
