import { SinkError } from "../core/errors.ts";
import type { ReplicantMetrics } from "../observe/replicant_metrics.ts";
import {
  type CheckpointStore,
  REALTIME_CHECKPOINT_FIELD,
  REALTIME_SCHEMAS_FIELD,
} from "../ports/checkpoint.ts";
import type { StreamingSource } from "../ports/streaming_source.ts";
import type { PipelineLog, StopBound } from "./batch_retry.ts";
import type { RealtimeRunState } from "./realtime_run_state.ts";
import { backoffMs, type RetrySettings, sleep } from "./retry_policy.ts";
import type { SchemaTracker } from "./schema_tracker.ts";

/** Checkpoint writes while streaming: at most one per this many ms. */
const CHECKPOINT_INTERVAL_MS = 50;

/**
 * Writes the realtime checkpoint: the newest token whose transactions (and all before them)
 * are in the sink, first to the checkpoint store, then acknowledged to the source. While
 * changes stream, at most one write per CHECKPOINT_INTERVAL_MS; at a drain or stop, at once.
 */
export class CheckpointCommitter {
  /** Newest token all of whose entries are in the sink. */
  #latest: string | null = null;
  /** Last token written (and acknowledged), or the one the run started from. */
  written: string | null;
  #committing: Promise<void> | null = null;
  #lastAt = 0;

  constructor(
    private readonly run: RealtimeRunState,
    private readonly bound: StopBound,
    private readonly store: CheckpointStore,
    private readonly source: Pick<StreamingSource, "acknowledge">,
    private readonly schemas: SchemaTracker,
    private readonly retry: RetrySettings,
    private readonly log: PipelineLog,
    private readonly metrics: Pick<ReplicantMetrics, "redisFailed">,
    from: string | null,
  ) {
    this.written = from;
  }

  /** A newer checkpoint: written soon, unless a write is under way (it picks this one up). */
  offer(token: string): void {
    this.#latest = token;
    if (this.#committing) return;
    this.#committing = this.#write(true).catch((err) => {
      this.run.fail(err);
      this.run.stop();
      this.run.notify();
    }).finally(() => this.#committing = null);
  }

  /** Writes the newest checkpoint now (draining, stopping), after any write in progress. */
  async commit(): Promise<void> {
    if (this.#committing) await this.#committing.catch(() => {});
    await this.#write(false);
  }

  /** Stopping: the data is in the streams; a resume from the older checkpoint skips it. */
  #unsavedAtStop(token: string, why: string): void {
    this.log.warn(
      `stopping without saving checkpoint ${token} (${why}); --resume continues from ${
        this.written ?? "the start"
      } and skips what the streams already hold`,
    );
  }

  /** Writes until the newest is written. `paced`: at most one per CHECKPOINT_INTERVAL_MS. */
  async #write(paced: boolean): Promise<void> {
    const signal = this.run.signal;
    for (let failures = 0; this.#latest !== null && this.#latest !== this.written;) {
      if (signal.aborted && this.bound.failedAfterStop) {
        this.#unsavedAtStop(this.#latest, "Redis did not answer since the stop");
        return;
      }
      if (paced) {
        const wait = this.#lastAt + CHECKPOINT_INTERVAL_MS - Date.now();
        if (wait > 0) await sleep(wait, signal);
      }
      this.#lastAt = Date.now();
      const token = this.#latest;
      const schemas = this.schemas.pending();
      try {
        await this.bound.call(this.store.write({
          [REALTIME_CHECKPOINT_FIELD]: token,
          ...(schemas === null ? {} : { [REALTIME_SCHEMAS_FIELD]: schemas }),
        }));
        if (schemas !== null) this.schemas.saved(schemas);
        await this.source.acknowledge(token);
        this.written = token;
      } catch (err) {
        failures++;
        this.metrics.redisFailed(err);
        this.log.warn(`cannot write checkpoint ${token}: ${(err as Error).message}`);
        if (signal.aborted) {
          this.#unsavedAtStop(token, (err as Error).message);
          return;
        }
        if (failures > this.retry.maxRetries) {
          throw new SinkError(`cannot write the checkpoint: ${(err as Error).message}`);
        }
        await sleep(backoffMs(failures, this.retry.waitMs), signal);
      }
    }
  }
}
