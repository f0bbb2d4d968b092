/**
 * Conformance, PostgreSQL and MariaDB: the tables of a streaming id change on `--resume`
 * while a writer changes every table and the other tables keep streaming.
 *
 * 1. `full` of film, customer and rental (Sakila-like tables with varied types).
 * 2. `full --resume --reinitialize FILE`: payment and inventory are added (snapshot, then
 *    their changes), rental is removed (its changes stop), customer and the keyless film_text
 *    are taken again (their snapshot streams are rewritten, their changes go on). `replicant verify` finds every table
 *    of the id equal to its streams, and no cdc stream holds a position twice.
 * 3. The filter file gains `store` (a bigger table) between two runs: `--resume` adds it and
 *    says so; replicant is killed (-9) in the middle of store's snapshot and resumed; then
 *    verify again, every table, and store's snapshot stream holds each row once.
 *
 * A failing run prints its seed; `REPLICANT_TEST_SEED=<seed>` replays the writer's choices.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import mysql from "mysql2/promise";
import pg from "pg";
import type { Redis } from "ioredis";
import { redisClient } from "../helpers/clients.ts";
import { assertPositions, type Dialect, readEntries } from "../helpers/change_log.ts";
import {
  type RunningReplicant,
  runReplicant,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";
import { seededTest, uniqueTag } from "../helpers/test_seed.ts";
import { deleteKeys } from "../helpers/clients.ts";
import { pgSortKeyOfSource } from "../../src/source/postgres/pgoutput_position.ts";
import { mysqlSortKeyOfSource } from "../../src/source/mysql/mysql_position.ts";

const TABLES = [
  "film",
  "film_text",
  "customer",
  "rental",
  "payment",
  "inventory",
  "store",
] as const;
type Table = typeof TABLES[number];
const KEY: Record<Table, string> = {
  film: "film_id",
  // No key: rows are told apart by all their columns (PostgreSQL: REPLICA IDENTITY FULL).
  film_text: "film_id",
  customer: "customer_id",
  rental: "rental_id",
  payment: "payment_id",
  inventory: "inventory_id",
  store: "store_id",
};
const ROWS = 400;
/** Rows of `store`: its snapshot lasts long enough to be killed in the middle. */
const STORE_ROWS = 150_000;

function ddl(dialect: Dialect, q: (t: Table) => string): string[] {
  const ts = dialect === "pg" ? "timestamp(3)" : "datetime(3)";
  const json = dialect === "pg" ? "jsonb" : "json";
  const bool = dialect === "pg" ? "boolean" : "tinyint(1)";
  const blob = dialect === "pg" ? "bytea" : "varbinary(64)";
  return [
    `CREATE TABLE ${q("film")} (film_id int PRIMARY KEY, title varchar(255) NOT NULL,
       description text, release_year int, rental_rate numeric(4,2) NOT NULL,
       length smallint, rating varchar(10), attrs ${json}, last_update ${ts} NOT NULL)`,
    `CREATE TABLE ${q("film_text")} (film_id int NOT NULL, title varchar(255) NOT NULL,
       description text)`,
    ...(dialect === "pg" ? [`ALTER TABLE ${q("film_text")} REPLICA IDENTITY FULL`] : []),
    `CREATE TABLE ${q("customer")} (customer_id int PRIMARY KEY, first_name varchar(45) NOT NULL,
       last_name varchar(45) NOT NULL, email varchar(80), active ${bool} NOT NULL,
       create_date date NOT NULL, balance numeric(10,2), last_update ${ts})`,
    `CREATE TABLE ${q("rental")} (rental_id int PRIMARY KEY, rental_date ${ts} NOT NULL,
       customer_id int NOT NULL, return_date ${ts}, note text)`,
    `CREATE TABLE ${q("payment")} (payment_id int PRIMARY KEY, customer_id int NOT NULL,
       amount numeric(5,2) NOT NULL, payment_date ${ts} NOT NULL, memo varchar(100),
       receipt ${blob})`,
    `CREATE TABLE ${q("inventory")} (inventory_id int PRIMARY KEY, film_id int NOT NULL,
       store_id smallint NOT NULL, big bigint, last_update ${ts} NOT NULL)`,
    `CREATE TABLE ${q("store")} (store_id int PRIMARY KEY, manager varchar(45) NOT NULL,
       address text NOT NULL, ratio double precision, last_update ${ts} NOT NULL)`,
  ];
}

