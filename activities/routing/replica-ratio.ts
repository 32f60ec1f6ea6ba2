/**
 * Replica ratio (the default): the stable and the canary Deployment both sit behind the
 * user's Service, so each side's share of traffic is its share of ready pods. Its `set`
 * changes nothing by itself: the activity scales the two sides (model/canary.ts
 * replicaSplit), which is this router's way of routing. Its weight reads back from the
 * Deployments' ready replicas.
 */
import { RouterKind } from '../../model/canary.ts';
import { readObject } from '../kubernetes/objects.ts';
import { deploymentRef, sideOf } from './common.ts';
import type { Router, RouterContext } from './router.ts';

export function replicaRatioRouter(ctx: RouterContext): Router {
  const { clients: c, target } = ctx;
  return {
    kind: RouterKind.replicaRatio,
    async check() {},
    async set() {},
    async read() {
      const stable = sideOf(target.deployment, await readObject(c, deploymentRef(target.namespace, target.deployment)));
      const canary = sideOf(target.canaryDeployment, await readObject(c, deploymentRef(target.namespace, target.canaryDeployment)));
      return [{ name: `Service ${target.service}`, stable: stable.readyReplicas, canary: canary.readyReplicas }];
    },
    async changed() {
      return false;
    },
    async remove() {},
  };
}
