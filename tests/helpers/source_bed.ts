/**
 * A source database prepared for the end-to-end and chaos tests: tables
 * `(id int primary key, v text, n bigint)` filled with known rows, a table outside the
 * selection (`noise`) whose transactions sit between the selected ones in the source's log,
 * the generator's transaction runner, replicant's connection file and filter, and what it
 * takes to read the tables back and to clean up. PostgreSQL (a schema of a database) or
 * MariaDB (a database), on the private services or on a throwaway server.
 */
import mysql from "mysql2/promise";
import pg from "pg";
import {
  defaultSlotName,
  dropPublication,
  dropSlot,
} from "../../src/source/postgres/pg_replication_slot.ts";
import {
  canonical,
  ChangeGenerator,
  type Dialect,
  mysqlTxRunner,
  pgTxRunner,
  type TxRunner,
} from "./change_log.ts";
import { deleteKeys, type redisClient } from "./clients.ts";
import type { ScratchHome } from "./replicant.ts";
import { serviceEnv } from "./services.ts";

/** Where the source server listens and how to log in. */
export interface SourceServer {
  host: string;
  port: number;
  user: string;
  password: string;
  /** PostgreSQL: the database that holds the schema (MariaDB: unused). */
  database: string;
}

export interface SourceBedOptions {
  /** Unique name part: the schema / database is `<prefix>_<tag>`. */
  prefix: string;
  tag: string;
  /** Replication id (PostgreSQL: names the slot and publication replicant creates). */
  id: string;
  /** Logical table names; each becomes `<schema or database>.<name>`. */
  tables: string[];
  /** Rows 1..n that each table starts with. */
  rows(table: string): number;
  /** The server (default: the private services of scripts/services). */
  server?: SourceServer;
  /** MariaDB: the binlog client server id written into the connection file. */
  serverId?: number;
}

export interface SourceBed {
  dialect: Dialect;
  /** Logical name → SQL name. */
  tables: Record<string, string>;
  snapStream(table: string): string;
  cdcStream(table: string): string;
  placeholders: "dollar" | "question";
  /** One transaction of the generator; returns its token. */
  run: TxRunner;
  /** One insert into the table outside the selection. */
  noise(): Promise<unknown>;
  /** The SQL name of the table outside the selection, `(id, v)` with ids from 1. */
  noiseTable: string;
  /** Inserts rows `from..to` (`v` the md5 of the id, `n` the id) in one statement. */
  insertRange(table: string, from: number, to: number): Promise<void>;
  /** Replicant's extractor YAML lines that turn on a heartbeat every `intervalMs`. */
  heartbeat(intervalMs: number): string;
  /** A generator of this bed's transactions that knows the rows the tables start with. */
  generator(seed: number, pauseMs?: number): ChangeGenerator;
  /**
   * Replicant's connection file for this server, or for `port` (a proxy in front of it),
   * with `extra` YAML lines appended.
   */
  connFile(home: ScratchHome, options?: { port?: number; extra?: string }): string;
  /** Replicant's filter: the selected tables only. */
  filter: string;
  /** PostgreSQL: the slot (and publication) replicant uses for the id; MariaDB: null. */
  slot: string | null;
  /** The table's rows now: id → canonical JSON of every column. */
  rows(table: string): Promise<Map<number, string>>;
  /** A fresh admin connection (PostgreSQL client or MariaDB connection) for interference. */
  query(sql: string): Promise<unknown[]>;
  /** Opens the bed's connections again (after the server restarted). */
  reconnect(): Promise<void>;
  close(): Promise<void>;
}

/** A generator over `bed`'s tables, seeded with their starting rows 1..rows(t). */
function generatorOf(
  bed: Pick<SourceBed, "tables" | "placeholders" | "run">,
  rows: (table: string) => number,
  seed: number,
  pauseMs = 3,
): ChangeGenerator {
  const generator = new ChangeGenerator({ ...bed, seed, pauseMs });
  for (const t of Object.keys(bed.tables)) {
    generator.seed(t, Array.from({ length: rows(t) }, (_, i) => i + 1));
  }
  return generator;
}