/** A row of `table` with id `id`: column → value (the writer's and the fill's). */
function rowOf(table: Table, id: number, r: () => number): Record<string, unknown> {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const when = new Date(Date.UTC(2024, 0, 1) + Math.floor(r() * 3e10));
  const stamp = when.toISOString().slice(0, 23).replace("T", " ");
  const text = (n: number) =>
    Array.from({ length: n }, () => pick(["ä", "b", "c", " ", "€", "x"])).join("");
  switch (table) {
    case "film":
      return {
        film_id: id,
        title: `FILM ${id} ${text(8)}`,
        description: r() < 0.2 ? null : text(40),
        release_year: 1990 + Math.floor(r() * 30),
        rental_rate: (Math.floor(r() * 999) / 100).toFixed(2),
        length: Math.floor(r() * 180),
        rating: pick(["G", "PG", "PG-13", "R", "NC-17"]),
        attrs: JSON.stringify({ n: Math.floor(r() * 100), tags: [text(3)] }),
        last_update: stamp,
      };
    case "film_text":
      return {
        film_id: id,
        title: `TEXT ${id} ${text(6)}`,
        description: r() < 0.2 ? null : text(30),
      };
    case "customer":
      return {
        customer_id: id,
        first_name: text(6),
        last_name: text(9),
        email: r() < 0.3 ? null : `c${id}@example.org`,
        active: r() < 0.8,
        create_date: stamp.slice(0, 10),
        balance: r() < 0.1 ? null : (Math.floor(r() * 1e7) / 100 - 5e4).toFixed(2),
        last_update: stamp,
      };
    case "rental":
      return {
        rental_id: id,
        rental_date: stamp,
        customer_id: Math.floor(r() * ROWS) + 1,
        return_date: r() < 0.5 ? null : stamp,
        note: r() < 0.5 ? null : text(20),
      };
    case "payment":
      return {
        payment_id: id,
        customer_id: Math.floor(r() * ROWS) + 1,
        amount: (Math.floor(r() * 99999) / 100).toFixed(2),
        payment_date: stamp,
        memo: r() < 0.3 ? null : text(12),
        receipt: Buffer.from(Array.from({ length: 8 }, () => Math.floor(r() * 256))),
      };
    case "inventory":
      return {
        inventory_id: id,
        film_id: Math.floor(r() * ROWS) + 1,
        store_id: Math.floor(r() * 5) + 1,
        big: Math.floor(r() * 2 ** 52) - 2 ** 51,
        last_update: stamp,
      };
    case "store":
      return {
        store_id: id,
        manager: text(10),
        address: text(120),
        ratio: Math.floor(r() * 1e6) / 1e3,
        last_update: stamp,
      };
  }
}

/** The source of one dialect on the test services: a schema (PostgreSQL) or a database. */
interface Source {
  dialect: Dialect;
  /** Qualified SQL name of a table. */
  q(t: Table): string;
  stream(t: Table): string;
  cdc(t: Table): string;
  exec(sql: string, params?: unknown[]): Promise<void>;
  /** Runs statements in one transaction on the writer's connection. */
  tx(statements: [string, unknown[]][]): Promise<void>;
  conn(home: ReturnType<typeof scratchHome>): string;
  filter(tables: Table[]): string;
  reinitialize(add: Table[], remove: Table[], reinit: Table[]): string;
  /** PostgreSQL: the tables of the id's publication; MariaDB: null. */
  published(): Promise<string[] | null>;
  close(): Promise<void>;
}

