import type { MysqlConnection } from "../../config/load_connection.ts";
import type { TableSchema } from "../../core/table_schema.ts";
import { neutralSchema, type SourceConnector, type SourceTables } from "../../ports/connector.ts";
import type { SnapshotSource, TableSelection } from "../../ports/snapshot_source.ts";
import type { VerifyPoint } from "../../ports/verify_point.ts";
import { type MysqlEndpoint, mysqlEndpointOf, openMysql } from "./mysql_endpoint.ts";
import { MysqlLagSampler } from "./mysql_lag_sampler.ts";
import { mysqlSortKeyOfSource } from "./mysql_position.ts";
import { listMysqlDatabases, readMysqlTables } from "./mysql_schema_reader.ts";
import { MysqlSnapshotSource } from "./mysql_snapshot_source.ts";
import { openMysqlVerifyPoint } from "./mysql_verify_point.ts";

/** MySQL and MariaDB: snapshots per reader with their binlog position, changes from the binlog. */
export class MysqlConnector implements SourceConnector {
  readonly name = "mysql";
  readonly sortKeyOfSource = mysqlSortKeyOfSource;
  readonly endpoint: MysqlEndpoint;

  constructor(readonly conn: MysqlConnection) {
    this.endpoint = mysqlEndpointOf(conn);
  }

  openSnapshot(selection: TableSelection): Promise<MysqlSnapshotSource & SnapshotSource> {
    return MysqlSnapshotSource.open(this.endpoint, selection);
  }

  openVerifyPoint(selection: TableSelection): Promise<VerifyPoint> {
    return openMysqlVerifyPoint(this.endpoint, selection);
  }

  async readSchemas(selection: TableSelection): Promise<TableSchema[]> {
    const conn = await openMysql(this.endpoint);
    try {
      return (await readMysqlTables(conn, selection)).map(neutralSchema);
    } finally {
      conn.destroy();
    }
  }

  async listTables(): Promise<SourceTables> {
    const { type, host, port } = this.conn;
    const conn = await openMysql(this.endpoint);
    try {
      const databases = await listMysqlDatabases(conn);
      return {
        source: `${type === "MARIADB" ? "MariaDB" : "MySQL"} at ${host}:${port}`,
        groupKind: "database",
        groups: databases.map(({ database, tables }) => ({
          name: database,
          tables: tables.map((table) => ({ catalog: database, schema: null, table })),
        })),
      };
    } finally {
      conn.destroy();
    }
  }

  lagSampler(checkpoint: () => Promise<string | null>): MysqlLagSampler {
    return new MysqlLagSampler(this.endpoint, checkpoint);
  }
}
