import { decodeEntry } from "../core/entry_decoder.ts";
import { type EntryOptions, TableEntryEncoder } from "../core/entry_encoder.ts";
import { ExistingStreamsError } from "../core/errors.ts";
import type { StreamNaming } from "../core/stream_naming.ts";
import { qualifiedName, type TableSchema } from "../core/table_schema.ts";
import type { SnapshotProgress } from "../observe/snapshot_progress.ts";
import type { PipelineState } from "./pipeline_state.ts";
import { collectGarbageHint } from "./memory_budget.ts";
import { type CheckpointStore, retentionField, snapshotDoneField } from "../ports/checkpoint.ts";
import type { StreamLane, StreamSink } from "../ports/stream_sink.ts";
import type { RetrySettings } from "./retry_policy.ts";
import {
  batchInTurn,
  type BatchTurn,
  type OrderedTarget,
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
    const target: OrderedTarget = {
      stream,
      lane,
      table: name,
      format: this.settings.entry.format,
      logRows: this.settings.logRowLevelErrors,
      scan: (pending) => this.#landedScan(pending),
      landed: (n, ms) => this.state.metrics.snapshotBatch(name, n, ms),
    };
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
          previous = batchInTurn(this.#retry, target, batch, previous);
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

  /** Newest entries that can hold what landed of `pending` entries cut off (batch_retry.ts). */
  #landedScan(pending: number): number {
    return pending + 2 * this.settings.fetchRows + this.settings.batchRows;
  }

  /** A sink call that gives up a grace period after the stop (StopBound). */
  #bounded<T>(call: Promise<T>): Promise<T> {
    return this.#retry.bound.call(call);
  }
}
