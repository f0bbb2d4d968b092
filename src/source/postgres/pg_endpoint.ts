import pg from "pg";
import { SourceError } from "../../core/errors.ts";
import { tlsErrorHint } from "../../core/tls_error_hint.ts";
import type { PostgresConnection } from "../../config/load_connection.ts";
import { tlsOptionsOf } from "../../config/tls_material.ts";

export interface PgEndpoint {
  host: string;
  port: number;
  database: string;
  user: string;
  password?: string;
  ssl?: pg.ClientConfig["ssl"];
  /** Shown in errors, usually the connection file. */
  origin: string;
}

/** The endpoint of a PostgreSQL connection file. */
export function pgEndpointOf(conn: PostgresConnection): PgEndpoint {
  return {
    host: conn.host,
    port: conn.port,
    database: conn.database,
    user: conn.username,
    password: conn.password,
    ssl: tlsOptionsOf(conn),
    origin: conn.file ?? "postgresql connection",
  };
}

/** Every value arrives as PostgreSQL's text; our decoders make it lossless JSON. */
export const TEXT_TYPES = { getTypeParser: () => (value: string) => value };

/**
 * Session settings that make the text forms unambiguous (UTC, ISO dates and intervals), in
 * UTF-8 whatever the database's encoding: the snapshot copies text bytes into entries as is.
 */
const SESSION_SETUP = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; " +
  "SET IntervalStyle = 'iso_8601'; SET extra_float_digits = 3; SET bytea_output = 'hex'; " +
  "SET client_encoding = 'UTF8'";

export async function openPg(
  endpoint: PgEndpoint,
  applicationName = "replicant",
): Promise<pg.Client> {
  const client = new pg.Client({
    host: endpoint.host,
    port: endpoint.port,
    database: endpoint.database,
    user: endpoint.user,
    password: endpoint.password,
    ssl: endpoint.ssl,
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
    types: TEXT_TYPES,
  });
  client.on("error", () => {/* surfaced by the query that fails */});
  try {
    await client.connect();
    await client.query(SESSION_SETUP);
  } catch (err) {
    await client.end().catch(() => {});
    throw new SourceError(describePgConnectError(endpoint, err), undefined, { cause: err });
  }
  return client;
}

function describePgConnectError(endpoint: PgEndpoint, err: unknown): string {
  const e = err as { message?: string; code?: string };
  const message = e?.message ?? String(err);
  const where = `PostgreSQL at ${endpoint.host}:${endpoint.port} database "${endpoint.database}"` +
    ` (${endpoint.origin})`;
  const user = JSON.stringify(endpoint.user);
  const hints: Record<string, string> = {
    "28P01": `authentication failed for user ${user}: wrong password (check \`password\` or ` +
      "`password-file`)",
    "28000": /no encryption/.test(message)
      ? `${message}: the server accepts this user only over TLS; add an \`ssl\` section`
      : /client certificate/.test(message)
      ? `${message}: the server authenticates this user by certificate; set ssl.ssl-cert ` +
        "and ssl.ssl-key, or ssl.key-store"
      : `${message}: check \`username\` (and the server's pg_hba.conf)`,
    "3D000": `database "${endpoint.database}" does not exist: check \`database\``,
    ECONNREFUSED: "connection refused: is the server running, and are `host` and `port` right?",
    ENOTFOUND: "unknown host: check `host`",
  };
  let hint = e?.code ? hints[e.code] : undefined;
  if (!hint && /client password must be a string/.test(message)) {
    hint = `authentication failed for user ${user}: the server asks for a password and the ` +
      "file gives none (set `password` or `password-file`)";
  }
  if (!hint) {
    const tls = tlsErrorHint(message);
    hint = tls ? `${message} (${tls})` : message;
  }
  return `Cannot connect to ${where}: ${hint}`;
}

export function quoteIdent(name: string): string {
  return '"' + name.replaceAll('"', '""') + '"';
}
