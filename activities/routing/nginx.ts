/**
 * NGINX Ingress: the canary annotations on the canary Ingress `<ingress>-canary` (added by
 * canaryObjects: a copy of the named Ingress whose backends point at the canary Service).
 * ingress-nginx sends `canary-weight` % of the requests matching that host and path to
 * the canary Ingress's backends and the rest to the main Ingress's. So that the rest
 * reaches only stable pods, the first `set` also points the main Ingress's backends on the
 * user's Service at the stable Service (remembering them in flotilla.dev/routing-original).
 * `remove` deletes the canary Ingress first (nginx falls back to the main one) and then
 * points the main Ingress back at the user's Service.
 */
import { canaryIngressName, ingressBackends, NGINX_CANARY, NGINX_CANARY_WEIGHT, RouterKind } from '../../model/canary.ts';
import type { KubeObject, ObjectRef } from '../../model/objects.ts';
import { readObject } from '../kubernetes/objects.ts';
import { deleteCanaryObject, dropOriginal, invalid, mustRead, savedOriginal, saveOriginal, writeBack } from './common.ts';
import type { Router, RouterContext } from './router.ts';

type Original = { services: (string | null)[] };
type Spec = Parameters<typeof ingressBackends>[0];

const backendsOf = (o: KubeObject) => ingressBackends((o.spec ?? {}) as Spec);

export function nginxRouter(ctx: RouterContext, ingress: string): Router {
  const { clients: c, target, owner } = ctx;
  const mainRef: ObjectRef = { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', name: ingress, namespace: target.namespace };
  const canaryRef: ObjectRef = { ...mainRef, name: canaryIngressName(ingress) };
  const readMain = () => mustRead(c, mainRef, 'the canary step names it in trafficRouting.nginx.ingress');
  const readCanary = () => mustRead(c, canaryRef, 'it is one of the canary objects (canaryObjects): apply them before setting a weight');

  return {
    kind: RouterKind.nginx,
    async check() {
      const main = await readMain();
      if (!savedOriginal(main) && !backendsOf(main).some((b) => b.service?.name === target.service))
        throw invalid(c, mainRef, `has no backend on Service ${target.service}: nothing to split`);
      await readCanary();
    },
    async set(weight) {
      const main = await readMain();
      // No canary Ingress is 0 % by definition (what remove() leaves while it reverts).
      if (weight === 0 && !(await readObject(c, canaryRef))) return;
      const canary = await readCanary();
      if (!savedOriginal(main)) {
        const services = backendsOf(main).map((b) => b.service?.name ?? null);
        if (!services.includes(target.service)) throw invalid(c, mainRef, `has no backend on Service ${target.service}: nothing to split`);
        await writeBack(c, main, (o) => {
          saveOriginal(o, { services } satisfies Original);
          for (const b of backendsOf(o)) if (b.service?.name === target.service) b.service.name = target.stableService;
        });
      }
      const want = { [NGINX_CANARY]: 'true', [NGINX_CANARY_WEIGHT]: String(weight) };
      const ann = canary.metadata.annotations ?? {};
      if (ann[NGINX_CANARY] !== want[NGINX_CANARY] || ann[NGINX_CANARY_WEIGHT] !== want[NGINX_CANARY_WEIGHT])
        await writeBack(c, canary, (o) => {
          o.metadata.annotations = { ...(o.metadata.annotations ?? {}), ...want };
        });
    },
    async read() {
      const main = await readMain();
      const canary = await readCanary().catch(() => undefined);
      const onStable = backendsOf(main).some((b) => b.service?.name === target.stableService);
      const ann = canary?.metadata.annotations ?? {};
      if (!canary || ann[NGINX_CANARY] !== 'true') return onStable ? [{ name: ingress, stable: 100, canary: 0 }] : [];
      const w = Number(ann[NGINX_CANARY_WEIGHT] ?? '0');
      const weight = Number.isFinite(w) ? Math.min(100, Math.max(0, w)) : 0;
      return [{ name: ingress, stable: 100 - weight, canary: weight }];
    },
    async changed() {
      return savedOriginal(await readMain()) !== undefined;
    },
    async remove(out) {
      await deleteCanaryObject(c, canaryRef, owner, target, out);
      const main = await readMain();
      const original = savedOriginal<Original>(main);
      if (!original) return;
      await writeBack(c, main, (o) => {
        dropOriginal(o);
        backendsOf(o).forEach((b, i) => {
          const was = original.services[i];
          if (b.service && was && b.service.name === target.stableService) b.service.name = was;
        });
      });
      out.removed.push(`Ingress ${target.namespace}/${ingress} (backends reverted)`);
    },
  };
}
