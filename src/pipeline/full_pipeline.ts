import type { ReplicationLog } from "../observe/replication_log.ts";
import type { SnapshotProgress } from "../observe/snapshot_progress.ts";
import { openPg } from "../source/postgres/pg_endpoint.ts";
import { SourceError } from "../core/errors.ts";
import {
  createSlotWithSnapshot,
  dropSlot,
  type ExportedSlot,
  readSlot,
} from "../source/postgres/pg_replication_slot.ts";
import { preparePublication } from "../source/postgres/pg_publication.ts";
import { readPgTables } from "../source/postgres/pg_schema_reader.ts";
import { PgSnapshotSource } from "../source/postgres/pg_snapshot_source.ts";
import { assertPgNoGap } from "../source/postgres/pg_slot_gap.ts";
import { parseLsn, pgSortKey } from "../source/postgres/pgoutput_position.ts";
import { type PgRealtimeSpec, type RealtimeOutcome, runRealtime } from "./realtime_pipeline.ts";
import {
  type SnapshotOutcome,
  SnapshotPipeline,
  type SnapshotSettings,
} from "./snapshot_pipeline.ts";
import {
  SKIP_THROUGH_FIELD_PREFIX,
  skipThroughOf,
  SLOT_START_FIELD,
  SNAPSHOT_COMPLETE_FIELD,
  SNAPSHOT_CONSISTENT_POINT_FIELD,
  snapshotDoneField,
} from "../ports/checkpoint.ts";

/** Settings of a PostgreSQL `full` run, already resolved by the command layer. */
export interface PgFullSpec extends PgRealtimeSpec {
  /** Snapshot settings; `resume` is taken from the spec's own `resume`. */
  snapshot: Omit<SnapshotSettings, "resume">;
  /** Stop after the snapshot; a later resume goes straight to realtime. */
  terminatePostSnapshot: boolean;
  log: ReplicationLog;
  progress: SnapshotProgress;
  /** Called as soon as the snapshot phase ends, before realtime starts (its summary). */
  snapshotDone?: (outcome: SnapshotOutcome) => void;
  /** Called when realtime starts, after the snapshot (or when it was already complete). */
  realtimeStarts?: () => void;
}

export interface FullOutcome {
  /** Null when the snapshot was already complete (resume). */
  snapshot: SnapshotOutcome | null;
  /** Null when stopped after the snapshot (or interrupted during it). */
  realtime: RealtimeOutcome | null;
  interrupted: boolean;
}

/**
 * `replicant full` for PostgreSQL, the snapshot handed over to realtime: the slot is
 * created with `EXPORT_SNAPSHOT` on a replication connection held open while every snapshot
 * reader imports that snapshot; realtime then streams from the slot's consistent point, so
 * nothing is missed and nothing is read twice.
 *
 * Resuming an interrupted snapshot: the exported snapshot died with the process, so the
 * remaining rows are read from a fresh snapshot, exported by a temporary slot whose
 * consistent point says which commits it holds. Rows that changed in between may then
 * appear in their newer state in the snapshot stream, while every change since the slot's
 * creation still comes once, in order, through the `_cdc_logs` streams (replaying snapshot
 * then changes by key gives the table). A table without a key has no key to replay by: it
 * starts over from the fresh snapshot, and its cdc stream skips the changes that snapshot
 * already holds.
 */
export async function runFull(spec: PgFullSpec): Promise<FullOutcome> {
  const state = spec.resume ? await spec.checkpoints.read() : {};
  let snapshot: SnapshotOutcome | null = null;
  if (state[SNAPSHOT_COMPLETE_FIELD] !== "1") {
    snapshot = await runSnapshotPhase(spec, state);
    spec.snapshotDone?.(snapshot);
    if (snapshot.interrupted || spec.signal.aborted) {
      return { snapshot, realtime: null, interrupted: true };
    }
    await spec.checkpoints.write({ [SNAPSHOT_COMPLETE_FIELD]: "1" });
    spec.log.info("snapshot complete; realtime continues from the slot's consistent point");
  } else spec.log.info("snapshot already complete: resuming realtime");
  if (spec.terminatePostSnapshot) return { snapshot, realtime: null, interrupted: false };
  if (spec.signal.aborted) return { snapshot, realtime: null, interrupted: true };
  const current = await spec.checkpoints.read();
  spec.realtimeStarts?.();
  const realtime = await runRealtime({
    ...spec,
    log: spec.log,
    skipThrough: skipThroughOf(current),
    // The snapshot phase made the slot; missing now, it is a gap, never made again.
    createSlot: false,
    slotStartLsn: current[SNAPSHOT_CONSISTENT_POINT_FIELD] ?? null,
  });
  return { snapshot, realtime, interrupted: realtime.interrupted };
}