function defaultServer(dialect: Dialect): SourceServer {
  const env = serviceEnv();
  return dialect === "pg" ? { ...env.pg, password: "" } : {
    host: env.mysql.host,
    port: env.mysql.port,
    user: env.mysql.user,
    password: env.mysql.password,
    database: "",
  };
}

const filterOf = (catalog: string, schema: string | null, tables: string[]) =>
  `allow:\n  - catalog: ${catalog}\n` + (schema ? `    schema: ${schema}\n` : "") +
  `    types: [TABLE]\n    allow:\n` + tables.map((t) => `      ${t}:\n`).join("");

export async function pgSourceBed(o: SourceBedOptions): Promise<SourceBed> {
  const server = o.server ?? defaultServer("pg");
  const schema = `${o.prefix}_${o.tag}`;
  const slot = defaultSlotName("default", o.id);
  const connect = async () => {
    const c = new pg.Client({
      host: server.host,
      port: server.port,
      user: server.user,
      password: server.password || undefined,
      database: server.database,
    });
    await c.connect();
    // A restart of the server ends the connections; the bed reconnects on demand.
    c.on("error", () => {});
    return c;
  };
  let db = await connect();
  let writer = await connect();
  let noisy = await connect();
  const tables = Object.fromEntries(o.tables.map((t) => [t, `${schema}.${t}`]));
  await db.query(`CREATE SCHEMA ${schema}`);
  for (const [t, sql] of Object.entries(tables)) {
    await db.query(`CREATE TABLE ${sql} (id int PRIMARY KEY, v text NOT NULL, n bigint)`);
    await db.query(
      `INSERT INTO ${sql} SELECT g, md5(g::text), g::bigint * 1000003 FROM generate_series(1, ${
        o.rows(t)
      }) g`,
    );
  }
  const insertRange = async (t: string, from: number, to: number) => {
    await db.query(
      `INSERT INTO ${
        tables[t]
      } (id, v, n) SELECT g, md5(g::text), g FROM generate_series(${from}, ${to}) g`,
    );
  };
  await db.query(`CREATE TABLE ${schema}.noise (id serial PRIMARY KEY, v text)`);
  const placeholders = "dollar";
  const run = pgTxRunner(() => writer);
  return {
    dialect: "pg",
    tables,
    snapStream: (t) => `${server.database}_${schema}_${t}`,
    cdcStream: (t) => `${server.database}_${schema}_${t}_cdc_logs`,
    placeholders,
    run,
    noise: () => noisy.query(`INSERT INTO ${schema}.noise (v) VALUES ('x')`),
    noiseTable: `${schema}.noise`,
    insertRange,
    heartbeat: (ms) => `realtime:\n  heartbeat:\n    interval-ms: ${ms}\n`,
    generator: (seed, pauseMs) => generatorOf({ tables, placeholders, run }, o.rows, seed, pauseMs),
    connFile: (home, { port, extra } = {}) =>
      home.write(
        "postgresql.yaml",
        `type: POSTGRESQL\nhost: ${server.host}\nport: ${port ?? server.port}\n` +
          `database: ${server.database}\nusername: ${server.user}\n` +
          (server.password ? `password: "${server.password}"\n` : "") + "max-connections: 6\n" +
          (extra ?? ""),
      ),
    filter: filterOf(server.database, schema, o.tables),
    slot,
    async rows(t) {
      const res = await db.query<{ j: Record<string, unknown> }>(
        `SELECT to_jsonb(t) AS j FROM ${tables[t]} t`,
      );
      return new Map(
        res.rows.map((r: { j: Record<string, unknown> }) => [Number(r.j.id), canonical(r.j)]),
      );
    },
    async query(sql) {
      return (await db.query(sql)).rows;
    },
    async reconnect() {
      for (const c of [db, writer, noisy]) await c.end().catch(() => {});
      [db, writer, noisy] = [await connect(), await connect(), await connect()];
    },
    async close() {
      await dropSlot(db, slot).catch(() => {});
      await dropPublication(db, slot).catch(() => {});
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      for (const c of [db, writer, noisy]) await c.end().catch(() => {});
    },
  };
}

