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

/**
 * Once a run is asked to stop, a call to Redis gets at most this long to answer: a client
 * that waits for a lost server to come back would otherwise hold the stop for seconds.
 */
export const STOP_GRACE_MS = 500;

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

/**
 * `call`, or, once `signal` has aborted (a stop of the run), a rejection when `call` has not
 * settled within `graceMs` of the abort (or of its start, when it began after it): a client
 * waiting for a lost server to come back must not hold the stop. `onLate` hears of a call
 * that failed or gave up after the abort.
 */
export function boundedAfterStop<T>(
  call: Promise<T>,
  signal: AbortSignal,
  graceMs: number,
  onLate: () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      timer = setTimeout(() => {
        onLate();
        reject(new Error(`no answer within ${graceMs} ms of the stop`));
      }, graceMs);
    };
    const settle = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", arm);
    };
    if (signal.aborted) arm();
    else signal.addEventListener("abort", arm, { once: true });
    call.then((v) => {
      settle();
      resolve(v);
    }, (err) => {
      settle();
      if (signal.aborted) onLate();
      reject(err);
    });
  });
}
