import type { StreamNaming } from "../core/stream_naming.ts";
import { qualifiedName, sameTableId, type TableId } from "../core/table_schema.ts";
import type { SnapshotProgress } from "../observe/snapshot_progress.ts";
import {
  type CheckpointStore,
  type JoinKind,
  REINIT_PENDING_PREFIX,
  retentionField,
  SKIP_THROUGH_FIELD_PREFIX,
  SNAPSHOT_POINT_PREFIX,
  snapshotDoneField,
} from "../ports/checkpoint.ts";
import type { JoinSnapshot, SourceConnector, StreamRun } from "../ports/connector.ts";
import type { StreamSink } from "../ports/stream_sink.ts";
import type { PipelineLog } from "./batch_retry.ts";
import type { PipelineState } from "./pipeline_state.ts";
import { ReplicantError } from "../core/errors.ts";
import {
  type SnapshotOutcome,
  SnapshotPipeline,
  type SnapshotSettings,
} from "./snapshot_pipeline.ts";

/**
 * The snapshot of a table joining the id (or taken again) did not complete: the run stops,
 * and a --resume takes that table's snapshot again from the start.
 */
export class TableJoinError extends ReplicantError {}

/** A table that joins a streaming id (`add`) or has its snapshot taken again (`reinit`). */
export interface JoiningTable {
  id: TableId;
  kind: JoinKind;
}

/** What the joins of a realtime run need besides the realtime's own settings. */
export interface JoinSpec {
  tables: JoiningTable[];
  /** Snapshot settings of the joining tables' snapshot (threads: one reader, one point). */
  snapshot: Omit<SnapshotSettings, "resume" | "writeMode" | "threads">;
  progress: SnapshotProgress;
  /** Says on the terminal that a table's snapshot is complete (the log has it too). */
  tell?: (text: string) => void;
}

/** The joining tables' snapshot, prepared before realtime opens, run alongside it. */
export interface PreparedJoin {
  /** Snapshot streams of the joining tables: a copy of them by the stream is not needed. */
  streams: ReadonlySet<string>;
  /** Runs the snapshot; once a table's is done, its pending mark goes. */
  run(signal: AbortSignal): Promise<SnapshotOutcome>;
  close(): Promise<void>;
}

/**
 * Prepares the joining tables before realtime opens from the checkpoint, so that realtime
 * and their snapshot meet exactly:
 *
 * 1. their old streams go (`add`: snapshot and cdc stream, which may hold changes a new
 *    snapshot covers; `reinit`: the snapshot stream only, its changes go on) and so do their
 *    done marks;
 * 2. the connector takes one snapshot of them at an exact log position C, after the source
 *    was told the new selection (PostgreSQL: the publication gains the tables);
 * 3. an added table's cdc stream skips its changes through C (the skip-through mark, read by
 *    realtime when it opens), and C is recorded for verify (`snapshot:point:<cdc stream>`).
 *
 * Realtime then starts at once from the checkpoint and never waits for the copy: changes of
 * an added table after C go to its cdc stream while its snapshot stream is being written.
 */
export async function prepareJoin(
  connector: SourceConnector,
  run: StreamRun & { log: PipelineLog },
  sink: StreamSink,
  naming: StreamNaming,
  spec: JoinSpec,
  state: PipelineState,
): Promise<PreparedJoin> {
  const { checkpoints, log } = run;
  const drop: string[] = [];
  const forget: string[] = [];
  for (const t of spec.tables) {
    const snap = naming.snapshotStream(t.id);
    drop.push(snap);
    forget.push(snapshotDoneField(snap), retentionField(snap));
    if (t.kind === "add") {
      const cdc = naming.cdcStream(t.id);
      drop.push(cdc);
      forget.push(retentionField(cdc));
    }
  }
  const existing = await sink.existing(drop);
  if (existing.length > 0) await sink.deleteKeys(existing);
  await checkpoints.forget(forget);
  const joining = (id: TableId) => spec.tables.some((t) => sameTableId(t.id, id));
  const only = {
    table: joining,
    columns: (id: TableId) => run.selection.columns(id),
    named: joining,
  };
  const joined: JoinSnapshot = await connector.openJoinSnapshot(run, only);
  try {
    const fields: Record<string, string> = {};
    for (const t of spec.tables) {
      const cdc = naming.cdcStream(t.id);
      fields[SNAPSHOT_POINT_PREFIX + cdc] = joined.through;
      if (t.kind === "add") fields[SKIP_THROUGH_FIELD_PREFIX + cdc] = joined.through;
    }
    await checkpoints.write(fields);
  } catch (err) {
    await joined.close();
    throw err;
  }
  log.info(
    `snapshot of ${spec.tables.map((t) => `${qualifiedName(t.id)} (${t.kind})`).join(", ")} ` +
      `at ${joined.point}; realtime of every table goes on meanwhile`,
  );
  const streams = new Set(spec.tables.map((t) => naming.snapshotStream(t.id)));
  return {
    streams,
    async run(signal) {
      const outcome = await new SnapshotPipeline(
        joined.source,
        sink,
        naming,
        checkpoints,
        // One reader: every joining table is read at the one point recorded above.
        { ...spec.snapshot, threads: 1, resume: false, writeMode: "append" },
        log,
        spec.progress,
        signal,
        state,
      ).run();
      await finishJoins(checkpoints, outcome, log, spec.tell);
      return outcome;
    },
    close: () => joined.close(),
  };
}

/** The pending marks of the tables whose snapshot is done go; the others stay for a resume. */
async function finishJoins(
  checkpoints: CheckpointStore,
  outcome: SnapshotOutcome,
  log: PipelineLog,
  tell?: (text: string) => void,
): Promise<void> {
  const done = outcome.tables.filter((t) => t.status === "done");
  if (done.length > 0) {
    await checkpoints.forget(done.map((t) => REINIT_PENDING_PREFIX + t.stream));
    for (const t of done) {
      const text =
        `${t.table} joined: its snapshot (${t.rows} rows) is complete, its changes follow`;
      log.info(text);
      tell?.(text);
    }
  }
  for (const t of outcome.tables.filter((t) => t.status !== "done")) {
    log.warn(`${t.table}: its snapshot is ${t.status}; --resume takes it again`);
  }
}
