/** Thrown by a step that ends the whole delivery (a gate rejected or timed out, an analysis failed): not a cluster failure. */
export class StopDelivery extends Error {
  override name = 'StopDelivery';
  readonly outcome: 'abort';
  readonly reason: string;
  constructor(outcome: 'abort', reason: string) {
    super(reason);
    this.outcome = outcome;
    this.reason = reason;
  }
}
