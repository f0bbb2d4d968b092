/**
 * End-to-end: `replicant full` from MariaDB, killed with SIGKILL at random moments of the
 * snapshot and of realtime while a generator keeps writing known transactions (and another
 * writer a table outside the selection), resumed with `--resume` each time. At the end every
 * change is in its stream exactly once and in commit order, and replaying the streams
 * rebuilds every table exactly.
 */
import assert from "node:assert/strict";
import { deleteKeys, redisClient } from "../helpers/clients.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { seededTest } from "../helpers/test_seed.ts";
import { mariadbSourceBed } from "../helpers/source_bed.ts";
import {
  assertReplicated,
  ChangeGenerator,
  killAndResume,
  NoiseWriter,
} from "../helpers/change_log.ts";

const BIG_ROWS = 100_000;
const SMALL_ROWS = 500;
const KILLS = 12;

/**
 * `full` killed KILLS times, the first `snapshotKills` of them during the snapshot. The seed
 * drives the generated transactions and the kill points.
 */
async function crashRun(snapshotKills: number, seed: number): Promise<void> {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const id = `crash-my-${tag}`;
  const bed = await mariadbSourceBed({
    prefix: "crash_my",
    tag,
    id,
    tables: ["big", "a", "b"],
    rows: (t) => t === "big" ? BIG_ROWS : SMALL_ROWS,
  });
  const redis = redisClient();
  const checkpointKey = `replicate_io_checkpoint_default_${id}`;
  // Assigned by killAndResume's start(); read by the cleanup below.
  let run = null as RunningReplicant | null;
  const generator = new ChangeGenerator({
    tables: bed.tables,
    placeholders: bed.placeholders,
    seed,
    pauseMs: 3,
    run: bed.run,
  });
  for (const t of Object.keys(bed.tables)) {
    generator.seed(t, Array.from({ length: t === "big" ? BIG_ROWS : SMALL_ROWS }, (_, i) => i + 1));
  }
  // Transactions on a table outside the selection, between the generator's.
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
      dialect: "mysql",
      seed,
      kills: KILLS,
      snapshotKills,
      snapshotStream: bed.snapStream("big"),
      checkpointKey,
      cdcStreams: Object.keys(bed.tables).map(bed.cdcStream),
      start: (mode: "--overwrite" | "--resume") => (run = startReplicant(args(mode))),
    });
    run = null;
    await noise.stop();
    assert.ok(noise.count > 0, "transactions on the unselected table");
    // Each table's realtime starts after the position of the snapshot that read it: from
    // its first logged transaction on, every change of the table is there exactly once.
    await assertReplicated(redis, bed, generator.log, { minTransactions: 300 });
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await generator.stop().catch(() => {});
    await noise.stop().catch(() => {});
    await bed.close();
    await deleteKeys(redis, `${bed.snapStream("")}*`);
    await deleteKeys(redis, `replicate_io_*_default_${id}`);
    redis.disconnect();
  }
}

// A kill during the snapshot: realtime must still start at the first snapshot's position
// (rows copied before the kill were read there), so nothing committed in between is lost.
seededTest(
  "crash (mariadb): kill -9 ≥10 times across snapshot and realtime, --resume, exactly once",
  (seed) => crashRun(3, seed),
);

seededTest(
  "crash (mariadb): kill -9 ≥10 times during realtime of full, --resume, exactly once",
  (seed) => crashRun(0, seed),
);
