import type { MysqlConnection, PostgresConnection } from "../config/mod.ts";
import type { TableId, TableSchema } from "../core/table_schema.ts";
import type { TableSelection } from "../ports/snapshot_source.ts";
import { openPg, pgEndpointOf } from "../source/postgres/pg_endpoint.ts";
import { listPgSchemas, readPgTables } from "../source/postgres/pg_schema_reader.ts";
import { mysqlEndpointOf, openMysql } from "../source/mysql/mysql_endpoint.ts";
import { listMysqlDatabases, readMysqlTables } from "../source/mysql/mysql_schema_reader.ts";

/** A table as every source describes it, without what one source reader adds. */
export function neutralSchema(t: TableSchema): TableSchema {
  return { id: t.id, columns: t.columns, keyColumns: t.keyColumns, hasKey: t.hasKey };
}

/** The selected tables of a source, read from its catalog on a connection of their own. */
export async function readSourceSchemas(
  source: PostgresConnection | MysqlConnection,
  selection: TableSelection,
): Promise<TableSchema[]> {
  if (source.type === "POSTGRESQL") {
    const client = await openPg(pgEndpointOf(source), "replicant-schema");
    try {
      return (await readPgTables(client, source.database, selection)).map(neutralSchema);
    } finally {
      await client.end().catch(() => {});
    }
  }
  const conn = await openMysql(mysqlEndpointOf(source));
  try {
    return (await readMysqlTables(conn, selection)).map(neutralSchema);
  } finally {
    conn.destroy();
  }
}

/** What a source holds, selected or not: its schemas (PostgreSQL) or databases and their tables. */
export interface SourceTables {
  /** The source in words: `PostgreSQL database "replicant" at 127.0.0.1:5432`. */
  source: string;
  /** `schema` (PostgreSQL) or `database` (MySQL/MariaDB). */
  groupKind: string;
  groups: { name: string; tables: TableId[] }[];
}

/** Lists every user table of a source, on a connection of its own. */
export async function listSourceTables(
  source: PostgresConnection | MysqlConnection,
): Promise<SourceTables> {
  if (source.type === "POSTGRESQL") {
    const client = await openPg(pgEndpointOf(source), "replicant-schema");
    try {
      const schemas = await listPgSchemas(client);
      return {
        source: `PostgreSQL database "${source.database}" at ${source.host}:${source.port}`,
        groupKind: "schema",
        groups: schemas.map(({ schema, tables }) => ({
          name: schema,
          tables: tables.map((table) => ({ catalog: source.database, schema, table })),
        })),
      };
    } finally {
      await client.end().catch(() => {});
    }
  }
  const conn = await openMysql(mysqlEndpointOf(source));
  try {
    const databases = await listMysqlDatabases(conn);
    return {
      source: `${source.type === "MARIADB" ? "MariaDB" : "MySQL"} at ${source.host}:${source.port}`,
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
