/**
 * Backpressure on Redis memory: with the applier's `pause-above-memory-percent`,
 * writers wait before each batch while Redis uses more than that share of its `maxmemory`,
 * so the changes stay in the source's log instead of running into OOM errors. A standalone
 * target is one server; on a cluster, any master above the mark pauses all writers.
 */

/** `used_memory` as a percentage of `maxmemory` from `INFO memory`; null without a maxmemory. */
export function usedMemoryPercent(info: string): number | null {
  const used = /^used_memory:(\d+)/m.exec(info);
  const max = /^maxmemory:(\d+)/m.exec(info);
  if (!used || !max || Number(max[1]) === 0) return null;
  return (100 * Number(used[1])) / Number(max[1]);
}

export class MemoryGate {
  #okUntil = 0;
  #waiting: Promise<void> | null = null;
  /**
   * Told whenever Redis memory is found above the mark, or a write met OOM (`pressure()`):
   * retention trims at once instead of waiting for its next pass.
   */
  onPressure: (() => void) | null = null;

  constructor(
    /** Pause above this percentage of maxmemory; undefined: never. */
    private readonly percent: number | undefined,
    /** `INFO memory` of every server that takes writes. */
    private readonly readInfo: () => Promise<string[]>,
    private readonly intervalMs = 500,
  ) {}

  /**
   * Resolves at once while memory is below the mark (checked at most every `intervalMs`);
   * otherwise waits until it is, or until `signal` aborts. Writers that arrive during a
   * pause wait on the same check; the one that started it is told (`onPause`, `onResume`).
   */
  wait(
    signal?: AbortSignal,
    onPause?: (percent: number) => void,
    onResume?: (pausedMs: number) => void,
  ): Promise<void> {
    if (this.percent === undefined || Date.now() < this.#okUntil) return Promise.resolve();
    this.#waiting ??= this.#check(signal, onPause, onResume).finally(() => this.#waiting = null);
    return this.#waiting;
  }

  /** A write was refused for lack of memory (OOM). */
  pressure(): void {
    this.onPressure?.();
  }

  async #check(
    signal?: AbortSignal,
    onPause?: (percent: number) => void,
    onResume?: (pausedMs: number) => void,
  ): Promise<void> {
    let pausedAt = 0;
    for (;;) {
      let worst = 0;
      try {
        for (const info of await this.readInfo()) {
          worst = Math.max(worst, usedMemoryPercent(info) ?? 0);
        }
      } catch {
        worst = 0; // cannot tell: the write itself will meet the problem
      }
      if (worst > this.percent!) this.onPressure?.();
      if (worst <= this.percent! || signal?.aborted) {
        this.#okUntil = Date.now() + this.intervalMs;
        if (pausedAt) onResume?.(Date.now() - pausedAt);
        return;
      }
      if (!pausedAt) {
        pausedAt = Date.now();
        onPause?.(worst);
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, this.intervalMs);
        signal?.addEventListener("abort", done, { once: true });
      });
    }
  }
}
