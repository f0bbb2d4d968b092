/**
 * Conformance, every source connector: `realtime --resume` needs a position to continue from.
 * An id made by `replicant snapshot` has none (a snapshot records no source position): the
 * run stops with exit 5 (a gap), names the recovery, and reports no success, instead of
 * streaming from where the source is now and losing the changes made since the snapshot.
 * An id whose `full` snapshot was cut short is refused (exit 2) and continued by `full`.
 */
import assert from "node:assert/strict";
import { redisClient } from "../helpers/clients.ts";
import { type Connector, CONNECTORS } from "../helpers/connector.ts";
import { runReplicant, type RunResult, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { assertGapExit, runWithin } from "../helpers/run_until.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";
import { removeBed, sourceBed } from "../helpers/source_bed.ts";
import { uniqueTag } from "../helpers/test_seed.ts";

async function resumeWithoutPosition(c: Connector): Promise<void> {
  const tag = uniqueTag();
  const id = `nopos-${c.name}-${tag}`;
  const redis = redisClient();
  const bed = await sourceBed(c.dialect, {
    prefix: `nopos_${c.name}`,
    tag,
    id,
    tables: ["t", "big"],
    rows: (t) => (t === "big" ? 0 : 3),
  });
  const home = scratchHome();
  const run = (mode: string, table: string, runId: string, ...extra: string[]) => [
    mode,
    bed.connFile(home),
    home.redisConn,
    "--filter",
    home.write(
      `filter-${table}.yaml`,
      bed.filter.replace(/^ {6}\S+:\n/gm, "") + `      ${table}:\n`,
    ),
    "--id",
    runId,
    "--home",
    home.dir,
    ...extra,
  ];
  const qualified = (t: string) =>
    c.dialect === "pg" ? `${serviceEnv().pg.database}.${bed.tables[t]}` : bed.tables[t];
  try {
    // snapshot, a change, then realtime --resume: the change would be lost.
    const snap: RunResult = await runReplicant(run("snapshot", "t", id));
    assert.equal(snap.code, 0, snap.stderr);
    await bed.query(`UPDATE ${bed.tables.t} SET v = 'changed' WHERE id = 1`);
    const gap = await runWithin(run("realtime", "t", id, "--resume"), 30_000);
    assert.equal(gap.timedOut, false, "realtime --resume went on streaming");
    assertGapExit(gap, qualified("t"), /was made by `replicant snapshot`, which records no source/);
    assert.equal(await redis.exists(bed.cdcStream("t")), 0, "no change stream was started");

    // full, killed during its snapshot, then realtime --resume: continue with full instead.
    await bed.insertRange("big", 1, 300_000);
    const full = startReplicant(run("full", "big", id, "--overwrite"));
    await waitFor(async () => (await redis.xlen(bed.snapStream("big"))) > 0, {
      what: "the first snapshot rows",
      timeoutMs: 60_000,
    });
    full.kill("SIGKILL");
    await full.done;
    const state = await redis.hgetall(`replicate_io_checkpoint_default_${id}`);
    assert.equal(state["snapshot:complete"], undefined, "the snapshot was cut short");
    const refused = await runWithin(run("realtime", "big", id, "--resume"), 30_000);
    assert.equal(refused.code, 2, refused.stderr + refused.stdout);
    assert.match(refused.stderr, /snapshot is not finished.*replicant full … --resume/s);
    assert.doesNotMatch(refused.stdout, /transaction\(s\)/, "no success summary");
  } finally {
    await removeBed(bed, redis, id);
    redis.disconnect();
  }
}

for (const c of CONNECTORS) {
  Deno.test(
    `resume without a position (${c.name}): after snapshot a gap (exit 5), after a cut-short full exit 2`,
    () => resumeWithoutPosition(c),
  );
}
