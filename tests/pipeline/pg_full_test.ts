import { seededTest } from "../helpers/test_seed.ts";
import assert from "node:assert/strict";
import { type FullOutcome, type FullSpec, runFull } from "../../src/pipeline/full_pipeline.ts";
import { waitFor } from "../helpers/services.ts";
import { assertStrictlyIncreasing, type Fixture, fixture, readCdc } from "./pg_realtime_fixture.ts";
import { SNAPSHOT_COMPLETE_FIELD } from "../../src/ports/checkpoint.ts";
import { pgFullSpec } from "./pg_full_spec.ts";

function fullSpec(
  fx: Fixture,
  signal: AbortSignal,
  over: Parameters<typeof pgFullSpec>[3] = {},
): FullSpec {
  return pgFullSpec(fx, signal, { fetchRows: 500, batchRows: 250 }, over);
}

/** Snapshot rows, then changes, applied by key: the table as the streams tell it. */
async function replay(fx: Fixture, table: string): Promise<Map<number, unknown>> {
  const rows = new Map<number, unknown>();
  const snap = fx.naming.snapshotStream({ catalog: fx.endpoint.database, schema: "public", table });
  for (const e of await readCdc(fx.redis, snap)) rows.set(e.after!.id as number, e.after);
  const cdc = await readCdc(fx.redis, fx.stream(table));
  assertStrictlyIncreasing(cdc);
  for (const e of cdc) {
    if (e.tombstone) continue;
    if (e.op === "c" || e.op === "u") rows.set(e.after!.id as number, e.after);
    else if (e.op === "d") rows.delete(e.before!.id as number);
    else if (e.op === "t") rows.clear();
  }
  return rows;
}

async function actual(fx: Fixture, table: string): Promise<Map<number, unknown>> {
  const res = await fx.pg.query(`SELECT id, n, v FROM "${table}" ORDER BY id`);
  return new Map(
    (res.rows as { id: string; n: string; v: string }[]).map((r) => [
      Number(r.id),
      { id: Number(r.id), n: Number(r.n), v: r.v },
    ]),
  );
}

/** Random inserts, updates and deletes until stopped (which rows: from `rand`). */
function churn(fx: Fixture, table: string, base: number, rand: () => number) {
  let stop = false;
  let next = base + 1;
  const done = (async () => {
    const pg = (await import("../../src/source/postgres/pg_endpoint.ts")).openPg;
    const c = await pg(fx.endpoint, "churn");
    try {
      while (!stop) {
        await c.query("BEGIN");
        await c.query(`INSERT INTO "${table}" VALUES ($1, 0, 'new')`, [next++]);
        await c.query(`UPDATE "${table}" SET n = n + 1 WHERE id = $1`, [
          1 + Math.floor(rand() * base),
        ]);
        await c.query(`DELETE FROM "${table}" WHERE id = $1`, [
          1 + Math.floor(rand() * base),
        ]);
        await c.query("COMMIT");
      }
    } finally {
      await c.end();
    }
  })();
  return async () => {
    stop = true;
    await done;
  };
}