async function runSnapshotPhase(
  spec: PgFullSpec,
  state: Record<string, string>,
): Promise<SnapshotOutcome> {
  const control = await openPg(spec.endpoint, "replicant-full");
  let exported: ExportedSlot | null = null;
  let resumeSnapshot = spec.resume;
  try {
    const tables = await readPgTables(control, spec.endpoint.database, spec.selection);
    const point = spec.resume ? state[SNAPSHOT_CONSISTENT_POINT_FIELD] : undefined;
    if (point) {
      // Realtime streams from the slot's consistent point after the snapshot: the slot must
      // still be there, on the same server, not moved, and its publication with it.
      await assertPgNoGap(
        control,
        spec.endpoint,
        spec.slotName,
        spec.publicationName,
        { from: parseLsn(point), what: `LSN ${point}, where slot "${spec.slotName}" began` },
        spec.systemIdentifier,
      );
      await preparePublication(control, spec.publicationName, tables, spec.log, {
        owner: spec.owner,
        createMissing: false,
      });
      // A temporary slot exports the fresh snapshot and says exactly which commits it holds.
      exported = await createSlotWithSnapshot(
        spec.endpoint,
        `${spec.slotName.slice(0, 54)}_resume`,
        { temporary: true },
      );
      spec.log.info(
        `resuming the snapshot with a fresh snapshot (at ${exported.consistentPoint}); changes ` +
          `since slot "${spec.slotName}" (consistent point ${point}) follow in realtime`,
      );
      // A table without a key starts over from the fresh snapshot: replaying its changes
      // that the snapshot already holds would add rows twice, so its stream skips them.
      const skips: Record<string, string> = {};
      const through = pgSortKey(parseLsn(exported.consistentPoint) - 1n, 9_999_999_999);
      for (const t of tables) {
        const stream = spec.naming.snapshotStream(t.id);
        if (t.hasKey || state[snapshotDoneField(stream)] === "1") continue;
        skips[SKIP_THROUGH_FIELD_PREFIX + spec.naming.cdcStream(t.id)] = through;
      }
      if (Object.keys(skips).length > 0) await spec.checkpoints.write(skips);
    } else {
      // The publication must exist before the slot: pgoutput reads it as of each change.
      // One Replicant creates records this id as its owner in the same transaction.
      await preparePublication(control, spec.publicationName, tables, spec.log, {
        owner: spec.owner,
      });
      if (await readSlot(control, spec.slotName)) {
        if (!spec.resume) {
          throw new SourceError(
            `Replication slot "${spec.slotName}" exists already: a new full run creates its ` +
              "own (an id's own slot is dropped only by --overwrite)",
          );
        }
        // This id's slot from a start that stopped before recording its consistent point:
        // nothing was read from it, so it is made anew with an exported snapshot.
        spec.log.info(`dropping this id's unused slot "${spec.slotName}" to export a snapshot`);
        await dropSlot(control, spec.slotName);
      }
      if (spec.resume) {
        spec.log.warn(`no consistent point recorded: the snapshot starts over`);
        resumeSnapshot = false;
      }
      exported = await createSlotWithSnapshot(spec.endpoint, spec.slotName);
      await spec.checkpoints.write({
        [SNAPSHOT_CONSISTENT_POINT_FIELD]: exported.consistentPoint,
        [SLOT_START_FIELD]: exported.consistentPoint,
      });
      spec.log.info(
        `created slot "${spec.slotName}" at ${exported.consistentPoint}, snapshot ${exported.snapshotName}`,
      );
    }
  } finally {
    await control.end().catch(() => {});
  }
  try {
    const source = await PgSnapshotSource.open(spec.endpoint, spec.selection, {
      exportedSnapshot: exported?.snapshotName,
      log: spec.log,
    });
    try {
      const settings: SnapshotSettings = {
        ...spec.snapshot,
        resume: resumeSnapshot,
        // Resuming, the first start of this id already applied the write mode.
        writeMode: spec.resume ? "append" : spec.snapshot.writeMode,
      };
      return await new SnapshotPipeline(
        source,
        spec.sink,
        spec.naming,
        spec.checkpoints,
        settings,
        spec.log,
        spec.progress,
        spec.signal,
      ).run();
    } finally {
      await source.close();
    }
  } finally {
    await exported?.close();
  }
}
