/**
 * Conformance, every source connector: `replicant full` from a private server whose log is
 * rotated twice (MariaDB `FLUSH BINARY LOGS`, PostgreSQL `pg_switch_wal()`) and which is then
 * shut down cleanly and started again, twice, while replicant streams and a generator writes
 * known transactions.
 *
 * - The first restart: the shutdown completes (PostgreSQL's walsender waits until its client
 *   confirms everything it sent, the shutdown checkpoint included) and replicant reconnects by
 *   itself (connection `max-retries` / `retry-wait-duration-ms`): it never exits.
 * - Then replicant is stopped (SIGTERM, exit 0) and resumed with a connection without retries;
 *   the second restart ends it (exit 1) and it is started again with `--resume` (what an
 *   operator or supervisor does).
 *
 * At the end every committed change is in its stream exactly once, in commit order, from
 * before the first rotation on, and the streams replay into the tables. A failing run prints
 * its seed; `REPLICANT_TEST_SEED=<seed>` replays its transactions.
 */
import assert from "node:assert/strict";
import { redisClient } from "../helpers/clients.ts";
import { assertReplicated, tailHas, totalLength } from "../helpers/change_log.ts";
import { type Connector, CONNECTORS } from "../helpers/connector.ts";
import {
  replicationArgs,
  type RunningReplicant,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { removeBed, sourceBed } from "../helpers/source_bed.ts";
import { seededTest, uniqueTag } from "../helpers/test_seed.ts";

const ROWS = 500;
/** Changes written between two interferences. */
const STEP = 300;

async function restartRun(c: Connector, seed: number): Promise<void> {
  const server = await c.ownServer();
  const tag = uniqueTag();
  const id = `restart-${c.name}-${tag}`;
  const redis = redisClient();
  let run: RunningReplicant | null = null;
  const bed = await sourceBed(c.dialect, {
    prefix: `rs_${c.name}`,
    tag,
    id,
    tables: ["a", "b"],
    rows: () => ROWS,
    server: server.source,
  }).catch(async (err) => {
    await server.stop();
    throw err;
  });
  const cdcStreams = Object.keys(bed.tables).map(bed.cdcStream);
  const generator = bed.generator(seed);
  try {
    const home = scratchHome();
    const conn = (retries: number) =>
      bed.connFile(home, {
        extra: `max-retries: ${retries}\nretry-wait-duration-ms: 100\n`,
      });
    const withRetries = conn(100);
    const filter = home.write("filter.yaml", bed.filter);
    const applier = home.write(
      "applier.yaml",
      "realtime:\n  batch-size-rows: 50\n  txn-size-rows: 50\ninclude-schema: false\n",
    );
    const args = (source: string, mode: "--overwrite" | "--resume") =>
      replicationArgs(
        "full",
        { source, target: home.redisConn, filter, id, home: home.dir },
        "--applier",
        applier,
        mode,
      );
    let exited = false;
    let current: RunningReplicant;
    let connFile = withRetries;
    const launch = (mode: "--overwrite" | "--resume") => {
      const r = startReplicant(args(connFile, mode));
      exited = false;
      r.done.then(() => (exited = true));
      run = current = r;
    };
    launch("--overwrite");
    // While true, a run that ends fails the test; else it is resumed (up to 3 times).
    let mustReconnect = true;
    let resumes = 0;
    const alive = async () => {
      if (!exited) return;
      const res = await current.done;
      if (mustReconnect || resumes >= 3) {
        throw new Error(`replicant exited (${res.code}): ${res.stderr}`);
      }
      assert.equal(res.code, 1, res.stderr);
      resumes++;
      launch("--resume");
    };
    const progress = async (n: number, what: string) => {
      const want = (await totalLength(redis, cdcStreams)) + n;
      await waitFor(async () => {
        await alive();
        return (await totalLength(redis, cdcStreams)) >= want;
      }, { what, timeoutMs: 60_000, intervalMs: 20 });
    };
    const restart = async (what: string) => {
      // The writer stops first: a commit cut off by the shutdown would be in doubt.
      await generator.stop();
      const ms = await server.restart();
      console.log(`clean shutdown of ${c.name} under replicant (${what}): ${ms} ms`);
      await bed.reconnect();
      generator.start();
      await progress(STEP, `changes after the ${what}`);
    };
    const stop = async () => {
      // Deno's child.kill() reports the signal as the exit cause even after a clean exit 0.
      Deno.kill(current.pid, "SIGTERM");
      const res = await current.done;
      run = null;
      assert.equal(res.code, 0, res.stderr);
    };

    generator.start();
    await progress(STEP, "changes before the first rotation");
    // Every table's exactly-once check must reach back before the rotations.
    const rotatedAt = generator.log.length;
    await server.rotateLog();
    await progress(STEP, "changes after the first rotation");
    await server.rotateLog();
    await progress(STEP, "changes after the second rotation");
    await restart("restart with retries");
    assert.equal(resumes, 0);

    // Without retries a lost connection ends the run (exit 1), and the test resumes it.
    await stop();
    connFile = conn(0);
    launch("--resume");
    await progress(STEP, "changes after resuming without retries");
    mustReconnect = false;
    await restart("restart without retries");
    assert.ok(resumes >= 1, "the restart without retries ended the run");

    await generator.stop();
    const last = await generator.marker();
    await waitFor(async () => {
      await alive();
      for (const stream of cdcStreams) {
        if (!(await tailHas(redis, stream, last.token, c.dialect))) return false;
      }
      return true;
    }, { what: "the last change in every cdc stream", timeoutMs: 60_000, intervalMs: 100 });
    await stop();
    await assertReplicated(redis, bed, generator.log, {
      minTransactions: 200,
      startedBefore: rotatedAt,
    });
  } finally {
    const left = run as RunningReplicant | null;
    if (left) {
      left.kill("SIGKILL");
      await left.done;
    }
    await generator.stop().catch(() => {});
    await removeBed(bed, redis, id);
    redis.disconnect();
    await server.stop();
  }
}

for (const c of CONNECTORS) {
  seededTest(
    `restart (${c.name}): log rotated twice, server restarted with and without retries, exactly once`,
    (seed) => restartRun(c, seed),
  );
}
