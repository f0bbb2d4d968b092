/**
 * End-to-end on a Redis Cluster with replicas (3 + 3): `replicant full` from PostgreSQL, then
 * realtime while a generator writes known transactions; during streaming the master holding
 * the busiest stream is failed over (`CLUSTER FAILOVER` on its replica), then replicant is
 * killed with SIGKILL and resumed with `--resume`. EVENTUAL (a stream per table) and GLOBAL
 * (one stream, commit order): every change exactly once and in order per stream, and the
 * streams replay into the source tables.
 */
import assert from "node:assert/strict";
import type pg from "pg";
import type { Redis } from "ioredis";
import { pgClient } from "../helpers/clients.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import {
  assertExactlyOnce,
  assertPositions,
  assertSameTable,
  canonical,
  ChangeGenerator,
  type Entry,
  readEntries,
  replay,
  tailHas,
  totalLength,
} from "../helpers/change_log.ts";
import { keySlot } from "../../src/sink/redis/key_slot.ts";
import { StreamNaming } from "../../src/core/stream_naming.ts";
import { dropPublication, dropSlot } from "../../src/source/postgres/pg_replication_slot.ts";

const ROWS = 2000;

async function tableRows(db: pg.Client, table: string): Promise<Map<number, string>> {
  const res = await db.query<{ j: Record<string, unknown> }>(
    `SELECT to_jsonb(t) AS j FROM ${table} t`,
  );
  return new Map(
    res.rows.map((r: { j: Record<string, unknown> }) => [Number(r.j.id), canonical(r.j)]),
  );
}

