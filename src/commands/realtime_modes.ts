import process from "node:process";
import { sameTableId, type TableId, type TableSchema } from "../core/table_schema.ts";
import type { SnapshotSource, TableSelection } from "../ports/snapshot_source.ts";
import { SnapshotProgress } from "../observe/snapshot_progress.ts";
import type { LogFormat, ReplicationLog } from "../observe/replication_log.ts";
import { jsonLine, type LogEvent } from "../observe/log_event.ts";
import { formatCount, renderTable } from "../observe/text_table.ts";
import { runFull } from "../pipeline/full_pipeline.ts";
import { type RealtimeOutcome, streamChanges } from "../pipeline/realtime_pipeline.ts";
import type { StreamRun } from "../ports/connector.ts";
import { SnapshotPipeline, type SnapshotSettings } from "../pipeline/snapshot_pipeline.ts";
import type { SchemaHistory } from "../schema/schema_history.ts";
import { indoubtPath } from "../pipeline/indoubt_log.ts";
import type { RedisStreamSink } from "../sink/redis/redis_stream_sink.ts";
import type { RedisClient } from "../sink/redis/redis_connection.ts";
import { connectorOf } from "../source/connectors.ts";
import {
  entryOptionsOf,
  namingOf,
  replicationSelectionOf,
  type ReplicationSetup,
} from "./replication_setup.ts";
import { stderrLine } from "../observe/run_observer.ts";
import type { CheckpointStore } from "../ports/checkpoint.ts";
import type { PipelineState } from "../pipeline/pipeline_state.ts";
import type { JoiningTable, JoinSpec } from "../pipeline/table_join.ts";

/** Everything the realtime modes share, resolved by the replicate command. */
export interface ModeContext {
  setup: ReplicationSetup;
  sink: RedisStreamSink<RedisClient>;
  checkpoints: CheckpointStore;
  resume: boolean;
  log: ReplicationLog;
  signal: AbortSignal;
  /** Schema versions of the id (the dump stream), recorded at the run's start. */
  schemas: SchemaHistory;
  /** Snapshot settings, also for a table renamed into the selection while streaming. */
  snapshot: Omit<SnapshotSettings, "resume">;
  /**
   * Identity of the source server the id's positions belong to (resuming: the one recorded
   * in the checkpoint; else the one reached now); null when unknown. Another is a gap.
   */
  sourceIdentity: string | null;
  /** Every change stream of the id (for a move of the source to another server). */
  changeStreams: string[];
  /** What the run counts in and allocates from: its own, built by the command. */
  state: PipelineState;
  /** Tables that join the id this run, or whose snapshot is taken again (table_changes.ts). */
  joins: JoiningTable[];
}

/** The joins of the run, with the snapshot settings their copy uses. */
function joinSpecOf(ctx: ModeContext): JoinSpec | undefined {
  if (ctx.joins.length === 0) return undefined;
  const { threads: _t, writeMode: _w, ...snapshot } = ctx.snapshot;
  return {
    tables: ctx.joins,
    snapshot: { ...snapshot, schemas: ctx.schemas },
    progress: new SnapshotProgress(process.stderr, undefined, {
      format: ctx.log.format,
      id: ctx.setup.id,
    }),
    tell: (text) =>
      process.stderr.write(stderrLine(ctx.log.format, "info", `replicant: ${text}`, ctx.setup.id)),
  };
}

function realtimeSettingsOf(ctx: ModeContext) {
  const a = ctx.setup.applier.realtime;
  return {
    threads: Math.max(1, a.threads),
    batchRows: a.batchSizeRows,
    retry: { maxRetries: a.maxRetries, waitMs: a.retryWaitDurationMs },
    skipTablesOnFailures: a.skipTablesOnFailures,
    replayConsistency: a.replayConsistency,
    indoubtFile: indoubtPath(ctx.setup.home, ctx.setup.id),
    entry: entryOptionsOf(ctx.setup),
    schemas: ctx.schemas,
    snapshotTable: (table: TableSchema) => snapshotRenamedTable(ctx, table),
    changeStreams: ctx.changeStreams,
    ddlStream: ctx.setup.extractor.realtime.ddlReplication.enable
      ? namingOf(ctx.setup).schemaChangeStream()
      : null,
    sourceRetry: {
      maxRetries: ctx.setup.source.maxRetries,
      waitMs: ctx.setup.source.retryWaitDurationMs,
    },
  };
}

/**
 * A table that entered the selection while streaming (renamed into it; PostgreSQL: added to
 * the publication): its rows are not in the log, so they are copied into its snapshot stream
 * (resumable, like any snapshot), then its changes follow.
 */
