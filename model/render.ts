/** Renders the Kubernetes objects Flotilla owns in one cluster for one application. */
import type { AppSpec } from './app.ts';
import type { ClusterTarget } from './plan.ts';

export const MANAGED_BY = 'flotilla';
export const LABEL_APP = 'app.kubernetes.io/name';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const ANNOTATION_DELIVERY = 'flotilla.dev/delivery';
export const ANNOTATION_CLUSTER = 'flotilla.dev/cluster';

export interface RenderedApp {
  deployment: Record<string, unknown>;
  service: Record<string, unknown>;
}

export function renderApp(app: AppSpec, target: ClusterTarget, deliveryId: string): RenderedApp {
  const selector = { [LABEL_APP]: app.name };
  const labels = { ...selector, [LABEL_MANAGED_BY]: MANAGED_BY };
  const ports = app.template.ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), containerPort: p.containerPort, protocol: p.protocol }));
  const container: Record<string, unknown> = {
    name: app.name,
    image: target.image,
    ports,
    env: Object.entries(target.env)
      // Code-unit order, not localeCompare: the same spec must render the same pod on every worker, whatever its locale.
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, value]) => ({ name, value })),
    ...(target.resources ? { resources: target.resources } : {}),
    ...(app.template.command ? { command: app.template.command } : {}),
    ...(app.template.args ? { args: app.template.args } : {}),
  };
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: app.name,
      namespace: app.namespace,
      labels,
      // On the Deployment, not the pod template: a new delivery of the same spec changes no pod.
      annotations: { [ANNOTATION_DELIVERY]: deliveryId, [ANNOTATION_CLUSTER]: target.cluster },
    },
    spec: {
      replicas: target.replicas,
      selector: { matchLabels: selector },
      progressDeadlineSeconds: 600,
      revisionHistoryLimit: 10,
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } },
      template: {
        metadata: { labels: { ...app.template.labels, ...labels }, annotations: { ...app.template.annotations } },
        spec: { containers: [container] },
      },
    },
  };
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: app.name, namespace: app.namespace, labels, annotations: { [ANNOTATION_DELIVERY]: deliveryId } },
    spec: {
      type: 'ClusterIP',
      selector,
      ports: app.template.ports.map((p, i) => ({ name: p.name ?? `port-${i}`, port: p.containerPort, targetPort: p.containerPort, protocol: p.protocol })),
    },
  };
  return { deployment, service };
}
