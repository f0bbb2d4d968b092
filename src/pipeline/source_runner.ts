import { isRetriable } from "../core/errors.ts";
import type { SourceTransaction, StreamingSource } from "../ports/streaming_source.ts";
import type { PipelineLog } from "./batch_retry.ts";
import type { RealtimeRunState } from "./realtime_run_state.ts";
import { backoffMs, type RetrySettings, sleep } from "./retry_policy.ts";

export interface SourceRun {
  source: StreamingSource;
  /** The checkpoint to start from (null: the source's own start). */
  from: string | null;
  onTransaction(tx: SourceTransaction): Promise<void>;
  run: RealtimeRunState;
  retry: RetrySettings;
  log: PipelineLog;
  /** Deliveries so far: a start that delivered something resets the failure count. */
  deliveries(): number;
  /** After a failure: lets what is queued land and returns the checkpoint to start again from. */
  restartPoint(): Promise<string | null>;
}

/**
 * Runs the source until it ends or the run stops. A failure worth another try (`retriable`)
 * starts it again from the checkpoint, after a wait that a stop ends; consecutive failures
 * without a delivery beyond `maxRetries` end the run. Returns the error that ended the
 * source, or null.
 */
export async function runSource(r: SourceRun): Promise<unknown> {
  let start = r.from;
  for (let failures = 0, seen = 0;;) {
    try {
      await r.source.start(start, (tx) => r.onTransaction(tx), r.run.signal);
      return null;
    } catch (err) {
      if (r.deliveries() > seen) failures = 0;
      seen = r.deliveries();
      if (
        r.run.failed || r.run.signal.aborted || !isRetriable(err) ||
        failures >= r.retry.maxRetries
      ) {
        return err;
      }
      failures++;
      r.log.warn(
        `source failed (${
          (err as Error).message
        }); starting again (${failures}/${r.retry.maxRetries})`,
      );
      start = await r.restartPoint();
      if (r.run.failed) return null;
      await sleep(backoffMs(failures, r.retry.waitMs), r.run.signal);
    }
  }
}
