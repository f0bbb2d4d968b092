/**
 * End-to-end: the numbers of `replicant realtime`'s closing summary for a known sequence of
 * source transactions, on PostgreSQL and MariaDB. The sequence holds what once made the
 * transaction count wrong: a transaction larger than one delivery (MariaDB hands it over in
 * parts), transactions of an unselected table, heartbeats while idle, a DDL statement, a
 * transaction over a selected and an unselected table. Only the transactions with a
 * replicated change count, each once.
 */
import assert from "node:assert/strict";
import mysql from "mysql2/promise";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import {
  type RunningReplicant,
  type RunResult,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";

/** Rows of the big transaction: more than two deliveries of 2 000 changes. */
const BIG = 5000;

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

async function stopAndSummarize(
  run: RunningReplicant,
): Promise<{ res: RunResult; summary: Summary }> {
  run.kill("SIGTERM");
  const res = await run.done;
  assert.equal(res.code, 0, res.stdout + res.stderr);
  return { res, summary: parseSummary(res.stdout) };
}

/** A run the test did not get to stop (it failed first) must not outlive it. */
async function stopIfRunning(run: RunningReplicant | null): Promise<void> {
  if (!run) return;
  try {
    run.kill("SIGKILL");
  } catch {
    // already exited
  }
  await run.done;
}

Deno.test("summary numbers: MariaDB, a known sequence of transactions", async () => {
  const my = serviceEnv().mysql;
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const database = `sum_my_${tag}`;
  const id = `summary-my-${tag}`;
  const home = scratchHome();
  const redis = redisClient();
  let run: RunningReplicant | null = null;
  const db = await mysql.createConnection({
    host: my.host,
    port: my.port,
    user: my.user,
    password: my.password,
    multipleStatements: true,
  });
  try {
    await db.query(`CREATE DATABASE ${database}`);
    await db.query(`CREATE TABLE ${database}.t (id int PRIMARY KEY, v int)`);
    await db.query(`CREATE TABLE ${database}.other (id int PRIMARY KEY, v int)`);
    const conn = home.write(
      "mysql.yaml",
      `type: MARIADB\nhost: ${my.host}\nport: ${my.port}\nusername: ${my.user}\n` +
        `password: "${my.password}"\nslave-server-ids: [9311]\n`,
    );
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: ${database}\n    types: [TABLE]\n    allow: [t]\n`,
    );
    const extractor = home.write(
      "extractor.yaml",
      `realtime:\n  heartbeat:\n    enable: true\n    catalog: ${database}\n` +
        `    interval-ms: 100\n`,
    );
    run = startReplicant([
      "realtime",
      conn,
      home.redisConn,
      "--filter",
      filter,
      "--extractor",
      extractor,
      "--id",
      id,
      "--home",
      home.dir,
    ]);
    const checkpointKey = `replicate_io_checkpoint_default_${id}`;
    // Heartbeats move the checkpoint: once written, replicant reads the binlog.
    await waitFor(async () => (await redis.hget(checkpointKey, "realtime:checkpoint")) !== null, {
      what: "the first checkpoint",
      timeoutMs: 30_000,
    });

    // 1 transaction: 5 000 inserts, delivered in three parts.
    await db.query(
      `INSERT INTO ${database}.t SELECT seq, seq FROM ${database}.seq_1_to_${BIG}`,
    );
    // No transaction: the unselected table, autocommit, three times.
    for (let i = 1; i <= 3; i++) await db.query(`INSERT INTO ${database}.other VALUES (${i}, 0)`);
    // 1 transaction: 10 updates and 5 deletes.
    await db.query(
      `START TRANSACTION; UPDATE ${database}.t SET v = -v WHERE id <= 10; ` +
        `DELETE FROM ${database}.t WHERE id > ${BIG - 5}; COMMIT`,
    );
    // No transaction: DDL (the DDL stream is off).
    await db.query(`ALTER TABLE ${database}.t ADD COLUMN w int`);
    // 3 transactions: single-row updates, autocommit.
    for (let i = 11; i <= 13; i++) await db.query(`UPDATE ${database}.t SET w = 1 WHERE id = ${i}`);
    // 1 transaction: a selected and an unselected table.
    await db.query(
      `START TRANSACTION; UPDATE ${database}.t SET w = 2 WHERE id = 14; ` +
        `UPDATE ${database}.other SET v = 1 WHERE id = 1; COMMIT`,
    );
    const changes = BIG + 15 + 3 + 1;
    const stream = `${database}_t_cdc_logs`;
    // Every change, plus a tombstone after each delete.
    await waitFor(async () => (await redis.xlen(stream)) === changes + 5, {
      what: `${changes + 5} entries in ${stream}`,
      timeoutMs: 60_000,
    });
    // Idle for a while: heartbeats and idle checkpoints are no transactions either.
    await new Promise((r) => setTimeout(r, 1000));
    const { res, summary } = await stopAndSummarize(run);
    assert.equal(summary.transactions, 6, res.stdout);
    assert.deepEqual([...summary.changes], [[stream, changes]], res.stdout);
  } finally {
    await stopIfRunning(run);
    await db.query(`DROP DATABASE IF EXISTS ${database}`).catch(() => {});
    await db.end();
    await deleteKeys(redis, `${database}_*`);
    await deleteKeys(redis, `replicate_io_*${id}*`);
    redis.disconnect();
  }
});

Deno.test("summary numbers: PostgreSQL, a known sequence of transactions", async () => {
  const pg = serviceEnv().pg;
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const schema = `sum_pg_${tag}`;
  const id = `summary-pg-${tag}`;
  const slot = `replicant_default_${id}`.replaceAll("-", "_");
  const home = scratchHome();
  const redis = redisClient();
  let run: RunningReplicant | null = null;
  const db = await pgClient();
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(`CREATE TABLE ${schema}.t (id int PRIMARY KEY, v int)`);
    await db.query(`CREATE TABLE ${schema}.other (id int PRIMARY KEY, v int)`);
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: ${pg.database}\n    schema: ${schema}\n    types: [TABLE]\n` +
        `    allow: [t]\n`,
    );
    const extractor = home.write(
      "extractor.yaml",
      `realtime:\n  heartbeat:\n    interval-ms: 100\n`,
    );
    run = startReplicant([
      "realtime",
      home.pgConn,
      home.redisConn,
      "--filter",
      filter,
      "--extractor",
      extractor,
      "--id",
      id,
      "--home",
      home.dir,
    ]);
    const checkpointKey = `replicate_io_checkpoint_default_${id}`;
    await waitFor(async () => (await redis.hget(checkpointKey, "realtime:checkpoint")) !== null, {
      what: "the first checkpoint",
      timeoutMs: 30_000,
    });

    // 1 transaction, larger than one delivery.
    await db.query(`INSERT INTO ${schema}.t SELECT g, g FROM generate_series(1, ${BIG}) g`);
    // No transaction: the unselected table.
    for (let i = 1; i <= 3; i++) await db.query(`INSERT INTO ${schema}.other VALUES (${i}, 0)`);
    // 1 transaction: 10 updates and 5 deletes.
    await db.query(
      `BEGIN; UPDATE ${schema}.t SET v = -v WHERE id <= 10; ` +
        `DELETE FROM ${schema}.t WHERE id > ${BIG - 5}; COMMIT`,
    );
    // No transaction: DDL alone (the DDL stream is off).
    await db.query(`ALTER TABLE ${schema}.t ADD COLUMN w int`);
    // 3 transactions.
    for (let i = 11; i <= 13; i++) await db.query(`UPDATE ${schema}.t SET w = 1 WHERE id = ${i}`);
    // 1 transaction: a selected and an unselected table.
    await db.query(
      `BEGIN; UPDATE ${schema}.t SET w = 2 WHERE id = 14; ` +
        `UPDATE ${schema}.other SET v = 1 WHERE id = 1; COMMIT`,
    );
    const changes = BIG + 15 + 3 + 1;
    const stream = `${pg.database}_${schema}_t_cdc_logs`;
    await waitFor(async () => (await redis.xlen(stream)) === changes + 5, {
      what: `${changes + 5} entries in ${stream}`,
      timeoutMs: 60_000,
    });
    await new Promise((r) => setTimeout(r, 1000));
    const { res, summary } = await stopAndSummarize(run);
    assert.equal(summary.transactions, 6, res.stdout);
    assert.deepEqual([...summary.changes], [[stream, changes]], res.stdout);
  } finally {
    await db.query(
      `SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1`,
      [
        slot,
      ],
    ).catch(() => {});
    await db.query(`DROP PUBLICATION IF EXISTS ${slot}`).catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await db.end();
    await deleteKeys(redis, `${pg.database}_${schema}_*`);
    await deleteKeys(redis, `replicate_io_*${id}*`);
    redis.disconnect();
  }
});