async function pgSource(tag: string, id: string): Promise<Source> {
  const env = serviceEnv().pg;
  const schema = `tc_${tag}`;
  const open = async () => {
    const c = new pg.Client({
      host: env.host,
      port: env.port,
      user: env.user,
      database: env.database,
    });
    await c.connect();
    return c;
  };
  const db = await open();
  const writer = await open();
  await db.query(`CREATE SCHEMA ${schema}`);
  const slot = `replicant_default_${id}`.replace(/[^a-z0-9_]/g, "_");
  const ph = (sql: string) => {
    let i = 0;
    return sql.replace(/\?/g, () => `$${++i}`);
  };
  return {
    dialect: "pg",
    q: (t) => `${schema}.${t}`,
    stream: (t) => `${env.database}_${schema}_${t}`,
    cdc: (t) => `${env.database}_${schema}_${t}_cdc_logs`,
    exec: async (sql, params) => void await db.query(ph(sql), params),
    async tx(statements) {
      await writer.query("BEGIN");
      try {
        for (const [sql, params] of statements) await writer.query(ph(sql), params);
        await writer.query("COMMIT");
      } catch (err) {
        await writer.query("ROLLBACK").catch(() => {});
        throw err;
      }
    },
    conn: (home) => home.pgConn,
    filter: (tables) =>
      `allow:\n  - catalog: ${env.database}\n    schema: ${schema}\n    types: [TABLE]\n` +
      `    allow:\n` + tables.map((t) => `      ${t}:\n`).join(""),
    reinitialize: (add, remove, reinit) =>
      `catalog: ${env.database}\nschema: ${schema}\nadd-tables: [${add.join(", ")}]\n` +
      `remove-tables: [${remove.join(", ")}]\nreinit-tables: [${reinit.join(", ")}]\n`,
    async published() {
      const res = await db.query(
        "SELECT tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1",
        [slot],
      );
      return res.rows.map((r: { tablename: string }) => r.tablename);
    },
    async close() {
      await db.query(
        "SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1",
        [slot],
      ).catch(() => {});
      await db.query(`DROP PUBLICATION IF EXISTS ${slot}`).catch(() => {});
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await db.end();
      await writer.end();
    },
  };
}

async function mariadbSource(tag: string): Promise<Source> {
  const env = serviceEnv().mysql;
  const database = `tc_${tag}`;
  const open = () =>
    mysql.createConnection({
      host: env.host,
      port: env.port,
      user: env.user,
      password: env.password,
    });
  const db = await open();
  const writer = await open();
  await db.query(`CREATE DATABASE ${database}`);
  const serverId = 3000 + Math.floor(Math.random() * 60_000);
  return {
    dialect: "mysql",
    q: (t) => `${database}.${t}`,
    stream: (t) => `${database}_${t}`,
    cdc: (t) => `${database}_${t}_cdc_logs`,
    exec: async (sql, params) => void await db.query(sql, params),
    async tx(statements) {
      await writer.beginTransaction();
      try {
        for (const [sql, params] of statements) await writer.query(sql, params);
        await writer.commit();
      } catch (err) {
        await writer.rollback().catch(() => {});
        throw err;
      }
    },
    conn: (home) =>
      home.write(
        "mariadb.yaml",
        `type: MARIADB\nhost: ${env.host}\nport: ${env.port}\nusername: ${env.user}\n` +
          `password: "${env.password}"\nslave-server-ids: [${serverId}]\nmax-connections: 6\n`,
      ),
    filter: (tables) =>
      `allow:\n  - catalog: ${database}\n    types: [TABLE]\n    allow:\n` +
      tables.map((t) => `      ${t}:\n`).join(""),
    reinitialize: (add, remove, reinit) =>
      `catalog: ${database}\nadd-tables: [${add.join(", ")}]\n` +
      `remove-tables: [${remove.join(", ")}]\nreinit-tables: [${reinit.join(", ")}]\n`,
    published: () => Promise.resolve(null),
    async close() {
      await db.query(`DROP DATABASE IF EXISTS ${database}`);
      await db.end();
      await writer.end();
    },
  };
}

