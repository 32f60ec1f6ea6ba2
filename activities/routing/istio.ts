/**
 * Istio: the weights of a VirtualService's http route destinations. The first `set`
 * remembers each http route's `route` list (annotation flotilla.dev/routing-original) and,
 * in the routes chosen (by name, else every one with a destination on the user's Service),
 * replaces that destination (host `web`, `web.shop` or `web.shop.svc...`) by the stable and
 * canary Services' hosts in the same form, splitting its weight: 100 - w and w when it is
 * the only destination, else its own share (the weights of a route keep summing to 100).
 * `remove` puts the remembered lists back.
 */
import { RouterKind } from '../../model/canary.ts';
import type { KubeObject, ObjectRef } from '../../model/objects.ts';
import { dropOriginal, invalid, mustRead, savedOriginal, saveOriginal, writeBack } from './common.ts';
import type { Router, RouterContext } from './router.ts';

interface Destination {
  destination: { host: string; subset?: string; port?: unknown };
  weight?: number;
  [k: string]: unknown;
}
interface HttpRoute {
  name?: string;
  route?: Destination[];
  [k: string]: unknown;
}
type Original = { http: (Destination[] | null)[] };

const httpOf = (o: KubeObject): HttpRoute[] => ((o.spec as { http?: HttpRoute[] } | undefined)?.http ?? []);

export function istioRouter(ctx: RouterContext, virtualService: string, routes?: string[]): Router {
  const { clients: c, target } = ctx;
  const ref: ObjectRef = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', name: virtualService, namespace: target.namespace };
  const ns = target.namespace;
  /** The host with the user's Service replaced by `to`, or undefined when it is not on that Service. */
  const rehost = (host: string, from: string, to: string): string | undefined => {
    if (host === from) return to;
    if (host === `${from}.${ns}` || host.startsWith(`${from}.${ns}.`)) return to + host.slice(from.length);
    return undefined;
  };
  const onService = (d: Destination, svc: string) => rehost(d.destination.host, svc, svc) !== undefined;
  const chosen = (r: HttpRoute, original: Destination[] | null) =>
    routes ? r.name !== undefined && routes.includes(r.name) : (original ?? []).some((d) => onService(d, target.service));
  const read = () => mustRead(c, ref, 'the canary step names it in trafficRouting.istio.virtualService');
  const originalOf = (vs: KubeObject): Original => {
    const http = httpOf(vs);
    const original = savedOriginal<Original>(vs) ?? { http: http.map((r) => r.route ?? null) };
    if (routes) {
      const missing = routes.filter((n) => !http.some((r) => r.name === n));
      if (missing.length) throw invalid(c, ref, `has no http route named ${missing.join(', ')} (has: ${http.map((r) => r.name ?? '(unnamed)').join(', ')})`);
      const off = http.filter((r, i) => r.name && routes.includes(r.name) && !(original.http[i] ?? []).some((d) => onService(d, target.service)));
      if (off.length) throw invalid(c, ref, `http route ${off.map((r) => r.name).join(', ')} has no destination on Service ${target.service}`);
    } else if (!http.some((r, i) => chosen(r, original.http[i] ?? null))) {
      throw invalid(c, ref, `has no http route with a destination on Service ${target.service}: nothing to split`);
    }
    return original;
  };

  return {
    kind: RouterKind.istio,
    async check() {
      originalOf(await read());
    },
    async set(weight) {
      const vs = await read();
      const original = originalOf(vs);
      await writeBack(c, vs, (o) => {
        saveOriginal(o, original);
        httpOf(o).forEach((r, i) => {
          const dests = original.http[i] ?? null;
          if (!dests || !chosen(r, dests)) return;
          r.route = dests.flatMap((d) => {
            if (!onService(d, target.service)) return [d];
            const share = dests.length === 1 ? 100 : (d.weight ?? 0);
            const stable = Math.round((share * (100 - weight)) / 100);
            return [
              { ...d, destination: { ...d.destination, host: rehost(d.destination.host, target.service, target.stableService)! }, weight: stable },
              { ...d, destination: { ...d.destination, host: rehost(d.destination.host, target.service, target.canaryService)! }, weight: share - stable },
            ];
          });
        });
      });
    },
    async read() {
      const vs = await read();
      return httpOf(vs).flatMap((r, i) => {
        const dests = r.route ?? [];
        const sum = (svc: string) => dests.filter((d) => onService(d, svc)).reduce((a, d) => a + (d.weight ?? 0), 0);
        const has = dests.some((d) => onService(d, target.stableService) || onService(d, target.canaryService));
        return has ? [{ name: r.name ?? `http ${i}`, stable: sum(target.stableService), canary: sum(target.canaryService) }] : [];
      });
    },
    async changed() {
      return savedOriginal(await read()) !== undefined;
    },
    async remove(out) {
      const vs = await read();
      const original = savedOriginal<Original>(vs);
      if (!original) return;
      await writeBack(c, vs, (o) => {
        dropOriginal(o);
        httpOf(o).forEach((r, i) => {
          const dests = original.http[i];
          if (dests) r.route = dests;
        });
      });
      out.removed.push(`VirtualService ${ns}/${virtualService} (route weights reverted)`);
    },
  };
}
