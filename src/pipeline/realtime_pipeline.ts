import { collectGarbageHint } from "./memory_budget.ts";
import { type EntryField, fieldLength } from "../core/entry_field.ts";
import type { ChangeEvent } from "../core/change_event.ts";
import { type EntryOptions, streamArena, TableEntryEncoder } from "../core/entry_encoder.ts";
import type { ArenaBlock } from "../core/byte_arena.ts";
import {
  type InDoubtEntry,
  InDoubtError,
  isRetriable,
  ReplicantError,
  SinkError,
} from "../core/errors.ts";
import type { StreamNaming } from "../core/stream_naming.ts";
import { qualifiedName, type TableSchema } from "../core/table_schema.ts";
import { encodeDdlEntry } from "../schema/ddl_entry.ts";
import type { SchemaHistory } from "../schema/schema_history.ts";
import { type SchemaChange, SchemaTracker } from "./schema_tracker.ts";
import { appendIndoubt, cleanupCommand } from "./indoubt_log.ts";
import type { BatchResult, StreamLane, StreamSink } from "../ports/stream_sink.ts";
import { Checkpointer, type InFlightTransaction } from "./checkpointer.ts";
import {
  backoffMs,
  boundedAfterStop,
  type RetrySettings,
  sleep,
  STOP_GRACE_MS,
} from "./retry_policy.ts";
import type { SortKeyOfSource } from "../ports/position.ts";
import type { SourceConnector, StreamRun } from "../ports/connector.ts";
import type {
  DdlStatement,
  ServerChange,
  SourceTransactionPart,
  StreamingSource,
} from "../ports/streaming_source.ts";
import { acceptServerChange, entryIdAfter } from "./server_change.ts";
import {
  type CheckpointStore,
  positionsFrom,
  REALTIME_CHECKPOINT_FIELD,
  REALTIME_SCHEMAS_FIELD,
  skipThroughOf,
} from "../ports/checkpoint.ts";
import { metrics } from "../observe/replicant_metrics.ts";

/** Where the pipeline reports (ReplicationLog fits). */
export interface PipelineLog {
  info(message: string): void;
  warn(message: string): void;
  fail(message: string): void;
}

export const silentLog: PipelineLog = { info() {}, warn() {}, fail() {} };

export interface RealtimeSettings {
  /** Streams written in parallel (applier `realtime.threads`). */
  threads: number;
  /** Entries per pipelined XADD batch (applier `batch-size-rows`). */
  batchRows: number;
  retry: RetrySettings;
  /** EVENTUAL: skip a table after max-retries (default true); false stops the run. */
  skipTablesOnFailures: boolean;
  entry: EntryOptions;
  /** Continue from the checkpoint and skip what each stream's tail already holds. */
  resume: boolean;
  /** Bound of encoded entries waiting for Redis (default 16 MiB). */
  maxQueueBytes?: number;
  /** The connector's rule from an entry's `source` block to its sort key. */
  sortKeyOf: SortKeyOfSource;
  /**
   * Restarts of the source after a connection failure (errors with `retriable: true`),
   * from the last checkpoint; consecutive failures beyond `maxRetries` stop the run.
   */
  sourceRetry?: RetrySettings;
  /**
   * Per stream, changes at or below this sort key are already in the snapshot (MySQL
   * `full`: each table was read at its own binlog position), so they are skipped too.
   */
  skipThrough?: ReadonlyMap<string, string>;
  /**
   * EVENTUAL (default): one stream per table, written in parallel. GLOBAL: every table into
   * the one `replicate_io_cdc_log_<group>_<id>` stream, in source commit order, one batch in
   * flight; a failed batch whose landed entries cannot be deleted stops the run (exit 4).
   */
  replayConsistency?: "GLOBAL" | "EVENTUAL";
  /** GLOBAL: the in-doubt file where entries that could not be undone go. */
  indoubtFile?: string;
  /**
   * Schema versions (the dump stream): every entry names its table's version, and a change
   * of a table's columns records a new version before the first entry that uses it.
   */
  schemas?: SchemaHistory;
  /** DDL replication on: the DDL stream receives every schema change. */
  ddlStream?: string | null;
  /**
   * Every change stream of the id (`_cdc_logs`, GLOBAL, DDL): checked when the source moves
   * to another server that continues the checkpoint.
   */
  changeStreams?: string[];
  /**
   * Copies the current rows of a table renamed into the selection into its snapshot
   * stream. Awaited: the checkpoint cannot pass the rename before the copy is complete.
   */
  snapshotTable?: (table: TableSchema) => Promise<void>;
}

