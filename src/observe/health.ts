/**
 * Health of a run for `/health`: a pure state machine fed by the pipeline (Redis outcomes,
 * source lag, the end of the run) and read with the current time.
 *
 * - failed: the last Redis operation failed (a batch, a checkpoint or the liveness ping) and
 *   none has succeeded since; or the run stopped with an error.
 * - lagging: Redis answers, but the source lag passed the threshold.
 * - ready: otherwise.
 */
export type HealthStatus = "ready" | "lagging" | "failed";

export interface HealthReport {
  status: HealthStatus;
  /** Why the status is not ready (absent when ready). */
  reason?: string;
  /** ms since the epoch of the first Redis failure of the current failure streak. */
  redisFailingSinceMs?: number;
  lagSeconds: number;
  lagThresholdSeconds: number;
}

export class HealthState {
  #failingSince: number | null = null;
  #lastError = "";
  #fatal: string | null = null;

  constructor(
    readonly lagThresholdSeconds = 60,
    /** Source lag in seconds, read at report time. */
    private lag: () => number = () => 0,
  ) {}

  setLagProbe(probe: () => number): void {
    this.lag = probe;
  }

  redisOk(): void {
    this.#failingSince = null;
  }

  redisFailed(nowMs: number, message: string): void {
    if (this.#failingSince === null) this.#failingSince = nowMs;
    this.#lastError = message;
  }

  /** The run stopped with an error: failed for good. */
  fatal(message: string): void {
    this.#fatal = message;
  }

  get redisFailing(): boolean {
    return this.#failingSince !== null;
  }

  report(): HealthReport {
    const lagSeconds = this.lag();
    const base = { lagSeconds, lagThresholdSeconds: this.lagThresholdSeconds };
    if (this.#fatal !== null) {
      return { status: "failed", reason: `run stopped: ${this.#fatal}`, ...base };
    }
    if (this.#failingSince !== null) {
      return {
        status: "failed",
        reason: `Redis: ${this.#lastError}`,
        redisFailingSinceMs: this.#failingSince,
        ...base,
      };
    }
    if (lagSeconds > this.lagThresholdSeconds) {
      return {
        status: "lagging",
        reason: `source lag ${lagSeconds.toFixed(1)} s > ${this.lagThresholdSeconds} s`,
        ...base,
      };
    }
    return { status: "ready", ...base };
  }
}