seededTest(
  "full: snapshot with concurrent writes, then realtime, rebuilds the table exactly",
  async (_seed, rand) => {
    const fx = await fixture("full_conc", { createSlot: false });
    const t = `${fx.prefix}_t`;
    const base = 30_000;
    try {
      await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY, n int, v text)`);
      await fx.pg.query(
        `INSERT INTO "${t}" SELECT i, 0, md5(i::text) FROM generate_series(1, ${base}) i`,
      );
      const stopChurn = churn(fx, t, base, rand);
      const ac = new AbortController();
      const run: Promise<FullOutcome> = runFull(fullSpec(fx, ac.signal));
      run.catch(() => {});
      await waitFor(async () => (await fx.checkpoints.get(SNAPSHOT_COMPLETE_FIELD)) === "1", {
        what: "snapshot complete",
        timeoutMs: 60_000,
      });
      await waitFor(async () => (await fx.redis.xlen(fx.stream(t))) > 50, { what: "changes" });
      await stopChurn();
      await fx.pg.query(`INSERT INTO "${t}" VALUES (-1, 0, 'marker')`);
      await waitFor(async () => {
        const last = await fx.redis.xrevrange(fx.stream(t), "+", "-", "COUNT", 1);
        return last.length > 0 && JSON.parse(last[0][1][1]).after?.id === -1;
      }, { what: "marker", timeoutMs: 20_000 });
      ac.abort();
      const outcome = await run;
      assert.equal(outcome.snapshot!.tables[0].status, "done");
      assert.ok(outcome.realtime!.tables[0].changes > 50);
      const want = await actual(fx, t);
      const got = await replay(fx, t);
      assert.equal(got.size, want.size);
      assert.deepEqual(got, want);
    } finally {
      await fx.cleanup();
    }
  },
);

Deno.test("full: terminate-post-snapshot, then resume goes straight to realtime", async () => {
  const fx = await fixture("full_term", { createSlot: false });
  const t = `${fx.prefix}_t`;
  try {
    await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY, n int, v text)`);
    await fx.pg.query(`INSERT INTO "${t}" SELECT i, 0, 'x' FROM generate_series(1, 100) i`);
    const first = await runFull(
      fullSpec(fx, new AbortController().signal, { terminatePostSnapshot: true }),
    );
    assert.equal(first.realtime, null);
    assert.equal(first.snapshot!.tables[0].rows, 100);
    // Changes after the snapshot wait in the slot.
    await fx.pg.query(`UPDATE "${t}" SET n = 1 WHERE id <= 10`);
    await fx.pg.query(`DELETE FROM "${t}" WHERE id > 90`);
    const ac = new AbortController();
    const run = runFull(fullSpec(fx, ac.signal, { resume: true }));
    run.catch(() => {});
    await waitFor(async () => (await fx.redis.xlen(fx.stream(t))) >= 30, { what: "changes" });
    ac.abort();
    const second = await run;
    assert.equal(second.snapshot, null, "no second snapshot");
    assert.deepEqual(await replay(fx, t), await actual(fx, t));
  } finally {
    await fx.cleanup();
  }
});

seededTest(
  "full: an interrupted snapshot resumes, and the table still rebuilds exactly",
  async (_seed, rand) => {
    const fx = await fixture("full_int", { createSlot: false });
    const t = `${fx.prefix}_t`;
    const base = 30_000;
    try {
      await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY, n int, v text)`);
      await fx.pg.query(
        `INSERT INTO "${t}" SELECT i, 0, md5(i::text) FROM generate_series(1, ${base}) i`,
      );
      const snap = fx.naming.snapshotStream({
        catalog: fx.endpoint.database,
        schema: "public",
        table: t,
      });
      const stopChurn = churn(fx, t, base, rand);
      const ac1 = new AbortController();
      const first = runFull(fullSpec(fx, ac1.signal));
      first.catch(() => {});
      await waitFor(async () => (await fx.redis.xlen(snap)) >= 2000, {
        what: "some snapshot rows",
      });
      ac1.abort();
      const interrupted = await first;
      assert.equal(interrupted.interrupted, true);
      assert.notEqual(await fx.checkpoints.get(SNAPSHOT_COMPLETE_FIELD), "1");
      const ac2 = new AbortController();
      const second = runFull(fullSpec(fx, ac2.signal, { resume: true }));
      second.catch(() => {});
      await waitFor(async () => (await fx.checkpoints.get(SNAPSHOT_COMPLETE_FIELD)) === "1", {
        what: "snapshot complete",
        timeoutMs: 60_000,
      });
      await stopChurn();
      await fx.pg.query(`INSERT INTO "${t}" VALUES (-1, 0, 'marker')`);
      await waitFor(async () => {
        const last = await fx.redis.xrevrange(fx.stream(t), "+", "-", "COUNT", 1);
        return last.length > 0 && JSON.parse(last[0][1][1]).after?.id === -1;
      }, { what: "marker", timeoutMs: 20_000 });
      ac2.abort();
      const outcome = await second;
      assert.equal(outcome.snapshot!.tables[0].status, "done");
      assert.deepEqual(await replay(fx, t), await actual(fx, t));
    } finally {
      await fx.cleanup();
    }
  },
);
