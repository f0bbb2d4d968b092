import assert from "node:assert/strict";
import { parseLsn } from "../../src/source/postgres/pgoutput_position.ts";
import { waitFor } from "../helpers/services.ts";
import {
  assertStrictlyIncreasing,
  fixture,
  readCdc,
  startRealtime,
} from "./pg_realtime_fixture.ts";

Deno.test("realtime: insert, update, delete, truncate land in order with positions", async () => {
  const fx = await fixture("rt_basic");
  const t = `${fx.prefix}_items`;
  try {
    await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY, name text, price numeric)`);
    const run = startRealtime(fx);
    await fx.pg.query(`INSERT INTO "${t}" VALUES (1, 'a', 1.50), (2, 'b', 2)`);
    await fx.pg.query(`UPDATE "${t}" SET name = 'bb' WHERE id = 2`);
    await fx.pg.query(`DELETE FROM "${t}" WHERE id = 1`);
    await fx.pg.query(`TRUNCATE "${t}"`);
    const stream = fx.stream(t);
    await waitFor(async () => (await fx.redis.xlen(stream)) >= 6, { what: "6 entries" });
    const outcome = await run.stop();
    const e = await readCdc(fx.redis, stream);
    assert.deepEqual(e.map((x) => x.tombstone ? "tombstone" : x.op), [
      "c",
      "c",
      "u",
      "d",
      "tombstone",
      "t",
    ]);
    assert.deepEqual(e[0].after, { id: 1, name: "a", price: "1.50" });
    assert.deepEqual(e[2].after, { id: 2, name: "bb", price: "2" });
    assert.equal(e[2].before, null, "REPLICA IDENTITY DEFAULT sends no old row");
    assert.deepEqual(e[3].before, { id: 1, name: null, price: null });
    assert.deepEqual(e[4].key, { id: 1 });
    assert.equal(e[5].key, null);
    assert.equal(e[0].source!.sequence, 0);
    assert.equal(e[1].source!.sequence, 1);
    assert.equal(e[0].source!.lsn, e[1].source!.lsn);
    assert.equal(typeof e[0].source!.txId, "number");
    assertStrictlyIncreasing(e);
    assert.equal(outcome.skippedTables.length, 0);
    assert.ok(outcome.checkpoint, "a checkpoint was written");
    assert.equal(await fx.checkpoints.get("realtime:checkpoint"), outcome.checkpoint);
    // The slot was told: confirmed_flush_lsn is just past the last commit.
    const slot = await fx.pg.query({
      text: "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
      values: [fx.slot],
      rowMode: "array",
    });
    assert.ok(
      parseLsn(slot.rows[0][0] as string) >= parseLsn(outcome.checkpoint!) + 1n,
      `confirmed ${slot.rows[0][0]} vs checkpoint ${outcome.checkpoint}`,
    );
  } finally {
    await fx.cleanup();
  }
});

Deno.test("realtime: multi-table transactions, rollbacks, replica identity, TOAST, key change", async () => {
  const fx = await fixture("rt_kinds");
  const a = `${fx.prefix}_a`;
  const b = `${fx.prefix}_b`;
  const other = `zz_${fx.prefix}_other`; // not selected
  try {
    await fx.pg.query(`CREATE TABLE "${a}" (id int PRIMARY KEY, v text, big text)`);
    await fx.pg.query(`ALTER TABLE "${a}" ALTER COLUMN big SET STORAGE EXTERNAL`);
    await fx.pg.query(`CREATE TABLE "${b}" (k text PRIMARY KEY, n int8)`);
    await fx.pg.query(`ALTER TABLE "${b}" REPLICA IDENTITY FULL`);
    await fx.pg.query(`CREATE TABLE "${other}" (id int PRIMARY KEY)`);
    const run = startRealtime(fx);
    // One transaction over two selected tables and one that is not selected.
    await fx.pg.query("BEGIN");
    await fx.pg.query(`INSERT INTO "${a}" VALUES (1, 'x', repeat('toast', 20000))`);
    await fx.pg.query(`INSERT INTO "${b}" VALUES ('k1', 9007199254740993)`);
    await fx.pg.query(`INSERT INTO "${other}" VALUES (1)`);
    await fx.pg.query(`INSERT INTO "${a}" VALUES (2, 'y', 'small')`);
    await fx.pg.query("COMMIT");
    // A rolled-back transaction leaves nothing.
    await fx.pg.query("BEGIN");
    await fx.pg.query(`INSERT INTO "${a}" VALUES (99, 'rolled back', null)`);
    await fx.pg.query("ROLLBACK");
    // TOAST value unchanged and not sent (REPLICA IDENTITY DEFAULT).
    await fx.pg.query(`UPDATE "${a}" SET v = 'x2' WHERE id = 1`);
    // FULL identity: before image, and the unchanged value comes from it.
    await fx.pg.query(`UPDATE "${b}" SET n = 5 WHERE k = 'k1'`);
    // Primary key change: delete (+ tombstone) then insert.
    await fx.pg.query(`UPDATE "${a}" SET id = 3 WHERE id = 2`);
    await fx.pg.query(`DELETE FROM "${b}" WHERE k = 'k1'`);
    await waitFor(async () => (await fx.redis.xlen(fx.stream(a))) >= 6, { what: "a entries" });
    await waitFor(async () => (await fx.redis.xlen(fx.stream(b))) >= 4, { what: "b entries" });
    const outcome = await run.stop();
    const ea = await readCdc(fx.redis, fx.stream(a));
    const eb = await readCdc(fx.redis, fx.stream(b));
    assert.equal(await fx.redis.exists(fx.stream(other)), 0, "unselected table has no stream");
    assert.deepEqual(ea.map((x) => x.tombstone ? "tomb" : `${x.op}`), [
      "c",
      "c",
      "u",
      "d",
      "tomb",
      "c",
    ]);
    assert.equal((ea[0].after!.big as string).length, 100000);
    assert.deepEqual(ea[2].after, { id: 1, v: "x2", big: "__replicant_unavailable_value" });
    assert.deepEqual(ea[3].before, { id: 2, v: null, big: null });
    assert.deepEqual(ea[4].key, { id: 2 });
    assert.deepEqual(ea[5].after, { id: 3, v: "y", big: "small" });
    assert.equal(ea[3].source!.lsn, ea[5].source!.lsn);
    assert.equal(ea[5].source!.sequence, (ea[3].source!.sequence as number) + 1);
    // Same transaction: same lsn and txId on both tables, sequences in statement order.
    assert.equal(ea[0].source!.lsn, eb[0].source!.lsn);
    assert.equal(ea[0].source!.txId, eb[0].source!.txId);
    assert.deepEqual(
      [ea[0].source!.sequence, eb[0].source!.sequence, ea[1].source!.sequence],
      [0, 1, 2],
    );
    assert.ok(!ea.some((x) => (x.after as { id?: number } | null)?.id === 99));
    assert.deepEqual(eb.map((x) => x.tombstone ? "tomb" : x.op), ["c", "u", "d", "tomb"]);
    assert.deepEqual(eb[0].after, { k: "k1", n: "9007199254740993" });
    assert.deepEqual(eb[1].before, { k: "k1", n: "9007199254740993" });
    assert.deepEqual(eb[1].after, { k: "k1", n: 5 });
    assert.deepEqual(eb[2].before, { k: "k1", n: 5 });
    assertStrictlyIncreasing(ea);
    assertStrictlyIncreasing(eb);
    assert.deepEqual(outcome.skippedTables, []);
  } finally {
    await fx.cleanup();
  }
});

Deno.test("realtime: changes of unselected tables only still advance the slot", async () => {
  const fx = await fixture("rt_idle");
  const other = `zz_${fx.prefix}_other`;
  try {
    await fx.pg.query(`CREATE TABLE "${other}" (id int PRIMARY KEY)`);
    const before = (await fx.pg.query({
      text: "SELECT pg_current_wal_lsn()::text",
      rowMode: "array",
    })).rows[0][0] as string;
    const run = startRealtime(fx, { heartbeatMs: 100 });
    await fx.pg.query(`INSERT INTO "${other}" SELECT generate_series(1, 100)`);
    await waitFor(async () => {
      const r = await fx.pg.query({
        text: "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
        values: [fx.slot],
        rowMode: "array",
      });
      return parseLsn(r.rows[0][0] as string) > parseLsn(before);
    }, { what: "confirmed_flush_lsn to move", timeoutMs: 10_000 });
    const outcome = await run.stop();
    assert.ok(outcome.checkpoint);
    assert.deepEqual(outcome.tables, []);
  } finally {
    await fx.cleanup();
  }
});

Deno.test("realtime: a table whose stream refuses writes is skipped, others go on", async () => {
  const fx = await fixture("rt_skip");
  const good = `${fx.prefix}_good`;
  const bad = `${fx.prefix}_bad`;
  try {
    for (const t of [good, bad]) {
      await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY)`);
    }
    await fx.redis.set(fx.stream(bad), "not a stream"); // WRONGTYPE: permanent
    const failures: string[] = [];
    const run = startRealtime(fx, {
      log: { info() {}, warn() {}, fail: (m) => failures.push(m) },
    });
    await fx.pg.query(
      `WITH x AS (INSERT INTO "${bad}" VALUES (1)) INSERT INTO "${good}" VALUES (1)`,
    );
    await fx.pg.query(`INSERT INTO "${bad}" VALUES (2)`);
    await fx.pg.query(`INSERT INTO "${good}" VALUES (2)`);
    await waitFor(async () => (await fx.redis.xlen(fx.stream(good))) >= 2, { what: "good" });
    const outcome = await run.stop();
    assert.deepEqual(outcome.skippedTables, [`${fx.endpoint.database}.public.${bad}`]);
    assert.match(failures.join("\n"), /skipped: .*WRONGTYPE/);
    assert.equal(await fx.redis.get(fx.stream(bad)), "not a stream");
    assert.deepEqual((await readCdc(fx.redis, fx.stream(good))).map((e) => e.after!.id), [1, 2]);
    assert.ok(outcome.checkpoint, "the checkpoint moves past the skipped table's changes");
  } finally {
    await fx.cleanup();
  }
});