/** Random inserts, updates and deletes of every table, one to three per transaction. */
class Writer {
  #stop = false;
  #running: Promise<void> | null = null;
  #next = 1_000_000;
  transactions = 0;
  constructor(private readonly src: Source, private readonly r: () => number) {}
  start(): void {
    this.#stop = false;
    this.#running = this.#loop();
  }
  async stop(): Promise<void> {
    this.#stop = true;
    await this.#running;
  }
  async #loop(): Promise<void> {
    const r = this.r;
    while (!this.#stop) {
      const statements: [string, unknown[]][] = [];
      const n = 1 + Math.floor(r() * 3);
      for (let i = 0; i < n; i++) {
        const t = TABLES[Math.floor(r() * TABLES.length)];
        const dice = r();
        const existing = 1 + Math.floor(r() * (t === "store" ? 2000 : ROWS));
        if (dice < 0.35) {
          const row = rowOf(t, this.#next++, r);
          const cols = Object.keys(row);
          statements.push([
            `INSERT INTO ${this.src.q(t)} (${cols.join(", ")}) VALUES (${
              cols.map(() => "?").join(", ")
            })`,
            Object.values(row),
          ]);
        } else if (dice < 0.85) {
          const row = rowOf(t, existing, r);
          const cols = Object.keys(row).filter((c) => c !== KEY[t]);
          statements.push([
            `UPDATE ${this.src.q(t)} SET ${cols.map((c) => `${c} = ?`).join(", ")} WHERE ${
              KEY[t]
            } = ?`,
            [...cols.map((c) => row[c]), existing],
          ]);
        } else {
          statements.push([`DELETE FROM ${this.src.q(t)} WHERE ${KEY[t]} = ?`, [existing]]);
        }
      }
      await this.src.tx(statements);
      this.transactions++;
      await new Promise((res) => setTimeout(res, 3));
    }
  }
}

async function fill(src: Source, r: () => number): Promise<void> {
  for (const sql of ddl(src.dialect, src.q)) await src.exec(sql);
  for (const t of TABLES) {
    const n = t === "store" ? STORE_ROWS : ROWS;
    for (let from = 1; from <= n; from += 500) {
      const rows = Array.from(
        { length: Math.min(500, n - from + 1) },
        (_, i) => rowOf(t, from + i, r),
      );
      const cols = Object.keys(rows[0]);
      const ph = `(${cols.map(() => "?").join(", ")})`;
      await src.tx([[
        `INSERT INTO ${src.q(t)} (${cols.join(", ")}) VALUES ${rows.map(() => ph).join(", ")}`,
        rows.flatMap((row) => Object.values(row)),
      ]]);
    }
  }
}

/** `--id ID --home DIR` of a test's replication. */
function idArgs(id: string, home: ReturnType<typeof scratchHome>): string[] {
  return ["--id", id, "--home", home.dir];
}

/** SIGTERM: replicant finishes what it is writing and exits 0. */
async function stopCleanly(run: RunningReplicant) {
  Deno.kill(run.pid, "SIGTERM");
  const res = await run.done;
  assert.equal(res.code, 0, res.stderr);
  return res;
}

/** Kills a replicant a failed test left running, drops the sources and every key of the id. */
async function cleanUp(run: RunningReplicant | null, sources: Source[], redis: Redis, id: string) {
  if (run) {
    try {
      Deno.kill(run.pid, "SIGKILL");
    } catch { /* gone */ }
    await run.done;
  }
  for (const src of sources) {
    await src.close().catch(() => {});
    await deleteKeys(redis, `${src.stream("film").replace(/film$/, "")}*`);
  }
  await deleteKeys(redis, `replicate_io_*_default_${id}`);
  redis.disconnect();
}

async function checkpoint(redis: Redis, id: string): Promise<Record<string, string>> {
  return await redis.hgetall(`replicate_io_checkpoint_default_${id}`);
}

/** No cdc stream holds a change twice or out of order (exactly once, with the verify). */
async function assertExactlyOnce(redis: Redis, src: Source, tables: readonly Table[]) {
  for (const t of tables) {
    const stream = src.cdc(t);
    assertPositions(await readEntries(redis, stream), src.dialect, stream);
  }
}

/**
 * An added table's cdc stream holds only changes after its snapshot's point (those before
 * are in the snapshot): none twice, none that a later snapshot after a crash covers.
 */
async function assertAfterPoint(redis: Redis, src: Source, id: string, tables: Table[]) {
  const state = await checkpoint(redis, id);
  const sortKeyOf = src.dialect === "pg" ? pgSortKeyOfSource : mysqlSortKeyOfSource;
  for (const t of tables) {
    const stream = src.cdc(t);
    const point = state[`snapshot:point:${stream}`];
    assert.ok(point, `${stream}: its snapshot point is recorded`);
    assert.equal(state[`snapshot:skip-through:${stream}`], point);
    const entries = (await readEntries(redis, stream)).filter((e) => !e.tombstone);
    assert.ok(entries.length > 0, `${stream} has changes`);
    for (const e of entries) {
      const key = sortKeyOf(e.source);
      assert.ok(key !== null && key > point, `${stream}: entry ${e.id} at ${key} ≤ ${point}`);
    }
  }
}

