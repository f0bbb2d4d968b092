/**
 * End-to-end on a Redis Cluster with replicas (3 + 3): `replicant full` from PostgreSQL (and
 * MariaDB), then realtime while a generator writes known transactions; during streaming the
 * master holding the busiest stream is failed over (`CLUSTER FAILOVER` on its replica, or
 * SIGKILL of the master with `wait-for-replicas: 1`), then replicant is killed with SIGKILL
 * and resumed with `--resume`. EVENTUAL (a stream per table) and GLOBAL (one stream, commit
 * order): every change exactly once and in order per stream, and the streams replay into the
 * source tables.
 */
import assert from "node:assert/strict";
import mysql from "mysql2/promise";
import type { Redis } from "ioredis";
import { pgClient } from "../helpers/clients.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import {
  type RunningReplicant,
  type ScratchHome,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";
import {
  assertExactlyOnce,
  assertPositions,
  assertSameTable,
  canonical,
  ChangeGenerator,
  type Dialect,
  type Entry,
  type GeneratorOptions,
  killAndResume,
  mysqlTxRunner,
  pgTxRunner,
  readEntries,
  replay,
  tailHas,
  totalLength,
} from "../helpers/change_log.ts";
import { keySlot } from "../../src/sink/redis/key_slot.ts";
import { StreamNaming } from "../../src/core/stream_naming.ts";
import { dropPublication, dropSlot } from "../../src/source/postgres/pg_replication_slot.ts";

const ROWS = 2000;
const TABLES = ["a", "b", "c"];
/** Rows of table a in the kill loop, so that a kill can land in its snapshot. */
const BIG_ROWS = 40_000;

/** A source database with tables a, b, c (`rows` rows each; a may have more). */
interface SourceBed {
  dialect: Dialect;
  /** Logical name → SQL name. */
  tables: Record<string, string>;
  snapStream(t: string): string;
  placeholders: GeneratorOptions["placeholders"];
  /** One transaction of the generator; returns its token. */
  run: GeneratorOptions["run"];
  connFile(home: ScratchHome): string;
  filter: string;
  rows(t: string): Promise<Map<number, string>>;
  close(): Promise<void>;
}

