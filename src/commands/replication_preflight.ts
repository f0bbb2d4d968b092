/**
 * What a replication run checks before it changes anything, and the changes of starting
 * over. Every check that can stop a run (the source answers; the filter, the server ids and
 * the selection fit its catalog; the slot is this id's and its publication can be made; the
 * target streams and the write mode agree) happens first; only then are state, slots and
 * streams dropped, created or written. So a run that stops on a check leaves everything as
 * it was, and a first run that failed leaves no state behind.
 *
 * @module
 */

import { ExistingStreamsError, GapError, StateError } from "../core/errors.ts";
import { qualifiedName, type TableSchema } from "../core/table_schema.ts";
import type { WriteMode } from "../pipeline/snapshot_pipeline.ts";
import type { RedisClient } from "../sink/redis/redis_connection.ts";
import type { RedisStreamSink } from "../sink/redis/redis_stream_sink.ts";
import type { ReplicationLog } from "../observe/replication_log.ts";
import { connectorOf } from "../source/connectors.ts";
import { namingOf, replicationSelectionOf, type ReplicationSetup } from "./replication_setup.ts";
import { requireSelectedTables } from "./selection_check.ts";
import { preflightSource } from "./source_preflight.ts";
import {
  type CheckpointStore,
  REALTIME_CHECKPOINT_FIELD,
  SNAPSHOT_COMPLETE_FIELD,
  SOURCE_SERVER_FIELD,
  STATE_CREATED_FIELD,
  STATE_MODE_FIELD,
} from "../ports/checkpoint.ts";

export type Mode = "snapshot" | "realtime" | "full";

/** The id's state as found, and what the options make of it. */
export interface IdState {
  /** The id has a checkpoint hash in Redis. */
  exists: boolean;
  /** This run continues it (`--resume` with state). */
  resume: boolean;
  /** Its fields (empty when there is none). */
  fields: Record<string, string>;
}

/** What a run is asked to do, as the checks and the start-over changes need it. */
export interface RunPlan {
  mode: Mode;
  setup: ReplicationSetup;
  sink: RedisStreamSink<RedisClient>;
  state: IdState;
  writeMode: WriteMode;
  /** `--overwrite`. */
  overwrite: boolean;
}

export interface Preflight {
  /** The selected tables, read from the source (which so answered). */
  tables: TableSchema[];
  /** The source server's identity (realtime, full); null for a snapshot. */
  identity: string | null;
  /** Source resources of this id exist (PostgreSQL: its slot or publication). */
  ownSlot: boolean;
  /** What the user should know but does not stop the run (FK cascades, …). */
  warnings: string[];
  /** The source server's version. */
  serverVersion: string;
}

/**
 * Every check that can stop the run, before anything is created or dropped: the source
 * answers (connection, credentials); the filter's columns and `slave-server-ids` fit it
 * (preflightSource); it lists the selected tables, at least one (requireSelectedTables); its
 * identity; the slot and publication are free or this id's own, and the publication can be
 * made as the run needs it; the id's streams and the write mode agree.
 */
export async function checkBeforeChanges(plan: RunPlan, stateKey: string): Promise<Preflight> {
  const { mode, setup, sink, state, writeMode, overwrite } = plan;
  const { warnings, serverVersion } = await preflightSource(setup, mode);
  const { tables, identity, ownsResources } = await connectorOf(setup.source, setup)
    .checkBeforeRun({
      mode,
      selection: replicationSelectionOf(setup),
      resume: state.resume,
      overwrite,
      state: state.fields,
      stateKey,
      connectionFile: setup.files.source,
      serverVersion,
      noTables: () => requireSelectedTables(setup),
    });
  if (state.resume && mode === "realtime") refuseRealtimeWithoutPosition(plan, tables);
  if (!state.resume && mode !== "realtime" && writeMode === "fail") {
    const existing = await sink.existing(idStreams(setup, tables, mode));
    if (existing.length > 0) throw new ExistingStreamsError(existing);
  }
  return { tables, identity, ownSlot: ownsResources, warnings, serverVersion };
}

/**
 * `realtime --resume` continues from the id's position. An id made by `snapshot` has none
 * (a snapshot records no source position), and one whose `full` snapshot is unfinished has
 * tables not yet copied: streaming from the source's current position would miss the changes
 * made since the snapshot, or leave rows that were never copied, and report success.
 */
