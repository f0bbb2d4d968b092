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
import type { Redis } from "ioredis";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import {
  assertReplicated,
  type Dialect,
  killAndResume,
  lastChangeThenStop,
  totalLength,
} from "../helpers/change_log.ts";
import { sourceBed } from "../helpers/source_bed.ts";
import { seededTest } from "../helpers/test_seed.ts";
import { keySlot } from "../../src/sink/redis/key_slot.ts";
import { StreamNaming } from "../../src/core/stream_naming.ts";

const ROWS = 2000;
const TABLES = ["a", "b", "c"];
/** Rows of table a in the kill loop, so that a kill can land in its snapshot. */
const BIG_ROWS = 40_000;

/**
 * `crash`: the master is SIGKILLed instead of handing over (CLUSTER FAILOVER), with
 * `wait-for-replicas: 1` so every batch is on the replica before it counts. `killLoop`: no
 * failover; change_log's killAndResume kills replicant 6 times (once in the snapshot).
 */
async function failoverAndResume(
  seed: number,
  source: Dialect,
  consistency: "EVENTUAL" | "GLOBAL",
  { crash = false, killLoop = false } = {},
): Promise<void> {
  // From the seed: the stream names decide which master holds which stream.
  const tag = seed.toString(36);
  const id = `cluster-rt-${tag}`;
  const naming = new StreamNaming(id, "default");
  const tc = await startRedisCluster();
  const cluster = tc.client();
  // The helpers take an ioredis client; a Cluster answers the same single-key commands.
  const redis = cluster as unknown as Redis;
  const rows = (t: string) => killLoop && t === "a" ? BIG_ROWS : ROWS;
  // Binlog clients of this test area use server ids 5201-5299.
  const src = await sourceBed(source, {
    prefix: "cluster_rt",
    tag,
    id,
    tables: TABLES,
    rows,
    serverId: 5201 + Math.floor(Math.random() * 99),
  });
  const cdcStream = src.cdcStream;
  const cdcStreams = consistency === "GLOBAL" ? [naming.globalCdcStream()] : TABLES.map(cdcStream);
  /** The stream whose master fails over: the GLOBAL one, or table a's. */
  const busy = consistency === "GLOBAL" ? naming.globalCdcStream() : cdcStream("a");
  const checkpointKey = naming.checkpointKey(true);
  let run = null as RunningReplicant | null;
  const generator = src.generator(seed, 5);
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

      await lastChangeThenStop({ redis, generator, dialect: src.dialect, cdcStreams, run });
      run = null;
    }

    // MariaDB: each table's realtime starts at the position of the snapshot that read it.
    await assertReplicated(redis, src, generator.log, {
      globalStream: consistency === "GLOBAL" ? naming.globalCdcStream() : undefined,
      minTransactions: 200,
    });
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

seededTest(
  "cluster realtime EVENTUAL (pg): master failover, kill -9 and --resume, exactly once",
  (seed) => failoverAndResume(seed, "pg", "EVENTUAL"),
);

seededTest(
  "cluster realtime GLOBAL (pg): master failover, kill -9 and --resume, exactly once",
  (seed) => failoverAndResume(seed, "pg", "GLOBAL"),
);

seededTest(
  "cluster realtime EVENTUAL (pg), wait-for-replicas 1: master killed (-9), exactly once",
  (seed) => failoverAndResume(seed, "pg", "EVENTUAL", { crash: true }),
);

seededTest(
  "cluster realtime GLOBAL (pg), wait-for-replicas 1: master killed (-9), exactly once",
  (seed) => failoverAndResume(seed, "pg", "GLOBAL", { crash: true }),
);

seededTest(
  "cluster realtime EVENTUAL (mariadb): master failover, kill -9 and --resume, exactly once",
  (seed) => failoverAndResume(seed, "mysql", "EVENTUAL"),
);

seededTest(
  "cluster kill -9 ×6 (one in the snapshot) and --resume (pg, EVENTUAL), exactly once",
  (seed) => failoverAndResume(seed, "pg", "EVENTUAL", { killLoop: true }),
);
