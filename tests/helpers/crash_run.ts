/**
 * The crash test of both sources: `replicant full` killed with SIGKILL at random moments of
 * the snapshot and of realtime while a generator writes known transactions (and another writer
 * a table outside the selection), resumed with `--resume` each time; at the end every change is
 * in its stream exactly once and in commit order, and the streams replay into the tables.
 */
import assert from "node:assert/strict";
import { redisClient } from "./clients.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "./replicant.ts";
import { removeBed, sourceBed } from "./source_bed.ts";
import { uniqueTag } from "./test_seed.ts";
import { assertReplicated, type Dialect, killAndResume, NoiseWriter } from "./change_log.ts";

const BIG_ROWS = 100_000;
const SMALL_ROWS = 500;
const KILLS = 12;

export interface CrashRunOptions {
  dialect: Dialect;
  /** Drives the generated transactions and the kill points. */
  seed: number;
  /** The first this many of the kills land in the snapshot. */
  snapshotKills: number;
  /** Realtime of every table must have seen more than this many transactions. */
  minTransactions: number;
}

export async function crashRun(o: CrashRunOptions): Promise<void> {
  const tag = uniqueTag();
  const id = `crash-${o.dialect}-${tag}`;
  const bed = await sourceBed(o.dialect, {
    prefix: o.dialect === "pg" ? "crash_pg" : "crash_my",
    tag,
    id,
    tables: ["big", "a", "b"],
    rows: (t) => t === "big" ? BIG_ROWS : SMALL_ROWS,
  });
  const redis = redisClient();
  // Assigned by killAndResume's start(); read by the cleanup below.
  let run = null as RunningReplicant | null;
  const generator = bed.generator(o.seed);
  const noise = new NoiseWriter(bed.noise);
  try {
    noise.start();
    const home = scratchHome();
    const args = (mode: "--overwrite" | "--resume") => [
      "full",
      bed.connFile(home),
      home.redisConn,
      "--extractor",
      home.write("extractor.yaml", "snapshot:\n  threads: 2\n  fetch-size-rows: 500\n"),
      "--applier",
      home.write(
        "applier.yaml",
        "snapshot:\n  batch-size-rows: 250\n  txn-size-rows: 250\n" +
          "realtime:\n  batch-size-rows: 50\n  txn-size-rows: 50\ninclude-schema: false\n",
      ),
      "--filter",
      home.write("filter.yaml", bed.filter),
      "--id",
      id,
      "--home",
      home.dir,
      mode,
    ];
    await killAndResume({
      redis,
      generator,
      dialect: o.dialect,
      seed: o.seed,
      kills: KILLS,
      snapshotKills: o.snapshotKills,
      snapshotStream: bed.snapStream("big"),
      checkpointKey: `replicate_io_checkpoint_default_${id}`,
      cdcStreams: Object.keys(bed.tables).map(bed.cdcStream),
      start: (mode: "--overwrite" | "--resume") => (run = startReplicant(args(mode))),
    });
    run = null;
    await noise.stop();
    assert.ok(noise.count > 0, "transactions on the unselected table");
    await assertReplicated(redis, bed, generator.log, { minTransactions: o.minTransactions });
  } finally {
    if (run) {
      try {
        run.kill("SIGKILL");
      } catch {
        // It exited on its own: the error that ended the test says why.
      }
      await run.done;
    }
    await generator.stop().catch(() => {});
    await noise.stop().catch(() => {});
    await removeBed(bed, redis, id);
    redis.disconnect();
  }
}
