/**
 * End-to-end idle sources: when only tables Replicant does not replicate change,
 * the source position still moves, so the source keeps no more log than it must.
 *
 * - PostgreSQL: with a 1 s heartbeat (`realtime.heartbeat.interval-ms`, emitted with
 *   pg_logical_emit_message as no heartbeat table is configured) and a publication of the
 *   selected table only (so the server sends nothing for the other table), the slot's
 *   confirmed_flush_lsn follows the server while the test writes into an unselected table
 *   for 2 minutes (the "for minutes"; `REPLICANT_IDLE_SECONDS` changes it) and at
 *   least 120 MiB of WAL, about twice the bound, and the WAL the slot retains
 *   (`pg_current_wal_lsn() - confirmed_flush_lsn`) stays under 64 MiB all along.
 * - MariaDB: the checkpoint (`realtime:checkpoint` of `replicate_io_checkpoint_<group>_<id>`)
 *   moves past the binlog position of changes to an unselected table.
 */
import assert from "node:assert/strict";
import { dropPublication, dropSlot } from "../../src/source/postgres/pg_replication_slot.ts";
import { rmSync } from "node:fs";
import process from "node:process";
import mysql from "mysql2/promise";
import { pgClient } from "../helpers/clients.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";
import { privateRedis } from "../pipeline/failure_fixture.ts";

const MiB = 1024 * 1024;
const WAL_TARGET = 120 * MiB;
const WAL_LIMIT = 64 * MiB;
const WRITE_MS = 1000 * Number(process.env.REPLICANT_IDLE_SECONDS || 120);
const CHECKPOINT_FIELD = "realtime:checkpoint";

const tag = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;

