/**
 * End-to-end: `replicant full` from PostgreSQL, killed with SIGKILL at random moments of the
 * snapshot and of realtime while a generator keeps writing known transactions, resumed with
 * `--resume` each time. At the end every change is in its stream exactly once and in commit
 * order, and replaying the streams rebuilds every table exactly.
 */
import assert from "node:assert/strict";
import { dropPublication, dropSlot } from "../../src/source/postgres/pg_replication_slot.ts";
import type pg from "pg";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import {
  assertExactlyOnce,
  assertPositions,
  assertSameTable,
  canonical,
  ChangeGenerator,
  killAndResume,
  pgTxRunner,
  readEntries,
  replay,
} from "../helpers/change_log.ts";

const BIG_ROWS = 100_000;
const SMALL_ROWS = 500;
const KILLS = 12;
const SNAPSHOT_KILLS = 3;

async function tableRows(db: pg.Client, table: string): Promise<Map<number, string>> {
  const res = await db.query<{ j: Record<string, unknown> }>(
    `SELECT to_jsonb(t) AS j FROM ${table} t`,
  );
  return new Map(
    res.rows.map((r: { j: Record<string, unknown> }) => [Number(r.j.id), canonical(r.j)]),
  );
}

Deno.test("crash (pg): kill -9 ≥10 times across snapshot and realtime, --resume, exactly once", async () => {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const schema = `crash_pg_${tag}`;
  const id = `crash-pg-${tag}`;
  const slot = `replicant_default_${id}`.toLowerCase().replace(/[^a-z0-9_]/g, "_").slice(0, 63);
  const seed = Math.floor(Math.random() * 2 ** 31);
  const db = await pgClient();
  const writer = await pgClient();
  const redis = redisClient();
  const tables = { big: `${schema}.big`, a: `${schema}.a`, b: `${schema}.b` };
  const snapStream = (t: string) => `replicant_${schema}_${t}`;
  const cdcStream = (t: string) => `replicant_${schema}_${t}_cdc_logs`;
  const cdcStreams = Object.keys(tables).map(cdcStream);
  const checkpointKey = `replicate_io_checkpoint_default_${id}`;
  // Assigned by killAndResume's start(); read by the cleanup below.
  let run = null as RunningReplicant | null;
  const generator = new ChangeGenerator({
    tables,
    placeholders: "dollar",
    seed,
    pauseMs: 3,
    run: pgTxRunner(writer),
  });
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
          "realtime:\n  batch-size-rows: 50\n  txn-size-rows: 50\ninclude-schema: false\n",
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
    ];
    await killAndResume({
      redis,
      generator,
      dialect: "pg",
      seed,
      kills: KILLS,
      snapshotKills: SNAPSHOT_KILLS,
      snapshotStream: snapStream("big"),
      checkpointKey,
      cdcStreams,
      start: (mode: "--overwrite" | "--resume") => (run = startReplicant(args(mode))),
    });
    run = null;

    let first = Infinity;
    const found: Record<string, number> = {};
    for (const t of Object.keys(tables)) {
      const snap = await readEntries(redis, snapStream(t));
      const cdc = await readEntries(redis, cdcStream(t));
      assert.ok(snap.every((e) => e.op === "r"), `${t}: snapshot stream holds only reads`);
      assertPositions(cdc, "pg", cdcStream(t));
      assertSameTable(replay(snap, cdc), await tableRows(db, tables[t as keyof typeof tables]), t);
      found[t] = assertExactlyOnce(generator.log, t, cdc, "pg");
      first = Math.min(first, found[t]);
    }
    // All tables stream from the same slot: from the first logged transaction in any stream
    // on, every change of every table is there.
    for (const t of Object.keys(tables)) {
      assertExactlyOnce(generator.log, t, await readEntries(redis, cdcStream(t)), "pg", first);
    }
    assert.ok(
      generator.log.length - first > 500,
      `realtime saw ${generator.log.length - first} of ${generator.log.length} transactions`,
    );
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await generator.stop().catch(() => {});
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
