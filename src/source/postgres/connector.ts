import type { PostgresConnection } from "../../config/load_connection.ts";
import type { TableSchema } from "../../core/table_schema.ts";
import {
  type ConnectorLog,
  neutralSchema,
  type SourceConnector,
  type SourceTables,
} from "../../ports/connector.ts";
import type { SnapshotSource, TableSelection } from "../../ports/snapshot_source.ts";
import type { VerifyPoint } from "../../ports/verify_point.ts";
import { openPg, type PgEndpoint, pgEndpointOf } from "./pg_endpoint.ts";
import { PgLagSampler } from "./pg_lag_sampler.ts";
import { slotNameOf } from "./pg_replication_slot.ts";
import { listPgSchemas, readPgTables } from "./pg_schema_reader.ts";
import { PgSnapshotSource } from "./pg_snapshot_source.ts";
import { openPgVerifyPoint } from "./pg_verify_point.ts";
import { pgSortKeyOfSource } from "./pgoutput_position.ts";

/** PostgreSQL: snapshots in exported snapshots, changes from a logical slot (pgoutput). */
export class PgConnector implements SourceConnector {
  readonly name = "postgresql";
  readonly sortKeyOfSource = pgSortKeyOfSource;
  readonly endpoint: PgEndpoint;

  /** `ids`: the replication the connector works for, when it has one (it names the slot). */
  constructor(
    readonly conn: PostgresConnection,
    private readonly ids?: { group: string; id: string },
  ) {
    this.endpoint = pgEndpointOf(conn);
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
}
