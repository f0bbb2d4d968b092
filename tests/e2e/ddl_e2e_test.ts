/**
 * End-to-end: DDL mid-stream through the binary, PostgreSQL and MariaDB. `replicate
 * realtime` with `ddl-replication: enable: true` follows ADD, DROP and RENAME COLUMN and a
 * type change, with rows before and after each change (PostgreSQL also inside the same
 * transaction), and is killed with SIGKILL between a DDL and the rows after it, which come
 * while it is down with one more DDL, then resumed. A table created mid-stream replicates, and
 * one renamed into the selection has its rows copied into its snapshot stream first. Every data entry names a schema version whose columns
 * are exactly the keys of its row; every row has the values it was written with; the DDL
 * stream lists each change once, in order, with the column lists before and after.
 */
import assert from "node:assert/strict";
import type pg from "pg";
import mysql from "mysql2/promise";
import type { Redis } from "ioredis";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";
import { readSchemaDump } from "../../src/sink/redis/schema_dump_store.ts";
import type { SchemaDumpEntry } from "../../src/schema/schema_dump.ts";
import { dropPublication, dropSlot } from "../../src/source/postgres/pg_replication_slot.ts";

interface DataEntry {
  op: string;
  row: Record<string, unknown>;
  version: number;
}

async function readData(redis: Redis, stream: string): Promise<DataEntry[]> {
  const out: DataEntry[] = [];
  for (const [, f] of await redis.xrange(stream, "-", "+") as [string, string[]][]) {
    if (f[1] === "default") continue; // tombstone
    const v = JSON.parse(f[1]);
    out.push({ op: v.op, row: v.after ?? v.before, version: v.source.schema_version });
  }
  return out;
}

interface DdlEntry {
  table: string;
  statement: string;
  before: { version: number; columns: { name: string; type: string }[] } | null;
  after: { version: number; columns: { name: string; type: string }[] } | null;
}

async function readDdl(redis: Redis, stream: string): Promise<DdlEntry[]> {
  return (await redis.xrange(stream, "-", "+") as [string, string[]][]).map(([, f]) => {
    const m = new Map<string, string>();
    for (let i = 0; i < f.length; i += 2) m.set(f[i], f[i + 1]);
    assert.equal(m.get("op"), "ddl");
    return {
      table: m.get("table")!,
      statement: m.get("statement")!,
      before: JSON.parse(m.get("before")!),
      after: JSON.parse(m.get("after")!),
    };
  });
}

/** Every entry names a version of the dump whose columns are exactly its row's keys. */
function assertVersions(entries: DataEntry[], dump: SchemaDumpEntry[], table: string) {
  const versions = new Map(dump.filter((e) => e.id.table === table).map((e) => [e.version, e]));
  for (const e of entries) {
    const v = versions.get(e.version);
    assert.ok(v, `entry ${JSON.stringify(e)} names version ${e.version}, not in the dump`);
    assert.deepEqual(
      Object.keys(e.row),
      v.columns.map((c) => c.name),
      `row ${JSON.stringify(e.row)} vs version ${e.version}`,
    );
  }
}

interface Dialect {
  name: string;
  exec(sql: string): Promise<void>;
  /** Statements in one transaction (MySQL: DDL commits implicitly, so never mixed). */
  tx(sqls: string[]): Promise<void>;
  table: string;
  sourceConn(home: ReturnType<typeof scratchHome>): string;
  filter: string;
  dataStream: string;
  /** `old` (qualified) renamed to `name` in the same database/schema. */
  rename(old: string, name: string): string;
  /** A table of its own whose first row tells that realtime streams. */
  probeInsert: string;
  probeStream: string;
  /**
   * Resolves once the changes of a table that just entered the selection are replicated
   * (PostgreSQL: Replicant added it to its publication); absent: at once (MySQL's binlog).
   */
  joined?(table: string): Promise<void>;
}

