/**
 * End-to-end OOM backpressure: `replicant realtime` writes
 * into a private Redis with a small `maxmemory` (noeviction) while a slow consumer in the test
 * reads the cdc stream and deletes what it has read. Redis answers OOM, Replicant waits and
 * retries, and in the end the consumer has seen every change exactly once: each row's insert,
 * each (lsn, sequence) position once, in order, none missing.
 */
import assert from "node:assert/strict";
import { dropPublication, dropSlot } from "../../src/source/postgres/pg_replication_slot.ts";
import { rmSync } from "node:fs";
import type { Redis } from "ioredis";
import { pgClient } from "../helpers/clients.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { oomReplies, privateRedis } from "../pipeline/failure_fixture.ts";

const ROWS = 50_000;
const TX_ROWS = 1_000;
const MAXMEMORY = 12 * 1024 * 1024;

interface Seen {
  id: number;
  lsn: number;
  sequence: number;
  op: string;
}

/**
 * Reads the stream from its start with XREAD, records every entry and XDELs what it read,
 * pausing between reads so it is slower than Replicant.
 */
function slowConsumer(client: Redis, stream: string) {
  const seen: Seen[] = [];
  let stopped = false;
  let last = "0-0";
  const loop = (async () => {
    while (!stopped) {
      const reply = await client.xread("COUNT", 500, "BLOCK", 200, "STREAMS", stream, last);
      const entries = reply?.[0]?.[1] ?? [];
      for (const [entryId, fields] of entries) {
        const key = JSON.parse(fields[0]);
        const value = JSON.parse(fields[1]);
        seen.push({
          id: Number(key.id),
          lsn: Number(value.source.lsn),
          sequence: Number(value.source.sequence),
          op: String(value.op),
        });
        last = entryId;
      }
      if (entries.length > 0) {
        await client.xdel(stream, ...entries.map(([entryId]) => entryId));
        // ~500 entries per 50 ms: slower than Replicant writes them.
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  })();
  return {
    seen,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

Deno.test("backpressure e2e: realtime waits on OOM and every change reaches the consumer once", async () => {
  const schema = `bp_${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const id = schema;
  const slot = `replicant_default_${id}`;
  const db = await pgClient();
  const redis = await privateRedis();
  const admin = redis.admin();
  const consumerClient = redis.admin();
  const home = scratchHome();
  let run: RunningReplicant | null = null;
  let consumer: ReturnType<typeof slowConsumer> | null = null;
  try {
    await admin.config("SET", "appendonly", "no");
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(`CREATE TABLE ${schema}.t (id int PRIMARY KEY, v text NOT NULL)`);
    const stream = `replicant_${schema}_t_cdc_logs`;
    run = startReplicant([
      "realtime",
      home.pgConn,
      redis.connFile(home.dir, "private_redis.yaml"),
      "--filter",
      home.write(
        "filter.yaml",
        `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
      ),
      "--applier",
      // OOM is backpressure, not a failure: it must not use up a small max-retries.
      home.write(
        "applier.yaml",
        "include-schema: false\nrealtime:\n  max-retries: 3\n  retry-wait-duration-ms: 100\n",
      ),
      "--id",
      id,
      "--home",
      home.dir,
      "--overwrite",
    ]);
    const current = run;
    let exited = false;
    current.done.then(() => (exited = true));
    await waitFor(async () => {
      if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
      const r = await db.query("SELECT active FROM pg_replication_slots WHERE slot_name = $1", [
        slot,
      ]);
      return r.rows[0]?.active === true;
    }, { what: `slot ${slot} active`, timeoutMs: 30_000, intervalMs: 100 });
    // Little room: the checkpoint hash and a few hundred entries at most.
    const used = Number(/used_memory:(\d+)/.exec(await admin.info("memory"))![1]);
    await admin.config("SET", "maxmemory-policy", "noeviction");
    await admin.config("SET", "maxmemory", String(Math.max(MAXMEMORY, used + 4 * 1024 * 1024)));
    consumer = slowConsumer(consumerClient, stream);

    const t0 = Date.now();
    for (let from = 1; from <= ROWS; from += TX_ROWS) {
      await db.query(
        `INSERT INTO ${schema}.t SELECT g, rpad(md5(g::text), 200, 'x')
           FROM generate_series(${from}, ${from + TX_ROWS - 1}) g`,
      );
    }
    const tWritten = Date.now();
    const c = consumer;
    await waitFor(async () => {
      if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
      return c.seen.length >= ROWS;
    }, { what: `${ROWS} changes at the consumer`, timeoutMs: 180_000, intervalMs: 200 });
    const tDone = Date.now();
    const ooms = await oomReplies(admin);
    current.kill("SIGTERM");
    const res = await current.done;
    run = null;
    assert.equal(res.code, 0, res.stderr);
    // Anything still arriving would be a duplicate: give the consumer one more read.
    await waitFor(async () => (await admin.xlen(stream)) === 0, {
      what: "the consumer to drain the stream",
      timeoutMs: 10_000,
    });
    await consumer.stop();
    const seen = consumer.seen;
    consumer = null;
    console.log(
      `backpressure: ${ROWS} rows written in ${tWritten - t0} ms, all consumed after ` +
        `${tDone - t0} ms, ${ooms} OOM replies`,
    );

    assert.ok(ooms > 0, "Redis never answered OOM: the test did not exercise backpressure");
    assert.equal(seen.length, ROWS, "entries seen by the consumer");
    assert.ok(seen.every((s) => s.op === "c"), "only inserts");
    const ids = new Set(seen.map((s) => s.id));
    assert.equal(ids.size, ROWS, "distinct rows seen");
    for (let i = 1; i <= ROWS; i++) assert.ok(ids.has(i), `row ${i} missing`);
    for (let i = 1; i < seen.length; i++) {
      const a = seen[i - 1];
      const b = seen[i];
      assert.ok(
        a.lsn < b.lsn || (a.lsn === b.lsn && a.sequence < b.sequence),
        `positions not strictly increasing at ${i}: ${JSON.stringify(a)} then ${JSON.stringify(b)}`,
      );
    }
    // Rows were inserted in id order, one transaction per TX_ROWS: the sequence restarts with
    // each transaction.
    assert.equal(new Set(seen.map((s) => s.lsn)).size, ROWS / TX_ROWS, "transactions");
    assert.ok(seen.every((s) => s.sequence === (s.id - 1) % TX_ROWS), "sequence within each tx");
  } finally {
    await consumer?.stop().catch(() => {});
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await dropSlot(db, slot).catch(() => {});
    await dropPublication(db, slot).catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await db.end();
    admin.disconnect();
    consumerClient.disconnect();
    await redis.stop();
    rmSync(home.dir, { recursive: true, force: true });
  }
});

