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

/** Privileges a CDC user needs (SPEC: REPLICATION SLAVE, REPLICATION CLIENT, SELECT). */
const NEEDED_PRIVILEGES = ["REPLICATION SLAVE", "REPLICATION CLIENT", "SELECT"];

/**
 * Which of the needed global privileges the `SHOW GRANTS` lines lack. `ALL PRIVILEGES ON
 * *.*` covers all; SELECT on the replicated database (`db`.*) also counts for SELECT.
 * MariaDB 10.5+ calls REPLICATION CLIENT `BINLOG MONITOR` and REPLICATION SLAVE
 * `REPLICATION SLAVE` (plus `REPLICATION SLAVE ADMIN`); both spellings count.
 */
export function missingPrivileges(grants: string[], database?: string): string[] {
  const global = new Set<string>();
  let dbSelect = false;
  for (const line of grants) {
    const m = /^GRANT\s+(.+?)\s+ON\s+(\S+)\s+TO\s/i.exec(line.trim());
    if (!m) continue;
    const privs = m[1].split(",").map((p) => p.trim().toUpperCase().replace(/\s+/g, " "));
    const on = m[2].replaceAll("`", "");
    if (on === "*.*") {
      for (const p of privs) global.add(p);
    } else if (
      database && (on === `${database}.*`) &&
      privs.some((p) => p === "SELECT" || p === "ALL PRIVILEGES" || p === "ALL")
    ) {
      dbSelect = true;
    }
  }
  const all = global.has("ALL PRIVILEGES") || global.has("ALL");
  return NEEDED_PRIVILEGES.filter((p) => {
    if (all || global.has(p)) return false;
    if (p === "REPLICATION CLIENT" && (global.has("BINLOG MONITOR") || global.has("SUPER"))) {
      return false;
    }
    if (p === "SELECT" && dbSelect) return false;
    return true;
  });
}

/** A CDC prerequisite that is not met: the message, and the part of it that fixes it. */
export interface MysqlProblem {
  message: string;
  /** What to change (a part of `message`); absent when Replicant does not know. */
  hint?: string;
}

/**
 * Checks what CDC needs: binary log on, ROW format, FULL row image, the privileges, and
 * that no configured slave-server-id equals the server's own. Returns one message per
 * problem, each naming the setting or statement that fixes it; empty when all is well.
 */
export async function checkMysqlPrerequisites(
  conn: MysqlConnection,
  endpoint: MysqlEndpoint,
): Promise<string[]> {
  return (await mysqlPrerequisiteProblems(conn, endpoint)).map((p) => p.message);
}

/** checkMysqlPrerequisites with the fix of each problem apart (test-connection's hints). */
export async function mysqlPrerequisiteProblems(
  conn: MysqlConnection,
  endpoint: MysqlEndpoint,
): Promise<MysqlProblem[]> {
  const problems: MysqlProblem[] = [];
  const problem = (found: string, hint: string) =>
    problems.push({ message: `${found}: ${hint}`, hint });
  const [rows] = await conn.query(
    "SELECT @@GLOBAL.log_bin AS log_bin, @@GLOBAL.binlog_format AS binlog_format, " +
      "@@GLOBAL.binlog_row_image AS binlog_row_image, @@GLOBAL.server_id AS server_id",
  ) as unknown as [Record<string, unknown>[]];
  const v = rows[0];
  if (String(v.log_bin) !== "1" && String(v.log_bin).toUpperCase() !== "ON") {
    problem(
      "the binary log is off",
      "start the server with `log-bin` (e.g. `log-bin=binlog` in my.cnf [mysqld]) and restart it",
    );
  }
  if (String(v.binlog_format).toUpperCase() !== "ROW") {
    problem(
      `binlog_format is ${v.binlog_format}`,
      "run SET GLOBAL binlog_format = 'ROW' (and `binlog_format=ROW` in my.cnf to keep it)",
    );
  }
  if (String(v.binlog_row_image).toUpperCase() !== "FULL") {
    problem(
      `binlog_row_image is ${v.binlog_row_image}`,
      "run SET GLOBAL binlog_row_image = 'FULL' (and `binlog_row_image=FULL` in my.cnf to " +
        "keep it)",
    );
  }
  const serverId = Number(v.server_id);
  for (const id of endpoint.serverIds) {
    if (id === serverId) {
      problem(
        `slave-server-ids contains ${id}, the server's own server_id`,
        `choose another id in ${endpoint.origin}`,
      );
    }
  }
  try {
    const [grantRows] = await conn.query({ sql: "SHOW GRANTS", rowsAsArray: true }) as unknown as [
      unknown[][],
    ];
    const grants = grantRows.map((r) => String(r[0]));
    const missing = missingPrivileges(grants, endpoint.database);
    if (missing.length > 0) {
      problem(
        `user ${JSON.stringify(endpoint.user)} lacks ${missing.join(", ")}`,
        `run GRANT ${missing.join(", ")} ON *.* TO ${JSON.stringify(endpoint.user)}@'%'`,
      );
    }
  } catch (err) {
    problems.push({
      message: `cannot read the grants (SHOW GRANTS): ${(err as Error).message}`,
    });
  }
  return problems;
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