async function verify(args: string[], tables: Table[]): Promise<void> {
  const res = await runReplicant([...args, "--log-format", "json", "--wait-timeout", "120"]);
  const events = res.stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) =>
    JSON.parse(l)
  );
  const verdicts = new Map<string, string>();
  for (const e of events) {
    if (e.event === "verify_table") verdicts.set(String(e.table).split(".").at(-1)!, e.result);
  }
  assert.deepEqual(
    Object.fromEntries([...verdicts].sort()),
    Object.fromEntries(tables.map((t) => [t, "equal"]).sort()),
    `verify: ${res.stdout}\n${res.stderr}`,
  );
  assert.equal(res.code, 0, res.stderr);
}

async function scenario(dialect: Dialect, seed: number, r: () => number): Promise<void> {
  const tag = uniqueTag();
  const id = `tc-${dialect}-${tag}`;
  const src = dialect === "pg" ? await pgSource(tag, id) : await mariadbSource(tag);
  const redis = redisClient();
  const home = scratchHome();
  let run: RunningReplicant | null = null;
  const writer = new Writer(src, r);
  const t0 = performance.now();
  const lap = (what: string) =>
    console.log(`${dialect} ${what}: ${Math.round(performance.now() - t0)} ms`);
  try {
    await fill(src, r);
    lap("filled");
    const conn = src.conn(home);
    const filterFile = home.write(
      "filter.yaml",
      src.filter(["film", "film_text", "customer", "rental"]),
    );
    const extractor = home.write("extractor.yaml", "snapshot:\n  fetch-size-rows: 500\n");
    const applier = home.write(
      "applier.yaml",
      "snapshot:\n  batch-size-rows: 100\nrealtime:\n  batch-size-rows: 50\n",
    );
    const files = [conn, home.redisConn, "--filter", filterFile, "--extractor", extractor];
    const args = (...extra: string[]) => [
      "full",
      ...files,
      "--applier",
      applier,
      ...idArgs(id, home),
      ...extra,
    ];
    const verifyArgs = ["verify", ...files, ...idArgs(id, home)];
    const stop = async () => {
      const res = await stopCleanly(run!);
      run = null;
      return res;
    };
    const len = (t: Table) => redis.xlen(src.cdc(t));
    const grows = async (t: Table, what: string) => {
      const from = await len(t);
      await waitFor(async () => (await len(t)) > from + 5, { what, timeoutMs: 60_000 });
    };

    // 1. film, film_text, customer, rental; the writer changes every table from now on.
    writer.start();
    run = startReplicant(args("--overwrite"));
    await waitFor(async () => (await checkpoint(redis, id))["snapshot:complete"] === "1", {
      what: "the first snapshot",
      timeoutMs: 60_000,
    });
    await grows("film", "film's changes");
    await stop();
    lap("first run");

    // 2. add payment and inventory, remove rental, take customer again.
    const reinit = home.write(
      "reinit.yaml",
      src.reinitialize(["payment", "inventory"], ["rental"], ["customer", "film_text"]),
    );
    const usage = await runReplicant(args("--reinitialize", reinit));
    assert.equal(usage.code, 2, "--reinitialize goes with --resume: " + usage.stderr);
    assert.match(usage.stderr, /--reinitialize .*--resume/);
    run = startReplicant(args("--resume", "--reinitialize", reinit));
    await waitFor(async () => {
      const state = await checkpoint(redis, id);
      return ["payment", "inventory", "customer", "film_text"].every((t) =>
        state[`snapshot:done:${src.stream(t as Table)}`] === "1"
      ) && !Object.keys(state).some((k) => k.startsWith("reinit:pending:"));
    }, { what: "the joins", timeoutMs: 120_000 });
    lap("joins done");
    const published = await src.published();
    if (published !== null) {
      // The publication gained the added tables and lost the removed one.
      assert.deepEqual(published, ["customer", "film", "film_text", "inventory", "payment"]);
    }
    await grows("payment", "payment's changes");
    await grows("inventory", "inventory's changes");
    await grows("film", "film's changes after the joins");
    const rentalAfter = await len("rental");
    await grows("customer", "customer's changes");
    assert.equal(await len("rental"), rentalAfter, "rental's changes stop once it is removed");
    await verify(verifyArgs, ["film", "film_text", "customer", "payment", "inventory"]);
    await assertExactlyOnce(redis, src, [
      "film",
      "film_text",
      "customer",
      "payment",
      "inventory",
      "rental",
    ]);
    await assertAfterPoint(redis, src, id, ["payment", "inventory"]);
    const phase2 = await stop();
    // The file brought payment in and took rental out; the terminal says so, and when
    // payment's snapshot is complete.
    assert.match(phase2.stderr, /payment entered the selection \([^)]*reinit\.yaml: add-tables\)/);
    assert.match(phase2.stderr, /rental left the selection \([^)]*reinit\.yaml: remove-tables\)/);
    assert.match(phase2.stderr, /payment joined: its snapshot \(\d+ rows\) is complete/);
    lap("reinitialize verified");

    // 3. the filter gains store; kill -9 in the middle of its snapshot, then --resume.
    home.write("filter.yaml", src.filter(["film", "film_text", "customer", "rental", "store"]));
    run = startReplicant(args("--resume"));
    const storeStream = src.stream("store");
    // Store's changes after its snapshot's point are already streaming when it is killed: the
    // resume must not keep them (its new snapshot covers some of them).
    await waitFor(async () => (await redis.xlen(storeStream)) > 2000 && (await len("store")) >= 3, {
      what: "part of store's snapshot, and some of its changes",
      timeoutMs: 60_000,
      intervalMs: 10,
    });
    Deno.kill(run.pid, "SIGKILL");
    const killed = await run.done;
    run = null;
    const state = await checkpoint(redis, id);
    assert.equal(
      state[`snapshot:done:${storeStream}`],
      undefined,
      "the kill lands in the middle of store's snapshot",
    );
    assert.equal(state[`reinit:pending:${storeStream}`], "add");
    assert.match(killed.stdout + killed.stderr, /store entered the selection/);
    lap("killed in store's snapshot");
    run = startReplicant(args("--resume"));
    // The other tables stream while store's snapshot is being taken.
    const filmBefore = await len("film");
    let streamedDuringCopy = false;
    await waitFor(async () => {
      const s = await checkpoint(redis, id);
      const done = s[`snapshot:done:${storeStream}`] === "1" &&
        s[`reinit:pending:${storeStream}`] === undefined;
      if (!done && (await len("film")) > filmBefore + 2) streamedDuringCopy = true;
      return done;
    }, { what: "store's snapshot after the kill", timeoutMs: 120_000, intervalMs: 20 });
    assert.ok(streamedDuringCopy, "film's changes stream while store's snapshot is taken");
    await grows("store", "store's changes");
    await grows("payment", "payment's changes after the kill");
    await verify(verifyArgs, ["film", "film_text", "customer", "payment", "inventory", "store"]);
    await assertExactlyOnce(redis, src, [
      "film",
      "film_text",
      "customer",
      "payment",
      "inventory",
      "store",
    ]);
    await assertAfterPoint(redis, src, id, ["payment", "inventory", "store"]);
    // Each row of store is in its snapshot stream once.
    const keys = new Set<string>();
    for (const e of await readEntries(redis, storeStream)) {
      const k = JSON.stringify(e.key);
      assert.ok(!keys.has(k), `store's snapshot stream holds ${k} twice`);
      keys.add(k);
    }
    await writer.stop();
    await stop();
    lap(`done (${writer.transactions} transactions written)`);
  } finally {
    await writer.stop().catch(() => {});
    await cleanUp(run as RunningReplicant | null, [src], redis, id);
  }
  void seed;
}

