/**
 * End-to-end: the applier's `wait-for-replicas: N` (WAIT after each batch) on a Redis Cluster
 * with a replica per master (works: snapshot and realtime land, WAIT sent by the writers) and
 * on the standalone test Redis, which has no replica (every batch fails after its retries,
 * the message names the stream and the count); and `max-stream-length` (approximate MAXLEN).
 */
import assert from "node:assert/strict";
import type pg from "pg";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { runReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { dropPublication, dropSlot } from "../../src/source/postgres/pg_replication_slot.ts";

/** A schema with tables `t1`, `t2` of `rows` rows each; removed after `fn`. */
async function withTables(
  rows: number,
  fn: (db: pg.Client, schema: string) => Promise<void>,
): Promise<void> {
  const schema = `e2e_wait_${Date.now().toString(36)}${Math.floor(Math.random() * 1296)}`;
  const db = await pgClient();
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    for (const t of ["t1", "t2"]) {
      await db.query(`CREATE TABLE ${schema}.${t} (id int PRIMARY KEY, v text NOT NULL)`);
      await db.query(
        `INSERT INTO ${schema}.${t} SELECT g, 'v' || g FROM generate_series(1, ${rows}) g`,
      );
    }
    await fn(db, schema);
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await db.end();
  }
}

const filterOf = (schema: string) =>
  `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`;

/** Sum of `cmdstat_<command>` calls over some nodes. */
function calls(info: string[], command: string): number {
  return info.reduce(
    (n, text) => n + Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(text)?.[1] ?? 0),
    0,
  );
}

Deno.test("wait-for-replicas: 1 on a cluster with replicas: full lands, WAIT after batches", async () => {
  const tc = await startRedisCluster();
  const cluster = tc.client();
  try {
    await withTables(1000, async (db, schema) => {
      const home = scratchHome();
      const id = `e2e-wait-${schema.slice(9)}`;
      const slot = `replicant_default_${id}`.replace(/[^a-z0-9_]/g, "_");
      const run = startReplicant([
        "full",
        home.pgConn,
        home.write("redis_cluster.yaml", tc.connYaml()),
        "--filter",
        home.write("filter.yaml", filterOf(schema)),
        "--applier",
        home.write(
          "applier.yaml",
          "snapshot:\n  batch-size-rows: 100\nrealtime:\n  batch-size-rows: 10\n" +
            "wait-for-replicas: 1\nwait-for-replicas-timeout-ms: 2000\n",
        ),
        "--id",
        id,
        "--home",
        home.dir,
        "--overwrite",
      ]);
      try {
        for (const t of ["t1", "t2"]) {
          await waitFor(async () => (await cluster.xlen(`replicant_${schema}_${t}`)) === 1000, {
            what: `snapshot of ${t}`,
            timeoutMs: 30_000,
          });
        }
        for (let k = 1; k <= 50; k++) {
          await db.query(`INSERT INTO ${schema}.t1 VALUES ($1, 'new')`, [100_000 + k]);
        }
        await waitFor(
          async () => (await cluster.xlen(`replicant_${schema}_t1_cdc_logs`)) === 50,
          { what: "50 changes of t1", timeoutMs: 30_000 },
        );
      } finally {
        run.kill("SIGTERM");
        const res = await run.done;
        await dropSlot(db, slot).catch(() => {});
        await dropPublication(db, slot).catch(() => {});
        assert.equal(res.code, 0, res.stdout + res.stderr);
      }
      // 20 snapshot batches and at least 5 realtime ones, each followed by a WAIT.
      const waits = calls(tc.masters().map((p) => tc.cli(p, "info", "commandstats")), "wait");
      assert.ok(waits >= 25, `${waits} WAIT commands on the masters`);
    });
  } finally {
    cluster.disconnect();
    tc.stop();
  }
});

Deno.test("wait-for-replicas: 1 on a Redis without replica fails after retries, naming stream and count", async () => {
  await withTables(100, async (_db, schema) => {
    const home = scratchHome();
    const redis = redisClient();
    try {
      const res = await runReplicant([
        "snapshot",
        home.pgConn,
        home.redisConn,
        "--filter",
        home.write("filter.yaml", filterOf(schema)),
        "--applier",
        home.write(
          "applier.yaml",
          "snapshot:\n  max-retries: 2\n  retry-wait-duration-ms: 20\n" +
            "wait-for-replicas: 1\nwait-for-replicas-timeout-ms: 50\n",
        ),
        "--id",
        `e2e-wait-none-${schema.slice(9)}`,
        "--home",
        home.dir,
        "--overwrite",
      ]);
      assert.equal(res.code, 3, res.stdout + res.stderr);
      for (const t of ["t1", "t2"]) {
        const stream = `replicant_${schema}_${t}`;
        assert.match(
          res.stdout + res.stderr,
          new RegExp(
            `only 0 of 1 replica\\(s\\) acknowledged a batch into "${stream}" on 127\\.0\\.0\\.1:\\d+ ` +
              `within 50 ms \\(applier wait-for-replicas: 1\\)`,
          ),
        );
        // Retried three times in all: the entries that landed were not written again.
        assert.equal(await redis.xlen(stream), 100, stream);
      }
    } finally {
      await deleteKeys(redis, `replicant_${schema}_*`);
      await deleteKeys(redis, `replicate_io_*_default_e2e-*-${schema.slice(9)}`);
      redis.disconnect();
    }
  });
});

