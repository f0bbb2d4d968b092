import assert from "node:assert/strict";
import { RealtimePipeline, silentLog } from "../../src/pipeline/realtime_pipeline.ts";
import type { StreamingSource } from "../../src/ports/streaming_source.ts";
import { PgLogicalSource } from "../../src/source/postgres/pg_logical_source.ts";
import { pgSortKeyOfSource } from "../../src/source/postgres/pgoutput_position.ts";
import { newPipelineState } from "../../src/pipeline/pipeline_state.ts";
import { waitFor } from "../helpers/services.ts";
import {
  assertStrictlyIncreasing,
  type CdcEntry,
  type Fixture,
  fixture,
  readCdc,
  startRealtime,
} from "./pg_realtime_fixture.ts";

/** Inserts ids from..to one or a few per transaction, into both tables alternately. */
async function writeRows(fx: Fixture, tables: string[], from: number, to: number) {
  for (let id = from; id <= to; id += 3) {
    await fx.pg.query("BEGIN");
    for (let k = id; k < id + 3 && k <= to; k++) {
      await fx.pg.query(`INSERT INTO "${tables[k % tables.length]}" VALUES ($1, $2)`, [k, `v${k}`]);
      if (k % 7 === 0) {
        await fx.pg.query(`UPDATE "${tables[k % tables.length]}" SET v = 'u' || v WHERE id = $1`, [
          k,
        ]);
      }
    }
    await fx.pg.query("COMMIT");
  }
}

/** Every change of ids 1..n exactly once, in commit order. */
function assertExactlyOnce(entries: CdcEntry[], ids: number[]) {
  assertStrictlyIncreasing(entries);
  const inserts = entries.filter((e) => e.op === "c").map((e) => e.after!.id as number);
  assert.deepEqual(inserts, ids);
  const updates = entries.filter((e) => e.op === "u").map((e) => e.after!.id as number);
  assert.deepEqual(updates, ids.filter((id) => id % 7 === 0));
}

const expectedIds = (tables: string[], t: string, n: number) =>
  Array.from({ length: n }, (_, i) => i + 1).filter((id) => tables[id % tables.length] === t);

async function countChanges(fx: Fixture, tables: string[]) {
  let n = 0;
  for (const t of tables) n += await fx.redis.xlen(fx.stream(t));
  return n;
}

Deno.test("resume: stopping mid-stream and resuming gives every change once, in order", async () => {
  const fx = await fixture("rt_resume");
  const tables = [`${fx.prefix}_a`, `${fx.prefix}_b`];
  const total = 600;
  const changes = total + Math.floor(total / 7);
  try {
    for (const t of tables) await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY, v text)`);
    let run = startRealtime(fx, { batchRows: 7 });
    const writing = writeRows(fx, tables, 1, total);
    await waitFor(async () => (await countChanges(fx, tables)) >= 100, { what: "100 entries" });
    const first = await run.stop();
    assert.equal(first.interrupted, true);
    const landed = await countChanges(fx, tables);
    assert.ok(landed < changes, `stopped before the end (${landed})`);
    run = startRealtime(fx, { batchRows: 7, resume: true });
    await writing;
    await waitFor(async () => (await countChanges(fx, tables)) >= changes, {
      what: `${changes} entries`,
      timeoutMs: 20_000,
    });
    const second = await run.stop();
    assert.deepEqual(second.skippedTables, []);
    for (const t of tables) {
      assertExactlyOnce(await readCdc(fx.redis, fx.stream(t)), expectedIds(tables, t, total));
    }
  } finally {
    await fx.cleanup();
  }
});

/** The PostgreSQL source with acknowledgements lost: the slot re-sends everything. */
function withoutAcks(inner: StreamingSource): StreamingSource {
  return {
    connector: inner.connector,
    tables: () => inner.tables(),
    start: (from, on, signal) => inner.start(from, on, signal),
    acknowledge: () => Promise.resolve(),
    close: () => inner.close(),
  };
}

async function runOnce(fx: Fixture, resume: boolean, until: () => Promise<boolean>) {
  const source = await PgLogicalSource.open(fx.endpoint, fx.selection, {
    slotName: fx.slot,
    publicationName: fx.slot,
    heartbeatMs: 200,
  });
  const ac = new AbortController();
  const pipeline = new RealtimePipeline(
    withoutAcks(source),
    fx.sink,
    fx.naming,
    fx.checkpoints,
    {
      threads: 2,
      batchRows: 5,
      retry: { maxRetries: 3, waitMs: 20 },
      skipTablesOnFailures: true,
      entry: fx.entry,
      resume,
      sortKeyOf: pgSortKeyOfSource,
    },
    silentLog,
    ac.signal,
    newPipelineState(),
  );
  const done = pipeline.run();
  try {
    await waitFor(until, { what: "entries", timeoutMs: 20_000 });
  } finally {
    ac.abort();
    await done.finally(() => source.close());
  }
  return await done;
}

Deno.test("resume: changes delivered again after a crash land once (tail check)", async () => {
  const fx = await fixture("rt_crash");
  const tables = [`${fx.prefix}_a`, `${fx.prefix}_b`];
  const total = 120;
  const changes = total + Math.floor(total / 7);
  try {
    for (const t of tables) await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY, v text)`);
    await writeRows(fx, tables, 1, total);
    await fx.pg.query(`DELETE FROM "${tables[0]}" WHERE id = 2`);
    const all = async () => (await countChanges(fx, tables)) >= changes + 2;
    await runOnce(fx, false, all);
    const a = fx.stream(tables[0]);
    const b = fx.stream(tables[1]);
    // Crash 1: the checkpoint was lost and the slot never acknowledged: everything comes
    // again from the slot's start.
    await fx.checkpoints.clear();
    // Crash 2: the last batch landed only in part: the tail of b lost 4 entries, and a lost
    // the tombstone after its last delete.
    const tailB = await fx.redis.xrevrange(b, "+", "-", "COUNT", 4) as [string, string[]][];
    await fx.redis.xdel(b, ...tailB.map(([id]) => id));
    const tailA = await fx.redis.xrevrange(a, "+", "-", "COUNT", 1) as [string, string[]][];
    assert.equal(tailA[0][1][1], "default", "a ends with a tombstone");
    await fx.redis.xdel(a, tailA[0][0]);
    const outcome = await runOnce(fx, true, all);
    assert.ok(outcome.tables.every((t) => t.duplicates > 0), JSON.stringify(outcome.tables));
    const ea = await readCdc(fx.redis, a);
    const eb = await readCdc(fx.redis, b);
    assert.deepEqual(ea.slice(-2).map((e) => e.tombstone ? "tomb" : e.op), ["d", "tomb"]);
    assertExactlyOnce(ea, expectedIds(tables, tables[0], total));
    assertExactlyOnce(eb, expectedIds(tables, tables[1], total));
    assert.equal(ea.length + eb.length, changes + 2);
  } finally {
    await fx.cleanup();
  }
});