/**
 * A `realtime` id (no snapshot of its own): a table the edited filter adds joins it with a
 * snapshot at its point while the others stream, and replays into the table.
 */
async function realtimeScenario(dialect: Dialect, r: () => number): Promise<void> {
  const tag = uniqueTag();
  const id = `tcr-${dialect}-${tag}`;
  const src = dialect === "pg" ? await pgSource(tag, id) : await mariadbSource(tag);
  const redis = redisClient();
  const home = scratchHome();
  let run: RunningReplicant | null = null;
  const writer = new Writer(src, r);
  try {
    await fill(src, r);
    const conn = src.conn(home);
    const filterFile = home.write("filter.yaml", src.filter(["film", "rental"]));
    const files = [conn, home.redisConn, "--filter", filterFile];
    const args = (...extra: string[]) => ["realtime", ...files, ...idArgs(id, home), ...extra];
    const len = (t: Table) => redis.xlen(src.cdc(t));
    const stop = async () => {
      const res = await stopCleanly(run!);
      run = null;
      return res;
    };
    writer.start();
    run = startReplicant(args("--overwrite"));
    await waitFor(async () => (await len("film")) > 5, {
      what: "film's changes",
      timeoutMs: 60_000,
    });
    await stop();
    home.write("filter.yaml", src.filter(["film", "payment"]));
    run = startReplicant(args("--resume"));
    await waitFor(async () => {
      const s = await checkpoint(redis, id);
      return s[`snapshot:done:${src.stream("payment")}`] === "1";
    }, { what: "payment's snapshot", timeoutMs: 60_000 });
    const from = await len("payment");
    await waitFor(async () => (await len("payment")) > from + 5, {
      what: "payment's changes",
      timeoutMs: 60_000,
    });
    const rental = await len("rental");
    await verify(["verify", ...files, ...idArgs(id, home), "--tables", "payment"], [
      "payment",
    ]);
    assert.equal(await len("rental"), rental, "rental left the selection: no more changes");
    await assertExactlyOnce(redis, src, ["film", "payment", "rental"]);
    await assertAfterPoint(redis, src, id, ["payment"]);
    const out = await stop();
    assert.match(out.stdout + out.stderr, /payment entered the selection \(the filter\)/);
    assert.match(out.stdout + out.stderr, /rental left the selection/);
    await writer.stop();
  } finally {
    await writer.stop().catch(() => {});
    await cleanUp(run as RunningReplicant | null, [src], redis, id);
  }
}

