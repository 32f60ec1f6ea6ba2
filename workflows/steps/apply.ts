/**
 * The apply step: record what stands in the cluster, then server-side apply
 * the rendered objects. The cluster counts as touched as soon as what stood
 * there is recorded, before the apply is even scheduled: a rollback that comes
 * while the apply is in flight (or after it landed and its answer was lost)
 * restores it too.
 */
import { refKey, refOf } from '../../model/index.ts';
import type { RunContext } from '../context.ts';

export async function applyStep(x: RunContext, cluster: string): Promise<void> {
  const p = x.plan().clusters[cluster]!;
  const { step } = x.acts(cluster);
  if (!x.touched.has(cluster)) {
    x.state.setCluster(cluster, 'Applying', 'recording what stands there now');
    // What the delivery changes: what it applies, and what it will prune (so a rollback can put that back too).
    const before = await step.captureObjects({ cluster, owner: x.owner, refs: p.objects.map(refOf), prune: p.prune, adopt: x.request.adopt });
    x.touched.set(cluster, { cluster, wave: p.wave, before });
  }
  x.state.setCluster(cluster, 'Applying', `applying ${p.objects.length} objects: ${p.image}, ${p.replicas} replicas`);
  const applied = await step.applyObjects({ cluster, owner: x.owner, deliveryId: x.deliveryId, objects: p.objects, adopt: x.request.adopt });
  const waitFor = new Set(p.workloads.map(refKey));
  x.generations.set(
    cluster,
    applied.filter((a) => waitFor.has(refKey(a.ref))).map((a) => ({ ref: a.ref, generation: a.generation ?? 0 })),
  );
}
