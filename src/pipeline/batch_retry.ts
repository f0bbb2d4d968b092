import type { EntryField } from "../core/entry_field.ts";
import type { MessageFormat } from "../core/entry_encoder.ts";
import { ReplicantError } from "../core/errors.ts";
import type { Phase } from "../observe/replicant_metrics.ts";
import type { BatchResult, StreamLane, StreamSink } from "../ports/stream_sink.ts";
import {
  backoffMs,
  boundedAfterStop,
  type RetrySettings,
  sleep,
  STOP_GRACE_MS,
} from "./retry_policy.ts";

/**
 * The one retry of a batch, for snapshot and realtime: a try, what the strategy does about a
 * failure (keep only the entries that failed; or undo what landed and send the batch whole
 * again), then the shared rules: a permanent error or `max-retries` spent ends the table
 * (TableFailure), OOM is backpressure (retried without end, its wait capped), every wait ends
 * at once when the run stops (StoppedWhileRetrying, or the strategy's own error).
 */

/** Where the pipelines report (ReplicationLog fits). */
export interface PipelineLog {
  info(message: string): void;
  warn(message: string): void;
  fail(message: string): void;
}

export const silentLog: PipelineLog = { info() {}, warn() {}, fail() {} };

/** The metrics a batch's writes count in (ReplicantMetrics fits). */
export interface BatchMetrics {
  redisFailed(err: unknown): void;
  retry(phase: Phase): void;
  undone(n: number): void;
}

/** A table's writes failed beyond retries (or for good): EVENTUAL and snapshot skip it. */
export class TableFailure extends ReplicantError {}

/**
 * The run was asked to stop while a batch waited to be tried again. Nothing of it is accepted,
 * so no checkpoint passes it; what landed of it is the stream's first entries after its tail
 * (one connection runs a batch in order), which a resume finds.
 */
export class StoppedWhileRetrying extends ReplicantError {}

/**
 * Calls to the sink of one run: each gives up STOP_GRACE_MS after the stop (see
 * boundedAfterStop); `failedAfterStop` says one did, so the checkpoint is not tried again.
 */
export class StopBound {
  failedAfterStop = false;
  constructor(readonly signal: AbortSignal) {}
  call<T>(call: Promise<T>): Promise<T> {
    return boundedAfterStop(call, this.signal, STOP_GRACE_MS, () => {
      this.failedAfterStop = true;
    });
  }
}

/** What a batch's retries need of the run. */
export interface RetryContext {
  sink: StreamSink;
  retry: RetrySettings;
  signal: AbortSignal;
  log: PipelineLog;
  metrics: BatchMetrics;
  bound: StopBound;
}

interface RetryLoop<F> {
  phase: Phase;
  /** One try: null when it is done, else the failure (its error, and what the strategy keeps). */
  attempt(n: number): Promise<F | null>;
  error(failure: F): unknown;
  /** The table's writes end: permanent error or retries spent. */
  exhausted(failure: F, kind: string, tries: number): Error;
  /** Before waiting for try `n + 1` (a log line). */
  retrying?(failure: F, n: number): void;
  /** The run stopped during the wait. */
  stopped(failure: F): Error;
}

/** Tries until done; the rules every strategy shares (see the top of this file). */
export async function retryLoop<F>(ctx: RetryContext, loop: RetryLoop<F>): Promise<void> {
  for (let attempt = 0;; attempt++) {
    const failure = await loop.attempt(attempt);
    if (failure === null) return;
    const kind = ctx.sink.classifyError(loop.error(failure));
    if (kind === "oom") ctx.sink.memoryPressure();
    if (kind === "permanent" || (kind === "retriable" && attempt >= ctx.retry.maxRetries)) {
      throw loop.exhausted(failure, kind, attempt + 1);
    }
    ctx.metrics.retry(loop.phase);
    loop.retrying?.(failure, attempt + 1);
    // OOM is backpressure: wait for memory to free instead of counting it as a failure.
    await sleep(
      backoffMs(kind === "oom" ? Math.min(attempt + 1, 4) : attempt + 1, ctx.retry.waitMs),
      ctx.signal,
    );
    if (ctx.signal.aborted) throw loop.stopped(failure);
  }
}

/**
 * Tries `call` (a read or an undo) up to `max-retries` more times after a retriable error,
 * waiting between tries; gives up at once on a permanent error or a stop. The last error
 * is thrown.
 */
export async function retryCall<T>(
  ctx: RetryContext,
  call: () => Promise<T>,
  onError?: (err: unknown) => void,
): Promise<T> {
  for (let attempt = 0;; attempt++) {
    try {
      return await call();
    } catch (err) {
      onError?.(err);
      if (
        ctx.sink.classifyError(err) === "permanent" || attempt >= ctx.retry.maxRetries ||
        ctx.signal.aborted
      ) {
        throw err;
      }
      await sleep(backoffMs(attempt + 1, ctx.retry.waitMs), ctx.signal);
    }
  }
}

/** The pause before another try of a read; a stop of the run ends it (StoppedWhileRetrying). */
export async function waitToRetry(ctx: RetryContext, ms: number, why: string): Promise<void> {
  await sleep(ms, ctx.signal);
  if (ctx.signal.aborted) throw new StoppedWhileRetrying(`stopped while waiting to retry: ${why}`);
}

/** The key text of an entry, whatever the message format. */
export function keyText(fields: string[], format: MessageFormat): string {
  if (format === "compact") return fields[0];
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === "key") return fields[i + 1];
  return fields.join("\u0000");
}

