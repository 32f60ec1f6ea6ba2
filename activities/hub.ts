/** Hub activities: what workflows may know of the fleet (no credentials, no paths). */
import { toClusterInfo, type ClusterInfo, type Inventory } from '../model/inventory.ts';

export function describeFleet(inventory: Inventory): ClusterInfo[] {
  return inventory.clusters.map(toClusterInfo);
}
