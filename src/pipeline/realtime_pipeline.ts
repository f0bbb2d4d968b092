import type { ChangeEvent } from "../core/change_event.ts";
import type { EntryOptions } from "../core/entry_encoder.ts";
import type { StreamNaming } from "../core/stream_naming.ts";
import { qualifiedName, type TableId, type TableSchema } from "../core/table_schema.ts";
import type { SchemaHistory } from "../schema/schema_history.ts";
import { SchemaTracker } from "./schema_tracker.ts";
import type { StreamSink } from "../ports/stream_sink.ts";
import { Checkpointer, type InFlightTransaction } from "./checkpointer.ts";
import type { RetrySettings } from "./retry_policy.ts";
import type { SortKeyOfSource } from "../ports/position.ts";
import type { SourceConnector, StreamRun } from "../ports/connector.ts";
import type {
  DdlStatement,
  ServerChange,
  SourceTransactionPart,
  StreamingSource,
} from "../ports/streaming_source.ts";
import { acceptServerChange } from "./server_change.ts";
import {
  type CheckpointStore,
  positionsFrom,
  REALTIME_CHECKPOINT_FIELD,
  REALTIME_SCHEMAS_FIELD,
  SELECTION_TABLES_FIELD,
  selectionTablesOf,
  selectionTablesValue,
  skipThroughOf,
} from "../ports/checkpoint.ts";
import type { PipelineState } from "./pipeline_state.ts";
import { collectGarbageHint } from "./memory_budget.ts";
import { type PipelineLog, type RetryContext, silentLog, StopBound } from "./batch_retry.ts";
import { CheckpointCommitter } from "./checkpoint_committer.ts";
import { RealtimeRunState } from "./realtime_run_state.ts";
import { ALL_TABLES, RealtimeRouter, SCHEMA_CHANGES } from "./realtime_router.ts";
import { type StreamWriter, WriterPool } from "./realtime_writers.ts";
import { runSource } from "./source_runner.ts";
import { type JoinSpec, prepareJoin, TableJoinError } from "./table_join.ts";

export { ALL_TABLES, type PipelineLog, SCHEMA_CHANGES, silentLog };

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
  /**
   * Snapshot streams of tables whose snapshot is taken alongside this run (they join the id):
   * when the stream reaches the point where they entered the publication, they are not copied
   * again.
   */
  joining?: ReadonlySet<string>;
}

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

/**
 * Realtime. EVENTUAL: each table's changes go to its `_cdc_logs` stream, in source order, a
 * transaction's rows contiguous; streams are written in parallel up to `threads`, in batches
 * whose every entry's outcome is checked. A failed batch is undone and retried whole; after
 * max-retries (at once for a permanent error) the table is skipped. GLOBAL: the router maps
 * every table to the one global stream, written by one writer with one batch in flight, so
 * the stream is in source commit order with transactions contiguous; a batch that still fails
 * after max-retries stops the run, and landed entries that could not be deleted go to the
 * in-doubt file (InDoubtError, exit 4). The checkpoint moves only when every entry of every
 * transaction up to it is accepted: first written to the sink, then acknowledged to the
 * source.
 *
 * The parts, one job each: the router and encoder (realtime_router.ts), the writers and their
 * byte budget (realtime_writers.ts, with the batch retry of batch_retry.ts), the checkpoint
 * committer (checkpoint_committer.ts) and the source runner with its restarts
 * (source_runner.ts). This class feeds the source's transactions through them.
 */
export class RealtimePipeline {
  #checkpointer = new Checkpointer();
  readonly #run = new RealtimeRunState();
  readonly #pool: WriterPool;
  readonly #router: RealtimeRouter;
  readonly #committer: CheckpointCommitter;
  readonly #global: boolean;
  #open: InFlightTransaction | null = null;
  /** Deliveries from the source (any kind): progress, for the source retry budget. */
  #deliveries = 0;
  #transactions = 0;
  readonly #schemas: SchemaTracker;
  /** Per stream: its newest entry when the source moved to another server. */
  readonly #positionsFrom = new Map<string, string>();
  /** Per stream: what the table's snapshot covers (MySQL `full`); dropped at a server move. */
  readonly #skipThrough: Map<string, string>;
  /** The id's recorded tables, by qualified name (null: an id that records none). */
  #recorded: Map<string, TableId> | null = null;

