import type { MysqlConnection, PostgresConnection } from "../config/mod.ts";
import type { TableSchema } from "../core/table_schema.ts";
import type { TableSelection } from "../pipeline/snapshot_source.ts";
import { mysqlEndpointOf, pgEndpointOf } from "../commands/replication_setup.ts";
import { openPg } from "../source/postgres/pg_endpoint.ts";
import { readPgTables } from "../source/postgres/pg_schema_reader.ts";
import { openMysql } from "../source/mysql/mysql_endpoint.ts";
import { readMysqlTables } from "../source/mysql/mysql_schema_reader.ts";

/** The selected tables of a source, read from its catalog on a connection of their own. */
export async function readSourceSchemas(
  source: PostgresConnection | MysqlConnection,
  selection: TableSelection,
): Promise<TableSchema[]> {
  const neutral = (t: TableSchema): TableSchema => ({
    id: t.id,
    columns: t.columns,
    keyColumns: t.keyColumns,
    hasKey: t.hasKey,
  });
  if (source.type === "POSTGRESQL") {
    const client = await openPg(pgEndpointOf(source), "replicant-schema");
    try {
      return (await readPgTables(client, source.database, selection)).map(neutral);
    } finally {
      await client.end().catch(() => {});
    }
  }
  const conn = await openMysql(mysqlEndpointOf(source));
  try {
    return (await readMysqlTables(conn, selection)).map(neutral);
  } finally {
    conn.destroy();
  }
}