Deno.test("backpressure: above pause-above-memory-percent nothing is written; resumes when memory frees", async () => {
  const schema = `bpm_${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const db = await pgClient();
  const redis = await privateRedis();
  const admin = redis.admin();
  const home = scratchHome();
  let run: RunningReplicant | null = null;
  try {
    await admin.config("SET", "appendonly", "no");
    await admin.config("SET", "maxmemory", String(64 * 1024 * 1024));
    // A 40 MB value; the mark is set just below the share of maxmemory Redis then uses.
    await admin.setrange("filler", 40 * 1024 * 1024, "x");
    const info = await admin.info("memory");
    const used = Number(/used_memory:(\d+)/.exec(info)![1]);
    const mark = Math.floor((100 * used) / (64 * 1024 * 1024)) - 5;
    assert.ok(mark > 20 && mark < 95, `mark ${mark}`);
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(`CREATE TABLE ${schema}.t (id int PRIMARY KEY, v text NOT NULL)`);
    await db.query(
      `INSERT INTO ${schema}.t SELECT g, md5(g::text) FROM generate_series(1, 2000) g`,
    );
    const stream = `replicant_${schema}_t`;
    run = startReplicant([
      "snapshot",
      home.pgConn,
      redis.connFile(home.dir, "private_redis.yaml"),
      "--filter",
      home.write(
        "filter.yaml",
        `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
      ),
      "--applier",
      home.write("applier.yaml", `include-schema: false\npause-above-memory-percent: ${mark}\n`),
      "--id",
      schema,
      "--home",
      home.dir,
    ]);
    const current = run;
    const trace = `${home.dir}/data/${schema}/trace.log`;
    const traceText = () => {
      try {
        return Deno.readTextFileSync(trace);
      } catch {
        return "";
      }
    };
    await waitFor(() => /writes paused until it falls/.test(traceText()), {
      what: "the pause in trace.log",
      timeoutMs: 20_000,
    });
    assert.match(
      traceText(),
      new RegExp(
        `Redis uses \\d+% of its maxmemory \\(applier pause-above-memory-percent: ${mark}\\)`,
      ),
    );
    // Paused: the process runs and nothing has been written.
    assert.equal(await admin.exists(stream), 0);
    await admin.del("filler");
    const out = await current.done;
    run = null;
    assert.equal(out.code, 0, out.stderr);
    assert.equal(await admin.xlen(stream), 2000);
    assert.match(traceText(), /writes resumed after/);
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await db.end();
    admin.disconnect();
    await redis.stop();
    rmSync(home.dir, { recursive: true, force: true });
  }
});
