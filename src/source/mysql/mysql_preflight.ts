/**
 * What a MySQL/MariaDB run can check before it writes anything: the selected tables with all
 * their columns (to check the filter against), the binlog client's server id, and foreign
 * keys whose cascades the binlog does not carry.
 *
 * @module
 */

import type { TableColumns } from "../../config/table_selected.ts";
import type { TableSelection } from "../../pipeline/snapshot_source.ts";
import { type MysqlEndpoint, mysqlQueryError, openMysql, pickServerId } from "./mysql_endpoint.ts";
import { readMysqlTables } from "./mysql_schema_reader.ts";

export interface MysqlPreflight {
  /** Every selected table with all its column names. */
  tables: TableColumns[];
  /** The server's own `@@server_id`. */
  serverId: number;
  /** Why no usable binlog client id exists in `slave-server-ids`; null when one does. */
  serverIdProblem: string | null;
}

export async function mysqlPreflight(
  endpoint: MysqlEndpoint,
  selection: TableSelection,
): Promise<MysqlPreflight> {
  const conn = await openMysql(endpoint);
  try {
    const [rows] = await conn.query({
      sql: "SELECT @@GLOBAL.server_id",
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
    };
  } catch (err) {
    throw mysqlQueryError(endpoint, "Checking the source before the run", err);
  } finally {
    conn.destroy();
  }
}
