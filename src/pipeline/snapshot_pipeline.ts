import { type EntryField, entryText } from "../core/entry_field.ts";
import { decodeEntry } from "../core/entry_decoder.ts";
import { type EntryOptions, TableEntryEncoder } from "../core/entry_encoder.ts";
import { ExistingStreamsError, SinkError } from "../core/errors.ts";
import type { StreamNaming } from "../core/stream_naming.ts";
import { qualifiedName, type TableSchema } from "../core/table_schema.ts";
import type { SnapshotProgress } from "../observe/snapshot_progress.ts";
import type { PipelineState } from "./pipeline_state.ts";
import { collectGarbageHint } from "./memory_budget.ts";
import { type CheckpointStore, retentionField, snapshotDoneField } from "../ports/checkpoint.ts";
import type { StreamLane, StreamSink } from "../ports/stream_sink.ts";
import { backoffMs, type RetrySettings, sleep } from "./retry_policy.ts";
import {
  keyText,
  type PipelineLog,
  type RetryContext,
  StopBound,
  StoppedWhileRetrying,
  TableFailure,
} from "./batch_retry.ts";
import type { SchemaHistory } from "../schema/schema_history.ts";
import type {
  KeyValue,
  SnapshotSource,
  SnapshotTable,
  TableReader,
} from "../ports/snapshot_source.ts";

/** What snapshot does with target streams that already exist (the --*-existing options). */
export type WriteMode = "fail" | "replace" | "truncate" | "append";

export interface SnapshotSettings {
  threads: number;
  /** Rows per source read (extractor `fetch-size-rows`). */
  fetchRows: number;
  /** Entries per pipelined XADD batch (applier `batch-size-rows`). */
  batchRows: number;
  writeMode: WriteMode;
  /** Continue an interrupted snapshot: skip finished tables, resume others after their tail. */
  resume: boolean;
  retry: RetrySettings;
  skipTablesOnFailures: boolean;
  logRowLevelErrors: boolean;
  entry: EntryOptions;
  /** Schema versions: entries name the version of their table's schema. */
  schemas?: SchemaHistory;
}

export interface TableOutcome {
  table: string;
  stream: string;
  rows: number;
  status: "done" | "skipped" | "failed" | "interrupted";
  error?: string;
}

export interface SnapshotOutcome {
  tables: TableOutcome[];
  interrupted: boolean;
}

/**
 * One batch of a table among the table's batches, in the order they are sent. Redis keeps a
 * stream in the order entries land and --resume continues after the stream's newest entry,
 * so no entry may stay after a row that has not landed: a batch retries only once every
 * earlier one has landed, and whatever landed after a row that did not (of its own batch and
 * of every later one) is taken back out first, in one XDEL.
 */
interface BatchTurn {
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

function stoppedAfter(err: Error): StoppedWhileRetrying {
  return new StoppedWhileRetrying(
    `stopped while writes cut off by ${err.message} wait to be retried`,
  );
}

/**
 * Copies every selected table into its stream: `threads` tables at a time, each read in key
 * order and written in pipelined batches, two chunks in flight so reading, encoding and
 * Redis round trips overlap while memory stays bounded.
 */
export class SnapshotPipeline {
  constructor(
    private readonly source: SnapshotSource,
    private readonly sink: StreamSink,
    private readonly naming: StreamNaming,
    private readonly checkpoints: CheckpointStore,
    private readonly settings: SnapshotSettings,
    private readonly log: PipelineLog,
    private readonly progress: SnapshotProgress,
    private readonly signal: AbortSignal,
    /** What the run counts in and allocates from (pipeline_state.ts). */
    private readonly state: PipelineState,
    /**
     * Called once per table after its reader started (so the source knows the table's
     * snapshot position) and before any of its rows is written.
     */
    private readonly beforeFirstWrite?: (table: TableSchema) => Promise<void>,
  ) {
    this.#retry = {
      sink,
      retry: settings.retry,
      signal,
      log,
      metrics: state.metrics,
      bound: new StopBound(signal),
    };
  }

  /** What a batch's retries need (batch_retry.ts). */
  readonly #retry: RetryContext;

