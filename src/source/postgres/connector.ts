import type { PostgresConnection } from "../../config/load_connection.ts";
import { SourceError, startNotServable, StateError } from "../../core/errors.ts";
import { failed, passed, type PrerequisiteCheck, statusOf } from "../../core/prerequisite_check.ts";
import type { StreamNaming } from "../../core/stream_naming.ts";
import type { TableSchema } from "../../core/table_schema.ts";
import {
  REALTIME_CHECKPOINT_FIELD,
  SKIP_THROUGH_FIELD_PREFIX,
  SLOT_START_FIELD,
  SNAPSHOT_CONSISTENT_POINT_FIELD,
  snapshotDoneField,
  SOURCE_PUBLICATION_FIELD,
  SOURCE_SLOT_FIELD,
} from "../../ports/checkpoint.ts";
import {
  type ConnectionTest,
  type ConnectionTestOutcome,
  type ConnectorLog,
  type Handoff,
  type JoinSnapshot,
  neutralSchema,
  type OpenedStream,
  type PreflightRun,
  type RunMode,
  type SourceConnector,
  type SourceInspection,
  type SourcePreflight,
  type SourceTables,
  type StreamRun,
} from "../../ports/connector.ts";
import { StartTimeGate } from "../start_time_gate.ts";
import { PgLogicalSource } from "./pg_logical_source.ts";
import type { SnapshotSource, TableSelection } from "../../ports/snapshot_source.ts";
import type { VerifyPoint } from "../../ports/verify_point.ts";
import { openPg, type PgEndpoint, pgEndpointOf } from "./pg_endpoint.ts";
import { PgLagSampler } from "./pg_lag_sampler.ts";
import {
  createSlotWithSnapshot,
  dropSlot,
  type ExportedSlot,
  readSlot,
  slotNameOf,
} from "./pg_replication_slot.ts";
import { checkPublication, preparePublication } from "./pg_publication.ts";
import { checkPgPrerequisites, checkPgTables } from "./pg_prerequisites.ts";
import {
  checkPgOwnership,
  judgeOwnership,
  pgServerIdentity,
  pgSystemIdentifier,
  readPgResources,
  releaseOwnResources,
} from "./pg_source_ownership.ts";
import { assertPgNoGap } from "./pg_slot_gap.ts";
import { listPgSchemas, readPgTables } from "./pg_schema_reader.ts";
import { PgSnapshotSource } from "./pg_snapshot_source.ts";
import { openPgVerifyPoint } from "./pg_verify_point.ts";
import { parseLsn, PG_POSITION_FIELDS, pgSortKey, pgSortKeyOfSource } from "./pgoutput_position.ts";

/** PostgreSQL: snapshots in exported snapshots, changes from a logical slot (pgoutput). */
export class PgConnector implements SourceConnector {
  readonly name = "postgresql";
  readonly positionFields = PG_POSITION_FIELDS;
  readonly sortKeyOfSource = pgSortKeyOfSource;
  readonly endpoint: PgEndpoint;

  /** The replication the connector works for, when it has one (it names and owns the slot). */
  readonly ids?: { group: string; id: string };

  /** `endpoint`: instead of the connection file's (tests reach a server directly). */
  constructor(
    readonly conn: PostgresConnection,
    ids?: { group: string; id: string },
    endpoint?: PgEndpoint,
  ) {
    this.endpoint = endpoint ?? pgEndpointOf(conn);
    if (ids) this.ids = { group: ids.group, id: ids.id };
  }

  /** The id's slot, and its publication, which has the same name. */
  get slotName(): string {
    if (!this.ids) throw new Error("a replication slot name needs a replication id");
    return slotNameOf(this.conn, this.ids.group, this.ids.id);
  }

  openSnapshot(selection: TableSelection, log?: ConnectorLog): Promise<SnapshotSource> {
    return PgSnapshotSource.open(this.endpoint, selection, { log });
  }

  openVerifyPoint(selection: TableSelection): Promise<VerifyPoint> {
    return openPgVerifyPoint(this.endpoint, selection, {
      slot: this.slotName,
      publication: this.slotName,
    });
  }

  async readSchemas(selection: TableSelection): Promise<TableSchema[]> {
    const client = await openPg(this.endpoint, "replicant-schema");
    try {
      return (await readPgTables(client, this.conn.database, selection)).map(neutralSchema);
    } finally {
      await client.end().catch(() => {});
    }
  }

  async listTables(): Promise<SourceTables> {
    const { database, host, port } = this.conn;
    const client = await openPg(this.endpoint, "replicant-schema");
    try {
      const schemas = await listPgSchemas(client);
      return {
        source: `PostgreSQL database "${database}" at ${host}:${port}`,
        groupKind: "schema",
        groups: schemas.map(({ schema, tables }) => ({
          name: schema,
          tables: tables.map((table) => ({ catalog: database, schema, table })),
        })),
      };
    } finally {
      await client.end().catch(() => {});
    }
  }

