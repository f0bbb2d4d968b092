import { type EntryField, entryText } from "../core/entry_field.ts";
import type { MessageFormat } from "../core/entry_encoder.ts";
import { ReplicantError, SinkError } from "../core/errors.ts";
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
 * failure (snapshot: keep only the entries that failed, in order, taking back what landed
 * above a hole; realtime: undo what landed and send the batch whole again), then the shared
 * rules: a permanent error or `max-retries` spent ends the table (TableFailure), OOM is
 * backpressure (retried without end, its wait capped), every wait ends at once when the run
 * stops (StoppedWhileRetrying, or the strategy's own error).
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
  /** Hears of each failure before the next try is decided (awaited). */
  onError?: (err: unknown) => void | Promise<unknown>,
): Promise<T> {
  for (let attempt = 0;; attempt++) {
    try {
      return await call();
    } catch (err) {
      await onError?.(err);
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

// ---- Strategy 1 (snapshot): retry the entries that failed, in order. --------------------

/** The snapshot stream a table's batches go to, one after another over one lane. */
export interface OrderedTarget {
  readonly stream: string;
  readonly lane: StreamLane;
  /** The table, for messages. */
  readonly table: string;
  /** Entries are matched by key, which is unique within a table's snapshot. */
  readonly format: MessageFormat;
  /** Log the key of every refused row (applier `log-row-level-errors`). */
  readonly logRows: boolean;
  /** How many of the stream's newest entries hold what landed of `pending` in-flight ones. */
  scan(pending: number): number;
  /** A batch of `n` entries landed whole; `ms` the round trip of its last try (0: none). */
  landed(n: number, ms: number): void;
}

/**
 * One batch of a table among the table's batches, in the order they are sent. Redis keeps a
 * stream in the order entries land and --resume continues after the stream's newest entry,
 * so no entry may stay after a row that has not landed: a batch retries only once every
 * earlier one has landed, and whatever landed after a row that did not (of its own batch and
 * of every later one) is taken back out first, in one XDEL.
 */
export interface BatchTurn {
  entries: EntryField[][];
  /** The table's next batch, once there is one. */
  next: BatchTurn | null;
  /** Resolves true when this batch and every earlier one landed whole at their first try. */
  clean: Promise<boolean>;
  /** Every row of this batch and of the earlier ones landed (rejects as they do). */
  done: Promise<void>;
  /** Known already: this batch or an earlier one has rows that did not land at first. */
  troubled: boolean;
}

/** Starts writing a batch after `before`, the table's previous one (see BatchTurn). */
export function batchInTurn(
  ctx: RetryContext,
  w: OrderedTarget,
  entries: EntryField[][],
  before: BatchTurn | null,
): BatchTurn {
  let setClean!: (clean: boolean) => void;
  const turn: BatchTurn = {
    entries,
    next: null,
    clean: new Promise((resolve) => setClean = resolve),
    done: Promise.resolve(),
    troubled: before?.troubled ?? false,
  };
  if (before !== null) before.next = turn;
  const trouble = () => {
    turn.troubled = true;
    setClean(false);
  };
  turn.done = retryFailedEntries(ctx, w, turn, before, trouble, () => {
    if (!turn.troubled) setClean(true);
  }).finally(() => setClean(false));
  turn.done.catch(() => {});
  return turn;
}

interface EntriesFailure {
  error: Error;
  /** Entries of the try that failed, of `tried`. */
  failed: number;
  tried: number;
}

function stoppedAfter(err: Error): StoppedWhileRetrying {
  return new StoppedWhileRetrying(
    `stopped while writes cut off by ${err.message} wait to be retried`,
  );
}

/**
 * Writes a batch; on partial failure retries only the entries that failed, and what landed
 * after the first of them is taken back out before: the stream's newest entry never sits
 * after a row that did not land, so --resume (which continues after it) skips nothing, even
 * after a kill -9. The batch waits for `before` once it or an earlier batch has rows that did
 * not land, and takes back out whatever of it landed meanwhile.
 */
async function retryFailedEntries(
  ctx: RetryContext,
  w: OrderedTarget,
  turn: BatchTurn,
  before: BatchTurn | null,
  trouble: () => void,
  clean: () => void,
): Promise<void> {
  const entries = turn.entries;
  let pending = entries;
  /** The last try lost its connection: some of `pending` may have landed unseen. */
  let unknown = false;
  /** Entries landed but their replicas were not confirmed (wait-for-replicas). */
  let unreplicated = false;
  /** Entries that landed after one that did not could not be taken back out yet. */
  let behindHole = false;
  if (before?.troubled) {
    trouble();
    await before.done;
    before = null;
  }
  await retryLoop<EntriesFailure>(ctx, {
    phase: "snapshot",
    attempt: async (attempt) => {
      // A second round only when an earlier batch turned out not to have landed whole (below).
      for (;;) {
        let errors: (Error | null)[];
        let t0 = performance.now();
        try {
          if (unknown) {
            const left = await ctx.bound.call(keepLanded(ctx, w, pending, turn));
            behindHole = false;
            // All landed: they count once their replicas have them too.
            if (left.length === 0 && unreplicated) await w.lane.waitForReplicas(w.stream);
            pending = left;
          }
          unknown = false;
          if (pending.length === 0) {
            w.landed(entries.length, 0);
            return null;
          }
          await ctx.sink.awaitMemory(ctx.signal, ctx.log);
          if (before?.troubled) {
            // An earlier batch failed while this one waited to be sent: it goes after it.
            trouble();
            await before.done;
            before = null;
          }
          t0 = performance.now();
          // Snapshot entries need no ids back: what must be taken back is found by key.
          errors = (await ctx.bound.call(w.lane.append(w.stream, pending, false))).errors;
        } catch (err) {
          // Later batches wait from now on, not once Redis has let the lost connection go.
          trouble();
          errors = pending.map(() => err as Error);
          unknown = true;
          unreplicated ||= ctx.sink.isReplicaWait(err);
          await ctx.sink.settleLost(err, undefined, ctx.signal);
        }
        if (errors.some((e) => e !== null)) trouble();
        if (before !== null) {
          // The first try is over: rows of earlier batches that did not land come first.
          if (!(await before.clean)) {
            trouble();
            // Nothing of this batch landed: a later batch that did land takes itself back.
            const landedNone = !unknown && errors.every((e) => e !== null);
            if (!landedNone) await takeBackRetrying(ctx, w, [...entries, ...laterOf(turn)]);
            await before.done;
            // The whole batch again, as a first try.
            pending = entries;
            unknown = false;
            before = null;
            continue;
          }
          before = null;
        }
        const failed = pending.filter((_, i) => errors[i] !== null);
        if (failed.length === 0) {
          if (attempt === 0) clean();
          w.landed(entries.length, performance.now() - t0);
          return null;
        }
        trouble();
        const firstError = errors.find((e) => e !== null)!;
        ctx.metrics.redisFailed(firstError);
        if (ctx.signal.aborted && unknown) throw stoppedAfter(firstError);
        if (w.logRows) {
          pending.forEach((fields, i) => {
            if (errors[i]) {
              ctx.log.warn(
                `row of ${w.table} failed (${errors[i]!.message}): key ${
                  keyText(entryText(fields), w.format).slice(0, 500)
                }`,
              );
            }
          });
        }
        const tried = pending.length;
        if (!unknown) {
          // Rows after the first refused one that landed go back out at once, so the
          // stream's newest entry is a row with nothing missing before it.
          const first = errors.findIndex((e) => e !== null);
          const after = pending.slice(first + 1).filter((_, i) => errors[first + 1 + i] === null);
          pending = pending.slice(first);
          const later = laterOf(turn);
          if (after.length + later.length > 0) {
            try {
              await ctx.bound.call(takeBack(ctx, w, [...after, ...later]));
            } catch {
              // Looked for again (by key) before the next try.
              behindHole = unknown = true;
            }
          }
        }
        return { error: firstError, failed: failed.length, tried };
      }
    },
    error: (f) => f.error,
    exhausted: (f, _kind, tries) =>
      new TableFailure(
        `${f.failed} of ${f.tried} entries not accepted by stream "${w.stream}" after ${tries} tries: ${f.error.message}`,
      ),
    stopped: (f) => {
      if (!behindHole) return stoppedAfter(f.error);
      // Rows that Redis refused sit before rows that landed and could not be taken back
      // out, which --resume would take as the table's progress.
      return new SinkError(
        `interrupted while retrying ${f.failed} row(s) that "${w.stream}" refused ` +
          `(${f.error.message}); rows after them landed and could not be taken back, so ` +
          `--resume could skip them: start this id again with --overwrite --replace-existing`,
        w.stream,
      );
    },
  });
}

/**
 * After a lost connection, the entries of `pending` from the first one that is not in the
 * stream on; those after it that landed are taken back out (they are written again after
 * it). A table's batches go in order over one connection, so what landed is among the
 * stream's newest entries (at most two chunks in flight); compared by key, which is unique.
 */
async function keepLanded(
  ctx: RetryContext,
  w: OrderedTarget,
  pending: EntryField[][],
  turn: BatchTurn,
): Promise<EntryField[][]> {
  const later = laterOf(turn);
  const present = await newestByKey(ctx, w, pending.length + later.length);
  const first = pending.findIndex((fields) => !present.has(keyText(entryText(fields), w.format)));
  if (first < 0) return [];
  const left = pending.slice(first);
  await takeBack(ctx, w, [...left, ...later], present);
  if (first > 0) {
    ctx.log.info(
      `${first} of ${pending.length} entries of a batch cut off from "${w.stream}" had ` +
        `landed; retrying only the other ${left.length}`,
    );
  }
  return left;
}

/**
 * Takes `entries` back out of the stream (see BatchTurn), retrying a lost connection. A
 * stop before that leaves them after rows that did not land: --resume could skip those.
 */
async function takeBackRetrying(
  ctx: RetryContext,
  w: OrderedTarget,
  entries: EntryField[][],
): Promise<void> {
  try {
    await retryCall(
      ctx,
      () => ctx.bound.call(takeBack(ctx, w, entries)),
      (err) => ctx.sink.settleLost(err, undefined, ctx.signal),
    );
  } catch (err) {
    const message = `cannot take entries that landed after rows that did not back out of ` +
      `"${w.stream}" (${(err as Error).message})`;
    if (ctx.signal.aborted) {
      throw new SinkError(
        `interrupted: ${message}, so --resume could skip those rows: start this id again ` +
          "with --overwrite --replace-existing",
        w.stream,
      );
    }
    throw new TableFailure(message);
  }
}

/** Deletes those of `entries` that are in the stream (see BatchTurn). */
async function takeBack(
  ctx: RetryContext,
  w: OrderedTarget,
  entries: EntryField[][],
  present?: Map<string, string>,
): Promise<void> {
  present ??= await newestByKey(ctx, w, entries.length);
  const ids = entries.map((fields) => present.get(keyText(entryText(fields), w.format)))
    .filter((id): id is string => id !== undefined);
  if (ids.length === 0) return;
  await w.lane.remove(w.stream, ids);
  ctx.log.info(
    `took ${ids.length} entries back out of "${w.stream}": they landed after a row that did ` +
      "not, and are written again after it",
  );
}

/** Key → entry id of the newest entries, enough to hold `pending` in-flight ones. */
async function newestByKey(
  ctx: RetryContext,
  w: OrderedTarget,
  pending: number,
): Promise<Map<string, string>> {
  const tail = await ctx.sink.newest(w.stream, w.scan(pending));
  return new Map(tail.map(([id, fields]) => [keyText(fields, w.format), id]));
}

/** The entries of the batches sent after `turn` (see BatchTurn). */
function laterOf(turn: BatchTurn): EntryField[][] {
  const out: EntryField[][] = [];
  for (let t = turn.next; t !== null; t = t.next) out.push(...t.entries);
  return out;
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
