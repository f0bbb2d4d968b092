/**
 * Partitioned tables (the shape of Pagila's `payment`): one table in snapshot and realtime,
 * its parent's streams only, with the publication holding exactly the selected tables and
 * publishing partitions as their partitioned table.
 */
import assert from "node:assert/strict";
import { SourceSetupError } from "../../src/core/errors.ts";
import type { TableId } from "../../src/core/table_schema.ts";
import { type FullOutcome, type FullSpec, runFull } from "../../src/pipeline/full_pipeline.ts";
import { readPgTables } from "../../src/source/postgres/pg_schema_reader.ts";
import { waitFor } from "../helpers/services.ts";
import {
  assertStrictlyIncreasing,
  type Fixture,
  fixture,
  readCdc,
  startRealtime,
} from "./pg_realtime_fixture.ts";
import { SNAPSHOT_COMPLETE_FIELD } from "../../src/ports/checkpoint.ts";
import { pgFullSpec } from "./pg_full_spec.ts";

function fullSpec(fx: Fixture, signal: AbortSignal): FullSpec {
  return pgFullSpec(fx, signal, { fetchRows: 100, batchRows: 100 });
}

/** `prefix_payment`, partitioned by month like Pagila's, with two partitions and rows. */
async function paymentTable(fx: Fixture): Promise<string> {
  const t = `${fx.prefix}_payment`;
  await fx.pg.query(
    `CREATE TABLE "${t}" (payment_id int NOT NULL, amount numeric(5,2) NOT NULL,
       payment_date timestamptz NOT NULL, PRIMARY KEY (payment_date, payment_id))
     PARTITION BY RANGE (payment_date)`,
  );
  await fx.pg.query(
    `CREATE TABLE "${t}_p2022_01" PARTITION OF "${t}"
       FOR VALUES FROM ('2022-01-01 00:00:00+00') TO ('2022-02-01 00:00:00+00')`,
  );
  await fx.pg.query(
    `CREATE TABLE "${t}_p2022_02" PARTITION OF "${t}"
       FOR VALUES FROM ('2022-02-01 00:00:00+00') TO ('2022-03-01 00:00:00+00')`,
  );
  await fx.pg.query(
    `INSERT INTO "${t}" SELECT i, i / 100.0, timestamptz '2022-01-01' + i * interval '1 hour'
       FROM generate_series(1, 1000) i`,
  );
  return t;
}

/** The publication's tables and whether it publishes partitions as their partitioned table. */
async function publication(fx: Fixture): Promise<{ viaRoot: boolean; tables: string[] }> {
  const pub = await fx.pg.query({
    text: "SELECT puballtables::text, pubviaroot::text FROM pg_publication WHERE pubname = $1",
    values: [fx.slot],
    rowMode: "array",
  });
  assert.equal(pub.rows[0][0], "false", "never FOR ALL TABLES");
  const rels = await fx.pg.query({
    text: `SELECT c.relname FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
             JOIN pg_class c ON c.oid = r.prrelid WHERE p.pubname = $1 ORDER BY 1`,
    values: [fx.slot],
    rowMode: "array",
  });
  return { viaRoot: pub.rows[0][1] === "true", tables: rels.rows.map((r: string[]) => r[0]) };
}

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

/** Every stream key of the test: the partitions must have none. */
async function streamKeys(fx: Fixture): Promise<string[]> {
  return (await fx.redis.keys(`*${fx.prefix}*`)).filter((k) => !k.startsWith("replicate_io_"))
    .sort();
}

Deno.test("partitions: full of a schema with a partitioned table, rows moving between partitions", async () => {
  const fx = await fixture("part_full", { createSlot: false });
  try {
    const t = await paymentTable(fx);
    const ac = new AbortController();
    const run: Promise<FullOutcome> = runFull(fullSpec(fx, ac.signal));
    run.catch(() => {});
    fx.runs.push(() => {
      ac.abort();
      return run;
    });
    await waitFor(async () => (await fx.checkpoints.get(SNAPSHOT_COMPLETE_FIELD)) === "1", {
      what: "snapshot complete",
      timeoutMs: 60_000,
    });
    assert.deepEqual(await publication(fx), { viaRoot: true, tables: [t] });
    // One insert per partition, an update in place, a row moved to the other partition (its
    // key changes: the partition key is part of the primary key), a delete.
    await fx.pg.query(
      `INSERT INTO "${t}" VALUES (5001, 1.00, '2022-01-15'), (5002, 2.00, '2022-02-15')`,
    );
    await fx.pg.query(`UPDATE "${t}" SET amount = 9.99 WHERE payment_id = 5002`);
    await fx.pg.query(
      `UPDATE "${t}" SET payment_date = '2022-02-20', amount = 3.00 WHERE payment_id = 5001`,
    );
    await fx.pg.query(`DELETE FROM "${t}" WHERE payment_id = 5002`);
    await waitFor(async () => (await fx.redis.xlen(fx.stream(t))) >= 7, {
      what: "the parent's changes",
    });
    ac.abort();
    const outcome = await run;
    assert.deepEqual(outcome.snapshot!.tables.map((x) => [x.table.split(".").pop(), x.rows]), [
      [t, 1000],
    ]);
    const snapshot = fx.naming.snapshotStream({
      catalog: fx.endpoint.database,
      schema: "public",
      table: t,
    });
    assert.deepEqual(await streamKeys(fx), [snapshot, fx.stream(t)].sort());
    const cdc = await readCdc(fx.redis, fx.stream(t));
    assertStrictlyIncreasing(cdc);
    const show = (r: Record<string, unknown> | null | undefined) =>
      r ? `${r.payment_id}:${r.amount}:${String(r.payment_date).slice(0, 10)}` : "-";
    assert.deepEqual(cdc.map((e) => e.tombstone ? "tomb" : `${e.op} ${show(e.after)}`), [
      "c 5001:1.00:2022-01-15",
      "c 5002:2.00:2022-02-15",
      "u 5002:9.99:2022-02-15",
      "d -",
      "tomb",
      "c 5001:3.00:2022-02-20",
      "d -",
      "tomb",
    ]);
    // The moved row: its old key leaves, its new key arrives, in one transaction.
    assert.deepEqual(cdc[3].key, { payment_date: "2022-01-15T00:00:00Z", payment_id: 5001 });
    assert.equal(cdc[3].source!.txId, cdc[5].source!.txId);
  } finally {
    await fx.cleanup();
  }
});