  lagSampler(): PgLagSampler {
    return new PgLagSampler(this.endpoint, this.slotName);
  }

  async openStream(run: StreamRun, afterSnapshot = false): Promise<OpenedStream> {
    const { checkpoints, resume } = run;
    const start = afterSnapshot ? undefined : run.extractor.realtime.startPosition;
    let createSlot: boolean;
    /** Where the id's slot began (`full`: the snapshot's consistent point), when known. */
    let began: string | null | undefined;
    if (afterSnapshot) {
      // The snapshot phase made the slot; missing now, it is a gap, never made again.
      createSlot = false;
      began = (await checkpoints.read())[SNAPSHOT_CONSISTENT_POINT_FIELD] ?? null;
    } else {
      // Once the id has a position, its slot must be there: a missing one is a gap.
      createSlot = !resume ||
        !(await checkpoints.get(REALTIME_CHECKPOINT_FIELD) ??
          await checkpoints.get(SLOT_START_FIELD));
    }
    const startMs = resume ? undefined : start?.startTimestampMs;
    const startTime = startMs !== undefined ? await this.#startTime(startMs, run.log) : null;
    const source = await PgLogicalSource.open(this.endpoint, run.selection, {
      slotName: this.slotName,
      publicationName: this.slotName,
      startLsn: start?.lsn ?? null,
      heartbeatMs: run.extractor.realtime.heartbeat.intervalMs,
      log: run.log,
      owner: this.ids,
      createSlot,
      slotStartLsn: began ?? (resume ? await checkpoints.get(SLOT_START_FIELD) : null),
      systemIdentifier: pgSystemOf(run.sourceIdentity),
    });
    try {
      // A new run records where its slot starts: what the slot must still deliver from on
      // a resume before the first realtime checkpoint.
      if (!resume && !began && source.slotPosition !== null) {
        await checkpoints.write({ [SLOT_START_FIELD]: source.slotPosition });
      }
    } catch (err) {
      await source.close();
      throw err;
    }
    return {
      source: startTime
        ? new StartTimeGate(source, startTime.startMs, startTime.startsAtOrBefore)
        : source,
      resume,
      close: () => source.close(),
    };
  }

