import type { PostgresConnection } from "../../config/load_connection.ts";
import { startNotServable } from "../../core/errors.ts";
import type { TableSchema } from "../../core/table_schema.ts";
import {
  REALTIME_CHECKPOINT_FIELD,
  SLOT_START_FIELD,
  SNAPSHOT_CONSISTENT_POINT_FIELD,
} from "../../ports/checkpoint.ts";
import {
  type ConnectorLog,
  neutralSchema,
  type OpenedStream,
  type SourceConnector,
  type SourceTables,
  type StreamRun,
} from "../../ports/connector.ts";
import { StartTimeGate } from "../start_time_gate.ts";
import { PgLogicalSource } from "./pg_logical_source.ts";
import type { SnapshotSource, TableSelection } from "../../ports/snapshot_source.ts";
import type { VerifyPoint } from "../../ports/verify_point.ts";
import { openPg, type PgEndpoint, pgEndpointOf } from "./pg_endpoint.ts";
import { PgLagSampler } from "./pg_lag_sampler.ts";
import { readSlot, slotNameOf } from "./pg_replication_slot.ts";
import { listPgSchemas, readPgTables } from "./pg_schema_reader.ts";
import { PgSnapshotSource } from "./pg_snapshot_source.ts";
import { openPgVerifyPoint } from "./pg_verify_point.ts";
import { pgSortKeyOfSource } from "./pgoutput_position.ts";

/** PostgreSQL: snapshots in exported snapshots, changes from a logical slot (pgoutput). */
export class PgConnector implements SourceConnector {
  readonly name = "postgresql";
  readonly sortKeyOfSource = pgSortKeyOfSource;
  readonly endpoint: PgEndpoint;

  /** The replication the connector works for, when it has one (it names and owns the slot). */
  readonly ids?: { group: string; id: string };

  constructor(readonly conn: PostgresConnection, ids?: { group: string; id: string }) {
    this.endpoint = pgEndpointOf(conn);
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
