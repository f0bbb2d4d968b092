/**
 * The source connectors as the conformance suite (tests/conformance/) sees them: what differs
 * between PostgreSQL and MariaDB when a test prepares a source, restarts its server, sets up
 * TLS or names what replicant says when it is refused. Every conformance test is written once
 * against this adapter and runs for each entry of `CONNECTORS`; the tables, the generator of
 * known transactions and the checks of the streams are the source bed's and the change log's
 * (source_bed.ts, change_log.ts), which already speak both dialects.
 */
import type { TestCerts } from "../config/tls_certs.ts";
import type { Dialect } from "./change_log.ts";
import { type PrivateMariadb, startPrivateMariadb } from "./private_mariadb.ts";
import { type PrivatePg, startPrivatePostgres } from "./private_postgres.ts";
import { serviceEnv } from "./services.ts";
import type { SourceServer } from "./source_bed.ts";

/** A throwaway server of the connector's kind that a test may stop, start and rotate. */
export interface OwnServer {
  /** How a source bed logs in (a superuser over TCP). */
  source: SourceServer;
  /**
   * A clean shutdown under replicant, then a start on the same data. PostgreSQL's shutdown
   * must complete within 20 s (the walsender waits until its client confirms what it sent).
   * Returns the shutdown's milliseconds.
   */
  restart(): Promise<number>;
  /**
   * Ends the server's current log file and opens the next one while replicant reads it
   * (MariaDB `FLUSH BINARY LOGS`, PostgreSQL `pg_switch_wal()`), from a connection of its own
   * so that it never lands inside a writer's transaction.
   */
  rotateLog(): Promise<void>;
  /** Stops the server and deletes its data. */
  stop(): Promise<void>;
}

/** The users, table and expected refusals of a TLS-only server of the connector's kind. */
export interface TlsServer {
  port: number;
  /** Snapshot stream of the table (`rows` rows) the TLS tests read. */
  stream: string;
  /** Replicant's filter YAML: that table's catalog. */
  filter: string;
  /** A user that logs in with a password and is refused without TLS. */
  passwordUser: string;
  password: string;
  /** A user that needs a client certificate, and its password (null: none). */
  certUser: string;
  certPassword: string | null;
  /**
   * Replicant's connection YAML (without `ssl`) for `user` at `host`; `password` null
   * leaves the key out.
   */
  connection(host: string, user: string, password: string | null): string;
  /** Inserts one row with a new id (and removes it again when `undo`). */
  write(undo?: boolean): Promise<void>;
  stop(): Promise<void>;
}

/** Patterns of replicant's messages that differ between the connectors. */
export interface RefusalPatterns {
  /** The message names the server (by `host`:`port`) and the connection `file`. */
  located(host: string, port: number, file: string): RegExp;
  /** A password user without TLS: the server says no, and the message points at `ssl`. */
  noTls: RegExp[];
  /** A server certificate that does not name the host (under host name verification). */
  hostName: RegExp[];
  /** The certificate user without a client certificate (connection `file`). */
  noClientCert(file: string): RegExp[];
}

export interface Connector {
  /** The name in test names: `pg` or `mariadb`. */
  name: "pg" | "mariadb";
  dialect: Dialect;
  /** A throwaway server whose superuser logs in over TCP without a password. */
  ownServer(): Promise<OwnServer>;
  /** A throwaway server that accepts TLS connections only, with `certs`' server certificate. */
  tlsServer(certs: TestCerts, rows: number): Promise<TlsServer>;
  refusals: RefusalPatterns;
  /**
   * Realtime of every table must see more than this many transactions of the crash test's
   * generator (MariaDB starts each table at its own snapshot's position, later than PostgreSQL's
   * one slot for all).
   */
  crashMinTransactions: number;
  /**
   * The crash test's runs, by how many of the 12 kills land in the snapshot (the others in
   * realtime). A run with 0 kills the snapshot never and realtime only.
   */
  crashSnapshotKills: number[];
}

