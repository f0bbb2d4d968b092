/**
 * End-to-end: SIGINT/SIGTERM while the target Redis is down. `replicant full` copies and
 * streams from a source with a generator writing; during realtime (or the snapshot) Redis is
 * killed (-9, append-only file fsync'd always) so every write, undo and checkpoint fails and
 * is retried; then SIGTERM. Every wait ends at the stop: replicant exits within 2 s, cleanly
 * (exit 0), and the checkpoint it leaves does not pass what is in Redis. Once Redis is back,
 * `--resume` delivers every change exactly once.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { privateRedis } from "../pipeline/failure_fixture.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { seededTest, uniqueTag } from "../helpers/test_seed.ts";
import { sourceBed } from "../helpers/source_bed.ts";
import {
  assertReplicated,
  type Dialect,
  lastChangeThenStop,
  NoiseWriter,
  totalLength,
} from "../helpers/change_log.ts";
import { StreamNaming } from "../../src/core/stream_naming.ts";

const ROWS = 500;
/** Rows of table `a` when the outage comes during the snapshot (it lasts a few seconds). */
const SNAPSHOT_ROWS = 300_000;
/** The requirement: a stop during an outage ends within this. */
const STOP_WITHIN_MS = 2000;

async function stopDuringOutage(
  seed: number,
  dialect: Dialect,
  consistency: "EVENTUAL" | "GLOBAL",
  phase: "snapshot" | "realtime",
): Promise<void> {
  const rows = (t: string) => phase === "snapshot" && t === "a" ? SNAPSHOT_ROWS : ROWS;
  const tag = uniqueTag();
  const id = `outage-${tag}`;
  const naming = new StreamNaming(id, "default");
  const redis = await privateRedis();
  const admin = redis.admin();
  const bed = await sourceBed(dialect, {
    prefix: "outage",
    tag,
    id,
    tables: ["a", "b"],
    rows,
  });
  const cdcStreams = consistency === "GLOBAL"
    ? [naming.globalCdcStream()]
    : Object.keys(bed.tables).map(bed.cdcStream);
  const generator = bed.generator(seed);
  const noise = new NoiseWriter(bed.noise);
  const home = scratchHome();
  let run: RunningReplicant | null = null;
  const args = (mode: "--overwrite" | "--resume") => [
    "full",
    bed.connFile(home),
    redis.connFile(home.dir, "private_redis.yaml"),
    "--applier",
    home.write(
      "applier.yaml",
      // Retries that would take minutes to run out: the stop must not wait for them.
      `realtime:\n  batch-size-rows: 50\n  replay-consistency: ${consistency}\n` +
        "  max-retries: 20\n  retry-wait-duration-ms: 500\ninclude-schema: false\n",
    ),
    "--filter",
    home.write("filter.yaml", bed.filter),
    "--id",
    id,
    "--home",
    home.dir,
    mode,
  ];
  const progress = async (n: number, what: string) => {
    const current = run!;
    let exited = false;
    current.done.then(() => (exited = true));
    const want = (await totalLength(admin, cdcStreams)) + n;
    await waitFor(async () => {
      if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
      return (await totalLength(admin, cdcStreams)) >= want;
    }, { what, timeoutMs: 60_000, intervalMs: 20 });
  };
  const trace = () => readFileSync(path.join(home.dir, "data", id, "trace.log"), "utf8");
  try {
    generator.start();
    noise.start();
    run = startReplicant(args("--overwrite"));
    const snapshotDone = async () =>
      (await admin.hget(naming.checkpointKey(false), "snapshot:complete")) === "1";
    if (phase === "snapshot") {
      await waitFor(async () => (await admin.xlen(bed.snapStream("a"))) >= 20_000, {
        what: "snapshot progress",
        timeoutMs: 60_000,
        intervalMs: 10,
      });
      assert.ok(!(await snapshotDone()), "the outage comes during the snapshot");
      await redis.kill();
      // Batches fail and wait to be retried.
      await new Promise((r) => setTimeout(r, 1000));
    } else {
      await waitFor(snapshotDone, { what: "snapshot complete", timeoutMs: 60_000 });
      await progress(200, "realtime before the outage");
      await redis.kill();
      // Writers meet the outage: batches fail, undo and checkpoint writes fail, all retried.
      await waitFor(() => /failed|cannot/.test(trace().split("realtime (")[1] ?? ""), {
        what: "replicant retrying against the dead Redis",
        timeoutMs: 20_000,
      });
    }
    const stopping = run;
    const t0 = performance.now();
    stopping.kill("SIGTERM");
    const exit = await Promise.race([
      stopping.done,
      new Promise<null>((r) => setTimeout(() => r(null), 15_000)),
    ]);
    const elapsed = Math.round(performance.now() - t0);
    console.log(`stop during the outage: exit ${exit?.code ?? "none"} after ${elapsed} ms`);
    assert.ok(exit !== null, `replicant still running 15 s after SIGTERM:\n${trace()}`);
    run = null;
    assert.equal(exit.code, 0, exit.stderr);
    assert.ok(
      elapsed <= STOP_WITHIN_MS,
      `SIGTERM during the outage took ${elapsed} ms (at most ${STOP_WITHIN_MS}); the log after it:\n${
        trace().split("SIGTERM received")[1]
      }`,
    );

    // Redis back with what it had acknowledged; the generator never stopped.
    await redis.start();
    run = startReplicant(args("--resume"));
    await waitFor(snapshotDone, { what: "snapshot complete after --resume", timeoutMs: 120_000 });
    await progress(200, "realtime after --resume");
    await noise.stop();
    await lastChangeThenStop({ redis: admin, generator, dialect, cdcStreams, run });
    run = null;
    await assertReplicated(admin, bed, generator.log, {
      globalStream: consistency === "GLOBAL" ? naming.globalCdcStream() : undefined,
      minTransactions: 50,
    });
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await generator.stop().catch(() => {});
    await noise.stop().catch(() => {});
    await bed.close();
    admin.disconnect();
    await redis.stop();
  }
}

seededTest(
  "stop (mariadb, EVENTUAL): SIGTERM while Redis is down exits within 2 s; --resume exactly once",
  (seed) => stopDuringOutage(seed, "mysql", "EVENTUAL", "realtime"),
);

seededTest(
  "stop (pg, GLOBAL): SIGTERM while Redis is down exits within 2 s; --resume exactly once",
  (seed) => stopDuringOutage(seed, "pg", "GLOBAL", "realtime"),
);

seededTest(
  "stop (pg, snapshot): SIGTERM while Redis is down exits within 2 s; --resume exactly once",
  (seed) => stopDuringOutage(seed, "pg", "EVENTUAL", "snapshot"),
);
