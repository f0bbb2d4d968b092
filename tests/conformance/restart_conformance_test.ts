/**
 * Conformance, every source connector: `replicant full` from a private server whose log is
 * rotated twice (MariaDB `FLUSH BINARY LOGS`, PostgreSQL `pg_switch_wal()`) and which is then
 * shut down cleanly and started again while replicant streams. The shutdown completes
 * (PostgreSQL's walsender waits until its client confirms everything it sent, the shutdown
 * checkpoint included), replicant reconnects by itself (connection `max-retries` /
 * `retry-wait-duration-ms`), and every committed change lands in its stream exactly once, in
 * commit order; the streams replay into the tables. In the `--resume` variant a replicant
 * that exits is started again with `--resume` (what an operator or supervisor does).
 */
import assert from "node:assert/strict";
import { deleteKeys, redisClient } from "../helpers/clients.ts";
import { assertReplicated, tailHas, totalLength } from "../helpers/change_log.ts";
import { type Connector, CONNECTORS } from "../helpers/connector.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { sourceBed } from "../helpers/source_bed.ts";
import { seededTest, uniqueTag } from "../helpers/test_seed.ts";

const ROWS = 500;
/** Changes written between two interferences. */
const STEP = 300;

async function restartRun(c: Connector, mustReconnect: boolean, seed: number): Promise<void> {
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
    const args = (mode: "--overwrite" | "--resume") => [
      "full",
      bed.connFile(home, { extra: "max-retries: 100\nretry-wait-duration-ms: 100\n" }),
      home.redisConn,
      "--applier",
      home.write(
        "applier.yaml",
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
    let exited = false;
    const launch = (mode: "--overwrite" | "--resume") => {
      const r = startReplicant(args(mode));
      exited = false;
      r.done.then(() => (exited = true));
      run = r;
      return r;
    };
    let current = launch("--overwrite");
    let resumes = 0;
    const alive = async () => {
      if (!exited) return;
      const res = await current.done;
      if (mustReconnect || resumes >= 3) {
        throw new Error(`replicant exited (${res.code}): ${res.stderr}`);
      }
      assert.equal(res.code, 1, res.stderr);
      resumes++;
      current = launch("--resume");
    };
    const progress = async (n: number, what: string) => {
      const want = (await totalLength(redis, cdcStreams)) + n;
      await waitFor(async () => {
        await alive();
        return (await totalLength(redis, cdcStreams)) >= want;
      }, { what, timeoutMs: 60_000, intervalMs: 20 });
    };
    generator.start();
    await progress(STEP, "changes before the first rotation");
    // Every table's exactly-once check must reach back before the rotations.
    const rotatedAt = generator.log.length;
    await server.rotateLog();
    await progress(STEP, "changes after the first rotation");
    await server.rotateLog();
    await progress(STEP, "changes after the second rotation");
    // The writer stops first: a commit cut off by the shutdown would be in doubt.
    await generator.stop();
    const ms = await server.restart();
    console.log(`clean shutdown of ${c.name} under replicant: ${ms} ms`);
    await bed.reconnect();
    generator.start();
    await progress(STEP, "changes after the server restart");
    await generator.stop();
    const last = await generator.marker();
    await waitFor(async () => {
      await alive();
      for (const stream of cdcStreams) {
        if (!(await tailHas(redis, stream, last.token, c.dialect))) return false;
      }
      return true;
    }, { what: "the last change in every cdc stream", timeoutMs: 60_000, intervalMs: 100 });
    // Deno's child.kill() reports the signal as the exit cause even after a clean exit 0.
    Deno.kill(current.pid, "SIGTERM");
    const res = await current.done;
    run = null;
    assert.equal(res.code, 0, res.stderr);
    if (mustReconnect) assert.equal(resumes, 0);
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
    await bed.close().catch(() => {});
    await deleteKeys(redis, `${bed.snapStream("")}*`);
    await deleteKeys(redis, `replicate_io_*_default_${id}`);
    redis.disconnect();
    await server.stop();
  }
}

for (const c of CONNECTORS) {
  seededTest(
    `restart (${c.name}): log rotated twice, server restarted, replicant reconnects itself, exactly once`,
    (seed) => restartRun(c, true, seed),
  );
  seededTest(
    `restart (${c.name}): log rotated twice, server restarted, --resume, exactly once`,
    (seed) => restartRun(c, false, seed),
  );
}
