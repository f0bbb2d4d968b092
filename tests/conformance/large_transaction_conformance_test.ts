/**
 * Conformance, every source connector: the numbers of `replicant realtime`'s closing summary
 * for a known sequence of source transactions, in both log formats. The sequence holds what
 * once made the transaction count wrong: transactions larger than one delivery (MariaDB hands
 * them over in parts), transactions of an unselected table, heartbeats while idle, a DDL
 * statement, a transaction over a selected and an unselected table. Only the transactions
 * with a replicated change count, each once. The first run prints the text summary; the
 * second (`--resume --log-format json`) writes nothing but JSON objects, one a line, on stdout
 * and stderr, and its summary events count that run's own transactions.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { redisClient } from "../helpers/clients.ts";
import { type Connector, CONNECTORS } from "../helpers/connector.ts";
import { eventsOf, ofEvent } from "../helpers/log_events.ts";
import {
  type RunningReplicant,
  type RunResult,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { removeBed, sourceBed } from "../helpers/source_bed.ts";
import { uniqueTag } from "../helpers/test_seed.ts";

/** Rows of the first big transaction: more than two deliveries of 2 000 changes. */
const BIG = 5000;
/** Rows of the second run's big transaction: more than one delivery. */
const BIG2 = 2500;

interface Summary {
  transactions: number;
  /** Per stream: changes written. */
  changes: Map<string, number>;
}

/** The text summary: `table stream status changes …` rows, then `N transaction(s); …`. */
function parseSummary(stdout: string): Summary {
  const total = stdout.match(/^([\d,]+) transaction\(s\); checkpoint /m);
  assert.ok(total, `no transaction line in:\n${stdout}`);
  const changes = new Map<string, number>();
  for (const line of stdout.split("\n")) {
    const m = line.match(/^\S+\s+(\S+_cdc_logs)\s+ok\s+([\d,]+)\s+([\d,]+)/);
    if (m) changes.set(m[1], Number(m[2].replaceAll(",", "")));
  }
  return { transactions: Number(total[1].replaceAll(",", "")), changes };
}

/** SIGTERM, then the run must end with exit 0. */
async function stop(run: RunningReplicant): Promise<RunResult> {
  run.kill("SIGTERM");
  const res = await run.done;
  assert.equal(res.code, 0, res.stdout + res.stderr);
  return res;
}

