/**
 * One long-lived workflow per application (`app-<namespace>-<name>`): the
 * durable record of what runs where (spec, image, revision per cluster), and
 * the lock that lets only one delivery of the application run at a time.
 * It continues as new well before the history grows large.
 */
import { ApplicationFailure, allHandlersFinished, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import {
  acquireUpdate,
  appStateQuery,
  deliveryFinishedSignal,
  releaseSignal,
  type AcquireInput,
  type AppState,
  type DeliveryFinished,
} from './messages.ts';

export interface ApplicationInput {
  namespace: string;
  name: string;
  /** Carried over by continue-as-new. */
  state?: AppState;
}

const KEEP_DELIVERIES = 20;
const MAX_HISTORY = 2000;

export async function application(input: ApplicationInput): Promise<void> {
  const state: AppState = input.state ?? { name: input.name, namespace: input.namespace, clusters: {}, deliveries: [] };

  setHandler(appStateQuery, () => state);

  setHandler(
    acquireUpdate,
    (a: AcquireInput) => {
      if (state.activeDelivery === a.deliveryId) return state; // the same delivery asking again: nothing to add
      state.activeDelivery = a.deliveryId;
      state.deliveries = [{ id: a.deliveryId, type: a.type, image: a.image, phase: 'Pending' as const, startedAt: a.startedAt }, ...state.deliveries].slice(0, KEEP_DELIVERIES);
      return state;
    },
    {
      validator: (a: AcquireInput) => {
        if (state.activeDelivery !== undefined && state.activeDelivery !== a.deliveryId) {
          throw ApplicationFailure.create({
            type: 'DeliveryInProgress',
            message: `delivery ${state.activeDelivery} of ${state.namespace}/${state.name} is still running`,
            details: [{ activeDelivery: state.activeDelivery }],
            nonRetryable: true,
          });
        }
      },
    },
  );

  setHandler(releaseSignal, ({ deliveryId }) => {
    if (state.activeDelivery === deliveryId) delete state.activeDelivery;
    state.deliveries = state.deliveries.filter((d) => d.id !== deliveryId || d.phase !== 'Pending');
  });

  setHandler(deliveryFinishedSignal, (f: DeliveryFinished) => {
    if (state.activeDelivery === f.deliveryId) delete state.activeDelivery;
    const rec = state.deliveries.find((d) => d.id === f.deliveryId);
    if (rec) Object.assign(rec, { phase: f.phase, finishedAt: f.finishedAt });
    if (f.phase === 'Healthy') {
      if (state.spec) state.previousSpec = state.spec;
      state.spec = f.spec;
    }
    // Whatever the phase, the clusters a delivery left healthy (or rolled back) now run what it reports.
    Object.assign(state.clusters, f.clusters);
    for (const name of f.removed) delete state.clusters[name];
  });

  await condition(() => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > MAX_HISTORY);
  await condition(allHandlersFinished);
  await continueAsNew<typeof application>({ namespace: input.namespace, name: input.name, state });
}
