/**
 * End-to-end on a sample schema shaped like Pagila (see tests/helpers/pagila_like.ts):
 * `replicant full` of the whole schema through the binary while a seeded random writer and
 * pgbench write to it, killed with SIGKILL during the snapshot and during realtime and
 * resumed each time; then every table replayed from its streams (snapshot, then changes) and
 * compared with the source, every column of every row. Along the way: partitions never get
 * streams of their own, the publication holds exactly the schema's tables, and the
 * application's keyless table in another schema keeps accepting UPDATE and DELETE.
 *
 * The seed is printed; `REPLICANT_TEST_SEED=<n>` replays the writer's operations.
 */
import assert from "node:assert/strict";
import type pg from "pg";
import { dropPublication, dropSlot } from "../../src/source/postgres/pg_replication_slot.ts";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import { killAndResume } from "../helpers/change_log.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import {
  PAGILA_LIKE_TABLES,
  pagilaLikeSql,
  PagilaLikeWriter,
  startPgbench,
} from "../helpers/pagila_like.ts";
import { assertTableReplays } from "../helpers/pg_replay.ts";

const KILLS = 10;
const SNAPSHOT_KILLS = 3;

Deno.test("pagila-like (pg): full under load, kill -9 and --resume, every row of every table replays", async () => {
  const seed = Number(Deno.env.get("REPLICANT_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  console.log(`seed ${seed} (REPLICANT_TEST_SEED=${seed} replays the writer)`);
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const s = `pagila_${tag}`;
  const id = `pagila-${tag}`;
  const slot = `replicant_default_${id}`.replace(/[^a-z0-9_]/g, "_");
  const db = await pgClient();
  const writerDb: pg.Client = await pgClient();
  const redis = redisClient();
  const checkpointKey = `replicate_io_checkpoint_default_${id}`;
  const home = scratchHome();
  let run = null as RunningReplicant | null;
  const bench = { stop: () => Promise.resolve({ ok: true, output: "" }) };
  try {
    await db.query(pagilaLikeSql(s));
    const writer = new PagilaLikeWriter(writerDb, s, seed);
    await writer.load();
    const args = (mode: "--overwrite" | "--resume") => [
      "full",
      home.pgConn,
      home.redisConn,
      "--extractor",
      home.write("extractor.yaml", "snapshot:\n  threads: 2\n  fetch-size-rows: 500\n"),
      "--applier",
      home.write(
        "applier.yaml",
        "snapshot:\n  batch-size-rows: 250\nrealtime:\n  batch-size-rows: 50\n" +
          "include-schema: false\n",
      ),
      "--filter",
      home.write("filter.yaml", `allow:\n  - catalog: replicant\n    schema: ${s}\n`),
      "--id",
      id,
      "--home",
      home.dir,
      mode,
    ];
    Object.assign(bench, startPgbench(s, home.dir));
    await killAndResume({
      redis,
      generator: writer,
      dialect: "pg",
      seed,
      kills: KILLS,
      snapshotKills: SNAPSHOT_KILLS,
      // Kills land while the keyless table's snapshot is under way: it starts over from a
      // fresh snapshot on resume, and must not get the changes that snapshot holds twice.
      snapshotStream: `replicant_${s}_audit_log`,
      checkpointKey,
      cdcStreams: PAGILA_LIKE_TABLES.map((t) => `replicant_${s}_${t}_cdc_logs`),
      start: (mode) => (run = startReplicant(args(mode))),
      beforeMarker: async () => {
        const pgbench = await bench.stop();
        assert.ok(pgbench.ok, `pgbench: ${pgbench.output}`);
      },
    });
    run = null;

    // Partitions have no stream; the publication holds the schema's tables, no partition.
    const keys = (await redis.keys(`replicant_${s}_*`)).sort();
    assert.deepEqual(
      keys,
      PAGILA_LIKE_TABLES.flatMap((t) => [`replicant_${s}_${t}`, `replicant_${s}_${t}_cdc_logs`])
        .sort(),
    );
    const published = await db.query({
      text: `SELECT c.relname FROM pg_publication_rel r JOIN pg_class c ON c.oid = r.prrelid
               JOIN pg_publication p ON p.oid = r.prpubid WHERE p.pubname = $1 ORDER BY 1`,
      values: [slot],
      rowMode: "array",
    });
    assert.deepEqual(published.rows.map((r: string[]) => r[0]), [...PAGILA_LIKE_TABLES].sort());
    let changes = 0;
    for (const t of PAGILA_LIKE_TABLES) {
      const r = await assertTableReplays(db, redis, `${s}.${t}`, {
        snapshot: `replicant_${s}_${t}`,
        cdc: `replicant_${s}_${t}_cdc_logs`,
      });
      changes += r.changes;
    }
    const benchRows = await db.query(
      `SELECT count(*)::int AS n FROM ${s}.payment WHERE payment_id >= 10000000`,
    );
    console.log(
      `${writer.transactions} writer transactions, ${benchRows.rows[0].n} pgbench payments; ` +
        `${changes} changes replayed`,
    );
    assert.ok(benchRows.rows[0].n > 0, "pgbench wrote");
    assert.ok(writer.transactions > 100, `only ${writer.transactions} writer transactions`);
    // The application's keyless table was written throughout and still is.
    await db.query(`UPDATE ${s}_app.scratch SET note = note || '.'`);
    await db.query(`DELETE FROM ${s}_app.scratch`);
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await bench.stop().catch(() => {});
    await dropSlot(db, slot).catch(() => {});
    await dropPublication(db, slot).catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${s} CASCADE; DROP SCHEMA IF EXISTS ${s}_app CASCADE`);
    await deleteKeys(redis, `replicant_${s}_*`);
    await deleteKeys(redis, `replicate_io_*_default_${id}`);
    await writerDb.end();
    await db.end();
    redis.disconnect();
  }
});