async function scenario(d: Dialect, id: string, redis: Redis, expectSameTx: boolean) {
  const home = scratchHome();
  const ddlStream = `replicate_io_schema_change_log_default_${id}`;
  const dumpStream = `replicate_io_replication_schema_default_${id}`;
  const args = (mode: string) => [
    "realtime",
    d.sourceConn(home),
    home.redisConn,
    "--extractor",
    home.write(
      "extractor.yaml",
      "realtime:\n  ddl-replication:\n    enable: true\n  heartbeat:\n    enable: true\n    interval-ms: 200\n",
    ),
    "--applier",
    home.write("applier.yaml", "include-schema: false\n"),
    "--filter",
    home.write("filter.yaml", d.filter),
    "--id",
    id,
    "--home",
    home.dir,
    mode,
  ];
  let run: RunningReplicant | null = startReplicant(args("--overwrite"));
  /** Stops the run (it may have ended by itself) and gives its stderr for a failure. */
  const killed = async () => {
    try {
      run?.kill("SIGKILL");
    } catch { /* already gone */ }
    const out = await run?.done;
    run = null;
    return out?.stderr ?? "";
  };
  /** Waits for a condition of the run; a timeout carries the run's stderr. */
  const until = async (cond: () => Promise<boolean>, what: string) => {
    try {
      await waitFor(cond, { timeoutMs: 30_000, what });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await killed()}`);
    }
  };
  const upTo = (n: number, what: string) =>
    until(async () => (await readData(redis, d.dataStream)).length >= n, what);
  try {
    // Realtime is streaming once a row of the probe table arrives.
    await waitFor(async () => {
      await d.exec(d.probeInsert);
      return (await redis.xlen(d.probeStream)) > 0;
    }, { timeoutMs: 30_000, intervalMs: 1000, what: "realtime to stream" }).catch(async (err) => {
      throw new Error(`${err.message}\n${await killed()}`);
    });
    await d.exec(`INSERT INTO ${d.table} (id, a, b) VALUES (1, 'one', 10)`);
    await upTo(1, "the first row");
    let n = 1;
    // ADD COLUMN, rows before and after in the same transaction where the source allows it.
    if (expectSameTx) {
      await d.tx([
        `INSERT INTO ${d.table} (id, a, b) VALUES (2, 'two', 20)`,
        `ALTER TABLE ${d.table} ADD COLUMN c text`,
        `INSERT INTO ${d.table} (id, a, b, c) VALUES (3, 'three', 30, 'c3')`,
      ]);
    } else {
      await d.exec(`INSERT INTO ${d.table} (id, a, b) VALUES (2, 'two', 20)`);
      await d.exec(`ALTER TABLE ${d.table} ADD COLUMN c text`);
      await d.exec(`INSERT INTO ${d.table} (id, a, b, c) VALUES (3, 'three', 30, 'c3')`);
    }
    await upTo(n += 2, "rows around ADD COLUMN");
    // DROP COLUMN in its own transaction.
    await d.exec(`ALTER TABLE ${d.table} DROP COLUMN b`);
    await d.exec(`INSERT INTO ${d.table} (id, a, c) VALUES (4, 'four', 'c4')`);
    await upTo(n += 1, "row after DROP COLUMN");
    // RENAME COLUMN.
    await d.exec(`ALTER TABLE ${d.table} RENAME COLUMN a TO a2`);
    await d.exec(`UPDATE ${d.table} SET a2 = 'FOUR' WHERE id = 4`);
    await upTo(n += 1, "update after RENAME COLUMN");
    // Type change of the key column.
    await d.exec(
      d.name === "pg"
        ? `ALTER TABLE ${d.table} ALTER COLUMN id TYPE bigint`
        : `ALTER TABLE ${d.table} MODIFY COLUMN id bigint NOT NULL`,
    );
    await d.exec(`INSERT INTO ${d.table} (id, a2, c) VALUES (5000000000, 'big', 'c5')`);
    await upTo(n += 1, "row after the type change");
    // A new table that matches the filter starts replicating; a dropped one stops.
    const t2 = d.table.replace(/t$/, "t2");
    await d.exec(`CREATE TABLE ${t2} (id int PRIMARY KEY, x text)`);
    await d.joined?.(t2).catch(async (err) => {
      throw new Error(`${err.message}\n${await killed()}`);
    });
    await d.exec(`INSERT INTO ${t2} (id, x) VALUES (1, 'new')`);
    const t2Stream = d.dataStream.replace(/_t_cdc_logs$/, "_t2_cdc_logs");
    await until(
      async () => (await readData(redis, t2Stream)).length === 1,
      "the new table's first row",
    );
    await d.exec(`DROP TABLE ${t2}`);
    // A table renamed into the selection: its rows are copied, then its changes follow.
    const old = d.table.replace(/t$/, "x_old");
    const t3 = d.table.replace(/t$/, "t3");
    await d.exec(`CREATE TABLE ${old} (id int PRIMARY KEY, x text)`);
    await d.exec(`INSERT INTO ${old} (id, x) VALUES (1, 'before'), (2, 'before')`);
    await d.exec(`UPDATE ${old} SET x = 'still before' WHERE id = 2`);
    await d.exec(d.rename(old, "t3"));
    await d.joined?.(t3).catch(async (err) => {
      throw new Error(`${err.message}\n${await killed()}`);
    });
    await d.exec(`INSERT INTO ${t3} (id, x) VALUES (3, 'after')`);
    const t3Cdc = d.dataStream.replace(/_t_cdc_logs$/, "_t3_cdc_logs");
    const t3Snapshot = d.dataStream.replace(/_t_cdc_logs$/, "_t3");
    await until(
      async () => (await readData(redis, t3Cdc)).length === 1,
      "the renamed table's first change",
    );
    // The copy is the table as it is when the rename is read: the row inserted after it may
    // be there too (as with any snapshot followed by its changes), never an older state.
    const copied = (await readData(redis, t3Snapshot)).map((e) => [e.op, e.row]);
    assert.deepEqual(copied.slice(0, 2), [
      ["r", { id: 1, x: "before" }],
      ["r", { id: 2, x: "still before" }],
    ]);
    assert.deepEqual(copied.slice(2), copied.length > 2 ? [["r", { id: 3, x: "after" }]] : []);
    assert.deepEqual((await readData(redis, t3Cdc)).map((e) => [e.op, e.row]), [
      ["c", { id: 3, x: "after" }],
    ]);
    // kill -9 right after a DDL (MariaDB: once its DDL entry landed; PostgreSQL shows a DDL
    // only with the next row), then rows and one more DDL while Replicant is down.
    await d.exec(`INSERT INTO ${d.table} (id, a2, c) VALUES (6, 'six', 'c6')`);
    await upTo(n += 1, "row 6");
    await d.exec(`ALTER TABLE ${d.table} ADD COLUMN d int`);
    if (d.name === "mysql") {
      await until(
        async () =>
          (await readDdl(redis, ddlStream)).some((e) => /ADD COLUMN d/i.test(e.statement)),
        "the DDL entry of ADD COLUMN d",
      );
    }
    run.kill("SIGKILL");
    await run.done;
    run = null;
    await d.exec(`INSERT INTO ${d.table} (id, a2, c, d) VALUES (7, 'seven', 'c7', 7)`);
    await d.exec(`ALTER TABLE ${d.table} DROP COLUMN c`);
    await d.exec(`DELETE FROM ${d.table} WHERE id = 6`);
    run = startReplicant(args("--resume"));
    await upTo(n += 2, "rows after the resume");
    run.kill("SIGTERM");
    const out = await run.done;
    run = null;
    assert.equal(out.code, 0, out.stderr);

    const data = await readData(redis, d.dataStream);
    const dump = await readSchemaDump(redis, dumpStream);
    assertVersions(data, dump, d.table.split(".").pop()!.replaceAll("`", ""));
    const tail = data.map((e) => [e.op, e.row]);
    assert.deepEqual(tail, [
      ["c", { id: 1, a: "one", b: 10 }],
      ["c", { id: 2, a: "two", b: 20 }],
      ["c", { id: 3, a: "three", b: 30, c: "c3" }],
      ["c", { id: 4, a: "four", c: "c4" }],
      ["u", { id: 4, a2: "FOUR", c: "c4" }],
      ["c", { id: 5000000000, a2: "big", c: "c5" }],
      ["c", { id: 6, a2: "six", c: "c6" }],
      ["c", { id: 7, a2: "seven", c: "c7", d: 7 }],
      ["d", { id: 6, a2: "six", d: null }],
    ]);
    // Versions grow along the stream.
    const versions = data.map((e) => e.version);
    assert.deepEqual([...versions].sort((a, b) => a - b), versions);
    const all = await readDdl(redis, ddlStream);
    const ddl = all.filter((e) => e.table.endsWith(".t"));
    const created = all.filter((e) => e.table.endsWith(".t2"));
    assert.deepEqual(created[0].before, null);
    assert.deepEqual(created[0].after?.columns.map((c) => c.name), ["id", "x"]);
    if (d.name === "mysql") {
      assert.deepEqual(created.map((e) => [e.statement.split(" ")[0], e.after === null]), [
        ["CREATE", false],
        ["DROP", true],
      ]);
    }
    const names = (s: DdlEntry["after"]) => s?.columns.map((c) => c.name).join(",") ?? null;
    const changes = ddl.filter((e) =>
      names(e.before) !== names(e.after) || e.before?.columns
        .some((c, i) => c.type !== e.after?.columns[i]?.type)
    );
    assert.deepEqual(changes.map((e) => [names(e.before), names(e.after)]), [
      ["id,a,b", "id,a,b,c"],
      ["id,a,b,c", "id,a,c"],
      ["id,a,c", "id,a2,c"],
      ["id,a2,c", "id,a2,c"],
      ["id,a2,c", "id,a2,c,d"],
      ["id,a2,c,d", "id,a2,d"],
    ]);
    for (let i = 1; i < changes.length; i++) {
      assert.equal(changes[i].before!.version, changes[i - 1].after!.version);
    }
    return ddl;
  } finally {
    await killed();
    await deleteKeys(redis, `*${id}*`);
  }
}

