/**
 * What the parts of one realtime run share: the first error that ends it, its own stop (the
 * caller's signal, or that error), and a wake-up for whoever waits on the writers (room in
 * the queue, the drain).
 */
export class RealtimeRunState {
  /** The first error that ends the run (a writer's, the checkpoint's), or null. */
  fatal: unknown = null;
  readonly #stop = new AbortController();
  #waiters: (() => void)[] = [];

  constructor() {
    // Waits for room in the queue or for the writers end at once when the run stops.
    this.#stop.signal.addEventListener("abort", () => this.notify(), { once: true });
  }

  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  get failed(): boolean {
    return this.fatal !== null;
  }

  /** Keeps the first fatal error. */
  fail(err: unknown): void {
    if (this.fatal === null) this.fatal = err;
  }

  stop(): void {
    this.#stop.abort();
  }

  /** Resolves at the next notify(). */
  changed(): Promise<void> {
    return new Promise((r) => this.#waiters.push(r));
  }

  notify(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const r of w) r();
  }
}