async function snapshotRenamedTable(ctx: ModeContext, table: TableSchema): Promise<void> {
  const { setup } = ctx;
  const same = (id: TableId) => sameTableId(id, table.id);
  const columns = replicationSelectionOf(setup).columns;
  const only: TableSelection = { table: same, columns, named: same };
  const source: SnapshotSource = await connectorOf(setup.source, setup).openSnapshot(
    only,
    ctx.log,
  );
  try {
    await new SnapshotPipeline(
      source,
      ctx.sink,
      namingOf(setup),
      ctx.checkpoints,
      { ...ctx.snapshot, resume: true, writeMode: "append", schemas: ctx.schemas },
      ctx.log,
      new SnapshotProgress(process.stderr, undefined, { format: ctx.log.format, id: setup.id }),
      ctx.signal,
      ctx.state,
    ).run();
  } finally {
    await source.close();
  }
}

/** What the connector needs to open the id's change stream. */
function streamRunOf(ctx: ModeContext): StreamRun & { log: ReplicationLog } {
  const { setup } = ctx;
  return {
    selection: replicationSelectionOf(setup),
    checkpoints: ctx.checkpoints,
    resume: ctx.resume,
    extractor: setup.extractor,
    filter: setup.filter,
    catalogs: setup.overrides?.add.map((t) => t.catalog),
    sourceIdentity: ctx.sourceIdentity,
    log: ctx.log,
    // Warnings such as heartbeat failures go to trace.log and stderr: the user must see them.
    warn: (text) => {
      ctx.log.warn(text);
      process.stderr.write(
        stderrLine(ctx.log.format, "warn", `replicant: warning: ${text}`, setup.id),
      );
    },
  };
}

/** The id's changes into its streams, until stopped (`full`: after its snapshot). */
async function streamOf(ctx: ModeContext, afterSnapshot: boolean): Promise<RealtimeOutcome> {
  return await streamChanges(
    connectorOf(ctx.setup.source, ctx.setup),
    streamRunOf(ctx),
    afterSnapshot,
    ctx.sink,
    namingOf(ctx.setup),
    realtimeSettingsOf(ctx),
    ctx.signal,
    ctx.state,
    afterSnapshot ? undefined : joinSpecOf(ctx),
  );
}

/** `replicant realtime`: stream changes until stopped. */
export async function runRealtimeMode(ctx: ModeContext): Promise<RealtimeOutcome> {
  return await streamOf(ctx, false);
}

/** `replicant full`: snapshot, then realtime from the snapshot's exact point. */
export async function runFullMode(
  ctx: ModeContext,
  snapshot: Omit<SnapshotSettings, "resume">,
  terminatePostSnapshot: boolean,
  progress: SnapshotProgress,
  /** Called when the snapshot is done and the changes start streaming. */
  streaming: () => void,
): Promise<{ realtime: RealtimeOutcome | null; skipped: string[]; interrupted: boolean }> {
  const out = await runFull({
    connector: connectorOf(ctx.setup.source, ctx.setup),
    run: streamRunOf(ctx),
    sink: ctx.sink,
    naming: namingOf(ctx.setup),
    snapshot: { ...snapshot, schemas: ctx.schemas },
    realtime: realtimeSettingsOf(ctx),
    terminatePostSnapshot,
    progress,
    snapshotDone: () => process.stdout.write(progress.summary() + "\n"),
    realtimeStarts: streaming,
    signal: ctx.signal,
    state: ctx.state,
    join: joinSpecOf(ctx),
  });
  const skipped = [
    ...(out.snapshot?.tables.filter((t) => t.status === "skipped").map((t) => t.table) ?? []),
    ...(out.realtime?.skippedTables ?? []),
  ];
  return { realtime: out.realtime, skipped, interrupted: out.interrupted };
}

/** Per table and stream: changes written, duplicates skipped; json: summary events. */
export function realtimeSummary(out: RealtimeOutcome, format: LogFormat = "text", id?: string) {
  if (format === "json") {
    return realtimeSummaryEvents(out).map((e) => jsonLine(e, id).trimEnd()).join("\n");
  }
  const rows = out.tables.map((t) => [
    t.table,
    t.stream,
    t.status,
    formatCount(t.changes),
    formatCount(t.duplicates),
    t.error ?? "",
  ]);
  return renderTable(
    ["table", "stream", "status", "changes", "skipped as present", "error"],
    rows,
  ) +
    `\n${formatCount(out.transactions)} transaction(s); checkpoint ${out.checkpoint ?? "-"}`;
}

/** json: one `summary` object per stream writer, then a `summary_total` (as for snapshot). */
export function realtimeSummaryEvents(out: RealtimeOutcome): LogEvent[] {
  const events: LogEvent[] = out.tables.map((t) => ({
    level: t.status === "ok" ? "info" : "warn",
    event: "summary",
    fields: {
      phase: "realtime",
      table: t.table,
      stream: t.stream,
      status: t.status,
      changes: t.changes,
      duplicates: t.duplicates,
      error: t.error,
    },
  }));
  events.push({
    level: "info",
    event: "summary_total",
    fields: {
      phase: "realtime",
      tables: out.tables.length,
      skipped: out.skippedTables.length,
      changes: out.tables.reduce((n, t) => n + t.changes, 0),
      duplicates: out.tables.reduce((n, t) => n + t.duplicates, 0),
      transactions: out.transactions,
      checkpoint: out.checkpoint,
      interrupted: out.interrupted,
    },
  });
  return events;
}