  /**
   * `full`'s snapshot, handed over to realtime: the slot is
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
  async handoff(run: StreamRun, naming: StreamNaming): Promise<Handoff> {
    const { checkpoints, log, selection } = run;
    const state = run.resume ? await checkpoints.read() : {};
    const slotName = this.slotName;
    const publicationName = this.slotName;
    const control = await openPg(this.endpoint, "replicant-full");
    let exported: ExportedSlot | null = null;
    let resumeSnapshot = run.resume;
    try {
      const tables = await readPgTables(control, this.endpoint.database, selection);
      const point = run.resume ? state[SNAPSHOT_CONSISTENT_POINT_FIELD] : undefined;
      if (point) {
        // Realtime streams from the slot's consistent point after the snapshot: the slot must
        // still be there, on the same server, not moved, and its publication with it.
        await assertPgNoGap(
          control,
          this.endpoint,
          slotName,
          publicationName,
          { from: parseLsn(point), what: `LSN ${point}, where slot "${slotName}" began` },
          pgSystemOf(run.sourceIdentity),
        );
        await preparePublication(control, publicationName, tables, log, {
          owner: this.ids,
          createMissing: false,
        });
        // A temporary slot exports the fresh snapshot and says exactly which commits it holds.
        exported = await createSlotWithSnapshot(
          this.endpoint,
          `${slotName.slice(0, 54)}_resume`,
          { temporary: true },
        );
        log.info(
          `resuming the snapshot with a fresh snapshot (at ${exported.consistentPoint}); changes ` +
            `since slot "${slotName}" (consistent point ${point}) follow in realtime`,
        );
        // A table without a key starts over from the fresh snapshot: replaying its changes
        // that the snapshot already holds would add rows twice, so its stream skips them.
        const skips: Record<string, string> = {};
        const through = pgSortKey(parseLsn(exported.consistentPoint) - 1n, 9_999_999_999);
        for (const t of tables) {
          const stream = naming.snapshotStream(t.id);
          if (t.hasKey || state[snapshotDoneField(stream)] === "1") continue;
          skips[SKIP_THROUGH_FIELD_PREFIX + naming.cdcStream(t.id)] = through;
        }
        if (Object.keys(skips).length > 0) await checkpoints.write(skips);
      } else {
        // The publication must exist before the slot: pgoutput reads it as of each change.
        // One Replicant creates records this id as its owner in the same transaction.
        await preparePublication(control, publicationName, tables, log, { owner: this.ids });
        if (await readSlot(control, slotName)) {
          if (!run.resume) {
            throw new SourceError(
              `Replication slot "${slotName}" exists already: a new full run creates its ` +
                "own (an id's own slot is dropped only by --overwrite)",
            );
          }
          // This id's slot from a start that stopped before recording its consistent point:
          // nothing was read from it, so it is made anew with an exported snapshot.
          log.info(`dropping this id's unused slot "${slotName}" to export a snapshot`);
          await dropSlot(control, slotName);
        }
        if (run.resume) {
          log.warn(`no consistent point recorded: the snapshot starts over`);
          resumeSnapshot = false;
        }
        exported = await createSlotWithSnapshot(this.endpoint, slotName);
        await checkpoints.write({
          [SNAPSHOT_CONSISTENT_POINT_FIELD]: exported.consistentPoint,
          [SLOT_START_FIELD]: exported.consistentPoint,
        });
        log.info(
          `created slot "${slotName}" at ${exported.consistentPoint}, snapshot ${exported.snapshotName}`,
        );
      }
    } catch (err) {
      await control.end().catch(() => {});
      await exported?.close();
      throw err;
    }
    await control.end().catch(() => {});
    let source: PgSnapshotSource;
    try {
      source = await PgSnapshotSource.open(this.endpoint, selection, {
        exportedSnapshot: exported?.snapshotName,
        log,
      });
    } catch (err) {
      await exported?.close();
      throw err;
    }
    return {
      source,
      resume: resumeSnapshot,
      completed: () =>
        Promise.resolve("snapshot complete; realtime continues from the slot's consistent point"),
      close: async () => {
        try {
          await source.close();
        } finally {
          await exported?.close();
        }
      },
    };
  }

  /**
   * The publication is brought in step with the selection first (a joining table is added,
   * a removed one dropped), in its own transaction: every change of a joining table after it
   * is published. A temporary slot then exports a snapshot whose consistent point comes after
   * that, so the snapshot holds every change the stream does not deliver.
   */
  async openJoinSnapshot(run: StreamRun, only: TableSelection): Promise<JoinSnapshot> {
    const control = await openPg(this.endpoint, "replicant-join");
    try {
      const tables = await readPgTables(control, this.endpoint.database, run.selection);
      await preparePublication(control, this.slotName, tables, run.log, {
        owner: this.ids,
        createMissing: false,
      });
    } finally {
      await control.end().catch(() => {});
    }
    const exported = await createSlotWithSnapshot(
      this.endpoint,
      `${this.slotName.slice(0, 56)}_join`,
      { temporary: true },
    );
    let source: PgSnapshotSource;
    try {
      source = await PgSnapshotSource.open(this.endpoint, only, {
        exportedSnapshot: exported.snapshotName,
        log: run.log,
      });
    } catch (err) {
      await exported.close();
      throw err;
    }
    return {
      source,
      // Commits before the consistent point are in the snapshot, later ones are decoded.
      through: pgSortKey(parseLsn(exported.consistentPoint) - 1n, 9_999_999_999),
      point: `LSN ${exported.consistentPoint}`,
      close: async () => {
        try {
          await source.close();
        } finally {
          await exported.close();
        }
      },
    };
  }

  async inspect(selection: TableSelection): Promise<SourceInspection> {
    const client = await openPg(this.endpoint, "replicant-preflight");
    try {
      const all = await readPgTables(client, this.conn.database, {
        table: (id) => selection.table(id),
        columns: () => null,
      });
      const tables = all.map((t) => ({ id: t.id, columns: t.columns.map((c) => c.name) }));
      const version = await client.query({ text: "SHOW server_version", rowMode: "array" });
      const serverVersion = String((version.rows[0] as string[])[0]);
      return { tables, serverVersion, warnings: [], problems: [] };
    } finally {
      await client.end().catch(() => {});
    }
  }

  async testConnection(test: ConnectionTest): Promise<ConnectionTestOutcome> {
    const { checks, cdc } = test;
    const out: ConnectionTestOutcome = {};
    const client = await test.login(this.conn.username, () => openPg(this.endpoint));
    if (!client) return out;
    try {
      if (test.systemTables) {
        try {
          await client.query(
            "SELECT count(*) FROM pg_catalog.pg_class, pg_catalog.pg_index LIMIT 1",
          );
          checks.push(passed("system tables", "pg_class, pg_attribute, pg_index readable"));
        } catch (e) {
          checks.push(failed("system tables", (e as Error).message));
        }
        out.readAccessToSystemTables = statusOf(checks.filter((c) => c.name === "system tables"));
      }
      // What the mode needs of the selected tables, checked as a run checks it.
      const slotName = this.slotName;
      const tableChecks: PrerequisiteCheck[] = [];
      try {
        const tables = await readPgTables(client, this.conn.database, test.selection);
        tableChecks.push(
          ...await checkPgTables(client, tables, {
            publicationName: slotName,
            streaming: cdc,
            owner: this.ids!,
          }),
        );
      } catch (e) {
        tableChecks.push(failed("selected tables", (e as Error).message));
      }
      if (cdc) {
        const cdcChecks = await checkPgPrerequisites(client, { slotName });
        checks.push(...cdcChecks);
        // Replica identity and the publication decide whether the changes can be read too.
        const streamed = tableChecks.filter((c) => c.name !== "select privilege");
        out.readAccessToCdcLogs = statusOf([...cdcChecks, ...streamed]);
      }
      checks.push(...tableChecks);
    } finally {
      await client.end().catch(() => {});
    }
    return out;
  }