// ---- Strategy 2 (realtime): undo what landed, retry the batch whole. --------------------

/** The stream a realtime batch goes to, and its last entry known good. */
export interface UndoTarget {
  readonly stream: string;
  readonly lane: StreamLane;
  lastId: string | null;
}

export interface UndoBatch {
  entries: EntryField[][];
  /** Position of the batch's first change, for messages. */
  at: string | undefined;
  /** Round trip of each try, for the metrics. */
  roundTrip(ms: number): void;
  /**
   * What landed of a failed batch could not be undone: `ids` are still there (null: they could
   * not even be listed). Throws (the table is skipped, or the run stops with them in doubt).
   */
  inDoubt(ids: string[] | null, where: string, reason: string): never;
}

interface UndoFailure {
  error: unknown;
  reason: string;
  where: string;
}

/**
 * Writes one batch; on any failure undoes what landed and tries it whole again, so a stream
 * never holds part of a batch twice and its entries stay in source order.
 */
export async function undoAndRetryBatch(
  ctx: RetryContext,
  w: UndoTarget,
  b: UndoBatch,
): Promise<void> {
  const where = `"${w.stream}" at position ${b.at ?? "?"} (after entry ${w.lastId ?? "-"})`;
  const n = b.entries.length;
  const guard = ctx.sink.tailGuard;
  await retryLoop<UndoFailure>(ctx, {
    phase: "realtime",
    attempt: async () => {
      let result: BatchResult | null = null;
      let thrown: unknown = null;
      try {
        await ctx.sink.awaitMemory(ctx.signal, ctx.log);
        const t0 = performance.now();
        // Until it landed or was undone, retention keeps what a resume reads before it.
        guard.batchStarted(w.stream, w.lastId);
        result = await ctx.bound.call(w.lane.append(w.stream, b.entries));
        b.roundTrip(performance.now() - t0);
      } catch (err) {
        thrown = err;
      }
      if (result && result.failed === 0) {
        w.lastId = result.ids[result.ids.length - 1];
        guard.batchSettled(w.stream);
        return null;
      }
      const error = thrown ?? result!.errors.find((e) => e !== null);
      const reason = (error as Error)?.message ?? String(error);
      ctx.metrics.redisFailed(error);
      // Stopping with the batch not undone is safe when what landed of it is its first
      // entries (a lost connection runs what it sent in order): --resume skips them as the
      // stream's tail. Entries that landed after a failed one must be undone or are in doubt.
      const stopNow = () => ctx.signal.aborted && (thrown !== null || landedInOrder(result!));
      if (stopNow()) {
        throw new StoppedWhileRetrying(
          `a batch into ${where} failed (${reason}) at the stop; what landed of it is the ` +
            `stream's tail, which --resume skips`,
        );
      }
      if (thrown) await ctx.sink.settleLost(thrown, undefined, ctx.signal);
      const left = await undo(ctx, w, result && !thrown ? result : null, n);
      if (left === null || left.length > 0) {
        if (stopNow()) {
          throw new StoppedWhileRetrying(
            `a batch into ${where} failed (${reason}) and could not be undone before the stop; ` +
              `what landed of it is the stream's tail, which --resume skips`,
          );
        }
        b.inDoubt(left, where, reason);
      }
      guard.batchSettled(w.stream);
      return { error, reason, where };
    },
    error: (f) => f.error,
    exhausted: (f, kind, tries) =>
      new TableFailure(
        `batch of ${n} entries not accepted by ${f.where} after ${tries} tries (${kind} error): ${f.reason}`,
      ),
    retrying: (f, next) =>
      ctx.log.warn(
        `batch of ${n} entries into ${f.where} failed (${f.reason}); undone, retrying (${next}/${ctx.retry.maxRetries})`,
      ),
    stopped: (f) =>
      new StoppedWhileRetrying(
        `stopped while waiting to retry: a batch of ${n} entries into ${f.where} was undone after ${f.reason}`,
      ),
  });
}

/** True when the entries of a batch that landed all come before those that failed. */
function landedInOrder(result: BatchResult): boolean {
  let failedSeen = false;
  for (const id of result.ids) {
    if (id === null) failedSeen = true;
    else if (failedSeen) return false;
  }
  return true;
}

/**
 * Deletes the entries of a failed batch that landed: the ids from the replies, or, when the
 * batch itself failed (connection lost), every entry after the last one known good.
 * Returns the ids that could not be deleted ([] when the undo finished), or null when the
 * landed entries could not be listed.
 */
async function undo(
  ctx: RetryContext,
  w: UndoTarget,
  result: BatchResult | null,
  size: number,
): Promise<string[] | null> {
  let ids: string[] | null = result ? result.ids.filter((id): id is string => id !== null) : null;
  try {
    await retryCall(
      ctx,
      async () => {
        if (ids === null) {
          ids = await ctx.bound.call(w.lane.landedAfter(w.stream, w.lastId, size + 1));
        }
        if (ids.length > 0) {
          await ctx.bound.call(w.lane.remove(w.stream, ids));
          ctx.metrics.undone(ids.length);
          ctx.log.info(`undo: deleted ${ids.length} entries of a failed batch from ${w.stream}`);
        }
      },
      (err) =>
        ctx.log.warn(`undo of a failed batch in ${w.stream} failed: ${(err as Error).message}`),
    );
    return [];
  } catch {
    return ids;
  }
}