Deno.test("partitions: a filter naming the partitioned table streams its partitions' changes", async () => {
  const fx = await fixture("part_named", { createSlot: false });
  try {
    const t = await paymentTable(fx);
    const only: TableId = { catalog: fx.endpoint.database, schema: "public", table: t };
    const same = (id: TableId) => id.schema === only.schema && id.table === only.table;
    const run = startRealtime(fx, { selection: { table: same, columns: () => null, named: same } });
    await streaming(fx);
    assert.deepEqual(await publication(fx), { viaRoot: true, tables: [t] });
    await fx.pg.query(`INSERT INTO "${t}" VALUES (7001, 1.00, '2022-02-03')`);
    await fx.pg.query(`UPDATE "${t}_p2022_02" SET amount = 2.00 WHERE payment_id = 7001`);
    await waitFor(async () => (await fx.redis.xlen(fx.stream(t))) >= 2, { what: "changes" });
    await run.stop();
    const cdc = await readCdc(fx.redis, fx.stream(t));
    assert.deepEqual(cdc.map((e) => [e.op, e.after?.amount]), [["c", "1.00"], ["u", "2.00"]]);
    assert.equal(await fx.redis.exists(fx.stream(`${t}_p2022_02`)), 0);
  } finally {
    await fx.cleanup();
  }
});

Deno.test("partitions: a partition named on its own is a table; named with its parent, refused", async () => {
  const fx = await fixture("part_alone", { createSlot: false });
  try {
    const t = await paymentTable(fx);
    const part = `${t}_p2022_01`;
    const is = (name: string) => (id: TableId) => id.schema === "public" && id.table === name;
    const alone = { table: is(part), columns: () => null, named: is(part) };
    const tables = await readPgTables(fx.pg, fx.endpoint.database, alone);
    assert.deepEqual(tables.map((x) => x.id.table), [part]);
    const run = startRealtime(fx, { selection: alone });
    await streaming(fx);
    assert.deepEqual(await publication(fx), { viaRoot: true, tables: [part] });
    await fx.pg.query(`INSERT INTO "${t}" VALUES (8001, 1.00, '2022-01-03')`);
    await waitFor(async () => (await fx.redis.xlen(fx.stream(part))) >= 1, { what: "change" });
    await run.stop();
    // A filter naming the partition and selecting its parent too.
    const both = {
      table: (id: TableId) => id.schema === "public" && id.table.startsWith(fx.prefix),
      columns: () => null,
      named: is(part),
    };
    await assert.rejects(
      () => readPgTables(fx.pg, fx.endpoint.database, both),
      (err: Error) =>
        err instanceof SourceSetupError && err.exitCode === 2 &&
        err.message.includes(`${part} is a partition of`) &&
        err.message.includes("Select either the partitioned table"),
    );
  } finally {
    await fx.cleanup();
  }
});

Deno.test("partitions: changes of partitions under their own names (an earlier FOR ALL TABLES publication) stop the run", async () => {
  const fx = await fixture("part_unrouted"); // FOR ALL TABLES, slot created first
  try {
    const t = await paymentTable(fx); // its rows are in the slot as the partitions' changes
    const run = startRealtime(fx);
    await assert.rejects(
      () => run.done,
      (err: Error) =>
        err.message.includes(`sent a change of partition`) &&
        err.message.includes(`${t}_p2022_0`) && err.message.includes(`instead of as`) &&
        err.message.includes("Take the table's snapshot again"),
    );
    assert.equal(await fx.redis.exists(fx.stream(`${t}_p2022_01`)), 0, "nothing dropped silently");
  } finally {
    await fx.cleanup();
  }
});