  async checkBeforeRun(run: PreflightRun): Promise<SourcePreflight> {
    const { mode, state } = run;
    const name = this.slotName;
    const owner = this.ids!;
    const recorded = state[SOURCE_SLOT_FIELD];
    if (run.resume && mode !== "snapshot" && recorded && recorded !== name) {
      throw new StateError(
        `Replication id ${JSON.stringify(owner.id)} streams from slot "${recorded}", but ` +
          `${run.connectionFile} now names slot "${name}": put "${recorded}" back under ` +
          "`replication-slots`, or start over with --overwrite.",
      );
    }
    let identity: string | null = null;
    let ownsResources = false;
    const client = await openPg(this.endpoint, "replicant-preflight");
    try {
      const found = await readPgTables(client, this.endpoint.database, run.selection);
      if (found.length === 0) await run.noTables();
      if (mode !== "snapshot") {
        identity = pgServerIdentity(await pgSystemIdentifier(this.endpoint));
        ownsResources = await checkPgOwnership(client, {
          name,
          me: owner,
          database: this.endpoint.database,
          hasState: run.resume,
          overwrite: run.overwrite,
          reuseOwn: mode === "realtime",
          connectionFile: run.connectionFile,
          stateKey: run.stateKey,
        });
        // A table without a replica identity, a publication the user may not create or
        // change: found now (tried and rolled back), not after the run started. Resuming, a
        // missing publication is the gap check's to report.
        await checkPublication(client, name, found, {
          owner,
          createMissing: !run.resume,
        });
      } else if (run.overwrite) {
        // A snapshot needs no slot; starting over still drops this id's own, if any.
        const resources = await readPgResources(client, name);
        ownsResources = judgeOwnership(resources, owner, this.endpoint.database).kind === "own";
      }
      return { tables: found.map(neutralSchema), identity, ownsResources };
    } finally {
      await client.end().catch(() => {});
    }
  }

  async forgetOwn(): Promise<string | null> {
    const name = this.slotName;
    const client = await openPg(this.endpoint, "replicant-overwrite");
    try {
      await releaseOwnResources(client, name);
    } finally {
      await client.end().catch(() => {});
    }
    return `this id's slot and publication "${name}"`;
  }

  resourceFields(mode: RunMode): Record<string, string> {
    if (mode === "snapshot") return {};
    return { [SOURCE_SLOT_FIELD]: this.slotName, [SOURCE_PUBLICATION_FIELD]: this.slotName };
  }

  /**
   * A start at a time reads from the slot's position and passes over what was committed
   * before the time. A slot this run creates holds only changes from now on: a time before
   * now cannot be served then; an existing slot must show a transaction before the time
   * first (see StartTimeGate).
   */
  async #startTime(
    startMs: number,
    log: ConnectorLog,
  ): Promise<{ startMs: number; startsAtOrBefore: boolean }> {
    const client = await openPg(this.endpoint, "replicant-start");
    try {
      const now = await client.query({
        text: "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8::text",
        rowMode: "array",
      });
      const nowMs = Number((now.rows[0] as string[])[0]);
      const slot = await readSlot(client, this.slotName);
      if (startMs < nowMs && slot === null) {
        startNotServable(
          `start-timestamp ${isoTime(startMs)}`,
          `changes from now (${isoTime(nowMs)}) on: replication slot "${this.slotName}" does ` +
            "not exist yet",
          "A slot created now holds only the changes from now on.",
        );
      }
      log.info(
        `realtime starts with the first transaction committed at or after ${isoTime(startMs)}`,
      );
      return { startMs, startsAtOrBefore: startMs >= nowMs };
    } finally {
      await client.end().catch(() => {});
    }
  }
}

const isoTime = (ms: number) => new Date(ms).toISOString();

/** The PostgreSQL system identifier inside a recorded identity (`postgresql:<id>`). */
function pgSystemOf(identity: string | null): string | null {
  return identity?.startsWith("postgresql:") ? identity.slice("postgresql:".length) : null;
}