async function failoverAndResume(consistency: "EVENTUAL" | "GLOBAL"): Promise<void> {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const schema = `cluster_rt_${tag}`;
  const id = `cluster-rt-${tag}`;
  const slot = `replicant_default_${id}`.replace(/[^a-z0-9_]/g, "_").slice(0, 63);
  const seed = Math.floor(Math.random() * 2 ** 31);
  const naming = new StreamNaming(id, "default");
  const tables = { a: `${schema}.a`, b: `${schema}.b`, c: `${schema}.c` };
  const snapStream = (t: string) => `replicant_${schema}_${t}`;
  const cdcStream = (t: string) => `replicant_${schema}_${t}_cdc_logs`;
  const cdcStreams = consistency === "GLOBAL"
    ? [naming.globalCdcStream()]
    : Object.keys(tables).map(cdcStream);
  /** The stream whose master fails over: the GLOBAL one, or table a's (the busiest). */
  const busy = consistency === "GLOBAL" ? naming.globalCdcStream() : cdcStream("a");
  const checkpointKey = naming.checkpointKey(true);

  const tc = await startRedisCluster();
  const cluster = tc.client();
  // The helpers take an ioredis client; a Cluster answers the same single-key commands.
  const redis = cluster as unknown as Redis;
  const db = await pgClient();
  const writer = await pgClient();
  let run = null as RunningReplicant | null;
  const generator = new ChangeGenerator({
    tables,
    placeholders: "dollar",
    seed,
    pauseMs: 5,
    run: async (stmts) => {
      await writer.query("BEGIN");
      try {
        for (const s of stmts) await writer.query(s.sql, s.params);
        const r = await writer.query("SELECT (txid_current() % 4294967296)::text AS x");
        await writer.query("COMMIT");
        return r.rows[0].x;
      } catch (err) {
        await writer.query("ROLLBACK").catch(() => {});
        throw err;
      }
    },
  });
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    for (const [name, sql] of Object.entries(tables)) {
      await db.query(`CREATE TABLE ${sql} (id int PRIMARY KEY, v text NOT NULL, n bigint)`);
      await db.query(
        `INSERT INTO ${sql} SELECT g, md5(g::text), g::bigint * 7 FROM generate_series(1, ${ROWS}) g`,
      );
      generator.seed(name, Array.from({ length: ROWS }, (_, i) => i + 1));
    }
    const home = scratchHome();
    const conn = home.write("redis_cluster.yaml", tc.connYaml());
    const args = (mode: "--overwrite" | "--resume") => [
      "full",
      home.pgConn,
      conn,
      "--applier",
      home.write(
        "applier.yaml",
        "snapshot:\n  batch-size-rows: 250\n" +
          `realtime:\n  batch-size-rows: 20\n  replay-consistency: ${consistency}\n` +
          "  max-retries: 20\n  retry-wait-duration-ms: 200\ninclude-schema: false\n",
      ),
      "--filter",
      home.write(
        "filter.yaml",
        `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
      ),
      "--id",
      id,
      "--home",
      home.dir,
      mode,
    ];
    /** Waits until the cdc streams grew by `n` entries, failing early if replicant exited. */
    const progress = async (n: number, what: string) => {
      const current = run!;
      let exited = false;
      current.done.then(() => (exited = true));
      const want = (await totalLength(redis, cdcStreams)) + n;
      await waitFor(async () => {
        if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
        return (await totalLength(redis, cdcStreams)) >= want;
      }, { what, timeoutMs: 60_000, intervalMs: 20 });
    };

    generator.start();
    run = startReplicant(args("--overwrite"));
    await waitFor(async () => (await redis.hget(checkpointKey, "snapshot:complete")) === "1", {
      what: "snapshot complete",
      timeoutMs: 60_000,
    });
    await progress(200, "realtime before the failover");

    // Fail over the master of the busy stream while the generator and replicant write.
    const before = tc.ownerOf(keySlot(busy));
    const moved = () =>
      Number(/errorstat_MOVED:count=(\d+)/.exec(tc.cli(before, "info", "errorstats"))?.[1] ?? 0);
    const movedBefore = moved();
    const promoted = await tc.failover(before);
    assert.equal(tc.ownerOf(keySlot(busy)), promoted, `${busy} is served by the new master`);
    await progress(300, "realtime after the failover");
    // The writers still sent to the old master, now a replica, and followed its MOVED.
    assert.ok(moved() > movedBefore, "the old master answered MOVED after the failover");

    // kill -9 during streaming, then --resume.
    run.kill("SIGKILL");
    assert.equal((await run.done).code, 137);
    run = startReplicant(args("--resume"));
    await progress(300, "realtime after --resume");

    await generator.stop();
    const last = await generator.marker();
    await waitFor(async () => {
      for (const s of cdcStreams) if (!(await tailHas(redis, s, last.token, "pg"))) return false;
      return true;
    }, { what: "the last change in every cdc stream", timeoutMs: 60_000, intervalMs: 100 });
    run.kill("SIGTERM");
    const res = await run.done;
    run = null;
    assert.equal(res.code, 0, res.stderr);

    /** Each table's cdc entries: its own stream, or its part of the GLOBAL stream. */
    const cdcOf = new Map<string, Entry[]>();
    if (consistency === "GLOBAL") {
      const all = await readEntries(redis, naming.globalCdcStream());
      assertPositions(all, "pg", naming.globalCdcStream());
      for (const t of Object.keys(tables)) {
        cdcOf.set(t, all.filter((e) => !e.tombstone && e.source?.table === t));
      }
    } else {
      for (const t of Object.keys(tables)) {
        const entries = await readEntries(redis, cdcStream(t));
        assertPositions(entries, "pg", cdcStream(t));
        cdcOf.set(t, entries);
      }
    }
    let first = Infinity;
    for (const t of Object.keys(tables)) {
      const snap = await readEntries(redis, snapStream(t));
      assert.ok(snap.every((e) => e.op === "r"), `${t}: the snapshot stream holds only reads`);
      const cdc = cdcOf.get(t)!;
      assertSameTable(replay(snap, cdc), await tableRows(db, tables[t as keyof typeof tables]), t);
      first = Math.min(first, assertExactlyOnce(generator.log, t, cdc, "pg"));
    }
    // One slot feeds every stream: from the first logged transaction seen on, all are there.
    for (const t of Object.keys(tables)) {
      assertExactlyOnce(generator.log, t, cdcOf.get(t)!, "pg", first);
    }
    assert.ok(
      generator.log.length - first > 200,
      `realtime saw ${generator.log.length - first} of ${generator.log.length} transactions`,
    );
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await generator.stop().catch(() => {});
    await dropSlot(db, slot).catch(() => {});
    await dropPublication(db, slot).catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await writer.end();
    await db.end();
    cluster.disconnect();
    tc.stop();
  }
}

Deno.test("cluster realtime EVENTUAL: master failover, kill -9 and --resume, exactly once", async () => {
  await failoverAndResume("EVENTUAL");
});

Deno.test("cluster realtime GLOBAL: master failover, kill -9 and --resume, exactly once", async () => {
  await failoverAndResume("GLOBAL");
});
