import assert from "node:assert/strict";
import { startPrivatePostgres } from "../helpers/private_postgres.ts";
import { waitFor } from "../helpers/services.ts";
import {
  assertStrictlyIncreasing,
  fixture,
  readCdc,
  startRealtime,
} from "./pg_realtime_fixture.ts";
import { privateRedis } from "./failure_fixture.ts";

Deno.test("restart: Redis killed (-9) and restarted under the pipeline, exactly once", async () => {
  const redis = await privateRedis();
  const fx = await fixture("rt_redis", { redisPort: redis.port });
  const t = `${fx.prefix}_t`;
  const txs = 800;
  try {
    await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY, v text)`);
    const warnings: string[] = [];
    const run = startRealtime(fx, {
      batchRows: 10,
      retry: { maxRetries: 30, waitMs: 50 },
      log: { info() {}, warn: (m) => warnings.push(m), fail: (m) => warnings.push(m) },
    });
    const writing = (async () => {
      for (let i = 1; i <= txs; i++) {
        await fx.pg.query(`INSERT INTO "${t}" VALUES ($1, 'x')`, [i]);
      }
    })();
    await waitFor(async () => (await fx.redis.xlen(fx.stream(t))) >= 200, { what: "200" });
    await redis.kill();
    await redis.start();
    await writing;
    await waitFor(async () => (await fx.redis.xlen(fx.stream(t))) >= txs, {
      what: `${txs} entries`,
      timeoutMs: 30_000,
    });
    const outcome = await run.stop();
    assert.deepEqual(outcome.skippedTables, []);
    assert.ok(warnings.some((w) => /retrying/.test(w)), "the outage was seen");
    const entries = await readCdc(fx.redis, fx.stream(t));
    assertStrictlyIncreasing(entries);
    assert.deepEqual(entries.map((e) => e.after!.id), Array.from({ length: txs }, (_, i) => i + 1));
  } finally {
    await fx.cleanup().catch(() => {});
    await redis.stop();
  }
});

Deno.test("restart: replication connection cut repeatedly, the pipeline reconnects, exactly once", async () => {
  const fx = await fixture("rt_cut");
  const t = `${fx.prefix}_t`;
  const txs = 900;
  try {
    await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY, v text)`);
    const warnings: string[] = [];
    const run = startRealtime(fx, {
      batchRows: 10,
      sourceRetry: { maxRetries: 5, waitMs: 20 },
      log: { info() {}, warn: (m) => warnings.push(m), fail: (m) => warnings.push(m) },
    });
    const writing = (async () => {
      for (let i = 1; i <= txs; i += 3) {
        await fx.pg.query(
          `INSERT INTO "${t}" SELECT g, 'x' FROM generate_series($1::int, $2::int) g`,
          [i, Math.min(i + 2, txs)],
        );
      }
    })();
    const restarts = () => warnings.filter((w) => /starting again/.test(w)).length;
    let cutPid = 0;
    for (const [n, mark] of [150, 400, 650].entries()) {
      await waitFor(async () => (await fx.redis.xlen(fx.stream(t))) >= mark, {
        what: `${mark} entries`,
        timeoutMs: 20_000,
      });
      // Cut the walsender's connection as soon as the slot is streaming again: a new one,
      // since the slot may still name the last cut walsender while it exits.
      await waitFor(async () => {
        const r = await fx.pg.query({
          text: `SELECT active_pid, pg_terminate_backend(active_pid) FROM pg_replication_slots
                  WHERE slot_name = $1 AND active_pid IS NOT NULL AND active_pid <> $2`,
          values: [fx.slot, cutPid],
        });
        if (r.rows.length === 0) return false;
        cutPid = r.rows[0].active_pid;
        return true;
      }, { what: "an active slot", intervalMs: 10 });
      // The cut may come after the last rows landed: wait until the pipeline has seen it,
      // or stopping could win the race against the error waiting in its socket.
      await waitFor(() => restarts() >= n + 1, { what: `restart ${n + 1}`, timeoutMs: 20_000 });
    }
    await writing;
    await waitFor(async () => (await fx.redis.xlen(fx.stream(t))) >= txs, {
      what: `${txs} entries`,
      timeoutMs: 30_000,
    });
    const outcome = await run.stop();
    assert.deepEqual(outcome.skippedTables, []);
    assert.equal(restarts(), 3, warnings.join("\n"));
    const entries = await readCdc(fx.redis, fx.stream(t));
    assertStrictlyIncreasing(entries);
    assert.deepEqual(entries.map((e) => e.after!.id), Array.from({ length: txs }, (_, i) => i + 1));
  } finally {
    await fx.cleanup();
  }
});

/** A throwaway PostgreSQL (wal_level=logical) that the test may crash and restart. */
async function ownPostgres() {
  const server = await startPrivatePostgres({
    hba: ["host all all 127.0.0.1/32 trust", "host replication all 127.0.0.1/32 trust"],
  });
  const admin = await server.admin();
  await admin.query("CREATE DATABASE replicant").finally(() => admin.end());
  return {
    port: server.port,
    /** Crash (immediate shutdown, like a power cut) and start again. */
    crashAndStart: async () => {
      await server.shutdown("immediate");
      await server.start();
    },
    stop: () => server.stop(),
  };
}

Deno.test("restart: PostgreSQL crashed and restarted under the pipeline, exactly once", async () => {
  const pgServer = await ownPostgres();
  const fx = await fixture("rt_pgcrash", { pgPort: pgServer.port });
  const t = `${fx.prefix}_t`;
  const txs = 600;
  try {
    await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY, v text)`);
    const warnings: string[] = [];
    const run = startRealtime(fx, {
      batchRows: 10,
      sourceRetry: { maxRetries: 30, waitMs: 100 },
      log: { info() {}, warn: (m) => warnings.push(m), fail: (m) => warnings.push(m) },
    });
    const { openPg } = await import("../../src/source/postgres/pg_endpoint.ts");
    let writer = await openPg(fx.endpoint, "writer");
    for (let i = 1; i <= txs / 2; i++) {
      await writer.query(`INSERT INTO "${t}" VALUES ($1, 'x')`, [i]);
    }
    await waitFor(async () => (await fx.redis.xlen(fx.stream(t))) >= 100, { what: "100" });
    await writer.end();
    await pgServer.crashAndStart();
    writer = await openPg(fx.endpoint, "writer");
    for (let i = txs / 2 + 1; i <= txs; i++) {
      await writer.query(`INSERT INTO "${t}" VALUES ($1, 'x')`, [i]);
    }
    await writer.end();
    await waitFor(async () => (await fx.redis.xlen(fx.stream(t))) >= txs, {
      what: `${txs} entries`,
      timeoutMs: 30_000,
    });
    const outcome = await run.stop();
    assert.deepEqual(outcome.skippedTables, []);
    assert.ok(warnings.some((w) => /starting again/.test(w)), warnings.join("\n"));
    const entries = await readCdc(fx.redis, fx.stream(t));
    assertStrictlyIncreasing(entries);
    assert.deepEqual(entries.map((e) => e.after!.id), Array.from({ length: txs }, (_, i) => i + 1));
  } finally {
    // The fixture's own connection died with the crash: reconnect to clean up.
    const { openPg } = await import("../../src/source/postgres/pg_endpoint.ts");
    fx.pg = await openPg(fx.endpoint, "cleanup").catch(() => fx.pg);
    await fx.cleanup().catch(() => {});
    await pgServer.stop();
  }
});
