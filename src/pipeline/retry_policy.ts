/** When and how long to wait before the next try. Pure, so it is tested without servers. */
export interface RetrySettings {
  maxRetries: number;
  waitMs: number;
}

/** Exponential backoff from `waitMs`, capped at 30 s, with ±25% jitter so writers spread out. */
export function backoffMs(
  attempt: number,
  waitMs: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(waitMs * 2 ** Math.max(0, attempt - 1), 30_000);
  return Math.round(base * (0.75 + random() * 0.5));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
