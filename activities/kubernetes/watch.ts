/**
 * A list-then-watch cache of one kind of object (an informer in miniature):
 * lists once, then watches from that resourceVersion and calls `onChange` on
 * every event, so a waiter sees a pod turn Ready within milliseconds instead
 * of at its next poll. A watch that ends is resumed from the last version seen;
 * one whose version expired (410 Gone) lists again. Stopped by an AbortSignal.
 */
import type { ClusterClients } from './clients.ts';
import { kube } from './errors.ts';

interface Meta {
  metadata?: { name?: string; resourceVersion?: string };
}

export interface ReflectorOptions {
  labelSelector?: string;
  fieldSelector?: string;
  /** Server-side end of each watch (it is resumed at once): bounds how stale a silent connection gets. */
  watchSeconds?: number;
}

export class Reflector<T extends Meta> {
  readonly items = new Map<string, T>();
  /** The last error of listing or watching, cleared by the next success. */
  lastError: unknown;
  /** When the API server last answered (ms). */
  lastContact = 0;
  #rv = '';
  #controller: AbortController | undefined;
  #stopped = false;

  private readonly c: ClusterClients;
  private readonly path: string;
  private readonly opts: ReflectorOptions;
  private readonly onChange: () => void;

  constructor(c: ClusterClients, path: string, opts: ReflectorOptions, onChange: () => void, signal: AbortSignal) {
    this.c = c;
    this.path = path;
    this.opts = opts;
    this.onChange = onChange;
    signal.addEventListener('abort', () => this.stop(), { once: true });
    if (signal.aborted) this.stop();
  }

  /** Lists (the first list is awaited: its errors reach the caller), then keeps watching in the background. */
  async start(): Promise<void> {
    await this.#list();
    void this.#watch();
  }

  stop(): void {
    this.#stopped = true;
    this.#controller?.abort();
  }

  async #list(): Promise<void> {
    const query = { labelSelector: this.opts.labelSelector, fieldSelector: this.opts.fieldSelector };
    const list = await kube(this.c.cluster, `list ${this.path}`, () =>
      this.c.rest<{ items: T[]; metadata: { resourceVersion: string } }>('GET', this.path, { query }),
    );
    this.items.clear();
    for (const it of list.items) this.items.set(it.metadata?.name ?? '', it);
    this.#rv = list.metadata.resourceVersion;
    this.lastContact = Date.now();
    this.lastError = undefined;
    this.onChange();
  }

  async #watch(): Promise<void> {
    while (!this.#stopped) {
      let expired = false;
      const ended = new Promise<unknown>((resolve) => {
        this.c.watch
          .watch(
            this.path,
            {
              ...(this.opts.labelSelector ? { labelSelector: this.opts.labelSelector } : {}),
              ...(this.opts.fieldSelector ? { fieldSelector: this.opts.fieldSelector } : {}),
              resourceVersion: this.#rv,
              allowWatchBookmarks: true,
              timeoutSeconds: this.opts.watchSeconds ?? 30,
            },
            (type: string, obj: T & { code?: number }) => {
              this.lastContact = Date.now();
              if (type === 'ERROR') {
                if (obj.code === 410) expired = true;
                return;
              }
              const rv = obj.metadata?.resourceVersion;
              if (rv) this.#rv = rv;
              if (type === 'BOOKMARK') return;
              const name = obj.metadata?.name ?? '';
              if (type === 'DELETED') this.items.delete(name);
              else this.items.set(name, obj);
              this.onChange();
            },
            (err: unknown) => resolve(err),
          )
          .then((ctl) => {
            this.#controller = ctl;
            if (this.#stopped) ctl.abort();
          })
          .catch(resolve);
      });
      const err = await ended;
      if (this.#stopped) return;
      if (err) this.lastError = err;
      if (expired || err) {
        // Relist: after a 410 the version is gone; after an error we may have missed events.
        await new Promise((r) => setTimeout(r, err ? 500 : 0));
        if (this.#stopped) return;
        try {
          await this.#list();
        } catch (e) {
          this.lastError = e;
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    }
  }
}