/** Runs one statement as the private PostgreSQL's superuser, on a connection of its own. */
const pgSql = (server: PrivatePg, database = "postgres") => async (sql: string) => {
  const db = await server.admin(database);
  try {
    await db.query(sql);
  } finally {
    await db.end();
  }
};

/** Runs one statement as the private MariaDB's root, on a connection of its own. */
const mySql = (server: PrivateMariadb) => async (sql: string) => {
  const db = await server.admin();
  try {
    await db.query(sql);
  } finally {
    await db.end();
  }
};

/** A clean shutdown, then a start; gives the shutdown's milliseconds. */
async function timedRestart(
  shutdown: () => Promise<void>,
  start: () => Promise<void>,
): Promise<number> {
  const t0 = performance.now();
  await shutdown();
  const ms = Math.round(performance.now() - t0);
  await start();
  return ms;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const uniquePassword = (p: string) => `${p}-tls-Pw-${crypto.randomUUID().slice(0, 8)}`;

export const postgres: Connector = {
  name: "pg",
  dialect: "pg",
  crashMinTransactions: 500,
  // One slot, created before the snapshot, feeds every table whatever the snapshot did; the
  // run with 3 snapshot kills also kills realtime 9 times.
  crashSnapshotKills: [3],
  async ownServer() {
    const server = await startPrivatePostgres({
      hba: ["host all all 127.0.0.1/32 trust", "host replication all 127.0.0.1/32 trust"],
    });
    return {
      source: {
        host: server.host,
        port: server.port,
        user: "postgres",
        password: "",
        database: "postgres",
      },
      restart: () => timedRestart(() => server.shutdown("fast", 20), server.start),
      rotateLog: () => pgSql(server)("SELECT pg_switch_wal()"),
      stop: () => server.stop(),
    };
  },
  async tlsServer(certs, rows) {
    const password = uniquePassword("pg");
    const server = await startPrivatePostgres({
      certs,
      hba: [
        "hostssl all replicant 127.0.0.0/8 cert",
        "hostssl all all 127.0.0.0/8 scram-sha-256",
        "hostssl replication all 127.0.0.0/8 scram-sha-256",
      ],
    });
    try {
      const admin = await server.admin();
      await admin.query("CREATE DATABASE srctls");
      await admin.query(`CREATE ROLE tls_user LOGIN REPLICATION PASSWORD '${password}'`);
      await admin.query("CREATE ROLE replicant LOGIN");
      await admin.end();
      const db = await server.admin("srctls");
      await db.query("CREATE SCHEMA e2e_srctls");
      await db.query("CREATE TABLE e2e_srctls.items (id int PRIMARY KEY, v text)");
      await db.query(
        `INSERT INTO e2e_srctls.items SELECT g, 'v' || g FROM generate_series(1, ${rows}) g`,
      );
      await db.query("GRANT USAGE ON SCHEMA e2e_srctls TO tls_user, replicant");
      await db.query("GRANT SELECT ON ALL TABLES IN SCHEMA e2e_srctls TO tls_user, replicant");
      // `full` creates the slot and the publication of the table: its owner may.
      await db.query("ALTER TABLE e2e_srctls.items OWNER TO tls_user");
      await db.query("GRANT CREATE ON DATABASE srctls TO tls_user");
      await db.end();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return {
      port: server.port,
      stream: "srctls_e2e_srctls_items",
      filter: "allow:\n  - catalog: srctls\n    schema: e2e_srctls\n    types: [TABLE]\n",
      passwordUser: "tls_user",
      password,
      certUser: "replicant",
      certPassword: null,
      connection: (host, user, pw) =>
        `type: POSTGRESQL\nhost: ${host}\nport: ${server.port}\ndatabase: srctls\n` +
        `username: ${user}\n` + (pw === null ? "" : `password: ${pw}\n`),
      write: (undo = false) =>
        pgSql(server, "srctls")(
          undo
            ? "DELETE FROM e2e_srctls.items WHERE id = 1000"
            : "INSERT INTO e2e_srctls.items VALUES (1000, 'live')",
        ),
      stop: () => server.stop(),
    };
  },
  refusals: {
    located: (host, port, file) => new RegExp(`PostgreSQL at ${esc(host)}:${port}.*${esc(file)}`),
    noTls: [/no encryption/, /`ssl`/],
    hostName: [/does not name|altnames|not in the cert/i],
    noClientCert: (file) => [
      new RegExp(`${esc(file)}\\): .*valid client certificate`),
      /set ssl\.ssl-cert and ssl\.ssl-key, or ssl\.key-store/,
    ],
  },
};

export const mariadb: Connector = {
  name: "mariadb",
  dialect: "mysql",
  crashMinTransactions: 300,
  // Each table's realtime starts at the position of the snapshot that read it: a snapshot
  // that runs through uninterrupted gives other positions than one resumed after kills.
  crashSnapshotKills: [3, 0],
  async ownServer() {
    const server = await startPrivateMariadb();
    return {
      source: { host: server.host, port: server.port, user: "root", password: "", database: "" },
      restart: () => timedRestart(() => server.shutdown(), server.start),
      rotateLog: () => mySql(server)("FLUSH BINARY LOGS"),
      stop: () => server.stop(),
    };
  },
  async tlsServer(certs, rows) {
    const password = uniquePassword("my");
    const server = await startPrivateMariadb({ certs });
    try {
      const admin = await server.admin();
      for (
        const sql of [
          "CREATE DATABASE srctls_my",
          "CREATE TABLE srctls_my.items (id int PRIMARY KEY, v varchar(20))",
          `INSERT INTO srctls_my.items SELECT seq, CONCAT('v', seq) FROM srctls_my.seq_1_to_${rows}`,
          `CREATE USER 'tls_user'@'%' IDENTIFIED BY '${password}' REQUIRE SSL`,
          `CREATE USER 'replicant'@'%' IDENTIFIED BY '${password}' REQUIRE X509`,
          "GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'tls_user'@'%', 'replicant'@'%'",
        ]
      ) await admin.query(sql);
      await admin.end();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return {
      port: server.port,
      stream: "srctls_my_items",
      filter: "allow:\n  - catalog: srctls_my\n    types: [TABLE]\n",
      passwordUser: "tls_user",
      password,
      certUser: "replicant",
      certPassword: password,
      connection: (host, user, pw) =>
        `type: MARIADB\nhost: ${host}\nport: ${server.port}\nusername: ${user}\n` +
        (pw === null ? "" : `password: ${pw}\n`) + "slave-server-ids: [5151]\n",
      write: (undo = false) =>
        mySql(server)(
          undo
            ? "DELETE FROM srctls_my.items WHERE id = 1000"
            : "INSERT INTO srctls_my.items VALUES (1000, 'live')",
        ),
      stop: () => server.stop(),
    };
  },
  refusals: {
    located: (host, port, file) => new RegExp(`MySQL at ${esc(host)}:${port} \\(.*${esc(file)}\\)`),
    noTls: [/access denied for user "tls_user"/i, /`ssl`/],
    hostName: [/does not name this host/],
    noClientCert: () => [
      /access denied for user "replicant"/i,
      /REQUIRE X509 also needs a client certificate/,
    ],
  },
};

/** Every source connector; each conformance test runs once per entry. */
export const CONNECTORS: Connector[] = [postgres, mariadb];

/** The services' plain (TLS-less) server of the connector, as a connection file's head. */
export function plainServerConnection(c: Connector): string {
  const env = serviceEnv();
  return c.dialect === "pg"
    ? `type: POSTGRESQL\nhost: ${env.pg.host}\nport: ${env.pg.port}\n` +
      `database: ${env.pg.database}\nusername: ${env.pg.user}\n`
    : `type: MARIADB\nhost: ${env.mysql.host}\nport: ${env.mysql.port}\n` +
      `username: ${env.mysql.user}\npassword: "${env.mysql.password}"\nslave-server-ids: [5152]\n`;
}