  async run(): Promise<SnapshotOutcome> {
    const tables = await this.source.tables();
    const state = this.settings.resume ? await this.checkpoints.read() : {};
    const pending = tables.filter((t) => state[snapshotDoneField(this.#stream(t.schema))] !== "1");
    if (!this.settings.resume) await this.#prepareStreams(tables);
    this.log.info(
      `snapshot of ${tables.length} table(s), ${tables.length - pending.length} already done`,
    );
    for (const t of pending) this.progress.add(qualifiedName(t.schema.id), t.estimatedRows);
    this.progress.start();
    const outcomes: TableOutcome[] = [];
    const queue = [...pending].sort((a, b) => b.estimatedRows - a.estimatedRows);
    const workers = Math.max(1, Math.min(this.settings.threads, queue.length));
    try {
      await Promise.all(Array.from({ length: workers }, async () => {
        const reader = await this.source.reader();
        const lane = this.sink.lane();
        try {
          while (queue.length > 0 && !this.signal.aborted) {
            const table = queue.shift()!;
            // Retention leaves the entries a batch cut off by a lost connection is looked for in.
            const release = this.sink.tailGuard.keepNewest(
              this.#stream(table.schema),
              this.#landedScan(this.settings.batchRows),
            );
            try {
              outcomes.push(await this.#copyTable(table, reader, lane));
            } finally {
              release();
            }
          }
        } finally {
          await reader.close();
        }
      }));
    } finally {
      this.progress.stop();
    }
    for (const t of queue) {
      outcomes.push({
        table: qualifiedName(t.schema.id),
        stream: this.#stream(t.schema),
        rows: 0,
        status: "interrupted",
      });
    }
    return { tables: outcomes, interrupted: this.signal.aborted };
  }

  #stream(table: TableSchema): string {
    return this.naming.snapshotStream(table.id);
  }

  async #prepareStreams(tables: SnapshotTable[]): Promise<void> {
    const existing = await this.sink.existing(tables.map((t) => this.#stream(t.schema)));
    if (existing.length === 0) return;
    switch (this.settings.writeMode) {
      case "fail":
        throw new ExistingStreamsError(existing);
      case "replace":
        await this.sink.deleteKeys(existing);
        // What retention trimmed of the old entries says nothing about the new ones.
        await this.checkpoints.forget(existing.map(retentionField));
        this.log.info(`replaced ${existing.length} existing stream(s): ${existing.join(", ")}`);
        break;
      case "truncate":
        await this.sink.truncateStreams(existing);
        await this.checkpoints.forget(existing.map(retentionField));
        this.log.info(`truncated ${existing.length} existing stream(s): ${existing.join(", ")}`);
        break;
      case "append":
        this.log.info(`appending to ${existing.length} existing stream(s)`);
    }
  }

  async #copyTable(
    table: SnapshotTable,
    reader: TableReader,
    lane: StreamLane,
  ): Promise<TableOutcome> {
    const name = qualifiedName(table.schema.id);
    const stream = this.#stream(table.schema);
    const schema = await this.settings.schemas?.label(table.schema) ?? table.schema;
    const encoder = new TableEntryEncoder(schema, this.settings.entry, true, this.state.arena);
    const position = { tsMs: this.source.snapshotTsMs, fields: "" };
    let after: KeyValue[] | null = null;
    let already = 0;
    if (this.settings.resume) {
      ({ after, already } = await this.#resumePoint(table.schema, stream));
    }
    this.progress.tableStarted(name, already);
    let rows = already;
    let inflight: Promise<void> = Promise.resolve();
    /** The table's last batch sent: the next one lands only after it. */
    let previous: BatchTurn | null = null;
    let started = false;
    /** Buffer of the chunk in flight; its entries are slices of it. */
    let inflightBuffer: Uint8Array | null = null;
    /** Buffers of chunks already written, free for the next ones. */
    const spare: Uint8Array[] = [];
    try {
      for await (const chunk of reader.read(table.schema, after, this.settings.fetchRows)) {
        if (!started) {
          started = true;
          await this.beforeFirstWrite?.(table.schema);
        }
        // The chunk's bytes are copied out now: the reader may refill it once we ask again.
        const { entries, buffer } = encoder.encodeReadBatch(
          chunk,
          position,
          Date.now(),
          spare.pop(),
        );
        const batches: Promise<void>[] = [];
        for (let i = 0; i < entries.length; i += this.settings.batchRows) {
          const batch = entries.slice(i, i + this.settings.batchRows);
          previous = this.#batchInTurn(lane, name, stream, batch, previous);
          const written = previous.done.then(() => {
            rows += batch.length;
            this.progress.rowsWritten(name, batch.length);
          });
          // Its failure is seen through `inflight`; until then (or when an earlier chunk's
          // failure ends the table first) it must not be an unhandled rejection.
          written.catch(() => {});
          batches.push(written);
        }
        await inflight;
        // Every batch of the previous chunk is written (retries too): its buffer is free.
        if (inflightBuffer !== null && spare.length < 2) spare.push(inflightBuffer);
        inflightBuffer = buffer;
        inflight = Promise.all(batches).then(() => {});
        // Swallow here; the error is rethrown by the next `await inflight`.
        inflight.catch(() => {});
        if (this.signal.aborted) break;
        collectGarbageHint();
      }
      if (!started) await this.beforeFirstWrite?.(table.schema);
      await inflight;
    } catch (err) {
      await inflight.catch(() => {});
      const message = (err as Error).message;
      if (err instanceof StoppedWhileRetrying) {
        this.log.warn(`snapshot of ${name} into ${stream} stopped: ${message}`);
        this.progress.tableFinished(name, "failed", "interrupted");
        return { table: name, stream, rows, status: "interrupted" };
      }
      const skip = this.settings.skipTablesOnFailures && err instanceof TableFailure;
      this.log.fail(
        `snapshot of ${name} into ${stream} ${skip ? "skipped" : "failed"}: ${message}`,
      );
      this.progress.tableFinished(name, skip ? "skipped" : "failed", message);
      if (!skip) throw err;
      this.state.metrics.skippedTable("snapshot");
      return { table: name, stream, rows, status: "skipped", error: message };
    }
    if (this.signal.aborted) {
      this.progress.tableFinished(name, "failed", "interrupted");
      return { table: name, stream, rows, status: "interrupted" };
    }
    try {
      await this.#bounded(this.checkpoints.write({ [snapshotDoneField(stream)]: "1" }));
    } catch (err) {
      // Not marked done: a resume reads on after the stream's tail and finds nothing more.
      if (!this.signal.aborted) throw err;
      this.progress.tableFinished(name, "failed", "interrupted");
      return { table: name, stream, rows, status: "interrupted" };
    }
    this.progress.tableFinished(name, "done");
    this.log.info(`snapshot of ${name} done: ${rows} rows into ${stream}`);
    return { table: name, stream, rows, status: "done" };
  }

  /** The key after which to continue, from the tail of the table's stream: a table's
   * rows land in key order, so the newest entry's key is where the copy got to. */
  async #resumePoint(table: TableSchema, stream: string) {
    const length = await this.sink.length(stream);
    if (length === 0) return { after: null, already: 0 };
    if (!table.hasKey) {
      // Without a key there is no order to continue from: start the table over.
      await this.sink.drop(stream);
      return { after: null, already: 0 };
    }
    const tail = await this.sink.newest(stream, 1);
    const key = decodeEntry(tail[0][1], this.settings.entry.format).key;
    if (!key) return { after: null, already: 0 };
    const after = table.keyColumns.map((ci) => key[table.columns[ci].name] as KeyValue);
    return { after, already: length };
  }

  /** Starts writing a batch after `before`, the table's previous one (see BatchTurn). */
  #batchInTurn(
    lane: StreamLane,
    table: string,
    stream: string,
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
    turn.done = this.#writeBatch(lane, table, stream, turn, before, trouble, () => {
      if (!turn.troubled) setClean(true);
    }).finally(() => setClean(false));
    turn.done.catch(() => {});
    return turn;
  }

