/**
 * The publication never breaks the source application: it holds exactly the selected
 * tables, a selected table without a replica identity is refused before anything is
 * created, and the publication follows the filter (at each start, and while streaming).
 */
import assert from "node:assert/strict";
import { SourceSetupError } from "../../src/core/errors.ts";
import type { TableId, TableSchema } from "../../src/core/table_schema.ts";
import { waitFor } from "../helpers/services.ts";
import { type Fixture, fixture, readCdc, startRealtime } from "./pg_realtime_fixture.ts";

/** Tables of the test's publication (names without the prefix), or null when it is missing. */
async function published(fx: Fixture): Promise<string[] | null> {
  const pub = await fx.pg.query({
    text: "SELECT puballtables::text FROM pg_publication WHERE pubname = $1",
    values: [fx.slot],
    rowMode: "array",
  });
  if (pub.rows.length === 0) return null;
  if (pub.rows[0][0] === "true") return ["ALL TABLES"];
  const rels = await fx.pg.query({
    text: `SELECT c.relname FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
             JOIN pg_class c ON c.oid = r.prrelid WHERE p.pubname = $1 ORDER BY 1`,
    values: [fx.slot],
    rowMode: "array",
  });
  return rels.rows.map((r: string[]) => r[0].slice(fx.prefix.length + 1));
}

const selecting = (fx: Fixture, ...names: string[]) => ({
  table: (id: TableId) =>
    id.schema === "public" && names.some((n) => id.table === `${fx.prefix}_${n}`),
  columns: () => null,
});

/** Waits until the run streams from its slot: changes from now on are in the log it reads. */
async function streaming(fx: Fixture): Promise<void> {
  await waitFor(async () => {
    const r = await fx.pg.query({
      text: `SELECT 1 FROM pg_replication_slots
              WHERE slot_name = $1 AND active AND confirmed_flush_lsn IS NOT NULL`,
      values: [fx.slot],
    });
    return r.rows.length > 0;
  }, { what: "the run streaming from its slot" });
}

/** The run's end, or a failure when it keeps running for `ms`. */
function ended<T>(done: Promise<T>, ms = 30_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    done,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still running after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function slotExists(fx: Fixture): Promise<boolean> {
  const r = await fx.pg.query({
    text: "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
    values: [fx.slot],
  });
  return r.rows.length > 0;
}

Deno.test("publication: only the selected tables; the application's keyless tables keep working", async () => {
  const fx = await fixture("pub_app", { createSlot: false });
  const orders = `${fx.prefix}_orders`;
  const log = `${fx.prefix}_log`; // not selected, no key, REPLICA IDENTITY DEFAULT
  try {
    await fx.pg.query(`CREATE TABLE "${orders}" (id int PRIMARY KEY, v text)`);
    await fx.pg.query(`CREATE TABLE "${log}" (at timestamptz DEFAULT now(), line text)`);
    await fx.pg.query(`INSERT INTO "${log}" (line) VALUES ('started')`);
    const run = startRealtime(fx, { selection: selecting(fx, "orders") });
    await streaming(fx);
    assert.deepEqual(await published(fx), ["orders"]);
    // What the application does to its other tables still works while Replicant runs.
    await fx.pg.query(`UPDATE "${log}" SET line = 'updated'`);
    await fx.pg.query(`DELETE FROM "${log}"`);
    await fx.pg.query(`INSERT INTO "${orders}" VALUES (1, 'a')`);
    await waitFor(async () => (await fx.redis.xlen(fx.stream(orders))) >= 1, { what: "change" });
    await run.stop();
    // …and after it stopped.
    await fx.pg.query(`INSERT INTO "${log}" (line) VALUES ('again')`);
    await fx.pg.query(`UPDATE "${log}" SET line = 'updated again'`);
  } finally {
    await fx.cleanup();
  }
});

Deno.test("publication: a FOR ALL TABLES publication of the id becomes exactly the selected tables", async () => {
  const fx = await fixture("pub_all", { createSlot: false });
  const a = `${fx.prefix}_a`;
  const log = `${fx.prefix}_log`;
  try {
    await fx.pg.query(`CREATE TABLE "${a}" (id int PRIMARY KEY, v text)`);
    await fx.pg.query(`CREATE TABLE "${log}" (line text)`);
    // As an earlier Replicant made it; changes written meanwhile are kept by the slot.
    await fx.pg.query(`CREATE PUBLICATION "${fx.slot}" FOR ALL TABLES`);
    await fx.pg.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [fx.slot]);
    await fx.pg.query(`INSERT INTO "${a}" VALUES (1, 'before the run')`);
    await fx.pg.query(`INSERT INTO "${log}" VALUES ('x')`);
    const run = startRealtime(fx, { selection: selecting(fx, "a") });
    await waitFor(async () => (await published(fx))?.[0] === "a", { what: "the new publication" });
    await fx.pg.query(`UPDATE "${log}" SET line = 'y'`);
    await fx.pg.query(`INSERT INTO "${a}" VALUES (2, 'during the run')`);
    await waitFor(async () => (await fx.redis.xlen(fx.stream(a))) >= 2, { what: "changes" });
    await run.stop();
    const cdc = await readCdc(fx.redis, fx.stream(a));
    assert.deepEqual(cdc.map((e) => e.after?.v), ["before the run", "during the run"]);
  } finally {
    await fx.cleanup();
  }
});