Deno.test("DDL (pg): ADD/DROP/RENAME COLUMN, type change, kill -9 between DDL and rows", async () => {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const schema = `ddl_pg_${tag}`;
  const id = `ddl-pg-${tag}`;
  const slot = `replicant_default_${id}`.toLowerCase().replace(/[^a-z0-9_]/g, "_").slice(0, 63);
  const db: pg.Client = await pgClient();
  const redis = redisClient();
  const table = `${schema}.t`;
  await db.query(`CREATE SCHEMA ${schema}`);
  await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, a text NOT NULL, b int)`);
  await db.query(`CREATE TABLE ${schema}.probe (id serial PRIMARY KEY)`);
  // Deletes carry the whole old row, as MariaDB's do.
  await db.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
  const env = serviceEnv().pg;
  try {
    const ddl = await scenario(
      {
        name: "pg",
        exec: async (sql) => void await db.query(sql),
        tx: async (sqls) => {
          await db.query("BEGIN");
          for (const s of sqls) await db.query(s);
          await db.query("COMMIT");
        },
        table,
        sourceConn: (home) => home.pgConn,
        filter:
          `allow:\n  - catalog: ${env.database}\n    schema: ${schema}\n    types: [TABLE]\n` +
          `    allow: [probe, "t*"]\n`,
        dataStream: `replicant_${schema}_t_cdc_logs`,
        rename: (old, name) => `ALTER TABLE ${old} RENAME TO ${name}`,
        probeInsert: `INSERT INTO ${schema}.probe DEFAULT VALUES`,
        probeStream: `replicant_${schema}_probe_cdc_logs`,
        // A table that enters the selection while streaming joins the publication within
        // moments; rows written before that are copied into its snapshot stream instead.
        joined: (t) =>
          waitFor(async () => {
            const [ns, name] = t.split(".");
            const r = await db.query(
              "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 " +
                "AND tablename = $3",
              [slot, ns, name],
            );
            return r.rows.length > 0;
          }, { timeoutMs: 30_000, what: `${t} in the publication` }),
      },
      id,
      redis,
      true,
    );
    assert.ok(ddl.every((e) => e.statement === ""), "pgoutput has no statement text");
  } finally {
    await dropSlot(db, slot).catch(() => {});
    await dropPublication(db, slot).catch(() => {});
    await db.query(`DROP SCHEMA ${schema} CASCADE`);
    await deleteKeys(redis, `replicant_${schema}_*`);
    await db.end();
    redis.disconnect();
  }
});

Deno.test("DDL (mariadb): ADD/DROP/RENAME COLUMN, type change, kill -9 between DDL and rows", async () => {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const database = `ddl_my_${tag}`;
  const id = `ddl-my-${tag}`;
  const env = serviceEnv().mysql;
  const db = await mysql.createConnection({
    host: env.host,
    port: env.port,
    user: env.user,
    password: env.password,
  });
  const redis = redisClient();
  const table = `${database}.t`;
  await db.query(`CREATE DATABASE ${database}`);
  await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, a text NOT NULL, b int)`);
  await db.query(`CREATE TABLE ${database}.probe (id int AUTO_INCREMENT PRIMARY KEY)`);
  try {
    const ddl = await scenario(
      {
        name: "mysql",
        exec: async (sql) => void await db.query(sql),
        tx: async (sqls) => {
          for (const s of sqls) await db.query(s);
        },
        table,
        sourceConn: (home) =>
          home.write(
            "mysql.yaml",
            `type: MARIADB\nhost: ${env.host}\nport: ${env.port}\nusername: ${env.user}\n` +
              `password: "${env.password}"\nslave-server-ids: [${
                2000 + Math.floor(Math.random() * 60_000)
              }]\n`,
          ),
        filter: `allow:\n  - catalog: ${database}\n    types: [TABLE]\n    allow: [probe, "t*"]\n`,
        dataStream: `${database}_t_cdc_logs`,
        rename: (old, name) => `RENAME TABLE ${old} TO ${database}.${name}`,
        probeInsert: `INSERT INTO ${database}.probe () VALUES ()`,
        probeStream: `${database}_probe_cdc_logs`,
      },
      id,
      redis,
      false,
    );
    assert.ok(
      ddl.some((e) => /ALTER TABLE .*ADD COLUMN d int/i.test(e.statement)),
      `statements: ${ddl.map((e) => e.statement).join(" | ")}`,
    );
  } finally {
    await db.query(`DROP DATABASE ${database}`);
    await deleteKeys(redis, `${database}_*`);
    await db.end();
    redis.disconnect();
  }
});
