/**
 * Gateway API: the weights of an HTTPRoute's backendRefs. The first `set` remembers each
 * rule's backendRefs (annotation flotilla.dev/routing-original) and, in every rule with a
 * backendRef on the user's Service, replaces that ref by two: the stable Service at
 * 100 - w and the canary Service at w (other backends of such a rule are scaled by 100, so
 * their share is kept). `remove` puts the remembered backendRefs back.
 */
import { RouterKind } from '../../model/canary.ts';
import type { KubeObject, ObjectRef } from '../../model/objects.ts';
import { dropOriginal, invalid, mustRead, savedOriginal, saveOriginal, writeBack } from './common.ts';
import type { Router, RouterContext } from './router.ts';

interface BackendRef {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
  weight?: number;
  [k: string]: unknown;
}
interface Rule {
  backendRefs?: BackendRef[];
  [k: string]: unknown;
}
type Original = { rules: (BackendRef[] | null)[] };

const rulesOf = (o: KubeObject): Rule[] => ((o.spec as { rules?: Rule[] } | undefined)?.rules ?? []);

export function gatewayApiRouter(ctx: RouterContext, httpRoute: string): Router {
  const { clients: c, target } = ctx;
  const ref: ObjectRef = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', name: httpRoute, namespace: target.namespace };
  const isService = (b: BackendRef, name: string) =>
    b.name === name && (b.kind ?? 'Service') === 'Service' && (b.group ?? '') === '' && (b.namespace ?? target.namespace) === target.namespace;
  const read = () => mustRead(c, ref, 'the canary step names it in trafficRouting.gatewayAPI.httpRoute');
  const originalOf = (route: KubeObject): Original => {
    const original = savedOriginal<Original>(route) ?? { rules: rulesOf(route).map((r) => r.backendRefs ?? null) };
    if (!original.rules.some((refs) => refs?.some((b) => isService(b, target.service))))
      throw invalid(c, ref, `has no backendRef on Service ${target.service}: nothing to split`);
    return original;
  };

  return {
    kind: RouterKind.gatewayAPI,
    async check() {
      originalOf(await read());
    },
    async set(weight) {
      const route = await read();
      const original = originalOf(route);
      await writeBack(c, route, (o) => {
        saveOriginal(o, original);
        const rules = rulesOf(o);
        original.rules.forEach((refs, i) => {
          if (!refs || !refs.some((b) => isService(b, target.service)) || !rules[i]) return;
          rules[i].backendRefs = refs.flatMap((b) => {
            if (!isService(b, target.service)) return [{ ...b, weight: (b.weight ?? 1) * 100 }];
            const share = refs.length === 1 ? 1 : (b.weight ?? 1);
            return [
              { ...b, name: target.stableService, weight: share * (100 - weight) },
              { ...b, name: target.canaryService, weight: share * weight },
            ];
          });
        });
      });
    },
    async read() {
      const route = await read();
      return rulesOf(route).flatMap((r, i) => {
        const refs = r.backendRefs ?? [];
        const sum = (name: string) => refs.filter((b) => isService(b, name)).reduce((a, b) => a + (b.weight ?? 1), 0);
        const has = refs.some((b) => isService(b, target.stableService) || isService(b, target.canaryService));
        return has ? [{ name: `rule ${i}`, stable: sum(target.stableService), canary: sum(target.canaryService) }] : [];
      });
    },
    async changed() {
      return savedOriginal(await read()) !== undefined;
    },
    async remove(out) {
      const route = await read();
      const original = savedOriginal<Original>(route);
      if (!original) return;
      await writeBack(c, route, (o) => {
        dropOriginal(o);
        const rules = rulesOf(o);
        original.rules.forEach((refs, i) => {
          if (!rules[i]) return;
          if (refs) rules[i].backendRefs = refs;
          else delete rules[i].backendRefs;
        });
      });
      out.removed.push(`HTTPRoute ${target.namespace}/${httpRoute} (backendRefs reverted)`);
    },
  };
}