/**
 * MariaDB reads the binlog of the filter's databases only: a table a reinitialize file adds
 * from another database is read too (its changes arrive, and it replays into the table).
 */
seededTest("reinitialize adds a table of another database (mariadb)", async (_seed, r) => {
  const tag = uniqueTag();
  const id = `tco-mysql-${tag}`;
  const main = await mariadbSource(tag);
  const other = await mariadbSource(`${tag}o`);
  const redis = redisClient();
  const home = scratchHome();
  let run: RunningReplicant | null = null;
  const writers = [new Writer(main, r), new Writer(other, r)];
  try {
    await fill(main, r);
    await fill(other, r);
    const conn = main.conn(home);
    const filterFile = home.write("filter.yaml", main.filter(["film"]));
    const files = [conn, home.redisConn, "--filter", filterFile];
    const args = (...extra: string[]) => ["realtime", ...files, ...idArgs(id, home), ...extra];
    const stop = async () => {
      const res = await stopCleanly(run!);
      run = null;
      return res;
    };
    for (const w of writers) w.start();
    run = startReplicant(args("--overwrite"));
    await waitFor(async () => (await redis.xlen(main.cdc("film"))) > 5, {
      what: "film's changes",
      timeoutMs: 60_000,
    });
    await stop();
    const reinit = home.write("reinit.yaml", other.reinitialize(["payment"], [], []));
    run = startReplicant(args("--resume", "--reinitialize", reinit));
    await waitFor(async () => {
      const s = await checkpoint(redis, id);
      return s[`snapshot:done:${other.stream("payment")}`] === "1";
    }, { what: "payment's snapshot", timeoutMs: 60_000 });
    const from = await redis.xlen(other.cdc("payment"));
    await waitFor(async () => (await redis.xlen(other.cdc("payment"))) > from + 5, {
      what: "changes of the other database's payment",
      timeoutMs: 60_000,
    });
    // A realtime id has no snapshot of film: only payment replays into its table.
    await verify(["verify", ...files, ...idArgs(id, home), "--tables", "payment"], [
      "payment",
    ]);
    await assertAfterPoint(redis, other, id, ["payment"]);
    await stop();
  } finally {
    for (const w of writers) await w.stop().catch(() => {});
    await cleanUp(run as RunningReplicant | null, [main, other], redis, id);
  }
}, { sanitizeOps: false, sanitizeResources: false });

