/**
 * A blue-green's cluster steps. `preview`: what stands there is recorded, the
 * new version runs beside the active one as `<deployment>-preview` behind
 * `<service>-preview` (full replicas, waited ready), every other object of the
 * new version applied. `switch`: the active Service selects the preview's
 * pods. `finish`: after scaleDownDelay (the old version still running, a
 * quick way back), the Deployment itself takes the new version (rolling,
 * while the Service still sends traffic to the preview), the Service goes
 * back to its own selector, and the preview is deleted. An abort or a
 * rollback before the end puts the captured Service and Deployment back and
 * deletes the preview: traffic is on the old version again.
 *
 * A cluster with no active version yet is deployed whole; switch and finish
 * only wait for it.
 */
import { ApplicationFailure, sleep } from '@temporalio/workflow';
import { activeService, blueGreenTarget, BlueGreenSchema, previewObjects, refKey, refOf, type BlueGreenTarget, type KubeObject, type PlanStep } from '../../model/index.ts';
import type { AppliedRef } from '../../activities/types.ts';
import type { RunContext } from '../context.ts';
import { waitFor } from './wait.ts';

export interface BlueGreenCluster {
  target: BlueGreenTarget;
  first: boolean;
}

function targetOf(x: RunContext, cluster: string): BlueGreenTarget {
  const b = x.request.blueGreen ?? BlueGreenSchema.parse({});
  const t = blueGreenTarget(x.plan().clusters[cluster]!.objects, { deployment: b.deployment, service: b.service });
  if (typeof t === 'string') throw ApplicationFailure.create({ type: 'PlanFailed', nonRetryable: true, message: `cluster "${cluster}": blue-green: ${t}` });
  return t;
}

const generationsOf = (applied: AppliedRef[], keys: Set<string>) => applied.filter((a) => keys.has(refKey(a.ref))).map((a) => ({ ref: a.ref, generation: a.generation ?? 0 }));

export async function previewStep(x: RunContext, cluster: string): Promise<void> {
  const p = x.plan().clusters[cluster]!;
  const { step } = x.acts(cluster);
  const target = targetOf(x, cluster);
  const preview = previewObjects(target, p.objects) as KubeObject[];
  if (!x.touched.has(cluster)) {
    x.state.setCluster(cluster, 'Applying', 'recording what stands there now');
    const before = await step.captureObjects({ cluster, owner: x.owner, refs: [...p.objects.map(refOf), ...preview.map(refOf)], prune: p.prune, adopt: x.request.adopt });
    x.touched.set(cluster, { cluster, wave: p.wave, before });
  }
  const active = x.touched.get(cluster)!.before.find((b) => b.ref.kind === 'Deployment' && b.ref.name === target.deployment);
  if (!active?.exists) {
    x.blueGreens.set(cluster, { target, first: true });
    x.state.setCluster(cluster, 'Applying', `no active version of ${target.deployment} here yet: deploying ${p.image} whole`);
    const applied = await step.applyObjects({ cluster, owner: x.owner, deliveryId: x.deliveryId, objects: p.objects, adopt: x.request.adopt });
    x.generations.set(cluster, generationsOf(applied, new Set(p.workloads.map(refKey))));
    await waitFor(x, cluster, x.generations.get(cluster)!);
    return;
  }
  x.blueGreens.set(cluster, { target, first: false });
  // The preview's pods carry the active Service's labels: pin the Service to the active version's pods first.
  const [now] = await x.acts(cluster).read.readWorkloads({ cluster, refs: [active.ref] });
  if (!now?.podTemplateHash) throw ApplicationFailure.create({ type: 'RolloutFailed', message: `cluster "${cluster}": cannot find the current ReplicaSet of ${target.deployment} to pin Service ${target.service} to` });
  await step.applyObjects({ cluster, owner: x.owner, deliveryId: x.deliveryId, objects: [activeService(p.objects, target, { pinned: now.podTemplateHash }) as KubeObject], adopt: x.request.adopt });
  // Everything but the Deployment and the active Service (they change at the switch and the finish), plus the preview.
  const rest = p.objects.filter((o) => !((o.kind === 'Deployment' && o.metadata.name === target.deployment) || (o.kind === 'Service' && o.metadata.name === target.service)));
  x.state.setCluster(cluster, 'Applying', `preview of ${p.image} beside the active version: ${target.previewDeployment} behind Service ${target.previewService}`);
  const applied = await step.applyObjects({ cluster, owner: x.owner, deliveryId: x.deliveryId, objects: [...rest, ...preview], adopt: x.request.adopt });
  x.state.setCluster(cluster, 'Progressing', `waiting for the preview ${target.previewDeployment}`);
  await waitFor(x, cluster, generationsOf(applied, new Set([refKey({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: target.namespace, name: target.previewDeployment }), ...p.workloads.filter((w) => !(w.kind === 'Deployment' && w.name === target.deployment)).map(refKey)])));
  x.state.setCluster(cluster, 'Progressing', `preview ready: Service ${target.previewService} serves ${p.image}`);
}