  constructor(
    private readonly source: StreamingSource,
    private readonly sink: StreamSink,
    private readonly naming: StreamNaming,
    private readonly checkpoints: CheckpointStore,
    private readonly settings: RealtimeSettings,
    private readonly log: PipelineLog,
    private readonly signal: AbortSignal,
    /** What the run counts in and allocates from (pipeline_state.ts). */
    private readonly state: PipelineState,
  ) {
    const metrics = state.metrics;
    this.#global = settings.replayConsistency === "GLOBAL";
    this.#skipThrough = new Map(settings.skipThrough ?? []);
    this.#schemas = new SchemaTracker(
      settings.schemas,
      (change, tx) => this.#router.ddl(change, tx),
      log,
    );
    const bound = new StopBound(this.#run.signal);
    const ctx: RetryContext = {
      sink,
      retry: settings.retry,
      signal: this.#run.signal,
      log,
      metrics,
      bound,
    };
    this.#pool = new WriterPool(ctx, this.#run, {
      global: this.#global,
      threads: settings.threads,
      batchRows: settings.batchRows,
      // Several batches' worth, so the source keeps decoding while a batch is in flight.
      maxQueueBytes: settings.maxQueueBytes ?? 16 * 1024 * 1024,
      entry: settings.entry,
      sortKeyOf: settings.sortKeyOf,
      resume: settings.resume,
      skipTablesOnFailures: settings.skipTablesOnFailures,
      indoubtFile: settings.indoubtFile,
      naming,
      skipThrough: this.#skipThrough,
      positionsFrom: this.#positionsFrom,
    }, {
      accepted: (tx) => this.#checkpointer.accepted(tx),
      progressed: () => this.#advance(),
      release: (block) => state.arena.release(block),
    }, metrics);
    this.#router = new RealtimeRouter(
      this.#pool,
      naming,
      settings.entry,
      this.#global,
      this.#skipThrough,
      (tx) => this.#checkpointer.add(tx),
      settings.ddlStream ?? null,
      state.arena,
    );
    this.#committer = new CheckpointCommitter(
      this.#run,
      bound,
      checkpoints,
      source,
      this.#schemas,
      settings.retry,
      log,
      metrics,
      null,
    );
  }

  async run(): Promise<RealtimeOutcome> {
    const from = this.settings.resume
      ? await this.checkpoints.get(REALTIME_CHECKPOINT_FIELD)
      : null;
    this.#committer.written = from;
    const saved = await this.checkpoints.read();
    for (const [k, v] of positionsFrom(saved)) this.#positionsFrom.set(k, v);
    this.#recorded = recordedTables(saved);
    if (this.source.onServerChange !== undefined) {
      this.source.onServerChange = (change) => this.#serverChanged(change);
    }
    if (this.settings.schemas) {
      const saved = this.settings.resume
        ? await this.checkpoints.get(REALTIME_SCHEMAS_FIELD)
        : null;
      this.source.useSchemaHistory?.(this.settings.schemas, this.#schemas.load(saved));
    }
    const stop = () => this.#run.stop();
    if (this.signal.aborted) stop();
    this.signal.addEventListener("abort", stop, { once: true });
    this.state.metrics.oldestPendingMs = () => this.#pool.oldestPendingMs();
    this.log.info(
      `realtime (${
        this.#global ? "GLOBAL" : "EVENTUAL"
      }) of ${this.source.tables().length} table(s) from ${
        from ? `checkpoint ${from}` : "the slot's position"
      }`,
    );
    let sourceError: unknown = null;
    // Drain: every queued batch is written (or its table skipped), then the checkpoint. A
    // stop still ends the writers' retry waits while they drain (the source may have ended
    // on its own, with an error).
    try {
      sourceError = await runSource({
        source: this.source,
        from,
        onTransaction: (tx) => this.#onTransaction(tx),
        run: this.#run,
        retry: this.settings.sourceRetry ?? { maxRetries: 10, waitMs: 1000 },
        log: this.log,
        deliveries: () => this.#deliveries,
        restartPoint: () => this.#restartPoint(),
      });
      await this.#drain();
      await this.#committer.commit();
    } finally {
      this.signal.removeEventListener("abort", stop);
    }
    const error = this.#run.fatal ?? sourceError;
    if (error) throw error;
    const tables = [...this.#pool.writers.values()].map((w): RealtimeTableOutcome => ({
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
      checkpoint: this.#committer.written,
      interrupted: this.signal.aborted,
    };
  }

  /** Waits until every queued batch is written (or its table skipped, or the run failed). */
  async #drain(): Promise<void> {
    while (this.#pool.busy() && !this.#run.failed) await this.#run.changed();
    this.#advance();
  }

  /**
   * After the source failed: lets everything queued land, saves the checkpoint, and makes
   * each stream skip what it already holds, since the source sends again from there.
   */
  async #restartPoint(): Promise<string | null> {
    await this.#drain();
    await this.#committer.commit().catch((err) => this.#run.fail(err));
    this.#pool.skipWritten();
    this.#checkpointer = new Checkpointer();
    this.#open = null;
    this.#schemas.restart();
    return this.#committer.written;
  }

  /**
   * The source continues the checkpoint from another server (acceptServerChange): positions
   * written before compare with nothing it sends, so no stream skips by them any more.
   */
  async #serverChanged(change: ServerChange): Promise<void> {
    const names = new Set(this.settings.changeStreams ?? []);
    for (const w of this.#pool.writers.values()) names.add(w.stream);
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
    this.#pool.forgetPositions();
    this.log.warn(
      `the source is now server ${change.to} (the checkpoint's was ${
        change.from ?? "not recorded"
      }), which has every transaction of checkpoint ${change.checkpoint}: continuing there; ` +
        "positions in new entries are that server's",
    );
  }

  /** A schema object's first change this run: labelled, and its table recorded as the id's. */
  async #firstOf(ev: ChangeEvent, tx: InFlightTransaction): Promise<TableSchema> {
    const table = await this.#schemas.label(ev.table, ev.position, tx);
    await this.#recordTable(table.id);
    return table;
  }

  /**
   * A table that entered the selection while streaming (created, renamed into it) is recorded
   * among the id's tables before any of its changes can be checkpointed: a later `--resume`
   * does not take it for a table that joins.
   */
  async #recordTable(id: TableId): Promise<void> {
    const known = this.#recorded;
    if (known === null) return;
    const name = qualifiedName(id);
    if (known.has(name)) return;
    known.set(name, id);
    await this.checkpoints.write({
      [SELECTION_TABLES_FIELD]: selectionTablesValue([...known.values()]),
    });
  }

  /** A DDL statement from the source; a table renamed into the selection is copied first. */
  async #ddlStatement(d: DdlStatement, tx: InFlightTransaction): Promise<void> {
    const after = await this.#schemas.statement(d, tx);
    if (d.snapshot && after) await this.#recordTable(after.id);
    if (d.snapshot && after && this.settings.joining?.has(this.naming.snapshotStream(after.id))) {
      this.log.info(`${qualifiedName(d.table)} entered the selection: its snapshot is being taken`);
      return;
    }
    if (d.snapshot && after && this.settings.snapshotTable) {
      this.log.info(`${qualifiedName(d.table)} entered the selection: copying its rows`);
      await this.settings.snapshotTable(after);
    }
  }

  async #onTransaction(part: SourceTransactionPart): Promise<void> {
    collectGarbageHint();
    if (this.#run.failed) throw this.#run.fatal;
    this.#deliveries++;
    // Parts of one transaction follow each other: an open one continues (streaming_source.ts).
    const tx = this.#open ?? this.#checkpointer.begin(part.checkpoint);
    for (const d of part.ddl ?? []) await this.#ddlStatement(d, tx);
    const touched = new Set<StreamWriter>();
    const now = Date.now();
    for (const ev of part.events as ChangeEvent[]) {
      const table = this.#schemas.labelled(ev.table) ?? await this.#firstOf(ev, tx);
      const w = this.#router.change(ev, table, tx, now);
      if (w !== null) touched.add(w);
    }
    if (part.more) this.#open = tx;
    else {
      this.#checkpointer.close(tx, part.checkpoint);
      this.#open = null;
    }
    for (const w of touched) this.#pool.kick(w);
    this.#advance();
    while (this.#pool.full && !this.#run.failed && !this.#run.signal.aborted) {
      await this.#run.changed();
    }
    if (this.#run.failed) throw this.#run.fatal;
  }

  /** Drops the finished transactions at the front; the checkpoint moves to the last one. */
  #advance(): void {
    const token = this.#checkpointer.advance((tx) => {
      this.#schemas.committed(tx);
      this.#count(tx);
    });
    if (token !== null) this.#committer.offer(token);
  }

  /** A finished transaction counts in the summary once, when it wrote a change (RealtimeOutcome). */
  #count(tx: InFlightTransaction): void {
    if (tx.wrote) this.#transactions++;
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
  settings: Omit<RealtimeSettings, "resume" | "sortKeyOf" | "skipThrough" | "joining">,
  signal: AbortSignal,
  /** What the run counts in and allocates from (pipeline_state.ts). */
  state: PipelineState,
  /** Tables that join the id (or are taken again): their snapshot runs alongside. */
  join?: JoinSpec,
): Promise<RealtimeOutcome> {
  // The stream opens, and the source confirms it can continue from the checkpoint, first: a
  // gap (a slot gone, a log purged) stops the run before any joining table's streams are
  // deleted. The joining tables' point is then taken, and their skip-through marks written,
  // before the marks are read and the stream starts; what the stream delivers of a joining
  // table up to that point is in its snapshot.
  const opened = await connector.openStream(run, afterSnapshot);
  let joined: Awaited<ReturnType<typeof prepareJoin>> | null = null;
  try {
    if (join && join.tables.length > 0) {
      const from = opened.resume ? await run.checkpoints.get(REALTIME_CHECKPOINT_FIELD) : null;
      if (from !== null) await opened.source.assertContinuity?.(from);
      joined = await prepareJoin(connector, run, sink, naming, join, state);
    }
  } catch (err) {
    await opened.close();
    throw err;
  }
  // The join's failure stops the realtime too (and is the run's error); a stop stops both.
  const both = new AbortController();
  const stopBoth = () => both.abort();
  if (signal.aborted) stopBoth();
  signal.addEventListener("abort", stopBoth, { once: true });
  let joinError: unknown = null;
  try {
    const skipThrough = skipThroughOf(await run.checkpoints.read());
    const copy = joined?.run(both.signal).then(
      (outcome) => {
        if (outcome.tables.some((t) => t.status === "failed")) {
          throw new TableJoinError(
            `the snapshot of a joining table failed: ${
              outcome.tables.filter((t) => t.status === "failed").map((t) =>
                `${t.table}: ${t.error ?? "failed"}`
              ).join("; ")
            }`,
          );
        }
      },
    ).catch((err) => {
      joinError = err;
      run.log.warn(`snapshot of the joining tables failed: ${(err as Error).message}`);
      both.abort();
    });
    const outcome = await new RealtimePipeline(
      opened.source,
      sink,
      naming,
      run.checkpoints,
      {
        ...settings,
        resume: opened.resume,
        sortKeyOf: connector.sortKeyOfSource,
        skipThrough,
        joining: joined?.streams,
      },
      run.log,
      both.signal,
      state,
    ).run();
    await copy;
    if (joinError !== null) throw joinError;
    return { ...outcome, interrupted: signal.aborted };
  } finally {
    signal.removeEventListener("abort", stopBoth);
    try {
      await opened.close();
    } finally {
      await joined?.close();
    }
  }
}

/** The tables recorded in a checkpoint's selection, by qualified name. */
function recordedTables(state: Record<string, string>): Map<string, TableId> | null {
  const ids = selectionTablesOf(state);
  return ids === null ? null : new Map(ids.map((id) => [qualifiedName(id), id]));
}