Deno.test("wait-for-replicas: 1 without replica stops GLOBAL realtime after retries (exit 1)", async () => {
  await withTables(10, async (db, schema) => {
    const home = scratchHome();
    const redis = redisClient();
    const id = `e2e-wait-global-${schema.slice(9)}`;
    const slot = `replicant_default_${id}`.replace(/[^a-z0-9_]/g, "_");
    const stream = `replicate_io_cdc_log_default_${id}`;
    const run = startReplicant([
      "realtime",
      home.pgConn,
      home.redisConn,
      "--filter",
      home.write("filter.yaml", filterOf(schema)),
      "--applier",
      home.write(
        "applier.yaml",
        "realtime:\n  replay-consistency: GLOBAL\n  max-retries: 2\n" +
          "  retry-wait-duration-ms: 20\nwait-for-replicas: 1\nwait-for-replicas-timeout-ms: 50\n",
      ),
      "--id",
      id,
      "--home",
      home.dir,
      "--overwrite",
    ]);
    let exited = false;
    run.done.then(() => (exited = true));
    try {
      // Changes until one reaches the stream's writer (the slot starts when replicant is up).
      let key = 1000;
      await waitFor(async () => {
        if (!exited) await db.query(`INSERT INTO ${schema}.t1 VALUES ($1, 'x')`, [key++]);
        return exited;
      }, { what: "replicant to stop", timeoutMs: 30_000, intervalMs: 200 });
      const res = await run.done;
      assert.equal(res.code, 1, res.stdout + res.stderr);
      assert.match(
        res.stderr,
        new RegExp(
          `only 0 of 1 replica\\(s\\) acknowledged a batch into "${stream}" on 127\\.0\\.0\\.1:\\d+`,
        ),
      );
      // Each try was undone: nothing in doubt, nothing left in the stream.
      assert.equal(await redis.xlen(stream), 0);
    } finally {
      if (!exited) run.kill("SIGKILL");
      await run.done;
      await dropSlot(db, slot).catch(() => {});
      await dropPublication(db, slot).catch(() => {});
      await deleteKeys(redis, `replicate_io_*_default_${id}*`);
      redis.disconnect();
    }
  });
});

Deno.test("max-stream-length: 1000 keeps about 1000 entries of a 5000-row snapshot", async () => {
  await withTables(5000, async (_db, schema) => {
    const home = scratchHome();
    const redis = redisClient();
    try {
      const res = await runReplicant([
        "snapshot",
        home.pgConn,
        home.redisConn,
        "--filter",
        home.write("filter.yaml", filterOf(schema)),
        "--applier",
        home.write("applier.yaml", "snapshot:\n  batch-size-rows: 500\nmax-stream-length: 1000\n"),
        "--id",
        `e2e-maxlen-${schema.slice(9)}`,
        "--home",
        home.dir,
        "--overwrite",
      ]);
      assert.equal(res.code, 0, res.stdout + res.stderr);
      for (const t of ["t1", "t2"]) {
        const stream = `replicant_${schema}_${t}`;
        const info = await redis.call("XINFO", "STREAM", stream) as unknown[];
        const field = (name: string) => info[info.indexOf(name) + 1];
        assert.equal(field("entries-added"), 5000, `${stream}: every entry was added`);
        const length = await redis.xlen(stream);
        // MAXLEN ~ trims whole nodes (100 entries each by default): at least 1000 stay.
        assert.ok(length >= 1000 && length <= 1100, `${stream}: ${length} entries`);
        const [[, last]] = await redis.xrevrange(stream, "+", "-", "COUNT", 1);
        assert.equal(JSON.parse(last[0]).payload.id, 5000, `${stream}: the newest entries stay`);
      }
    } finally {
      await deleteKeys(redis, `replicant_${schema}_*`);
      await deleteKeys(redis, `replicate_io_*_default_e2e-*-${schema.slice(9)}`);
      redis.disconnect();
    }
  });
});
