/**
 * What a MySQL/MariaDB run can check before it writes anything: the selected tables with all
 * their columns (to check the filter against), the binlog client's server id, and foreign
 * keys whose cascades the binlog does not carry.
 *
 * @module
 */

import type { TableColumns } from "../../config/table_selected.ts";
import type { TableId } from "../../core/table_schema.ts";
import type { TableSelection } from "../../ports/snapshot_source.ts";
import {
  type MysqlConnection,
  type MysqlEndpoint,
  mysqlQueryError,
  openMysql,
  pickServerId,
} from "./mysql_endpoint.ts";
import { readMysqlTables } from "./mysql_schema_reader.ts";

/** A foreign key whose ON DELETE/ON UPDATE changes the child rows by cascade. */
export interface CascadingKey {
  child: TableId;
  parent: TableId;
  constraint: string;
  /** `DELETE CASCADE`, `UPDATE SET NULL`, … */
  rules: string[];
}

/**
 * Foreign keys of the given (selected) tables whose actions change child rows: CASCADE,
 * SET NULL, SET DEFAULT. MySQL and MariaDB apply them inside the storage engine and do not
 * write the child rows' changes to the binlog.
 */
export async function cascadingForeignKeys(
  conn: MysqlConnection,
  tables: readonly TableId[],
): Promise<CascadingKey[]> {
  if (tables.length === 0) return [];
  const dbs = [...new Set(tables.map((t) => t.catalog))];
  const [rows] = await conn.query({
    sql: `SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, UNIQUE_CONSTRAINT_SCHEMA,
                 REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE
            FROM information_schema.REFERENTIAL_CONSTRAINTS
           WHERE CONSTRAINT_SCHEMA IN (${dbs.map(() => "?")})
           ORDER BY CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME`,
    values: dbs,
    rowsAsArray: true,
  }) as unknown as [unknown[][]];
  const out: CascadingKey[] = [];
  for (const [db, table, constraint, parentDb, parent, onUpdate, onDelete] of rows) {
    const child: TableId = { catalog: String(db), schema: null, table: String(table) };
    if (!tables.some((t) => t.catalog === child.catalog && t.table === child.table)) continue;
    const rules = [["DELETE", onDelete], ["UPDATE", onUpdate]]
      .filter(([, r]) => /^(CASCADE|SET NULL|SET DEFAULT)$/i.test(String(r)))
      .map(([what, r]) => `${what} ${String(r).toUpperCase()}`);
    if (rules.length === 0) continue;
    out.push({
      child,
      parent: { catalog: String(parentDb), schema: null, table: String(parent) },
      constraint: String(constraint),
      rules,
    });
  }
  return out;
}

export interface MysqlPreflight {
  /** Every selected table with all its column names. */
  tables: TableColumns[];
  /** The server's own `@@server_id`. */
  serverId: number;
  /** Why no usable binlog client id exists in `slave-server-ids`; null when one does. */
  serverIdProblem: string | null;
  /** Selected tables whose rows foreign keys change by cascade (not in the binlog). */
  cascades: CascadingKey[];
  /** `VERSION()` of the server. */
  serverVersion: string;
}

export async function mysqlPreflight(
  endpoint: MysqlEndpoint,
  selection: TableSelection,
): Promise<MysqlPreflight> {
  const conn = await openMysql(endpoint);
  try {
    const [rows] = await conn.query({
      sql: "SELECT @@GLOBAL.server_id, VERSION()",
      rowsAsArray: true,
    }) as unknown as [unknown[][]];
    const serverId = Number(rows[0][0]);
    let serverIdProblem: string | null = null;
    try {
      pickServerId(endpoint.serverIds, serverId);
    } catch (err) {
      serverIdProblem = (err as Error).message;
    }
    const tables = await readMysqlTables(
      conn,
      { table: (id) => selection.table(id), columns: () => null },
      endpoint.database,
    );
    return {
      tables: tables.map((t) => ({ id: t.id, columns: t.columns.map((c) => c.name) })),
      serverId,
      serverIdProblem,
      cascades: await cascadingForeignKeys(conn, tables.map((t) => t.id)),
      serverVersion: String(rows[0][1]),
    };
  } catch (err) {
    throw mysqlQueryError(endpoint, "Checking the source before the run", err);
  } finally {
    conn.destroy();
  }
}
