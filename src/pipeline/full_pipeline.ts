import type { ReplicationLog } from "../observe/replication_log.ts";
import type { PipelineState } from "./pipeline_state.ts";
import type { SnapshotProgress } from "../observe/snapshot_progress.ts";
import type { StreamNaming } from "../core/stream_naming.ts";
import { SNAPSHOT_COMPLETE_FIELD } from "../ports/checkpoint.ts";
import type { SourceConnector, StreamRun } from "../ports/connector.ts";
import type { StreamSink } from "../ports/stream_sink.ts";
import { type RealtimeOutcome, type RealtimeSettings, streamChanges } from "./realtime_pipeline.ts";
import type { JoinSpec } from "./table_join.ts";
import {
  type SnapshotOutcome,
  SnapshotPipeline,
  type SnapshotSettings,
} from "./snapshot_pipeline.ts";

/** Settings of a `full` run, already resolved by the command layer. */
export interface FullSpec {
  connector: SourceConnector;
  run: StreamRun & { log: ReplicationLog };
  sink: StreamSink;
  naming: StreamNaming;
  /** Snapshot settings; `resume` comes from the connector's handoff. */
  snapshot: Omit<SnapshotSettings, "resume">;
  realtime: Omit<RealtimeSettings, "resume" | "sortKeyOf" | "skipThrough" | "joining">;
  /**
   * Tables that join the id (or are taken again) once its snapshot is complete; while the
   * id's own snapshot is not, they wait for the next resume (they stay pending).
   */
  join?: JoinSpec;
  /** Stop after the snapshot; a later resume goes straight to realtime. */
  terminatePostSnapshot: boolean;
  progress: SnapshotProgress;
  /** Called as soon as the snapshot phase ends, before realtime starts (its summary). */
  snapshotDone?: (outcome: SnapshotOutcome) => void;
  /** Called when realtime starts, after the snapshot (or when it was already complete). */
  realtimeStarts?: () => void;
  signal: AbortSignal;
  /** What the run counts in and allocates from (pipeline_state.ts). */
  state: PipelineState;
}

export interface FullOutcome {
  /** Null when the snapshot was already complete (resume). */
  snapshot: SnapshotOutcome | null;
  /** Null when stopped after the snapshot (or interrupted during it). */
  realtime: RealtimeOutcome | null;
  interrupted: boolean;
}

/**
 * `replicant full`: the connector's handoff takes the snapshot so that realtime then
 * continues exactly where it was taken (nothing missed, nothing read twice); the snapshot
 * is marked complete once every table is, and a resume goes straight to realtime.
 */
export async function runFull(spec: FullSpec): Promise<FullOutcome> {
  const { run, signal } = spec;
  const state = run.resume ? await run.checkpoints.read() : {};
  let snapshot: SnapshotOutcome | null = null;
  const complete = state[SNAPSHOT_COMPLETE_FIELD] === "1";
  if (!complete) {
    const handoff = await spec.connector.handoff(run, spec.naming);
    let done: string;
    try {
      snapshot = await new SnapshotPipeline(
        handoff.source,
        spec.sink,
        spec.naming,
        run.checkpoints,
        {
          ...spec.snapshot,
          resume: handoff.resume,
          // Resuming, the first start of this id already applied the write mode.
          writeMode: run.resume ? "append" : spec.snapshot.writeMode,
        },
        run.log,
        spec.progress,
        signal,
        spec.state,
        handoff.tableStarts,
      ).run();
      done = await handoff.completed();
    } finally {
      await handoff.close();
    }
    spec.snapshotDone?.(snapshot);
    if (snapshot.interrupted || signal.aborted) {
      return { snapshot, realtime: null, interrupted: true };
    }
    await run.checkpoints.write({ [SNAPSHOT_COMPLETE_FIELD]: "1" });
    run.log.info(done);
  } else run.log.info("snapshot already complete: resuming realtime");
  if (spec.terminatePostSnapshot) return { snapshot, realtime: null, interrupted: false };
  if (signal.aborted) return { snapshot, realtime: null, interrupted: true };
  spec.realtimeStarts?.();
  const realtime = await streamChanges(
    spec.connector,
    run,
    true,
    spec.sink,
    spec.naming,
    spec.realtime,
    signal,
    spec.state,
    complete ? spec.join : undefined,
  );
  return { snapshot, realtime, interrupted: realtime.interrupted };
}
