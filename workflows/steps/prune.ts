/**
 * The prune step: after the new objects are applied and ready, delete what an
 * earlier delivery of the application left in the cluster that this one no
 * longer has (only the application's own objects: one Flotilla did not create
 * for it is never deleted). What was pruned was captured before the apply,
 * so a rollback puts it back.
 */
import { describeObject } from '../../model/index.ts';
import type { RunContext } from '../context.ts';

export async function pruneStep(x: RunContext, cluster: string): Promise<void> {
  const refs = x.plan().clusters[cluster]!.prune;
  if (refs.length === 0) return;
  const c = x.state.cluster(cluster);
  x.state.setCluster(cluster, 'Progressing', `pruning ${refs.length} object(s) the new version no longer has`);
  const r = await x.acts(cluster).step.pruneObjects({ cluster, owner: x.owner, refs });
  const kept = r.kept.length ? `; kept ${r.kept.map((k) => `${describeObject(k.ref)} (${k.reason})`).join(', ')}` : '';
  x.state.setCluster(cluster, 'Healthy', `${c.readyReplicas}/${c.desiredReplicas} ready; pruned ${r.removed.map(describeObject).join(', ') || 'nothing'}${kept}`);
}
