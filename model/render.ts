/** Renders the Kubernetes objects Flotilla owns in one cluster for one application. */
import type { AppSpec, Sidecar } from './app.ts';
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
  const container = renderContainer({
    name: app.name,
    image: target.image,
    ports: app.template.ports,
    env: target.env,
    resources: target.resources,
    command: app.template.command,
    args: app.template.args,
  });
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
        spec: { containers: [container, ...app.template.sidecars.map(renderContainer)] },
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

function renderContainer(c: Omit<Sidecar, 'resources'> & { resources?: Sidecar['resources'] | undefined }): Record<string, unknown> {
  return {
    name: c.name,
    image: c.image,
    ports: c.ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), containerPort: p.containerPort, protocol: p.protocol })),
    env: Object.entries(c.env)
      // Code-unit order, not localeCompare: the same spec must render the same pod on every worker, whatever its locale.
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, value]) => ({ name, value })),
    ...(c.resources ? { resources: c.resources } : {}),
    ...(c.command ? { command: c.command } : {}),
    ...(c.args ? { args: c.args } : {}),
  };
}
