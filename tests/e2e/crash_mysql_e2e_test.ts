/**
 * End-to-end: `replicant full` from MariaDB, killed with SIGKILL at random moments of the
 * snapshot and of realtime while a generator keeps writing known transactions, resumed with
 * `--resume` each time. At the end every change is in its stream exactly once and in commit
 * order, and replaying the streams rebuilds every table exactly.
 */
import assert from "node:assert/strict";
import mysql from "mysql2/promise";
import { deleteKeys, redisClient } from "../helpers/clients.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { serviceEnv } from "../helpers/services.ts";
import { seededTest } from "../helpers/test_seed.ts";
import {
  assertExactlyOnce,
  assertPositions,
  assertSameTable,
  canonical,
  ChangeGenerator,
  killAndResume,
  mysqlTxRunner,
  NoiseWriter,
  readEntries,
  replay,
} from "../helpers/change_log.ts";

const BIG_ROWS = 100_000;
const SMALL_ROWS = 500;
const KILLS = 12;

async function tableRows(db: mysql.Connection, table: string): Promise<Map<number, string>> {
  const [rows] = await db.query(`SELECT id, v, n FROM ${table}`);
  return new Map(
    (rows as { id: number; v: string; n: number }[]).map((r) => [Number(r.id), canonical(r)]),
  );
}

function connect(): Promise<mysql.Connection> {
  const env = serviceEnv().mysql;
  return mysql.createConnection({
    host: env.host,
    port: env.port,
    user: env.user,
    password: env.password,
  });
}

/**
 * `full` killed KILLS times, the first `SNAPSHOT_KILLS` of them during the snapshot. The seed
 * drives the generated transactions and the kill points.
 */
async function crashRun(SNAPSHOT_KILLS: number, seed: number): Promise<void> {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const database = `crash_my_${tag}`;
  const id = `crash-my-${tag}`;
  const db = await connect();
  const writer = await connect();
  const noisy = await connect();
  const redis = redisClient();
  const tables = { big: `${database}.big`, a: `${database}.a`, b: `${database}.b` };
  const snapStream = (t: string) => `${database}_${t}`;
  const cdcStream = (t: string) => `${database}_${t}_cdc_logs`;
  const cdcStreams = Object.keys(tables).map(cdcStream);
  const checkpointKey = `replicate_io_checkpoint_default_${id}`;
  // Assigned by killAndResume's start(); read by the cleanup below.
  let run = null as RunningReplicant | null;
  const generator = new ChangeGenerator({
    tables,
    placeholders: "question",
    seed,
    pauseMs: 3,
    run: mysqlTxRunner(writer),
  });
  // Transactions on a table outside the selection, between the generator's.
  const noise = new NoiseWriter(() =>
    noisy.query(`INSERT INTO ${database}.noise (v) VALUES ('x')`)
  );
  try {
    await db.query(`CREATE DATABASE ${database}`);
    await db.query(`USE ${database}`);
    for (const [name, sql] of Object.entries(tables)) {
      await db.query(`CREATE TABLE ${sql} (id int PRIMARY KEY, v varchar(64) NOT NULL, n bigint)`);
      const rows = name === "big" ? BIG_ROWS : SMALL_ROWS;
      await db.query(
        `INSERT INTO ${sql} SELECT seq, md5(seq), seq * 1000003 FROM seq_1_to_${rows}`,
      );
      generator.seed(name, Array.from({ length: rows }, (_, i) => i + 1));
    }
    await db.query(`CREATE TABLE ${database}.noise (id int AUTO_INCREMENT PRIMARY KEY, v text)`);
    noise.start();
    const home = scratchHome();
    const env = serviceEnv().mysql;
    const sourceConn = home.write(
      "mysql.yaml",
      `type: MARIADB\nhost: ${env.host}\nport: ${env.port}\nusername: ${env.user}\n` +
        `password: "${env.password}"\nslave-server-ids: [${
          2000 + Math.floor(Math.random() * 60_000)
        }]\nmax-connections: 6\n`,
    );
    const args = (mode: "--overwrite" | "--resume") => [
      "full",
      sourceConn,
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
        `allow:\n  - catalog: ${database}\n    types: [TABLE]\n    allow:\n` +
          Object.keys(tables).map((t) => `      ${t}:\n`).join(""),
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
      dialect: "mysql",
      seed,
      kills: KILLS,
      snapshotKills: SNAPSHOT_KILLS,
      snapshotStream: snapStream("big"),
      checkpointKey,
      cdcStreams,
      start: (mode: "--overwrite" | "--resume") => (run = startReplicant(args(mode))),
    });
    run = null;
    await noise.stop();
    assert.ok(noise.count > 0, "transactions on the unselected table");

    for (const t of Object.keys(tables)) {
      const snap = await readEntries(redis, snapStream(t));
      const cdc = await readEntries(redis, cdcStream(t));
      assert.ok(snap.every((e) => e.op === "r"), `${t}: snapshot stream holds only reads`);
      assertPositions(cdc, "mysql", cdcStream(t));
      // Each table's realtime starts after the position of the snapshot that read it: from
      // its first logged transaction on, every change of the table is there exactly once.
      const first = assertExactlyOnce(generator.log, t, cdc, "mysql");
      assertSameTable(replay(snap, cdc), await tableRows(db, tables[t as keyof typeof tables]), t);
      assert.ok(
        generator.log.length - first > 300,
        `${t}: realtime saw ${
          generator.log.length - first
        } of ${generator.log.length} transactions`,
      );
    }
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await generator.stop().catch(() => {});
    await noise.stop().catch(() => {});
    await db.query(`DROP DATABASE IF EXISTS ${database}`);
    await deleteKeys(redis, `${database}_*`);
    await deleteKeys(redis, `replicate_io_*_default_${id}`);
    await writer.end();
    await noisy.end();
    await db.end();
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