Deno.test("idle e2e (pg): heartbeats keep the slot moving; retained WAL < 64 MiB while only an unselected table changes", async () => {
  const schema = `idle_pg_${tag()}`;
  const id = schema;
  const slot = `replicant_default_${id}`;
  const db = await pgClient();
  const writer = await pgClient();
  const redis = await privateRedis();
  const admin = redis.admin();
  const home = scratchHome();
  let run: RunningReplicant | null = null;
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(`CREATE TABLE ${schema}.sel (id int PRIMARY KEY, v text)`);
    await db.query(`CREATE TABLE ${schema}.noise (id bigserial PRIMARY KEY, v text NOT NULL)`);
    // Replicant keeps a publication that exists. One of the selected table only means the
    // server sends nothing for the noise (PostgreSQL 15+ skips empty transactions): only
    // heartbeats can move the slot.
    await db.query(`CREATE PUBLICATION ${slot} FOR TABLE ${schema}.sel`);
    // Made ahead for this id: recorded as its own, as Replicant records the publications it makes.
    await db.query(`COMMENT ON PUBLICATION ${slot} IS 'replicant default/${id}'`);
    run = startReplicant([
      "realtime",
      home.pgConn,
      redis.connFile(home.dir, "private_redis.yaml"),
      "--extractor",
      home.write("extractor.yaml", "realtime:\n  heartbeat:\n    interval-ms: 1000\n"),
      "--filter",
      home.write(
        "filter.yaml",
        `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n` +
          `    allow:\n      sel:\n`,
      ),
      "--id",
      id,
      "--home",
      home.dir,
    ]);
    const current = run;
    let exited = false;
    current.done.then(() => (exited = true));
    const slotState = async () => {
      const r = await db.query<{ active: boolean; retained: string; confirmed: string }>(
        `SELECT active, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text
                  AS retained,
                pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint::text AS confirmed
           FROM pg_replication_slots WHERE slot_name = $1`,
        [slot],
      );
      const row = r.rows[0];
      return row
        ? { active: row.active, retained: Number(row.retained), confirmed: BigInt(row.confirmed) }
        : null;
    };
    const currentLsn = async () =>
      BigInt(
        (await db.query<{ l: string }>(
          "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint::text AS l",
        )).rows[0].l,
      );
    await waitFor(async () => {
      if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
      return (await slotState())?.active === true;
    }, { what: `slot ${slot} active`, timeoutMs: 30_000, intervalMs: 100 });
    const before = (await slotState())!;

    // The writer: ~4 MiB of WAL per statement (4 000 rows of ~1 KB), paced over ~30 s.
    const startLsn = await currentLsn();
    const t0 = Date.now();
    let maxRetained = 0;
    let samples = 0;
    let writing = true;
    const sampler = (async () => {
      while (writing) {
        const s = await slotState();
        if (s) {
          samples++;
          maxRetained = Math.max(maxRetained, s.retained);
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    let statements = 0;
    try {
      while (
        Date.now() - t0 < WRITE_MS || (await currentLsn()) - startLsn < BigInt(WAL_TARGET)
      ) {
        if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
        await writer.query(
          `INSERT INTO ${schema}.noise (v)
             SELECT repeat(md5(random()::text), 31) FROM generate_series(1, 2000)`,
        );
        statements++;
        // Pacing, not waiting for a condition: the writes span minutes of heartbeats.
        await new Promise((r) => setTimeout(r, 800));
      }
    } finally {
      writing = false;
      await sampler;
    }
    const endLsn = await currentLsn();
    const written = Number(endLsn - startLsn);
    const tWritten = Date.now();
    // The slot catches up with everything written, though nothing selected changed.
    await waitFor(async () => {
      if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
      return (await slotState())!.confirmed >= endLsn;
    }, { what: "confirmed_flush_lsn past the writes", timeoutMs: 30_000, intervalMs: 250 });
    const tCaughtUp = Date.now();
    console.log(
      `idle pg: ${(written / MiB).toFixed(1)} MiB of WAL in ${statements} statements over ` +
        `${tWritten - t0} ms; max retained ${(maxRetained / MiB).toFixed(1)} MiB over ` +
        `${samples} samples; slot caught up ${tCaughtUp - tWritten} ms after the last write`,
    );
    assert.ok(tWritten - t0 >= WRITE_MS, "wrote for the whole duration");
    assert.ok(written >= 100 * MiB, `only ${(written / MiB).toFixed(1)} MiB of WAL written`);
    assert.ok(samples >= 20, `only ${samples} samples of the slot`);
    assert.ok(
      maxRetained < WAL_LIMIT,
      `the slot retained ${(maxRetained / MiB).toFixed(1)} MiB of WAL (limit 64 MiB)`,
    );
    assert.ok((await slotState())!.confirmed > before.confirmed, "confirmed_flush_lsn moved");
    assert.equal(await admin.exists(`replicant_${schema}_sel_cdc_logs`), 0, "no entries");

    current.kill("SIGTERM");
    const res = await current.done;
    run = null;
    assert.equal(res.code, 0, res.stderr);
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await dropSlot(db, slot).catch(() => {});
    await dropPublication(db, slot).catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await writer.end();
    await db.end();
    admin.disconnect();
    await redis.stop();
    rmSync(home.dir, { recursive: true, force: true });
  }
});

/** Binlog file sequence and position, comparable as a pair. */
function coordinate(file: string, pos: number): [number, number] {
  const m = /\.(\d+)$/.exec(file);
  assert.ok(m, `binlog file name ${file}`);
  return [Number(m[1]), pos];
}

function atOrAfter(a: [number, number], b: [number, number]): boolean {
  return a[0] > b[0] || (a[0] === b[0] && a[1] >= b[1]);
}

Deno.test("idle e2e (mysql): the checkpoint moves when only an unselected table changes", async () => {
  const env = serviceEnv().mysql;
  const database = `idle_my_${tag()}`;
  const id = database;
  const db = await mysql.createConnection({
    host: env.host,
    port: env.port,
    user: env.user,
    password: env.password,
  });
  const redis = await privateRedis();
  const admin = redis.admin();
  const home = scratchHome();
  const checkpointKey = `replicate_io_checkpoint_default_${id}`;
  let run: RunningReplicant | null = null;
  const masterStatus = async (): Promise<[number, number]> => {
    const [rows] = await db.query("SHOW MASTER STATUS");
    const r = (rows as { File: string; Position: number }[])[0];
    return coordinate(r.File, Number(r.Position));
  };
  const checkpoint = async (): Promise<[number, number] | null> => {
    const token = await admin.hget(checkpointKey, CHECKPOINT_FIELD);
    if (!token) return null;
    const c = JSON.parse(token) as { file: string; pos: number };
    return coordinate(c.file, Number(c.pos));
  };
  try {
    await db.query(`CREATE DATABASE ${database}`);
    await db.query(`USE ${database}`); // for the seq_1_to_N tables
    await db.query(`CREATE TABLE ${database}.sel (id int PRIMARY KEY, v varchar(64))`);
    await db.query(
      `CREATE TABLE ${database}.noise (id int AUTO_INCREMENT PRIMARY KEY, v varchar(64))`,
    );
    run = startReplicant([
      "realtime",
      home.write(
        "mysql.yaml",
        `type: MARIADB\nhost: ${env.host}\nport: ${env.port}\nusername: ${env.user}\n` +
          `password: "${env.password}"\nslave-server-ids: [${
            2000 + Math.floor(Math.random() * 60_000)
          }]\nmax-connections: 4\n`,
      ),
      redis.connFile(home.dir, "private_redis.yaml"),
      "--filter",
      home.write(
        "filter.yaml",
        `allow:\n  - catalog: ${database}\n    types: [TABLE]\n    allow:\n      sel:\n`,
      ),
      "--id",
      id,
      "--home",
      home.dir,
      "--overwrite",
    ]);
    const current = run;
    let exited = false;
    current.done.then(() => (exited = true));
    const alive = async () => {
      if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
    };
    // Nothing is saved before the first transaction Replicant reads: write to the unselected
    // table until a first checkpoint shows it is streaming.
    await waitFor(async () => {
      await alive();
      if ((await checkpoint()) !== null) return true;
      await db.query(`INSERT INTO ${database}.noise (v) VALUES ('start')`);
      return false;
    }, { what: "a first checkpoint", timeoutMs: 30_000, intervalMs: 500 });
    const first = (await checkpoint())!;

    for (let round = 1; round <= 3; round++) {
      await db.query(
        `INSERT INTO ${database}.noise (v) SELECT md5(seq) FROM seq_1_to_${round * 100}`,
      );
      const target = await masterStatus();
      await waitFor(async () => {
        await alive();
        return atOrAfter((await checkpoint())!, target);
      }, {
        what: `checkpoint at or after binlog ${target.join(":")} (round ${round})`,
        timeoutMs: 20_000,
        intervalMs: 100,
      });
    }
    const last = (await checkpoint())!;
    assert.ok(atOrAfter(last, first) && last.join() !== first.join(), "the checkpoint moved");
    assert.equal(await admin.exists(`${database}_sel_cdc_logs`), 0, "no entries");

    current.kill("SIGTERM");
    const res = await current.done;
    run = null;
    assert.equal(res.code, 0, res.stderr);
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await db.query(`DROP DATABASE IF EXISTS ${database}`).catch(() => {});
    await db.end();
    admin.disconnect();
    await redis.stop();
    rmSync(home.dir, { recursive: true, force: true });
  }
});