Deno.test("publication: a selected table without replica identity is refused before anything is created", async () => {
  const fx = await fixture("pub_ri", { createSlot: false });
  const ok = `${fx.prefix}_ok`;
  const full = `${fx.prefix}_full`; // keyless, REPLICA IDENTITY FULL: fine
  const bare = `${fx.prefix}_bare`; // keyless, DEFAULT: refused
  const nothing = `${fx.prefix}_nothing`; // key, but REPLICA IDENTITY NOTHING: refused
  const parted = `${fx.prefix}_parted`; // keyless partitioned: FULL on the parent only
  try {
    await fx.pg.query(`CREATE TABLE "${ok}" (id int PRIMARY KEY)`);
    await fx.pg.query(`CREATE TABLE "${full}" (v text)`);
    await fx.pg.query(`ALTER TABLE "${full}" REPLICA IDENTITY FULL`);
    await fx.pg.query(`CREATE TABLE "${bare}" (v text)`);
    await fx.pg.query(`CREATE TABLE "${nothing}" (id int PRIMARY KEY)`);
    await fx.pg.query(`ALTER TABLE "${nothing}" REPLICA IDENTITY NOTHING`);
    await fx.pg.query(`CREATE TABLE "${parted}" (d date, v text) PARTITION BY RANGE (d)`);
    await fx.pg.query(
      `CREATE TABLE "${parted}_y2024" PARTITION OF "${parted}"
         FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`,
    );
    await fx.pg.query(`ALTER TABLE "${parted}" REPLICA IDENTITY FULL`);
    const run = startRealtime(fx);
    await assert.rejects(() => ended(run.done), (err: Error) => {
      assert.ok(err instanceof SourceSetupError, String(err));
      assert.equal(err.exitCode, 2);
      for (const t of [bare, nothing, `${parted}_y2024`]) assert.ok(err.message.includes(t), t);
      assert.ok(!err.message.includes(`${full}:`), "REPLICA IDENTITY FULL is fine");
      assert.ok(!err.message.includes(`${ok}:`), "a primary key is fine");
      assert.match(err.message, /a partition of public\.\S+_parted/);
      assert.match(err.message, /REPLICA IDENTITY FULL/);
      assert.match(err.message, /leave the table out of the filter/);
      return true;
    });
    assert.equal(await published(fx), null, "no publication was created");
    assert.equal(await slotExists(fx), false, "no slot was created");
    // The application is untouched.
    await fx.pg.query(`INSERT INTO "${bare}" VALUES ('a')`);
    await fx.pg.query(`UPDATE "${bare}" SET v = 'b'`);
  } finally {
    await fx.cleanup();
  }
});

Deno.test("publication: follows the filter at each start and tables created while streaming", async () => {
  const fx = await fixture("pub_step", { createSlot: false });
  const a = `${fx.prefix}_a`;
  const b = `${fx.prefix}_b`;
  const c = `${fx.prefix}_c`;
  const keyless = `${fx.prefix}_keyless`;
  const copied: string[] = [];
  const snapshotTable = (t: TableSchema) => {
    copied.push(t.id.table.slice(fx.prefix.length + 1));
    return Promise.resolve();
  };
  try {
    await fx.pg.query(`CREATE TABLE "${a}" (id int PRIMARY KEY, v text)`);
    await fx.pg.query(`CREATE TABLE "${b}" (id int PRIMARY KEY, v text)`);
    await fx.pg.query(`INSERT INTO "${b}" VALUES (1, 'in b before it was selected')`);
    let run = startRealtime(fx, {
      selection: selecting(fx, "a"),
      snapshotTable,
      tableCheckMs: 100,
    });
    await streaming(fx);
    assert.deepEqual(await published(fx), ["a"]);
    await fx.pg.query(`INSERT INTO "${a}" VALUES (1, 'a1')`);
    await waitFor(async () => (await fx.redis.xlen(fx.stream(a))) >= 1, { what: "a's change" });
    await run.stop();
    // The filter now selects b as well: the publication gains it, its rows are copied.
    const ab = selecting(fx, "a", "b", "c", "keyless");
    run = startRealtime(fx, { selection: ab, resume: true, snapshotTable, tableCheckMs: 100 });
    await waitFor(async () => (await published(fx))?.length === 2, { what: "b published" });
    await fx.pg.query(`INSERT INTO "${b}" VALUES (2, 'b2')`);
    await waitFor(async () => (await fx.redis.xlen(fx.stream(b))) >= 1, { what: "b's change" });
    assert.deepEqual(copied, ["b"]);
    // A table created while streaming joins the publication, is copied, then streams.
    await fx.pg.query(`CREATE TABLE "${c}" (id int PRIMARY KEY, v text)`);
    await waitFor(async () => (await published(fx))?.includes("c") === true, {
      what: "c published",
    });
    await fx.pg.query(`INSERT INTO "${c}" VALUES (1, 'c1')`);
    await waitFor(async () => (await fx.redis.xlen(fx.stream(c))) >= 1, { what: "c's change" });
    assert.deepEqual(copied, ["b", "c"]);
    assert.deepEqual((await readCdc(fx.redis, fx.stream(c))).map((e) => e.after?.v), ["c1"]);
    // One created without a replica identity stops the run, and is never published.
    await fx.pg.query(`CREATE TABLE "${keyless}" (v text)`);
    await assert.rejects(() => ended(run.done), (err: Error) => {
      assert.ok(err instanceof SourceSetupError, String(err));
      assert.ok(err.message.includes(keyless));
      return true;
    });
    assert.deepEqual(await published(fx), ["a", "b", "c"]);
    await fx.pg.query(`INSERT INTO "${keyless}" VALUES ('x')`);
    await fx.pg.query(`UPDATE "${keyless}" SET v = 'y'`);
  } finally {
    await fx.cleanup();
  }
});
