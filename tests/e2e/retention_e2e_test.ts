/**
 * End-to-end retention: `replicant full` from PostgreSQL with an applier `retention` section,
 * consumer groups reading every stream (one group fast, one slower on a change stream) while
 * a generator writes known transactions; replicant is killed with SIGKILL during the snapshot
 * and during realtime and resumed with `--resume`, with retention trimming what the groups
 * acknowledged all along. The groups together see every row and every change exactly once
 * and in order (a trimmed tail would make a resume write changes again; a trim past what a
 * group read would leave a gap), the streams stay short, and the trims are recorded. On a
 * Redis Cluster the same, and `verify` names the tables whose streams were trimmed.
 */
import assert from "node:assert/strict";
import type pg from "pg";
import type { Cluster, Redis } from "ioredis";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import {
  type RunningReplicant,
  runReplicant,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { waitFor } from "../helpers/services.ts";
import {
  assertExactlyOnce,
  assertPositions,
  assertSameTable,
  canonical,
  ChangeGenerator,
  type Entry,
  entryOf,
  pgTxRunner,
  prng,
  replay,
} from "../helpers/change_log.ts";
import { dropPublication, dropSlot } from "../../src/source/postgres/pg_replication_slot.ts";
import { RETENTION_FIELD_PREFIX } from "../../src/ports/checkpoint.ts";

const BIG_ROWS = 30_000;
const SMALL_ROWS = 300;
const SNAPSHOT_KILLS = 2;
const REALTIME_KILLS = 4;

async function tableRows(db: pg.Client, table: string): Promise<Map<number, string>> {
  const res = await db.query<{ j: Record<string, unknown> }>(
    `SELECT to_jsonb(t) AS j FROM ${table} t`,
  );
  return new Map(
    res.rows.map((r: { j: Record<string, unknown> }) => [Number(r.j.id), canonical(r.j)]),
  );
}

/** XINFO STREAM `entries-added`: every entry ever added, trimmed or not (0: no stream). */
async function entriesAdded(redis: Redis | Cluster, stream: string): Promise<number> {
  try {
    const info = await redis.call("XINFO", "STREAM", stream) as unknown[];
    return Number(info[info.indexOf("entries-added") + 1]);
  } catch {
    return 0;
  }
}

/**
 * A consumer group reading `streams` until stopped: every entry read is kept (per stream)
 * and acknowledged right away, `pauseMs` between rounds. One stream per command, so it works
 * on a Redis Cluster too.
 */
function consumer(
  group: string,
  streams: string[],
  pauseMs: number,
  redis: Redis | Cluster = redisClient(),
) {
  const seen = new Map<string, Entry[]>(streams.map((s) => [s, []]));
  let stopping = false;
  const ready = (async () => {
    for (const s of streams) await redis.xgroup("CREATE", s, group, "0", "MKSTREAM");
  })();
  const run = ready.then(async () => {
    for (;;) {
      let read = 0;
      for (const stream of streams) {
        const reply = await redis.xreadgroup(
          "GROUP",
          group,
          "c",
          "COUNT",
          500,
          "STREAMS",
          stream,
          ">",
        ) as [string, [string, string[]][]][] | null;
        const entries = reply?.[0][1] ?? [];
        read += entries.length;
        seen.get(stream)!.push(...entries.map(([id, fields]) => entryOf(id, fields)));
        if (entries.length > 0) await redis.xack(stream, group, ...entries.map(([id]) => id));
      }
      if (read === 0 && stopping) return;
      await new Promise((r) => setTimeout(r, read === 0 ? Math.max(pauseMs, 20) : pauseMs));
    }
  });
  return {
    seen,
    ready,
    /** Reads until nothing is left, then stops. */
    async drain() {
      stopping = true;
      await run;
      redis.disconnect();
    },
    /** The newest change this group read of `stream` carries transaction `token`. */
    has(stream: string, token: string): boolean {
      return seen.get(stream)!.some((e) => !e.tombstone && String(e.source?.txId) === token);
    },
  };
}

Deno.test("retention (pg): groups see everything exactly once across kill -9 and --resume while streams are trimmed", async () => {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const schema = `ret_pg_${tag}`;
  const id = `ret-pg-${tag}`;
  const slot = `replicant_default_${id}`.toLowerCase().replace(/[^a-z0-9_]/g, "_").slice(0, 63);
  const seed = Math.floor(Math.random() * 2 ** 31);
  const rand = prng(seed);
  const db = await pgClient();
  const writer = await pgClient();
  const redis = redisClient();
  const tables = { big: `${schema}.big`, a: `${schema}.a`, b: `${schema}.b` };
  const names = Object.keys(tables);
  const snapStream = (t: string) => `replicant_${schema}_${t}`;
  const cdcStream = (t: string) => `replicant_${schema}_${t}_cdc_logs`;
  const streams = names.flatMap((t) => [snapStream(t), cdcStream(t)]);
  const checkpointKey = `replicate_io_checkpoint_default_${id}`;
  let run: RunningReplicant | null = null;
  const generator = new ChangeGenerator({
    tables,
    placeholders: "dollar",
    seed,
    pauseMs: 3,
    run: pgTxRunner(writer),
  });
  const app = consumer("app", streams, 0);
  // A slower second group on one change stream: the stream waits for it too.
  const audit = consumer("audit", [cdcStream("a")], 40);
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    for (const [name, sql] of Object.entries(tables)) {
      await db.query(`CREATE TABLE ${sql} (id int PRIMARY KEY, v text NOT NULL, n bigint)`);
      const rows = name === "big" ? BIG_ROWS : SMALL_ROWS;
      await db.query(
        `INSERT INTO ${sql} SELECT g, md5(g::text), g::bigint * 1000003 FROM generate_series(1, ${rows}) g`,
      );
      generator.seed(name, Array.from({ length: rows }, (_, i) => i + 1));
    }
    const home = scratchHome();
    const args = (mode: "--overwrite" | "--resume") => [
      "full",
      home.pgConn,
      home.redisConn,
      "--extractor",
      home.write("extractor.yaml", "snapshot:\n  threads: 2\n  fetch-size-rows: 500\n"),
      "--applier",
      home.write(
        "applier.yaml",
        "snapshot:\n  batch-size-rows: 250\n  txn-size-rows: 250\n" +
          "realtime:\n  batch-size-rows: 50\n  txn-size-rows: 50\ninclude-schema: false\n" +
          "retention:\n  interval-ms: 100\n",
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
      // The groups exist before the first run: keep them.
      ...(mode === "--overwrite" ? ["--truncate-existing"] : []),
    ];
    await app.ready;
    await audit.ready;
    generator.start();
    run = startReplicant(args("--overwrite"));
    const kills = SNAPSHOT_KILLS + REALTIME_KILLS;
    for (let kill = 0; kill < kills; kill++) {
      const current: RunningReplicant = run;
      let exited = false;
      current.done.then(() => (exited = true));
      const alive = async () => {
        if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
      };
      if (kill < SNAPSHOT_KILLS) {
        const want = (await entriesAdded(redis, snapStream("big"))) + 2000 +
          Math.floor(rand() * 6000);
        await waitFor(async () => {
          await alive();
          return (await entriesAdded(redis, snapStream("big"))) >= want ||
            (await redis.hget(checkpointKey, "snapshot:complete")) === "1";
        }, { what: `snapshot progress (kill ${kill})`, timeoutMs: 60_000, intervalMs: 10 });
      } else {
        await waitFor(async () => {
          await alive();
          return (await redis.hget(checkpointKey, "snapshot:complete")) === "1";
        }, { what: `snapshot complete (kill ${kill})`, timeoutMs: 60_000 });
        const total = async () => {
          let n = 0;
          for (const t of names) n += await entriesAdded(redis, cdcStream(t));
          return n;
        };
        const want = (await total()) + 50 + Math.floor(rand() * 400);
        await waitFor(async () => {
          await alive();
          return (await total()) >= want;
        }, { what: `realtime progress (kill ${kill})`, timeoutMs: 60_000, intervalMs: 10 });
        // Killed after retention trimmed what the groups acknowledged.
        await waitFor(async () => {
          let trimmed = 0;
          for (const t of names) {
            const s = cdcStream(t);
            trimmed += (await entriesAdded(redis, s)) - (await redis.xlen(s));
          }
          return trimmed > 0;
        }, { what: `a trimmed change stream (kill ${kill})`, timeoutMs: 30_000 });
      }
      current.kill("SIGKILL");
      assert.equal((await current.done).code, 137, `kill ${kill}`);
      run = startReplicant(args("--resume"));
    }
    await generator.stop();
    const last = await generator.marker();
    await waitFor(
      () => names.every((t) => app.has(cdcStream(t), last.token)),
      { what: "the last change read by the group", timeoutMs: 60_000, intervalMs: 100 },
    );
    await waitFor(() => audit.has(cdcStream("a"), last.token), {
      what: "the last change read by the slow group",
      timeoutMs: 60_000,
    });
    // One more pass once both groups acknowledged everything, then stop cleanly.
    await new Promise((r) => setTimeout(r, 500));
    const stopping: RunningReplicant = run;
    stopping.kill("SIGTERM");
    const res = await stopping.done;
    run = null;
    assert.equal(res.code, 0, res.stderr);
    await app.drain();
    await audit.drain();

    for (const t of names) {
      const snap = app.seen.get(snapStream(t))!;
      const cdc = app.seen.get(cdcStream(t))!;
      assert.ok(snap.every((e) => e.op === "r"), `${t}: snapshot stream holds only reads`);
      const keys = new Set(snap.map((e) => Number(e.key!.id)));
      assert.equal(keys.size, snap.length, `seed ${seed}: ${t}: a snapshot row read twice`);
      assertPositions(cdc, "pg", cdcStream(t));
      assertSameTable(replay(snap, cdc), await tableRows(db, tables[t as keyof typeof tables]), t);
      assertExactlyOnce(generator.log, t, cdc, "pg");
    }
    const auditSeen = audit.seen.get(cdcStream("a"))!;
    assert.deepEqual(
      auditSeen.map((e) => e.id),
      app.seen.get(cdcStream("a"))!.map((e) => e.id),
      "the slow group read the same entries",
    );
    // The streams were trimmed to their protected tails, and the trims are recorded.
    for (const s of streams) {
      const len = await redis.xlen(s);
      assert.ok(len <= 16, `${s} holds ${len} entries after every group acknowledged`);
    }
    const state = await redis.hgetall(checkpointKey);
    for (const s of streams) {
      assert.ok(state[RETENTION_FIELD_PREFIX + s], `trim of ${s} recorded`);
    }
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await generator.stop().catch(() => {});
    await app.drain().catch(() => {});
    await audit.drain().catch(() => {});
    await dropSlot(db, slot).catch(() => {});
    await dropPublication(db, slot).catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await deleteKeys(redis, `replicant_${schema}_*`);
    await deleteKeys(redis, `replicate_io_*_default_${id}`);
    await writer.end();
    await db.end();
    redis.disconnect();
  }
});

Deno.test("retention and verify on a Redis Cluster (pg): trimmed on each node, groups see every change, verify names what it cannot verify", async () => {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const schema = `ret_cl_${tag}`;
  const id = `ret-cl-${tag}`;
  const slot = `replicant_default_${id}`.toLowerCase().replace(/[^a-z0-9_]/g, "_").slice(0, 63);
  const seed = Math.floor(Math.random() * 2 ** 31);
  const bed = await startRedisCluster({ replicas: 0 });
  const cluster = bed.client();
  const db = await pgClient();
  const writer = await pgClient();
  // a and b are read by a group; c by none: retention leaves c alone (no cap).
  const tables = { a: `${schema}.a`, b: `${schema}.b`, c: `${schema}.c` };
  const snapStream = (t: string) => `replicant_${schema}_${t}`;
  const cdcStream = (t: string) => `replicant_${schema}_${t}_cdc_logs`;
  const read = ["a", "b"].flatMap((t) => [snapStream(t), cdcStream(t)]);
  let run: RunningReplicant | null = null;
  const generator = new ChangeGenerator({
    tables,
    placeholders: "dollar",
    seed,
    pauseMs: 3,
    run: pgTxRunner(writer),
  });
  const app = consumer("app", read, 0, bed.client());
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    for (const [name, sql] of Object.entries(tables)) {
      await db.query(`CREATE TABLE ${sql} (id int PRIMARY KEY, v text NOT NULL, n bigint)`);
      await db.query(
        `INSERT INTO ${sql} SELECT g, md5(g::text), g FROM generate_series(1, ${SMALL_ROWS}) g`,
      );
      generator.seed(name, Array.from({ length: SMALL_ROWS }, (_, i) => i + 1));
    }
    await app.ready;
    const home = scratchHome();
    const conn = home.write("redis_cluster.yaml", bed.connYaml());
    generator.start();
    run = startReplicant([
      "full",
      home.pgConn,
      conn,
      "--applier",
      home.write(
        "applier.yaml",
        "realtime:\n  batch-size-rows: 20\ninclude-schema: false\nretention:\n  interval-ms: 100\n",
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
      "--overwrite",
      "--truncate-existing",
    ]);
    const running: RunningReplicant = run;
    let exited = false;
    running.done.then(() => (exited = true));
    await waitFor(async () => {
      if (exited) throw new Error(`replicant exited: ${(await running.done).stderr}`);
      let trimmed = 0;
      for (const s of read) trimmed += (await entriesAdded(cluster, s)) - (await cluster.xlen(s));
      return trimmed > SMALL_ROWS && (await cluster.xlen(snapStream("a"))) <= 16;
    }, { what: "streams trimmed on the cluster", timeoutMs: 60_000 });
    await generator.stop();
    const last = await generator.marker();
    await waitFor(
      () => app.has(cdcStream("a"), last.token) && app.has(cdcStream("b"), last.token),
      {
        what: "the last change read by the group",
        timeoutMs: 60_000,
      },
    );
    // c's streams were never trimmed: verified equal; a and b: not verified.
    const verify = await runReplicant([
      "verify",
      home.pgConn,
      conn,
      "--id",
      id,
      "--home",
      home.dir,
      "--log-format",
      "json",
    ]);
    assert.equal(verify.code, 3, verify.stderr);
    const results = new Map(
      verify.stdout.trim().split("\n").map((l) => JSON.parse(l)).filter((e) =>
        e.event === "verify_table"
      ).map((e) => [String(e.table).split(".").at(-1), e]),
    );
    assert.equal(results.get("c")!.result, "equal", verify.stdout);
    for (const t of ["a", "b"]) {
      assert.equal(results.get(t)!.result, "not_verified");
      assert.match(results.get(t)!.reason, /trimmed by retention/);
    }
    for (const s of [snapStream("c"), cdcStream("c")]) {
      assert.equal(await cluster.xlen(s), await entriesAdded(cluster, s), `${s}: no group, no cap`);
    }
    const stopping: RunningReplicant = run;
    stopping.kill("SIGTERM");
    const res = await stopping.done;
    run = null;
    assert.equal(res.code, 0, res.stderr);
    await app.drain();
    for (const t of ["a", "b"]) {
      const cdc = app.seen.get(cdcStream(t))!;
      assertPositions(cdc, "pg", cdcStream(t));
      assertSameTable(
        replay(app.seen.get(snapStream(t))!, cdc),
        await tableRows(db, tables[t as keyof typeof tables]),
        t,
      );
      assertExactlyOnce(generator.log, t, cdc, "pg");
    }
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await generator.stop().catch(() => {});
    await app.drain().catch(() => {});
    await dropSlot(db, slot).catch(() => {});
    await dropPublication(db, slot).catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await writer.end();
    await db.end();
    cluster.disconnect();
    bed.stop();
  }
});