async function knownSequence(c: Connector): Promise<void> {
  const tag = uniqueTag();
  const id = `summary-${c.name}-${tag}`;
  const redis = redisClient();
  const bed = await sourceBed(c.dialect, {
    prefix: `sum_${c.name}`,
    tag,
    id,
    tables: ["t"],
    rows: () => 0,
  });
  const home = scratchHome();
  let run: RunningReplicant | null = null;
  const t = bed.tables.t;
  const update = (sql: string) => ({ sql, params: [] });
  try {
    const args = (...extra: string[]) => [
      "realtime",
      bed.connFile(home),
      home.redisConn,
      "--filter",
      home.write("filter.yaml", bed.filter),
      "--extractor",
      home.write("extractor.yaml", bed.heartbeat(100)),
      "--id",
      id,
      "--home",
      home.dir,
      ...extra,
    ];
    run = startReplicant(args());
    const checkpointKey = `replicate_io_checkpoint_default_${id}`;
    // Heartbeats move the checkpoint: once written, replicant reads the source's log.
    await waitFor(async () => (await redis.hget(checkpointKey, "realtime:checkpoint")) !== null, {
      what: "the first checkpoint",
      timeoutMs: 30_000,
    });

    // 1 transaction: 5 000 inserts, more than one delivery.
    await bed.insertRange("t", 1, BIG);
    // No transaction: the unselected table, autocommit, three times.
    for (let i = 0; i < 3; i++) await bed.noise();
    // 1 transaction: 10 updates and 5 deletes.
    await bed.run([
      update(`UPDATE ${t} SET n = -n WHERE id <= 10`),
      update(`DELETE FROM ${t} WHERE id > ${BIG - 5}`),
    ]);
    // No transaction: DDL alone (the DDL stream is off).
    await bed.query(`ALTER TABLE ${t} ADD COLUMN w int`);
    // 3 transactions: single-row updates, autocommit.
    for (let i = 11; i <= 13; i++) await bed.query(`UPDATE ${t} SET w = 1 WHERE id = ${i}`);
    // 1 transaction: a selected and an unselected table.
    await bed.run([
      update(`UPDATE ${t} SET w = 2 WHERE id = 14`),
      update(`UPDATE ${bed.noiseTable} SET v = 'y' WHERE id = 1`),
    ]);
    const changes = BIG + 15 + 3 + 1;
    const stream = bed.cdcStream("t");
    // Every change, plus a tombstone after each delete.
    await waitFor(async () => (await redis.xlen(stream)) === changes + 5, {
      what: `${changes + 5} entries in ${stream}`,
      timeoutMs: 60_000,
    });
    // Idle for a while: heartbeats and idle checkpoints are no transactions either.
    await sleep(1000);
    const text = await stop(run);
    run = null;
    const summary = parseSummary(text.stdout);
    assert.equal(summary.transactions, 6, text.stdout);
    assert.deepEqual([...summary.changes], [[stream, changes]], text.stdout);

    // The same in JSON, resumed from the checkpoint: this run's transactions only.
    run = startReplicant(args("--resume", "--log-format", "json"));
    // 1 transaction: 2 500 inserts.
    await bed.insertRange("t", BIG + 1, BIG + BIG2);
    for (let i = 0; i < 2; i++) await bed.noise();
    // 2 transactions: single-row updates, autocommit.
    for (let i = 21; i <= 22; i++) await bed.query(`UPDATE ${t} SET w = 3 WHERE id = ${i}`);
    // 1 transaction: a selected and an unselected table.
    await bed.run([
      update(`UPDATE ${t} SET w = 4 WHERE id = 24`),
      update(`UPDATE ${bed.noiseTable} SET v = 'z' WHERE id = 2`),
    ]);
    const changes2 = BIG2 + 2 + 1;
    await waitFor(async () => (await redis.xlen(stream)) === changes + 5 + changes2, {
      what: `${changes2} more entries in ${stream}`,
      timeoutMs: 60_000,
    });
    const json = await stop(run);
    run = null;
    const out = eventsOf(json.stdout, "realtime stdout", id);
    const err = eventsOf(json.stderr, "realtime stderr", id);
    assert.ok(ofEvent(err, "log").some((e) => /streaming changes/.test(e.msg)), json.stderr);
    const fin = ofEvent(err, "stats").filter((e) => e.final);
    assert.equal(fin.length, 1, json.stderr);
    assert.equal(fin[0].changes, changes2, json.stderr);
    assert.deepEqual(fin[0].ops, { insert: BIG2, update: 3 }, json.stderr);
    assert.deepEqual(
      ofEvent(out, "summary").map((e) => [e.phase, e.stream, e.changes]),
      [["realtime", stream, changes2]],
      json.stdout,
    );
    const total = ofEvent(out, "summary_total");
    assert.equal(total.length, 1, json.stdout);
    assert.equal(total[0].transactions, 4, json.stdout);
    assert.equal(total[0].changes, changes2, json.stdout);
    assert.equal(typeof total[0].checkpoint, "string", json.stdout);
  } finally {
    const left = run as RunningReplicant | null;
    if (left) {
      left.kill("SIGKILL");
      await left.done;
    }
    await removeBed(bed, redis, id);
    redis.disconnect();
  }
}

for (const c of CONNECTORS) {
  Deno.test(
    `large transaction, log formats (${c.name}): a known sequence's summary in text, then in JSON after --resume`,
    () => knownSequence(c),
  );
}