function refuseRealtimeWithoutPosition(plan: RunPlan, tables: TableSchema[]): void {
  const { setup, state } = plan;
  const fields = state.fields;
  const id = JSON.stringify(setup.id);
  if (fields[STATE_MODE_FIELD] === "full" && fields[SNAPSHOT_COMPLETE_FIELD] !== "1") {
    throw new StateError(
      `Id ${id} is a \`full\` run whose snapshot is not finished: \`realtime --resume\` would ` +
        "leave the rows not yet copied out. Continue it with `replicant full … --resume`.",
    );
  }
  if (fields[REALTIME_CHECKPOINT_FIELD]) return;
  if (fields[STATE_MODE_FIELD] === "snapshot") {
    throw new GapError(
      {
        checkpoint: `the end of id ${id}'s snapshot (taken ${
          fields[STATE_CREATED_FIELD] ?? "earlier"
        })`,
        available: "the changes from now on",
        reason:
          `Id ${id} was made by \`replicant snapshot\`, which records no source position, so ` +
          "a realtime run would begin where the source is now and miss every change made since " +
          "the snapshot. `replicant full` takes a snapshot and streams from its exact point.",
      },
      tableNames(tables),
      resnapshotCommand(setup),
    );
  }
}

/**
 * The streams of the id's tables: snapshot streams (not for realtime) and change streams
 * (every table's `_cdc_logs`, the GLOBAL stream, the DDL stream), whatever the current
 * replay consistency, so starting over leaves no entry of an earlier run in any of them.
 */
export function idStreams(setup: ReplicationSetup, tables: TableSchema[], mode: Mode): string[] {
  const naming = namingOf(setup);
  const names = new Set<string>();
  if (mode !== "realtime") { for (const t of tables) names.add(naming.snapshotStream(t.id)); }
  for (const t of tables) names.add(naming.cdcStream(t.id));
  names.add(naming.globalCdcStream());
  names.add(naming.schemaChangeStream());
  return [...names];
}

/**
 * The changes of a run that does not resume, after every check passed: `--overwrite`
 * forgets the id's state and drops its own slot and publication; `--replace-existing` and
 * `--truncate-existing` apply to every stream of the id's tables, change streams included.
 * Then the id's state is written: from here on it exists.
 */
export async function startOver(
  plan: RunPlan,
  checkpoints: CheckpointStore,
  preflight: Preflight,
  log: ReplicationLog,
): Promise<void> {
  const { mode, setup, sink, state, writeMode, overwrite } = plan;
  if (overwrite) {
    if (state.exists) await checkpoints.clear();
    if (preflight.ownSlot) {
      const dropped = await connectorOf(setup.source, setup).forgetOwn();
      if (dropped) log.info(`--overwrite: dropped ${dropped}`);
    }
  }
  if (writeMode === "replace" || writeMode === "truncate") {
    const existing = await sink.existing(idStreams(setup, preflight.tables, mode));
    if (existing.length > 0) {
      if (writeMode === "replace") await sink.deleteKeys(existing);
      else await sink.truncateStreams(existing);
      log.info(
        `${writeMode === "replace" ? "replaced" : "truncated"} ${existing.length} existing ` +
          `stream(s): ${existing.join(", ")}`,
      );
    }
  }
  const fields: Record<string, string> = {
    [STATE_CREATED_FIELD]: new Date().toISOString(),
    [STATE_MODE_FIELD]: mode,
  };
  if (preflight.identity) fields[SOURCE_SERVER_FIELD] = preflight.identity;
  Object.assign(fields, connectorOf(setup.source, setup).resourceFields(mode));
  await checkpoints.write(fields);
}

/** The command that takes the id's tables anew (a gap's recovery). */
export function resnapshotCommand(setup: ReplicationSetup): string {
  const q = (s: string) =>
    /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;
  const parts = ["replicant", "full", setup.files.source, setup.files.target];
  const files = setup.files;
  if (files.extractor) parts.push("--extractor", files.extractor);
  if (files.applier) parts.push("--applier", files.applier);
  if (files.filter) parts.push("--filter", files.filter);
  parts.push("--id", setup.id);
  if (setup.group !== "default") parts.push("--replication-group", setup.group);
  parts.push("--home", setup.home, "--overwrite", "--replace-existing");
  return parts.map(q).join(" ");
}

/** Names of the tables a gap affects: every selected table (they share the position). */
export function tableNames(tables: TableSchema[]): string[] {
  return tables.map((t) => qualifiedName(t.id));
}