/** Checkpoint writes while streaming: at most one per this many ms. */
const CHECKPOINT_INTERVAL_MS = 50;

/** Label of the DDL stream's writer in outcomes and messages. */
export const SCHEMA_CHANGES = "(schema changes)";

/** Label of the GLOBAL stream's writer in outcomes and messages. */
export const ALL_TABLES = "(all tables)";

export interface RealtimeTableOutcome {
  table: string;
  stream: string;
  /** Changes written (entries without tombstones). */
  changes: number;
  /** Changes not written because the stream already held them (resume). */
  duplicates: number;
  status: "ok" | "skipped";
  error?: string;
}

export interface RealtimeOutcome {
  tables: RealtimeTableOutcome[];
  skippedTables: string[];
  /**
   * Source transactions with at least one change this run wrote: each counted once, however
   * many parts it came in and however often a restart delivered it again; transactions of
   * unselected tables, heartbeats, idle checkpoints and DDL alone are not counted.
   */
  transactions: number;
  /** Last checkpoint written to Redis (and acknowledged to the source), or null. */
  checkpoint: string | null;
  interrupted: boolean;
}

/** A table's writes failed beyond retries: EVENTUAL skips it. */
class TableFailure extends ReplicantError {}

/**
 * The run was asked to stop while a writer waited to try again. Its batch and what is queued
 * behind it stay unaccepted, so the checkpoint stays below them; what landed of the batch is
 * the batch's first entries, which the tail rule of `--resume` skips.
 */
class StoppedWhileRetrying extends ReplicantError {}

interface Queued {
  entries: EntryField[][];
  tx: InFlightTransaction;
  bytes: number;
  sortKey: string | undefined;
  /** For the metrics: counted per batch when Redis accepts it (not for DDL entries). */
  op?: ChangeEvent["op"];
  table?: TableSchema;
  tsMs: number;
  /** The arena block the entries point into, released when Redis accepted them. */
  block?: ArenaBlock | null;
}

