/**
 * Renders the Kubernetes objects of an application in one cluster from
 * Flotilla's own application spec (one source kind among others to come).
 * Every object carries who made it: managed-by flotilla, the application, the
 * delivery and the cluster, so that ownership can be checked before any write.
 */
import type { InlineApp, Probe, Sidecar } from './app.ts';
import type { ClusterTarget } from './plan.ts';
import {
  ANNOTATION_APP,
  ANNOTATION_CLUSTER,
  ANNOTATION_DELIVERY,
  LABEL_APP,
  LABEL_MANAGED_BY,
  MANAGED_BY,
  ownerKey,
  type KubeObject,
} from './objects.ts';


export interface RenderOptions {
  deliveryId: string;
  /** The Deployment's progressDeadlineSeconds: the delivery's rolloutTimeout. */
  progressDeadlineSeconds: number;
}

/** The Service first, then the Deployment (apply order). */
export function renderApp(app: InlineApp, target: ClusterTarget, opts: RenderOptions): KubeObject[] {
  const selector = { [LABEL_APP]: app.name };
  const labels = { ...selector, [LABEL_MANAGED_BY]: MANAGED_BY };
  const annotations = {
    [ANNOTATION_APP]: ownerKey(app),
    [ANNOTATION_DELIVERY]: opts.deliveryId,
    [ANNOTATION_CLUSTER]: target.cluster,
  };
  const container = renderContainer({
    name: app.name,
    image: target.image,
    ports: app.template.ports,
    env: target.env,
    resources: target.resources,
    command: app.template.command,
    args: app.template.args,
    readinessProbe: app.template.readinessProbe,
    livenessProbe: app.template.livenessProbe,
    startupProbe: app.template.startupProbe,
  });
  const sidecars = app.template.sidecars.map((c) => renderContainer({ ...c, image: target.sidecarImages?.[c.name] ?? c.image }));
  const service: KubeObject = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: app.name, namespace: app.namespace, labels, annotations },
    spec: {
      type: 'ClusterIP',
      selector,
      ports: app.template.ports.map((p, i) => ({ name: p.name ?? `port-${i}`, port: p.containerPort, targetPort: p.containerPort, protocol: p.protocol })),
    },
  };
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    // On the Deployment, not the pod template: a new delivery of the same spec changes no pod.
    metadata: { name: app.name, namespace: app.namespace, labels, annotations },
    spec: {
      replicas: target.replicas,
      selector: { matchLabels: selector },
      progressDeadlineSeconds: opts.progressDeadlineSeconds,
      revisionHistoryLimit: 10,
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } },
      template: {
        metadata: { labels: { ...app.template.labels, ...labels }, annotations: { ...app.template.annotations } },
        spec: { containers: [container, ...sidecars] },
      },
    },
  };
  return [service, deployment];
}

type ContainerInput = Omit<Sidecar, 'resources' | 'readinessProbe' | 'livenessProbe' | 'startupProbe'> & {
  resources?: Sidecar['resources'] | undefined;
  readinessProbe?: Probe | undefined;
  livenessProbe?: Probe | undefined;
  startupProbe?: Probe | undefined;
};

function renderContainer(c: ContainerInput): Record<string, unknown> {
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
    ...(c.readinessProbe ? { readinessProbe: c.readinessProbe } : {}),
    ...(c.livenessProbe ? { livenessProbe: c.livenessProbe } : {}),
    ...(c.startupProbe ? { startupProbe: c.startupProbe } : {}),
  };
}
