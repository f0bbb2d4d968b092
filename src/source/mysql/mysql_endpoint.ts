/**
 * Connections to a MySQL/MariaDB source: options that keep values lossless, typed errors
 * that name the server and the connection file, and the prerequisite checks of CDC.
 *
 * @module
 */

import type mysql from "mysql2";
import mysqlPromise from "mysql2/promise";
import { SourceError } from "../../core/errors.ts";
import { tlsErrorHint } from "../../core/tls_error_hint.ts";
import type { MysqlConnection as MysqlConnectionConfig } from "../../config/load_connection.ts";
import { tlsMaterialOf } from "../../config/tls_material.ts";

export interface MysqlEndpoint {
  host: string;
  port: number;
  user: string;
  password?: string;
  /** The database to replicate; all non-system databases when absent. */
  database?: string;
  ssl?: string | mysql.SslOptions;
  /** `slave-server-ids`: ids the binlog client may use; never the server's own. */
  serverIds: number[];
  /** Shown in errors, usually the connection file. */
  origin: string;
}

export type MysqlConnection = mysqlPromise.Connection;

/**
 * Driver options. Values are never rounded by the driver: big numbers and decimals as
 * strings, dates as the server's text, the session in UTC; the snapshot reader goes
 * further and takes every value's raw bytes (see mysql_value_decoder.ts).
 */
export function mysqlConnectionOptions(endpoint: MysqlEndpoint): mysql.ConnectionOptions {
  return {
    host: endpoint.host,
    port: endpoint.port,
    user: endpoint.user,
    password: endpoint.password ?? "",
    database: endpoint.database,
    ssl: endpoint.ssl,
    charset: "utf8mb4_general_ci",
    timezone: "Z",
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
    decimalNumbers: false,
    jsonStrings: true,
    connectTimeout: 10_000,
    multipleStatements: false,
  };
}

/** Session settings every source connection runs first. */
export const SESSION_SETUP = "SET time_zone = '+00:00', NAMES utf8mb4";

/** Opens a promise connection with the session set up; errors become SourceErrors. */
export async function openMysql(endpoint: MysqlEndpoint): Promise<MysqlConnection> {
  let conn: MysqlConnection | undefined;
  try {
    conn = await mysqlPromise.createConnection(mysqlConnectionOptions(endpoint));
    conn.on("error", () => {/* surfaced by the query that fails */});
    await conn.query(SESSION_SETUP);
    return conn;
  } catch (err) {
    if (conn) conn.destroy();
    throw new SourceError(describeMysqlConnectError(endpoint, err), undefined, { cause: err });
  }
}

export function mysqlWhere(endpoint: MysqlEndpoint): string {
  return `MySQL at ${endpoint.host}:${endpoint.port}` +
    (endpoint.database ? ` database "${endpoint.database}"` : "") + ` (${endpoint.origin})`;
}

/** A connect error → one message naming server, origin and what to check. */
export function describeMysqlConnectError(endpoint: MysqlEndpoint, err: unknown): string {
  const e = err as { message?: string; code?: string };
  const message = e?.message ?? String(err);
  const user = JSON.stringify(endpoint.user);
  const ssl = typeof endpoint.ssl === "object" ? endpoint.ssl : undefined;
  // A user created REQUIRE SSL / REQUIRE X509 is refused like a wrong password.
  const tlsNeeded = !endpoint.ssl
    ? "; a user created REQUIRE SSL also needs an `ssl` section"
    : !ssl?.cert
    ? "; a user created REQUIRE X509 also needs a client certificate: ssl.ssl-cert and " +
      "ssl.ssl-key, or ssl.key-store"
    : "";
  const hints: Record<string, string> = {
    ER_ACCESS_DENIED_ERROR: `authentication failed: access denied for user ${user} (check ` +
      `\`username\` and \`password\` or \`password-file\`${tlsNeeded})`,
    ER_DBACCESS_DENIED_ERROR: `user ${user} may not use database "${endpoint.database}": ` +
      "grant it SELECT or check `database`",
    ER_BAD_DB_ERROR: `database "${endpoint.database}" does not exist: check \`database\``,
    ECONNREFUSED: "connection refused: is the server running, and are `host` and `port` right?",
    ENOTFOUND: "unknown host: check `host`",
    ETIMEDOUT: "connection timed out: check `host`, `port` and firewalls",
  };
  let hint = e?.code ? hints[e.code] : undefined;
  if (!hint) {
    const tls = tlsErrorHint(message);
    hint = tls
      ? `${message} (${tls})`
      : e?.code === "HANDSHAKE_SSL_ERROR"
      ? `TLS handshake failed: ${message} (check \`ssl\`)`
      : message;
  }
  return `Cannot connect to ${mysqlWhere(endpoint)}: ${hint}`;
}

/** Wraps a query failure into a SourceError naming the server and what was being done. */
export function mysqlQueryError(
  endpoint: MysqlEndpoint,
  doing: string,
  err: unknown,
  table?: string,
): SourceError {
  if (err instanceof SourceError) return err;
  return new SourceError(
    `${doing} failed on ${mysqlWhere(endpoint)}: ${(err as Error)?.message ?? String(err)}`,
    table,
    { cause: err },
  );
}

export function quoteIdent(name: string): string {
  return "`" + name.replaceAll("`", "``") + "`";
}

/** Picks the binlog client's server id: the first configured one not equal to the server's. */
export function pickServerId(serverIds: number[], serverOwnId: number): number {
  const id = serverIds.find((i) => i !== serverOwnId && i > 0);
  if (id !== undefined) return id;
  if (serverIds.length > 0) {
    throw new SourceError(
      `slave-server-ids ${JSON.stringify(serverIds)} has no usable id: each must differ from ` +
        `the server's own server_id ${serverOwnId} and from the other replicas' ids`,
    );
  }
  // No ids configured: a fixed id far from usual ones, never the server's own.
  return serverOwnId === 0x5ea1 ? 0x5ea2 : 0x5ea1;
}

/** The endpoint of a MySQL/MariaDB connection file. */
export function mysqlEndpointOf(conn: MysqlConnectionConfig): MysqlEndpoint {
  const m = conn.ssl?.enable
    ? tlsMaterialOf(conn.ssl, conn.file ?? `${conn.type} connection`)
    : null;
  return {
    host: conn.host,
    port: conn.port,
    user: conn.username,
    password: conn.password,
    // mysql2 checks the chain with rejectUnauthorized and the host name with verifyIdentity.
    ssl: m
      ? {
        ca: m.ca,
        cert: m.cert,
        key: m.key,
        rejectUnauthorized: conn.ssl!.hostnameVerification || m.ca !== undefined,
        verifyIdentity: conn.ssl!.hostnameVerification,
      }
      : undefined,
    serverIds: conn.slaveServerIds,
    origin: conn.file ?? "mysql connection",
  };
}