class StreamWriter {
  queue: Queued[] = [];
  head = 0;
  running = false;
  skipped = false;
  /** Stopped by SIGINT/SIGTERM while waiting to retry: writes nothing more. */
  stopped = false;
  ready = false;
  lastId: string | null = null;
  tailKey: string | null = null;
  /** Sort key of the last change this run wrote. */
  lastKey: string | null = null;
  changes = 0;
  duplicates = 0;
  error?: string;
  /** The batch being written: taken from the queue, not yet accepted. */
  current: Queued[] = [];
  constructor(
    readonly name: string,
    readonly stream: string,
    /** The sink connection this stream's batches, tail reads and undo go through (order). */
    readonly lane: StreamLane,
    /** The DDL stream's entries are always in the `fields` layout, without tombstones. */
    readonly ddl = false,
  ) {}
  get pending(): number {
    return this.queue.length - this.head;
  }
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

class Semaphore {
  #free: number;
  #waiting: (() => void)[] = [];
  constructor(n: number) {
    this.#free = Math.max(1, n);
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((r) => this.#waiting.push(r));
  }
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

/**
 * Realtime. EVENTUAL: each table's changes go to its `_cdc_logs`
 * stream, in source order, a transaction's rows contiguous; streams are written in
 * parallel up to `threads`, in pipelined XADD batches whose every reply is checked. A
 * failed batch is undone (XDEL of what landed) and retried whole; after max-retries (at
 * once for a permanent error) the table is skipped. GLOBAL: the router maps every table to
 * the one global stream, written by one writer with one batch in flight, so the stream is
 * in source commit order with transactions contiguous; a batch that still fails after
 * max-retries stops the run, and landed entries that could not be deleted go to the
 * in-doubt file (InDoubtError, exit 4). The checkpoint moves only when every entry of every transaction up to
 * it is accepted: first written to Redis, then acknowledged to the source.
 */
export class RealtimePipeline {
  #checkpointer = new Checkpointer();
  readonly #writers = new Map<string, StreamWriter>();
  /** Per (labelled) schema object: its stream's writer and its encoder. */
  readonly #routes = new WeakMap<
    TableSchema,
    { writer: StreamWriter; encoder: TableEntryEncoder<true> }
  >();
  readonly #global: boolean;
  readonly #sem: Semaphore;
  readonly #internal = new AbortController();
  #open: InFlightTransaction | null = null;
  #bytes = 0;
  /** Deliveries from the source (any kind): progress, for the source retry budget. */
  #deliveries = 0;
  #transactions = 0;
  /** The source transaction counted last: its later parts are not counted again. */
  #lastCounted: string | null = null;
  #fatal: unknown = null;
  #waiters: (() => void)[] = [];
  #latest: string | null = null;
  #written: string | null = null;
  #committing: Promise<void> | null = null;
  #lastCheckpointAt = 0;
  /** A Redis call failed after the stop was asked: the checkpoint is not tried again. */
  #redisFailedWhileStopping = false;
  readonly #schemas: SchemaTracker;
  /** Per stream: its newest entry when the source moved to another server. */
  #positionsFrom = new Map<string, string>();
  /** Per stream: what the table's snapshot covers (MySQL `full`); dropped at a server move. */
  readonly #skipThrough: Map<string, string>;

  /**
   * The queue holds several batches' worth, so the source keeps decoding while a batch is
   * in flight (a queue the size of one batch makes the two take turns).
   */
  get #maxQueueBytes(): number {
    return this.settings.maxQueueBytes ?? 16 * 1024 * 1024;
  }
  get #maxBatchBytes(): number {
    return Math.max(64 * 1024, Math.floor(this.#maxQueueBytes / 4));
  }

  constructor(
    private readonly source: StreamingSource,
    private readonly sink: StreamSink,
    private readonly naming: StreamNaming,
    private readonly checkpoints: CheckpointStore,
    private readonly settings: RealtimeSettings,
    private readonly log: PipelineLog,
    private readonly signal: AbortSignal,
  ) {
    this.#global = settings.replayConsistency === "GLOBAL";
    this.#schemas = new SchemaTracker(
      settings.schemas,
      (change, tx) => this.#queueDdl(change, tx),
      log,
    );
    this.#sem = new Semaphore(this.#global ? 1 : settings.threads);
    this.#skipThrough = new Map(settings.skipThrough ?? []);
  }

  async run(): Promise<RealtimeOutcome> {
    const from = this.settings.resume
      ? await this.checkpoints.get(REALTIME_CHECKPOINT_FIELD)
      : null;
    this.#written = from;
    this.#positionsFrom = positionsFrom(await this.checkpoints.read());
    if (this.source.onServerChange !== undefined) {
      this.source.onServerChange = (change) => this.#serverChanged(change);
    }
    if (this.settings.schemas) {
      const saved = this.settings.resume
        ? await this.checkpoints.get(REALTIME_SCHEMAS_FIELD)
        : null;
      this.source.useSchemaHistory?.(this.settings.schemas, this.#schemas.load(saved));
    }
    const stop = () => this.#internal.abort();
    if (this.signal.aborted) stop();
    this.signal.addEventListener("abort", stop, { once: true });
    // Waits for room in the queue or for the writers end at once when the run stops.
    this.#internal.signal.addEventListener("abort", () => this.#notify(), { once: true });
    metrics.oldestPendingMs = () => this.#oldestPendingMs();
    this.log.info(
      `realtime (${
        this.#global ? "GLOBAL" : "EVENTUAL"
      }) of ${this.source.tables().length} table(s) from ${
        from ? `checkpoint ${from}` : "the slot's position"
      }`,
    );
    let sourceError: unknown = null;
    const retry = this.settings.sourceRetry ?? { maxRetries: 10, waitMs: 1000 };
    let start = from;
    for (let failures = 0, seen = 0;;) {
      try {
        await this.source.start(start, (tx) => this.#onTransaction(tx), this.#internal.signal);
        break;
      } catch (err) {
        if (this.#deliveries > seen) failures = 0;
        seen = this.#deliveries;
        if (
          this.#fatal !== null || this.#internal.signal.aborted ||
          !isRetriable(err) || failures >= retry.maxRetries
        ) {
          sourceError = err;
          break;
        }
        failures++;
        this.log.warn(
          `source failed (${
            (err as Error).message
          }); starting again (${failures}/${retry.maxRetries})`,
        );
        start = await this.#restartPoint();
        if (this.#fatal !== null) break;
        await sleep(backoffMs(failures, retry.waitMs), this.#internal.signal);
      }
    }
    // Drain: every queued batch is written (or its table skipped), then the checkpoint. A
    // stop still ends the writers' retry waits while they drain (the source may have ended
    // on its own, with an error).
    try {
      while (this.#busyWriters() && this.#fatal === null) await this.#changed();
      this.#advance();
      await this.#commit();
    } finally {
      this.signal.removeEventListener("abort", stop);
    }
    const error = this.#fatal ?? sourceError;
    if (error) throw error;
    const tables = [...this.#writers.values()].map((w): RealtimeTableOutcome => ({
      table: w.name,
      stream: w.stream,
      changes: w.changes,
      duplicates: w.duplicates,
      status: w.skipped ? "skipped" : "ok",
      ...(w.error ? { error: w.error } : {}),
    }));
    return {
      tables,
      skippedTables: tables.filter((t) => t.status === "skipped").map((t) => t.table),
      transactions: this.#transactions,
      checkpoint: this.#written,
      interrupted: this.signal.aborted,
    };
  }

  /**
   * After the source failed: lets everything queued land, saves the checkpoint, and makes
   * each stream skip what it already holds, since the source sends again from there.
   */
  async #restartPoint(): Promise<string | null> {
    while (this.#busyWriters() && this.#fatal === null) await this.#changed();
    this.#advance();
    await this.#commit().catch((err) => {
      if (this.#fatal === null) this.#fatal = err;
    });
    for (const w of this.#writers.values()) {
      if (w.lastKey !== null && (w.tailKey === null || w.lastKey > w.tailKey)) {
        w.tailKey = w.lastKey;
      }
    }
    this.#checkpointer = new Checkpointer();
    this.#open = null;
    this.#schemas.restart();
    return this.#written;
  }

  /**
   * The source continues the checkpoint from another server (acceptServerChange): positions
   * written before compare with nothing it sends, so no stream skips by them any more.
   */
  async #serverChanged(change: ServerChange): Promise<void> {
    const names = new Set(this.settings.changeStreams ?? []);
    for (const w of this.#writers.values()) names.add(w.stream);
    const streams = [...names].map((name) => {
      const ddl = name === this.settings.ddlStream;
      return {
        name,
        format: ddl ? "fields" as const : this.settings.entry.format,
        tombstones: ddl ? false : this.settings.entry.tombstones,
      };
    });
    const tails = await acceptServerChange(
      change,
      this.sink,
      this.checkpoints,
      streams,
      this.settings.sortKeyOf,
      this.#skipThrough,
    );
    for (const [stream, id] of tails) this.#positionsFrom.set(stream, id);
    this.#skipThrough.clear();
    for (const w of this.#writers.values()) {
      w.tailKey = null;
      w.lastKey = null;
    }
    this.log.warn(
      `the source is now server ${change.to} (the checkpoint's was ${
        change.from ?? "not recorded"
      }), which has every transaction of checkpoint ${change.checkpoint}: continuing there; ` +
        "positions in new entries are that server's",
    );
  }

  /** A DDL statement from the source; a table renamed into the selection is copied first. */
  async #ddlStatement(d: DdlStatement, tx: InFlightTransaction): Promise<void> {
    const after = await this.#schemas.statement(d, tx);
    if (d.snapshot && after && this.settings.snapshotTable) {
      this.log.info(`${qualifiedName(d.table)} entered the selection: copying its rows`);
      await this.settings.snapshotTable(after);
    }
  }

  /** A schema change or DDL statement: an entry of the DDL stream, when it is on. */
  #queueDdl({ change }: SchemaChange, tx: InFlightTransaction): void {
    const stream = this.settings.ddlStream;
    if (!stream) return;
    const fields = encodeDdlEntry(change, this.settings.entry, Date.now());
    let w = this.#writers.get(stream);
    if (!w) {
      w = new StreamWriter(SCHEMA_CHANGES, stream, this.sink.lane(), true);
      this.#writers.set(stream, w);
    }
    let bytes = 64;
    for (const f of fields) bytes += f.length;
    this.#checkpointer.add(tx);
    const position = change.position;
    w.queue.push({ entries: [fields], tx, bytes, sortKey: position.sortKey, tsMs: position.tsMs });
    this.#bytes += bytes;
    this.#kick(w);
  }

  /** For the metrics (read at scrape): commit time of the oldest change not yet in Redis. */
  #oldestPendingMs(): number | null {
    let oldest: number | null = null;
    for (const w of this.#writers.values()) {
      if (w.skipped) continue;
      const q = w.current.length > 0 ? w.current[0] : w.pending > 0 ? w.queue[w.head] : null;
      if (q && (oldest === null || q.tsMs < oldest)) oldest = q.tsMs;
    }
    return oldest;
  }

  #busyWriters(): boolean {
    for (const w of this.#writers.values()) {
      if (w.running || (w.pending > 0 && !w.skipped && !w.stopped)) return true;
    }
    return false;
  }