async function pgSource(tag: string, id: string, rows: (t: string) => number): Promise<SourceBed> {
  const schema = `cluster_rt_${tag}`;
  const slot = `replicant_default_${id}`.replace(/[^a-z0-9_]/g, "_").slice(0, 63);
  const db = await pgClient();
  const writer = await pgClient();
  const tables = Object.fromEntries(TABLES.map((t) => [t, `${schema}.${t}`]));
  await db.query(`CREATE SCHEMA ${schema}`);
  for (const [t, sql] of Object.entries(tables)) {
    await db.query(`CREATE TABLE ${sql} (id int PRIMARY KEY, v text NOT NULL, n bigint)`);
    await db.query(
      `INSERT INTO ${sql} SELECT g, md5(g::text), g::bigint * 7 FROM generate_series(1, ${
        rows(t)
      }) g`,
    );
  }
  return {
    dialect: "pg",
    tables,
    snapStream: (t) => `replicant_${schema}_${t}`,
    placeholders: "dollar",
    run: pgTxRunner(writer),
    connFile: (home) => home.pgConn,
    filter: `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
    async rows(t) {
      const res = await db.query<{ j: Record<string, unknown> }>(
        `SELECT to_jsonb(t) AS j FROM ${tables[t]} t`,
      );
      return new Map(
        res.rows.map((r: { j: Record<string, unknown> }) => [Number(r.j.id), canonical(r.j)]),
      );
    },
    async close() {
      await dropSlot(db, slot).catch(() => {});
      await dropPublication(db, slot).catch(() => {});
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await writer.end();
      await db.end();
    },
  };
}

async function mariadbSource(tag: string, rows: (t: string) => number): Promise<SourceBed> {
  const env = serviceEnv().mysql;
  const connect = () =>
    mysql.createConnection({
      host: env.host,
      port: env.port,
      user: env.user,
      password: env.password,
    });
  const database = `cluster_rt_${tag}`;
  const db = await connect();
  const writer = await connect();
  const tables = Object.fromEntries(TABLES.map((t) => [t, `${database}.${t}`]));
  await db.query(`CREATE DATABASE ${database}`);
  await db.query(`USE ${database}`); // seq_1_to_N needs a current database
  for (const [t, sql] of Object.entries(tables)) {
    await db.query(`CREATE TABLE ${sql} (id int PRIMARY KEY, v varchar(64) NOT NULL, n bigint)`);
    await db.query(`INSERT INTO ${sql} SELECT seq, md5(seq), seq * 7 FROM seq_1_to_${rows(t)}`);
  }
  return {
    dialect: "mysql",
    tables,
    snapStream: (t) => `${database}_${t}`,
    placeholders: "question",
    run: mysqlTxRunner(writer),
    // Binlog clients of this test area use server ids 5201-5299.
    connFile: (home) =>
      home.write(
        "mysql.yaml",
        `type: MARIADB\nhost: ${env.host}\nport: ${env.port}\nusername: ${env.user}\n` +
          `password: "${env.password}"\nslave-server-ids: [${
            5201 + Math.floor(Math.random() * 99)
          }]\nmax-connections: 6\n`,
      ),
    filter: `allow:\n  - catalog: ${database}\n    types: [TABLE]\n`,
    async rows(t) {
      const [rows] = await db.query(`SELECT id, v, n FROM ${tables[t]}`);
      return new Map(
        (rows as { id: number; v: string; n: number }[]).map((r) => [Number(r.id), canonical(r)]),
      );
    },
    async close() {
      await db.query(`DROP DATABASE IF EXISTS ${database}`);
      await writer.end();
      await db.end();
    },
  };
}

/**
 * `crash`: the master is SIGKILLed instead of handing over (CLUSTER FAILOVER), with
 * `wait-for-replicas: 1` so every batch is on the replica before it counts. `killLoop`: no
 * failover; change_log's killAndResume kills replicant 6 times (once in the snapshot).
 */
async function failoverAndResume(
  source: "pg" | "mariadb",
  consistency: "EVENTUAL" | "GLOBAL",
  { crash = false, killLoop = false } = {},
): Promise<void> {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const id = `cluster-rt-${tag}`;
  const seed = Math.floor(Math.random() * 2 ** 31);
  const naming = new StreamNaming(id, "default");
  const tc = await startRedisCluster();
  const cluster = tc.client();
  // The helpers take an ioredis client; a Cluster answers the same single-key commands.
  const redis = cluster as unknown as Redis;
  const rows = (t: string) => killLoop && t === "a" ? BIG_ROWS : ROWS;
  const src = source === "pg" ? await pgSource(tag, id, rows) : await mariadbSource(tag, rows);
  const cdcStream = (t: string) => `${src.snapStream(t)}_cdc_logs`;
  const cdcStreams = consistency === "GLOBAL" ? [naming.globalCdcStream()] : TABLES.map(cdcStream);
  /** The stream whose master fails over: the GLOBAL one, or table a's. */
  const busy = consistency === "GLOBAL" ? naming.globalCdcStream() : cdcStream("a");
  const checkpointKey = naming.checkpointKey(true);
  let run = null as RunningReplicant | null;
  const generator = new ChangeGenerator({
    tables: src.tables,
    placeholders: src.placeholders,
    seed,
    pauseMs: 5,
    run: src.run,
  });
  for (const t of TABLES) generator.seed(t, Array.from({ length: rows(t) }, (_, i) => i + 1));
  try {
    const home = scratchHome();
    const conn = home.write("redis_cluster.yaml", tc.connYaml());
    const args = (mode: "--overwrite" | "--resume") => [
      "full",
      src.connFile(home),
      conn,
      "--applier",
      home.write(
        "applier.yaml",
        "snapshot:\n  batch-size-rows: 250\n" +
          `realtime:\n  batch-size-rows: 20\n  replay-consistency: ${consistency}\n` +
          "  max-retries: 30\n  retry-wait-duration-ms: 200\ninclude-schema: false\n" +
          (crash ? "wait-for-replicas: 1\nwait-for-replicas-timeout-ms: 1000\n" : ""),
      ),
      "--filter",
      home.write("filter.yaml", src.filter),
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

    if (killLoop) {
      await killAndResume({
        redis,
        generator,
        dialect: src.dialect,
        seed,
        kills: 6,
        snapshotKills: 1,
        snapshotStream: src.snapStream("a"),
        checkpointKey,
        cdcStreams,
        start: (mode: "--overwrite" | "--resume") => (run = startReplicant(args(mode))),
      });
      run = null;
    } else {
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
      const promoted = crash ? await tc.crash(before) : await tc.failover(before);
      assert.equal(tc.ownerOf(keySlot(busy)), promoted, `${busy} is served by the new master`);
      await progress(300, "realtime after the failover");
      // The writers still sent to the old master, now a replica, and followed its MOVED.
      if (!crash) assert.ok(moved() > movedBefore, "the old master answered MOVED");

      // kill -9 during streaming, then --resume.
      run.kill("SIGKILL");
      assert.equal((await run.done).code, 137);
      run = startReplicant(args("--resume"));
      await progress(300, "realtime after --resume");

      await generator.stop();
      const last = await generator.marker();
      await waitFor(async () => {
        for (const s of cdcStreams) {
          if (!(await tailHas(redis, s, last.token, src.dialect))) return false;
        }
        return true;
      }, { what: "the last change in every cdc stream", timeoutMs: 60_000, intervalMs: 100 });
      run.kill("SIGTERM");
      const res = await run.done;
      run = null;
      assert.equal(res.code, 0, res.stderr);
    }

    /** Each table's cdc entries: its own stream, or its part of the GLOBAL stream. */
    const cdcOf = new Map<string, Entry[]>();
    if (consistency === "GLOBAL") {
      const all = await readEntries(redis, naming.globalCdcStream());
      assertPositions(all, src.dialect, naming.globalCdcStream());
      for (const t of TABLES) {
        cdcOf.set(
          t,
          all.filter((e) => !e.tombstone && e.source?.table === t),
        );
      }
    } else {
      for (const t of TABLES) {
        const entries = await readEntries(redis, cdcStream(t));
        assertPositions(entries, src.dialect, cdcStream(t));
        cdcOf.set(t, entries);
      }
    }
    let first = Infinity;
    for (const t of TABLES) {
      const snap = await readEntries(redis, src.snapStream(t));
      assert.ok(snap.every((e) => e.op === "r"), `${t}: the snapshot stream holds only reads`);
      const cdc = cdcOf.get(t)!;
      assertSameTable(replay(snap, cdc), await src.rows(t), t);
      // MariaDB: each table's realtime starts at the position of the snapshot that read it.
      const from = assertExactlyOnce(generator.log, t, cdc, src.dialect);
      assert.ok(
        generator.log.length - from > 200,
        `${t}: realtime saw ${generator.log.length - from} of ${generator.log.length} transactions`,
      );
      first = Math.min(first, from);
    }
    // PostgreSQL: one slot feeds every stream, so from the first transaction seen, all are there.
    if (src.dialect === "pg") {
      for (const t of TABLES) assertExactlyOnce(generator.log, t, cdcOf.get(t)!, "pg", first);
    }
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await generator.stop().catch(() => {});
    await src.close();
    cluster.disconnect();
    tc.stop();
  }
}

Deno.test("cluster realtime EVENTUAL (pg): master failover, kill -9 and --resume, exactly once", () =>
  failoverAndResume("pg", "EVENTUAL"));

Deno.test("cluster realtime GLOBAL (pg): master failover, kill -9 and --resume, exactly once", () =>
  failoverAndResume("pg", "GLOBAL"));

Deno.test("cluster realtime EVENTUAL (pg), wait-for-replicas 1: master killed (-9), exactly once", () =>
  failoverAndResume("pg", "EVENTUAL", { crash: true }));

Deno.test("cluster realtime GLOBAL (pg), wait-for-replicas 1: master killed (-9), exactly once", () =>
  failoverAndResume("pg", "GLOBAL", { crash: true }));

Deno.test("cluster realtime EVENTUAL (mariadb): master failover, kill -9 and --resume, exactly once", () =>
  failoverAndResume("mariadb", "EVENTUAL"));

Deno.test("cluster kill -9 ×6 (one in the snapshot) and --resume (pg, EVENTUAL), exactly once", () =>
  failoverAndResume("pg", "EVENTUAL", { killLoop: true }));