for (const dialect of ["pg", "mysql"] as const) {
  seededTest(
    `realtime id, filter edited between runs (${
      dialect === "pg" ? "pg" : "mariadb"
    }): the added table joins, the removed one stops`,
    (_seed, rand) => realtimeScenario(dialect, rand),
    { sanitizeOps: false, sanitizeResources: false },
  );
}

for (const dialect of ["pg", "mysql"] as const) {
  seededTest(
    `table changes on --resume (${
      dialect === "pg" ? "pg" : "mariadb"
    }): add, remove, reinit, filter edit, kill -9 in an added table's snapshot`,
    (seed, rand) => scenario(dialect, seed, rand),
    { sanitizeOps: false, sanitizeResources: false },
  );
}

Deno.test("--help of realtime and full names --reinitialize; snapshot has none", async () => {
  for (const mode of ["realtime", "full"]) {
    const help = await runReplicant([mode, "--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /--reinitialize <file>\s+with --resume: add, remove or take again/);
  }
  const snapshot = await runReplicant(["snapshot", "--help"]);
  assert.doesNotMatch(snapshot.stdout, /--reinitialize/);
});

/**
 * The reinitialize file's mistakes and a gap stop the run before anything changes: a
 * `remove-tables` name the id does not replicate is refused (exit 2, file and key), and when
 * the id's slot is gone, `--resume --reinitialize` with `reinit-tables` stops on the gap
 * (exit 5) with the table's snapshot stream as it was.
 */
seededTest(
  "reinitialize: a mistyped remove-tables and a gap change nothing (pg)",
  async (_s, r) => {
    const tag = uniqueTag();
    const id = `tcg-pg-${tag}`;
    const src = await pgSource(tag, id);
    const redis = redisClient();
    const home = scratchHome();
    try {
      await fill(src, r);
      const files = [
        src.conn(home),
        home.redisConn,
        "--filter",
        home.write("filter.yaml", src.filter(["film", "rental"])),
      ];
      const args = (
        ...extra: string[]
      ) => ["full", ...files, ...idArgs(id, home), ...extra];
      const first = await runReplicant(args("--overwrite", "--terminate-post-snapshot"));
      assert.equal(first.code, 0, first.stderr);
      const rows = await redis.xlen(src.stream("film"));
      assert.equal(rows, ROWS);
      // The id streams a while, so its checkpoint is a realtime position.
      const streaming = startReplicant(args("--resume"));
      await src.exec(`UPDATE ${src.q("film")} SET title = 'changed' WHERE film_id = 1`);
      await waitFor(
        async () => (await checkpoint(redis, id))["realtime:checkpoint"] !== undefined,
        {
          what: "a realtime checkpoint",
          timeoutMs: 60_000,
        },
      );
      await stopCleanly(streaming);

      const typo = home.write("typo.yaml", src.reinitialize([], ["rentl" as Table], []));
      const refused = await runReplicant(args("--resume", "--reinitialize", typo));
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /typo\.yaml/);
      assert.match(refused.stderr, /remove-tables/);
      assert.match(refused.stderr, /rentl: not replicated by id/);
      const state = await checkpoint(redis, id);
      assert.doesNotMatch(state["selection:overrides"] ?? "", /rentl/, "nothing recorded");

      await src.exec(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ?",
        [`replicant_default_${id}`.replace(/[^a-z0-9_]/g, "_")],
      );
      const before = await redis.xrange(src.stream("film"), "-", "+");
      const reinit = home.write("reinit.yaml", src.reinitialize(["payment"], [], ["film"]));
      const gap = await runReplicant(args("--resume", "--reinitialize", reinit));
      assert.equal(gap.code, 5, gap.stderr);
      // Untouched: the same entries (a rewritten stream has new ids), nothing of the added table.
      assert.deepEqual(await redis.xrange(src.stream("film"), "-", "+"), before);
      assert.equal(await redis.exists(src.stream("payment")), 0);
    } finally {
      await cleanUp(null, [src], redis, id);
    }
  },
  { sanitizeOps: false, sanitizeResources: false },
);