export async function switchStep(x: RunContext, cluster: string): Promise<void> {
  const c = x.blueGreens.get(cluster);
  if (!c || c.first) return;
  const p = x.plan().clusters[cluster]!;
  x.state.setCluster(cluster, 'Applying', `switching Service ${c.target.service} to the new version`);
  await x.acts(cluster).step.applyObjects({ cluster, owner: x.owner, deliveryId: x.deliveryId, objects: [activeService(p.objects, c.target, 'preview') as KubeObject], adopt: x.request.adopt });
  x.state.setCluster(cluster, 'Progressing', `Service ${c.target.service} serves ${p.image} (the old version still runs)`, { weight: 100 });
}

export async function finishStep(x: RunContext, cluster: string, step: PlanStep): Promise<void> {
  if (step.kind !== 'finish') throw new Error(`finish module got ${step.kind}`);
  const c = x.blueGreens.get(cluster);
  const p = x.plan().clusters[cluster]!;
  const acts = x.acts(cluster).step;
  if (c && !c.first) {
    x.state.setCluster(cluster, 'Progressing', `the old version scales down in ${Math.round(step.scaleDownDelayMs / 1000)}s`);
    await sleep(step.scaleDownDelayMs);
    const next = p.objects.find((o) => o.kind === 'Deployment' && o.metadata.name === c.target.deployment)!;
    x.state.setCluster(cluster, 'Applying', `${c.target.deployment} takes the new version (traffic stays on the preview meanwhile)`);
    const applied = await acts.applyObjects({ cluster, owner: x.owner, deliveryId: x.deliveryId, objects: [next], adopt: x.request.adopt });
    x.generations.set(cluster, applied.map((a) => ({ ref: a.ref, generation: a.generation ?? 0 })));
    await waitFor(x, cluster, x.generations.get(cluster)!);
    await acts.applyObjects({ cluster, owner: x.owner, deliveryId: x.deliveryId, objects: [activeService(p.objects, c.target, 'own') as KubeObject], adopt: x.request.adopt });
    await acts.pruneObjects({ cluster, owner: x.owner, refs: [
      { apiVersion: 'apps/v1', kind: 'Deployment', namespace: c.target.namespace, name: c.target.previewDeployment },
      { apiVersion: 'v1', kind: 'Service', namespace: c.target.namespace, name: c.target.previewService },
    ] });
  }
  const states = await waitFor(x, cluster, x.generations.get(cluster) ?? []);
  const main = states.find((w) => w.ref.kind === 'Deployment');
  x.state.setCluster(cluster, 'Healthy', `${main ? `${main.readyReplicas ?? 0}/${main.replicas ?? 0} ready` : 'applied'}; preview removed`, {
    ...(main ? { readyReplicas: main.readyReplicas ?? 0 } : {}),
    ...(main?.revision !== undefined ? { revision: main.revision } : {}),
  });
  delete x.state.cluster(cluster).failureType;
}