  #changed(): Promise<void> {
    return new Promise((r) => this.#waiters.push(r));
  }

  #notify(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const r of w) r();
  }

  /** The router: a table's own stream (EVENTUAL) or the one global stream (GLOBAL). */
  #writer(table: TableSchema): StreamWriter {
    const stream = this.#global ? this.naming.globalCdcStream() : this.naming.cdcStream(table.id);
    let w = this.#writers.get(stream);
    if (!w) {
      w = new StreamWriter(
        this.#global ? ALL_TABLES : qualifiedName(table.id),
        stream,
        this.sink.lane(),
      );
      this.#writers.set(stream, w);
    }
    return w;
  }

  /** The writer and encoder of a schema object, made once per object (hot path). */
  #route(table: TableSchema): { writer: StreamWriter; encoder: TableEntryEncoder<true> } {
    let r = this.#routes.get(table);
    if (!r) {
      r = {
        writer: this.#writer(table),
        encoder: new TableEntryEncoder(table, this.settings.entry, true),
      };
      this.#routes.set(table, r);
    }
    return r;
  }

  async #onTransaction(part: SourceTransactionPart): Promise<void> {
    collectGarbageHint();
    if (this.#fatal !== null) throw this.#fatal;
    this.#deliveries++;
    let tx = this.#open;
    if (!tx || tx.token !== part.checkpoint) {
      tx = this.#checkpointer.begin(part.checkpoint);
      tx.source = part.transaction ?? part.checkpoint;
    }
    for (const d of part.ddl ?? []) await this.#ddlStatement(d, tx);
    const touched = new Set<StreamWriter>();
    const now = Date.now();
    for (const ev of part.events as ChangeEvent[]) {
      const table = this.#schemas.labelled(ev.table) ??
        await this.#schemas.label(ev.table, ev.position, tx);
      const route = this.#route(table);
      const w = route.writer;
      if (w.skipped) continue;
      if (this.#global && this.#skipThrough.size > 0) {
        // MySQL `full`: each table's snapshot covers its changes up to its own position.
        const floor = this.#skipThrough.get(this.naming.cdcStream(table.id));
        const key = ev.position.sortKey;
        if (floor !== undefined && key !== undefined && key <= floor) continue;
      }
      const entries = route.encoder.encode(ev, now);
      const block = route.encoder.lastBlock;
      if (block !== null) streamArena.hold(block);
      let bytes = 64;
      for (const e of entries) for (const f of e) bytes += fieldLength(f);
      this.#checkpointer.add(tx);
      w.queue.push({
        entries,
        tx,
        bytes,
        sortKey: ev.position.sortKey,
        op: ev.op,
        table,
        tsMs: ev.position.tsMs,
        block,
      });
      this.#bytes += bytes;
      touched.add(w);
    }
    if (part.more) this.#open = tx;
    else {
      this.#checkpointer.close(tx);
      this.#open = null;
    }
    for (const w of touched) this.#kick(w);
    this.#advance();
    const max = this.#maxQueueBytes;
    while (this.#bytes > max && this.#fatal === null && !this.#internal.signal.aborted) {
      await this.#changed();
    }
    if (this.#fatal !== null) throw this.#fatal;
  }

  #kick(w: StreamWriter): void {
    if (w.running || w.skipped || w.stopped || w.pending === 0) return;
    w.running = true;
    this.#runWriter(w).finally(() => {
      w.running = false;
      this.#notify();
      if (w.pending > 0 && !w.skipped && this.#fatal === null) this.#kick(w);
    });
  }

  #accept(q: Queued): void {
    this.#checkpointer.accepted(q.tx);
    this.#bytes -= q.bytes;
    if (q.block) streamArena.release(q.block);
  }

  async #runWriter(w: StreamWriter): Promise<void> {
    try {
      if (!w.ready) await this.#prepare(w);
      while (w.pending > 0 && !w.skipped && this.#fatal === null) {
        const batch: Queued[] = w.current = [];
        await this.#sem.acquire();
        try {
          let n = 0;
          let bytes = 0;
          while (
            w.head < w.queue.length && n < this.settings.batchRows && bytes < this.#maxBatchBytes
          ) {
            const q = w.queue[w.head++];
            if (w.tailKey !== null && q.sortKey !== undefined && q.sortKey <= w.tailKey) {
              w.duplicates++;
              this.#accept(q);
              continue;
            }
            batch.push(q);
            n += q.entries.length;
            bytes += q.bytes;
          }
          if (batch.length > 0) {
            const entries: EntryField[][] = [];
            for (const q of batch) for (const e of q.entries) entries.push(e);
            await this.#send(w, entries, batch[0].sortKey);
          }
        } finally {
          this.#sem.release();
        }
        for (const q of batch) {
          if (!w.ddl) q.tx.wrote = true;
          this.#accept(q);
        }
        metrics.realtimeBatch(batch);
        w.current = [];
        w.changes += batch.length;
        if (batch.length > 0) w.lastKey = batch[batch.length - 1].sortKey ?? w.lastKey;
        if (w.head > 4096 && w.head * 2 > w.queue.length) {
          w.queue = w.queue.slice(w.head);
          w.head = 0;
        }
        this.#advance();
        this.#notify();
      }
    } catch (err) {
      const message = (err as Error).message;
      if (err instanceof StoppedWhileRetrying) {
        // Nothing is accepted or dropped: the checkpoint stays below this stream's batch.
        w.stopped = true;
        this.log.warn(`realtime of ${w.name} into ${w.stream} stopped: ${message}`);
      } else if (
        err instanceof TableFailure && this.settings.skipTablesOnFailures && !this.#global
      ) {
        w.skipped = true;
        w.error = message;
        metrics.skippedTable("realtime");
        // The failed batch and everything queued after it are dropped on purpose.
        for (const q of w.current) this.#accept(q);
        w.current = [];
        while (w.head < w.queue.length) this.#accept(w.queue[w.head++]);
        w.queue = [];
        w.head = 0;
        this.log.fail(`realtime of ${w.name} into ${w.stream} skipped: ${message}`);
        this.#advance();
      } else {
        this.log.fail(`realtime of ${w.name} into ${w.stream} failed: ${message}`);
        if (this.#fatal === null) this.#fatal = err;
        this.#internal.abort();
      }
    }
  }

  /** Reads the stream's tail once: where undo starts, and (resume) what to skip. */
  async #prepare(w: StreamWriter): Promise<void> {
    for (let attempt = 0;; attempt++) {
      try {
        const tail = await this.#bounded(w.lane.readTail(w.stream, {
          format: w.ddl ? "fields" : this.settings.entry.format,
          tombstones: w.ddl ? false : this.settings.entry.tombstones,
          sortKeyOf: this.settings.sortKeyOf,
        }));
        w.lastId = tail.lastId;
        const floor = this.#global || w.ddl ? null : this.#skipThrough.get(w.stream) ?? null;
        w.tailKey = floor;
        // After a move to another server, a tail from before it compares with nothing new.
        const since = this.#positionsFrom.get(w.stream);
        const comparable = since === undefined ||
          (tail.lastId !== null && entryIdAfter(tail.lastId, since));
        if (this.settings.resume) {
          if (
            comparable && tail.sortKey !== null && (floor === null || tail.sortKey > floor)
          ) {
            w.tailKey = tail.sortKey;
          }
          if (tail.missingTombstone) {
            w.lastId = await this.#bounded(
              w.lane.appendOne(w.stream, tail.missingTombstone),
            );
            this.log.info(`appended the missing tombstone of the last delete in ${w.stream}`);
          }
        }
        w.ready = true;
        return;
      } catch (err) {
        const reason = `cannot read the tail of "${w.stream}": ${(err as Error).message}`;
        if (
          this.sink.classifyError(err) === "permanent" || attempt >= this.settings.retry.maxRetries
        ) {
          throw new TableFailure(reason);
        }
        await this.#waitToRetry(backoffMs(attempt + 1, this.settings.retry.waitMs), reason);
      }
    }
  }

  /**
   * Writes one batch; on any failure undoes what landed and retries it whole, so a
   * stream never holds part of a batch twice.
   * `at` is the position of the batch's first change, for messages.
   */
  async #send(w: StreamWriter, entries: EntryField[][], at: string | undefined): Promise<void> {
    const where = `"${w.stream}" at position ${at ?? "?"} (after entry ${w.lastId ?? "-"})`;
    for (let attempt = 0;; attempt++) {
      let result: BatchResult | null = null;
      let thrown: unknown = null;
      const guard = this.sink.tailGuard;
      try {
        await this.sink.awaitMemory(this.#internal.signal, this.log);
        const t0 = performance.now();
        // Until it landed or was undone, retention keeps what a resume reads before it.
        guard.batchStarted(w.stream, w.lastId);
        result = await this.#bounded(w.lane.append(w.stream, entries));
        metrics.realtimeRoundTrip(performance.now() - t0);
      } catch (err) {
        thrown = err;
      }
      if (result && result.failed === 0) {
        w.lastId = result.ids[result.ids.length - 1];
        guard.batchSettled(w.stream);
        return;
      }
      const error = thrown ?? result!.errors.find((e) => e !== null);
      const reason = (error as Error)?.message ?? String(error);
      metrics.redisFailed(error);
      // Stopping with the batch not undone is safe when what landed of it is its first
      // entries (a lost connection runs what it sent in order): --resume skips them as the
      // stream's tail. Entries that landed after a failed one must be undone or are in doubt.
      const stopNow = () =>
        this.#internal.signal.aborted && (thrown !== null || landedInOrder(result!));
      if (stopNow()) {
        throw new StoppedWhileRetrying(
          `a batch into ${where} failed (${reason}) at the stop; what landed of it is the ` +
            `stream's tail, which --resume skips`,
        );
      }
      if (thrown) await this.sink.settleLost(thrown, undefined, this.#internal.signal);
      const left = await this.#undo(w, result && !thrown ? result : null, entries.length);
      if (left === null || left.length > 0) {
        if (stopNow()) {
          throw new StoppedWhileRetrying(
            `a batch into ${where} failed (${reason}) and could not be undone before the stop; ` +
              `what landed of it is the stream's tail, which --resume skips`,
          );
        }
        this.#inDoubt(w, left, where, reason);
      }
      guard.batchSettled(w.stream);
      const kind = this.sink.classifyError(error);
      if (kind === "oom") this.sink.memoryPressure();
      if (
        kind === "permanent" || (kind === "retriable" && attempt >= this.settings.retry.maxRetries)
      ) {
        throw new TableFailure(
          `batch of ${entries.length} entries not accepted by ${where} after ${
            attempt + 1
          } tries (${kind} error): ${reason}`,
        );
      }
      metrics.retry("realtime");
      this.log.warn(
        `batch of ${entries.length} entries into ${where} failed (${reason}); undone, retrying (${
          attempt + 1
        }/${this.settings.retry.maxRetries})`,
      );
      await this.#waitToRetry(
        backoffMs(
          kind === "oom" ? Math.min(attempt + 1, 4) : attempt + 1,
          this.settings.retry.waitMs,
        ),
        `a batch of ${entries.length} entries into ${where} was undone after ${reason}`,
      );
    }
  }

  /** Stopping: the data is in the streams; a resume from the older checkpoint skips it. */
  #unsavedAtStop(token: string, why: string): void {
    this.log.warn(
      `stopping without saving checkpoint ${token} (${why}); --resume continues from ${
        this.#written ?? "the start"
      } and skips what the streams already hold`,
    );
  }

  /** A Redis call that gives up STOP_GRACE_MS after the stop (see boundedAfterStop). */
  #bounded<T>(call: Promise<T>): Promise<T> {
    return boundedAfterStop(call, this.#internal.signal, STOP_GRACE_MS, () => {
      this.#redisFailedWhileStopping = true;
    });
  }

  /** The pause before another try; a stop of the run ends it and the writer stops. */
  async #waitToRetry(ms: number, why: string): Promise<void> {
    await sleep(ms, this.#internal.signal);
    if (this.#internal.signal.aborted) {
      throw new StoppedWhileRetrying(`stopped while waiting to retry: ${why}`);
    }
  }

  /**
   * The undo of a failed batch did not finish: `ids` landed and are still there (null: they
   * could not even be listed). GLOBAL records them in the in-doubt file and stops (exit 4);
   * EVENTUAL skips the table.
   */
  #inDoubt(w: StreamWriter, ids: string[] | null, where: string, reason: string): never {
    if (ids === null) {
      throw new TableFailure(
        `cannot undo a failed batch in ${where}: the entries after ${
          w.lastId ?? "the start"
        } could not be listed (${reason}); --resume continues after the last one that landed`,
      );
    }
    const entries: InDoubtEntry[] = ids.map((id) => ({ stream: w.stream, id }));
    if (!this.#global) {
      throw new TableFailure(
        `cannot undo a failed batch in ${where} (${reason}): entries ${ids.join(" ")} are in doubt`,
      );
    }
    const file = this.settings.indoubtFile ?? null;
    if (file) appendIndoubt(file, entries);
    metrics.inDoubt(ids.length);
    const message =
      `GLOBAL replication stopped: a batch into ${where} failed (${reason}) and ${ids.length} of its entries that landed could not be deleted; ${
        file ? `they are listed in ${file}` : `in doubt: ${ids.join(" ")}`
      }. Run \`${
        cleanupCommand(this.naming.replicationId, this.naming.group)
      }\` to delete them, then continue with --resume.`;
    this.log.fail(message);
    throw new InDoubtError(message, file, entries);
  }

  /**
   * XDEL the entries of a failed batch that landed: the ids from the replies, or, when the
   * pipeline itself failed (connection lost), every entry after the last one known good.
   * Returns the ids that could not be deleted ([] when the undo finished), or null when the
   * landed entries could not be listed.
   */
  async #undo(w: StreamWriter, result: BatchResult | null, size: number): Promise<string[] | null> {
    let ids: string[] | null = result ? result.ids.filter((id): id is string => id !== null) : null;
    for (let attempt = 0;; attempt++) {
      try {
        if (ids === null) {
          ids = await this.#bounded(w.lane.landedAfter(w.stream, w.lastId, size + 1));
        }
        if (ids.length > 0) {
          await this.#bounded(w.lane.remove(w.stream, ids));
          metrics.undone(ids.length);
          this.log.info(`undo: deleted ${ids.length} entries of a failed batch from ${w.stream}`);
        }
        return [];
      } catch (err) {
        this.log.warn(`undo of a failed batch in ${w.stream} failed: ${(err as Error).message}`);
        if (
          this.sink.classifyError(err) === "permanent" ||
          attempt >= this.settings.retry.maxRetries ||
          this.#internal.signal.aborted
        ) {
          return ids;
        }
        await sleep(backoffMs(attempt + 1, this.settings.retry.waitMs), this.#internal.signal);
      }
    }
  }

  #advance(): void {
    const token = this.#checkpointer.advance((tx) => {
      this.#schemas.committed(tx);
      this.#count(tx);
    });
    if (token !== null) {
      this.#latest = token;
      if (!this.#committing) {
        this.#committing = this.#writeCheckpoints(true).catch((err) => {
          if (this.#fatal === null) this.#fatal = err;
          this.#internal.abort();
          this.#notify();
        }).finally(() => this.#committing = null);
      }
    }
  }

  /** A finished transaction counts in the summary once, when it wrote a change (RealtimeOutcome). */
  #count(tx: InFlightTransaction): void {
    if (!tx.wrote || tx.source === this.#lastCounted) return;
    this.#lastCounted = tx.source ?? null;
    this.#transactions++;
  }

  /** Writes the newest checkpoint now (draining, stopping), after any write in progress. */
  async #commit(): Promise<void> {
    if (this.#committing) await this.#committing.catch(() => {});
    await this.#writeCheckpoints(false);
  }

  /**
   * Writes the newest checkpoint to Redis, then acknowledges it to the source, until the
   * newest is written. `paced`: at most one write per CHECKPOINT_INTERVAL_MS while changes
   * stream (a checkpoint per small transaction would cost a round trip each).
   */
  async #writeCheckpoints(paced: boolean): Promise<void> {
    for (let failures = 0; this.#latest !== null && this.#latest !== this.#written;) {
      if (this.#internal.signal.aborted && this.#redisFailedWhileStopping) {
        this.#unsavedAtStop(this.#latest, "Redis did not answer since the stop");
        return;
      }
      if (paced) {
        const wait = this.#lastCheckpointAt + CHECKPOINT_INTERVAL_MS - Date.now();
        if (wait > 0) await sleep(wait, this.#internal.signal);
      }
      this.#lastCheckpointAt = Date.now();
      const token = this.#latest;
      const schemas = this.#schemas.pending();
      try {
        await this.#bounded(this.checkpoints.write({
          [REALTIME_CHECKPOINT_FIELD]: token,
          ...(schemas === null ? {} : { [REALTIME_SCHEMAS_FIELD]: schemas }),
        }));
        if (schemas !== null) this.#schemas.saved(schemas);
        await this.source.acknowledge(token);
        this.#written = token;
      } catch (err) {
        failures++;
        metrics.redisFailed(err);
        this.log.warn(`cannot write checkpoint ${token}: ${(err as Error).message}`);
        if (this.#internal.signal.aborted) {
          this.#unsavedAtStop(token, (err as Error).message);
          return;
        }
        if (failures > this.settings.retry.maxRetries) {
          throw new SinkError(`cannot write the checkpoint: ${(err as Error).message}`);
        }
        await sleep(backoffMs(failures, this.settings.retry.waitMs), this.#internal.signal);
      }
    }
  }
}

/**
 * `replicant realtime`, and `full` once its snapshot is done (`afterSnapshot`): the
 * connector's change stream into the sink, until stopped.
 */
export async function streamChanges(
  connector: SourceConnector,
  run: StreamRun & { log: PipelineLog },
  afterSnapshot: boolean,
  sink: StreamSink,
  naming: StreamNaming,
  settings: Omit<RealtimeSettings, "resume" | "sortKeyOf" | "skipThrough">,
  signal: AbortSignal,
): Promise<RealtimeOutcome> {
  const skipThrough = skipThroughOf(await run.checkpoints.read());
  const opened = await connector.openStream(run, afterSnapshot);
  try {
    return await new RealtimePipeline(
      opened.source,
      sink,
      naming,
      run.checkpoints,
      { ...settings, resume: opened.resume, sortKeyOf: connector.sortKeyOfSource, skipThrough },
      run.log,
      signal,
    ).run();
  } finally {
    await opened.close();
  }
}
