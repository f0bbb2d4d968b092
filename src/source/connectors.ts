import type { MysqlConnection, PostgresConnection, SourceType } from "../config/load_connection.ts";
import type { SourceConnector } from "../ports/connector.ts";
import { MysqlConnector } from "./mysql/connector.ts";
import { PgConnector } from "./postgres/connector.ts";

type SourceConnection = PostgresConnection | MysqlConnection;

/** The connector of each source `type:` of a connection file. */
const CONNECTORS: Record<SourceType, (conn: never, ids?: ReplicationIds) => SourceConnector> = {
  POSTGRESQL: (conn: PostgresConnection, ids) => new PgConnector(conn, ids),
  MYSQL: (conn: MysqlConnection, ids) => new MysqlConnector(conn, ids),
  MARIADB: (conn: MysqlConnection, ids) => new MysqlConnector(conn, ids),
};

/** The replication a connector works for (it names the source resources it creates). */
export interface ReplicationIds {
  group: string;
  id: string;
}

/** The connector of a source; `ids` when it works for a replication (slot names). */
export function connectorOf(conn: PostgresConnection, ids?: ReplicationIds): PgConnector;
export function connectorOf(conn: MysqlConnection, ids?: ReplicationIds): MysqlConnector;
export function connectorOf(conn: SourceConnection, ids?: ReplicationIds): SourceConnector;
export function connectorOf(conn: SourceConnection, ids?: ReplicationIds): SourceConnector {
  const make = CONNECTORS[conn.type] as (
    c: SourceConnection,
    ids?: ReplicationIds,
  ) => SourceConnector;
  return make(conn, ids);
}