export async function mariadbSourceBed(o: SourceBedOptions): Promise<SourceBed> {
  const server = o.server ?? defaultServer("mysql");
  const database = `${o.prefix}_${o.tag}`;
  const connect = async () => {
    const c = await mysql.createConnection({
      host: server.host,
      port: server.port,
      user: server.user,
      password: server.password,
    });
    c.on("error", () => {});
    return c;
  };
  let db = await connect();
  let writer = await connect();
  let noisy = await connect();
  const tables = Object.fromEntries(o.tables.map((t) => [t, `${database}.${t}`]));
  await db.query(`CREATE DATABASE ${database}`);
  await db.query(`USE ${database}`); // seq_1_to_N needs a current database
  for (const [t, sql] of Object.entries(tables)) {
    await db.query(`CREATE TABLE ${sql} (id int PRIMARY KEY, v varchar(64) NOT NULL, n bigint)`);
    // seq_1_to_0 would count down: an empty table takes no rows.
    if (o.rows(t) > 0) {
      await db.query(
        `INSERT INTO ${sql} SELECT seq, md5(seq), seq * 1000003 FROM seq_1_to_${o.rows(t)}`,
      );
    }
  }
  const insertRange = async (t: string, from: number, to: number) => {
    await db.query(
      `INSERT INTO ${tables[t]} (id, v, n) SELECT seq, md5(seq), seq FROM seq_${from}_to_${to}`,
    );
  };
  await db.query(`CREATE TABLE ${database}.noise (id int AUTO_INCREMENT PRIMARY KEY, v text)`);
  const serverId = o.serverId ?? 2000 + Math.floor(Math.random() * 60_000);
  const placeholders = "question";
  const run = mysqlTxRunner(() => writer);
  return {
    dialect: "mysql",
    tables,
    snapStream: (t) => `${database}_${t}`,
    cdcStream: (t) => `${database}_${t}_cdc_logs`,
    placeholders,
    run,
    noise: () => noisy.query(`INSERT INTO ${database}.noise (v) VALUES ('x')`),
    noiseTable: `${database}.noise`,
    insertRange,
    // MariaDB has no place of its own for the heartbeat table: it goes into the bed's database.
    heartbeat: (ms) =>
      `realtime:\n  heartbeat:\n    enable: true\n    catalog: ${database}\n    interval-ms: ${ms}\n`,
    generator: (seed, pauseMs) => generatorOf({ tables, placeholders, run }, o.rows, seed, pauseMs),
    connFile: (home, { port, extra } = {}) =>
      home.write(
        "mysql.yaml",
        `type: MARIADB\nhost: ${server.host}\nport: ${port ?? server.port}\n` +
          `username: ${server.user}\npassword: "${server.password}"\n` +
          `slave-server-ids: [${serverId}]\nmax-connections: 6\n` + (extra ?? ""),
      ),
    filter: filterOf(database, null, o.tables),
    slot: null,
    async rows(t) {
      const [rows] = await db.query(`SELECT id, v, n FROM ${tables[t]}`);
      return new Map(
        (rows as { id: number; v: string; n: number }[]).map((r) => [Number(r.id), canonical(r)]),
      );
    },
    async query(sql) {
      const [rows] = await db.query(sql);
      return rows as unknown[];
    },
    async reconnect() {
      for (const c of [db, writer, noisy]) await c.end().catch(() => c.destroy());
      [db, writer, noisy] = [await connect(), await connect(), await connect()];
    },
    async close() {
      await db.query(`DROP DATABASE IF EXISTS ${database}`);
      for (const c of [db, writer, noisy]) await c.end().catch(() => c.destroy());
    },
  };
}

/** The bed of `dialect`. */
export function sourceBed(dialect: Dialect, o: SourceBedOptions): Promise<SourceBed> {
  return dialect === "pg" ? pgSourceBed(o) : mariadbSourceBed(o);
}

/**
 * A test's cleanup of a bed: its schema or database (and PostgreSQL slot), its streams and
 * the state of replication `id` in Redis.
 */
export async function removeBed(
  bed: SourceBed,
  redis: ReturnType<typeof redisClient>,
  id: string,
): Promise<void> {
  await bed.close().catch(() => {});
  await deleteKeys(redis, `${bed.snapStream("")}*`);
  await deleteKeys(redis, `replicate_io_*_default_${id}`);
}
