/**
 * A PostgreSQL realtime run set up by hand (endpoint, slot, publication), as the pipeline
 * tests drive it; the command line goes through the connector (streamChanges).
 */
import type { EntryOptions } from "../../src/core/entry_encoder.ts";
import type { StreamNaming } from "../../src/core/stream_naming.ts";
import { type CheckpointStore, SLOT_START_FIELD } from "../../src/ports/checkpoint.ts";
import type { TableSelection } from "../../src/ports/snapshot_source.ts";
import type { StreamSink } from "../../src/ports/stream_sink.ts";
import {
  type PipelineLog,
  type RealtimeOutcome,
  RealtimePipeline,
  type RealtimeSettings,
  silentLog,
} from "../../src/pipeline/realtime_pipeline.ts";
import type { RetrySettings } from "../../src/pipeline/retry_policy.ts";
import type { SchemaHistory } from "../../src/schema/schema_history.ts";
import { StartTimeGate } from "../../src/source/start_time_gate.ts";
import type { PgEndpoint } from "../../src/source/postgres/pg_endpoint.ts";
import { PgLogicalSource } from "../../src/source/postgres/pg_logical_source.ts";
import type { ReplicationOwner } from "../../src/source/postgres/pg_source_ownership.ts";
import { pgSortKeyOfSource } from "../../src/source/postgres/pgoutput_position.ts";
import { newPipelineState } from "../../src/pipeline/pipeline_state.ts";

/** Settings of a PostgreSQL realtime run, already resolved by the command layer. */
export interface PgRealtimeSpec {
  endpoint: PgEndpoint;
  sink: StreamSink;
  naming: StreamNaming;
  checkpoints: CheckpointStore;
  entry: EntryOptions;
  selection: TableSelection;
  slotName: string;
  publicationName: string;
  threads: number;
  batchRows: number;
  retry: RetrySettings;
  skipTablesOnFailures?: boolean;
  resume: boolean;
  /** Extractor `start-position.lsn`: where a fresh run starts (else the slot's position). */
  startLsn?: string | null;
  /**
   * Extractor `start-position.start-timestamp` of a fresh run: the first transaction
   * committed at or after `startMs` is the first replicated (see StartTimeGate).
   */
  startTime?: { startMs: number; startsAtOrBefore: boolean };
  /** How often the selection is compared with the publication while streaming (ms). */
  tableCheckMs?: number;
  /** Per cdc stream: changes through this sort key are already in the snapshot stream. */
  skipThrough?: ReadonlyMap<string, string>;
  /** The replication the slot belongs to, recorded on the publication when it is created. */
  owner?: ReplicationOwner;
  /**
   * Create the publication and slot when missing (default true); false when the id has a
   * position already (a missing one is then a gap).
   */
  createSlot?: boolean;
  /** System identifier of the server the id's checkpoint came from (gap check). */
  systemIdentifier?: string | null;
  /**
   * Where the id's slot began (`full`: the snapshot's consistent point): the slot must still
   * deliver from there while no realtime checkpoint exists. Default: SLOT_START_FIELD when
   * resuming.
   */
  slotStartLsn?: string | null;
  /** Restarts of the source after connection failures (connection `max-retries`, …). */
  sourceRetry?: RetrySettings;
  replayConsistency?: "GLOBAL" | "EVENTUAL";
  indoubtFile?: string;
  /** Heartbeat interval when idle (extractor heartbeat `interval-ms`), default 10 s. */
  heartbeatMs?: number;
  maxQueueBytes?: number;
  schemas?: SchemaHistory;
  ddlStream?: string | null;
  snapshotTable?: RealtimeSettings["snapshotTable"];
  log?: PipelineLog;
  /** SIGINT/SIGTERM: finish the batches in flight, write the checkpoint, return. */
  signal: AbortSignal;
}

/** A PostgreSQL realtime run (EVENTUAL or GLOBAL) from a hand-made spec. */
export async function runRealtime(spec: PgRealtimeSpec): Promise<RealtimeOutcome> {
  const source = await PgLogicalSource.open(spec.endpoint, spec.selection, {
    slotName: spec.slotName,
    publicationName: spec.publicationName,
    startLsn: spec.startLsn,
    heartbeatMs: spec.heartbeatMs,
    tableCheckMs: spec.tableCheckMs,
    log: spec.log ?? silentLog,
    owner: spec.owner,
    createSlot: spec.createSlot,
    slotStartLsn: spec.slotStartLsn ??
      (spec.resume ? await spec.checkpoints.get(SLOT_START_FIELD) : null),
    systemIdentifier: spec.systemIdentifier,
  });
  const streaming = spec.startTime
    ? new StartTimeGate(source, spec.startTime.startMs, spec.startTime.startsAtOrBefore)
    : source;
  try {
    // A new run records where its slot starts: what the slot must still deliver from on
    // a resume before the first realtime checkpoint.
    if (!spec.resume && !spec.slotStartLsn && source.slotPosition !== null) {
      await spec.checkpoints.write({ [SLOT_START_FIELD]: source.slotPosition });
    }
    return await new RealtimePipeline(
      streaming,
      spec.sink,
      spec.naming,
      spec.checkpoints,
      {
        threads: spec.threads,
        batchRows: spec.batchRows,
        retry: spec.retry,
        skipTablesOnFailures: spec.skipTablesOnFailures ?? true,
        entry: spec.entry,
        resume: spec.resume,
        maxQueueBytes: spec.maxQueueBytes,
        sortKeyOf: pgSortKeyOfSource,
        sourceRetry: spec.sourceRetry,
        replayConsistency: spec.replayConsistency,
        indoubtFile: spec.indoubtFile,
        schemas: spec.schemas,
        ddlStream: spec.ddlStream,
        snapshotTable: spec.snapshotTable,
        skipThrough: spec.skipThrough,
      },
      spec.log ?? silentLog,
      spec.signal,
      newPipelineState(),
    ).run();
  } finally {
    await source.close();
  }
}