  /**
   * Writes a batch; on partial failure retries only the entries that failed, and
   * what landed after the first of them is taken back out before: the stream's newest entry
   * never sits after a row that did not land, so --resume (which continues after it) skips
   * nothing, even after a kill -9. The batch waits for `before` once it or an earlier batch
   * has rows that did not land, and takes back out whatever of it landed meanwhile.
   */
  async #writeBatch(
    lane: StreamLane,
    table: string,
    stream: string,
    turn: BatchTurn,
    before: BatchTurn | null,
    trouble: () => void,
    clean: () => void,
  ) {
    const entries = turn.entries;
    let pending = entries;
    /** The last try lost its connection: some of `pending` may have landed unseen. */
    let unknown = false;
    /** Entries landed but their replicas were not confirmed (wait-for-replicas). */
    let unreplicated = false;
    /** Entries that landed after one that did not could not be taken back out yet. */
    let behindHole = false;
    let t0 = performance.now();
    if (before?.troubled) {
      trouble();
      await before.done;
      before = null;
    }
    for (let attempt = 0;; attempt++) {
      let errors: (Error | null)[];
      try {
        if (unknown) {
          const left = await this.#bounded(this.#keepLanded(lane, stream, pending, turn));
          behindHole = false;
          // All landed: they count once their replicas have them too.
          if (left.length === 0 && unreplicated) await lane.waitForReplicas(stream);
          pending = left;
        }
        unknown = false;
        if (pending.length === 0) return this.state.metrics.snapshotBatch(table, entries.length, 0);
        await this.sink.awaitMemory(this.signal, this.log);
        if (before?.troubled) {
          // An earlier batch failed while this one waited to be sent: it goes after it.
          trouble();
          await before.done;
          before = null;
        }
        t0 = performance.now();
        // Snapshot entries need no ids back: what must be taken back is found by key.
        errors = (await this.#bounded(lane.append(stream, pending, false))).errors;
      } catch (err) {
        // Later batches wait from now on, not once Redis has let the lost connection go.
        trouble();
        errors = pending.map(() => err as Error);
        unknown = true;
        unreplicated ||= this.sink.isReplicaWait(err);
        await this.sink.settleLost(err, undefined, this.signal);
      }
      if (errors.some((e) => e !== null)) trouble();
      if (before !== null) {
        // The first try is over: rows of earlier batches that did not land come first.
        if (!(await before.clean)) {
          trouble();
          // Nothing of this batch landed: a later batch that did land takes itself back.
          const landedNone = !unknown && errors.every((e) => e !== null);
          if (!landedNone) {
            await this.#takeBackRetrying(lane, stream, [...entries, ...laterOf(turn)]);
          }
          await before.done;
          pending = entries;
          unknown = false;
          attempt = -1;
          before = null;
          continue;
        }
        before = null;
      }
      const failed = pending.filter((_, i) => errors[i] !== null);
      if (failed.length === 0) {
        if (attempt === 0) clean();
        return this.state.metrics.snapshotBatch(table, entries.length, performance.now() - t0);
      }
      trouble();
      const firstError = errors.find((e) => e !== null)!;
      this.state.metrics.redisFailed(firstError);
      if (this.signal.aborted && unknown) throw stoppedAfter(firstError);
      const kind = this.sink.classifyError(firstError);
      if (kind === "oom") this.sink.memoryPressure();
      if (this.settings.logRowLevelErrors) {
        pending.forEach((fields, i) => {
          if (errors[i]) {
            this.log.warn(
              `row of ${table} failed (${errors[i]!.message}): key ${
                keyText(entryText(fields), this.settings.entry.format).slice(0, 500)
              }`,
            );
          }
        });
      }
      const tried = pending.length;
      if (!unknown) {
        // Rows after the first refused one that landed go back out at once, so the stream's
        // newest entry is a row with nothing missing before it.
        const first = errors.findIndex((e) => e !== null);
        const after = pending.slice(first + 1).filter((_, i) => errors[first + 1 + i] === null);
        pending = pending.slice(first);
        const later = laterOf(turn);
        if (after.length + later.length > 0) {
          try {
            await this.#bounded(this.#takeBack(lane, stream, [...after, ...later]));
          } catch {
            // Looked for again (by key) before the next try.
            behindHole = unknown = true;
          }
        }
      }
      if (
        kind === "permanent" || (kind === "retriable" && attempt >= this.settings.retry.maxRetries)
      ) {
        throw new TableFailure(
          `${failed.length} of ${tried} entries not accepted by stream "${stream}" after ${
            attempt + 1
          } tries: ${firstError.message}`,
        );
      }
      this.state.metrics.retry("snapshot");
      // OOM is backpressure: wait for memory to free instead of counting it as a failure.
      await sleep(
        backoffMs(
          kind === "oom" ? Math.min(attempt + 1, 4) : attempt + 1,
          this.settings.retry.waitMs,
        ),
        this.signal,
      );
      if (this.signal.aborted) {
        if (!behindHole) throw stoppedAfter(firstError);
        // Rows that Redis refused sit before rows that landed and could not be taken back
        // out, which --resume would take as the table's progress.
        throw new SinkError(
          `interrupted while retrying ${failed.length} row(s) that "${stream}" refused ` +
            `(${firstError.message}); rows after them landed and could not be taken back, so ` +
            `--resume could skip them: start this id again with --overwrite --replace-existing`,
          stream,
        );
      }
    }
  }

  /** Newest entries that can hold what landed of `pending` entries cut off (see #keepLanded). */
  #landedScan(pending: number): number {
    return pending + 2 * this.settings.fetchRows + this.settings.batchRows;
  }

  /** A sink call that gives up a grace period after the stop (StopBound). */
  #bounded<T>(call: Promise<T>): Promise<T> {
    return this.#retry.bound.call(call);
  }

  /**
   * After a lost connection, the entries of `pending` from the first one that is not in the
   * stream on; those after it that landed are taken back out (they are written again after
   * it). A table's batches go in order over one connection, so what landed is among the
   * stream's newest entries (at most two chunks in flight); compared by key, which is unique.
   */
  async #keepLanded(
    lane: StreamLane,
    stream: string,
    pending: EntryField[][],
    turn: BatchTurn,
  ): Promise<EntryField[][]> {
    const later = laterOf(turn);
    const present = await this.#newest(stream, pending.length + later.length);
    const format = this.settings.entry.format;
    const first = pending.findIndex((fields) => !present.has(keyText(entryText(fields), format)));
    if (first < 0) return [];
    const left = pending.slice(first);
    await this.#takeBack(lane, stream, [...left, ...later], present);
    if (first > 0) {
      this.log.info(
        `${first} of ${pending.length} entries of a batch cut off from "${stream}" had ` +
          `landed; retrying only the other ${left.length}`,
      );
    }
    return left;
  }

  /**
   * Takes `entries` back out of the stream (see BatchTurn), retrying a lost connection. A
   * stop before that leaves them after rows that did not land: --resume could skip those.
   */
  async #takeBackRetrying(
    lane: StreamLane,
    stream: string,
    entries: EntryField[][],
  ): Promise<void> {
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#bounded(this.#takeBack(lane, stream, entries));
      } catch (err) {
        await this.sink.settleLost(err, undefined, this.signal);
        const message = `cannot take entries that landed after rows that did not back out of ` +
          `"${stream}" (${(err as Error).message})`;
        if (this.signal.aborted) {
          throw new SinkError(
            `interrupted: ${message}, so --resume could skip those rows: start this id again ` +
              "with --overwrite --replace-existing",
            stream,
          );
        }
        if (
          this.sink.classifyError(err) === "permanent" || attempt >= this.settings.retry.maxRetries
        ) {
          throw new TableFailure(message);
        }
        await sleep(backoffMs(attempt + 1, this.settings.retry.waitMs), this.signal);
      }
    }
  }

  /** Deletes those of `entries` that are in the stream (see BatchTurn). */
  async #takeBack(
    lane: StreamLane,
    stream: string,
    entries: EntryField[][],
    present?: Map<string, string>,
  ): Promise<void> {
    present ??= await this.#newest(stream, entries.length);
    const format = this.settings.entry.format;
    const ids = entries.map((fields) => present.get(keyText(entryText(fields), format)))
      .filter((id): id is string => id !== undefined);
    if (ids.length === 0) return;
    await lane.remove(stream, ids);
    this.log.info(
      `took ${ids.length} entries back out of "${stream}": they landed after a row that did ` +
        "not, and are written again after it",
    );
  }

  /** Key → entry id of the newest entries, enough to hold `pending` in-flight ones. */
  async #newest(stream: string, pending: number): Promise<Map<string, string>> {
    const tail = await this.sink.newest(stream, this.#landedScan(pending));
    const format = this.settings.entry.format;
    return new Map(tail.map(([id, fields]) => [keyText(fields, format), id]));
  }
}

/** The entries of the batches sent after `turn` (see BatchTurn). */
function laterOf(turn: BatchTurn): EntryField[][] {
  const out: EntryField[][] = [];
  for (let t = turn.next; t !== null; t = t.next) out.push(...t.entries);
  return out;
}
