/** A four-cluster fleet for the model's planner tests. */
import { ClusterSchema, toClusterInfo, type ClusterInfo } from '../../model/index.ts';

const cluster = (
  name: string,
  region: string,
  provider: string,
  capacity = 1,
  labels: Record<string, string> = {},
): ClusterInfo =>
  toClusterInfo(ClusterSchema.parse({ name, region, provider, capacity, labels, kubeconfig: { path: `/k/${name}` } }));

export const fleet: ClusterInfo[] = [
  cluster('beijing', 'cn-north', 'idc', 2, { tier: 'core' }),
  cluster('tianjin', 'cn-north', 'cloud', 1),
  cluster('shenzhen', 'cn-south', 'idc', 1, { tier: 'core' }),
  cluster('cloud-hk', 'ap-east', 'cloud', 1),
];
