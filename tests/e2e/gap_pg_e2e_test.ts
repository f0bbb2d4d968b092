/**
 * End-to-end: when a PostgreSQL source can no longer deliver every change after the
 * checkpoint, `replicant` stops with exit 5 and a message naming the checkpoint, what the
 * source can deliver, the tables affected and the command that takes them anew; it never
 * reports success. Cases: slot advanced by another consumer, slot dropped (and recreated),
 * source replaced by another server, and a gap found by a restart inside a running realtime.
 */
import assert from "node:assert/strict";
import type pg from "pg";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import { readEntries } from "../helpers/change_log.ts";
import { startPrivatePostgres } from "../helpers/private_postgres.ts";
import {
  replicationArgs,
  type RunResult,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { assertGapExit, recoveryArgs, runUntil, runWithin } from "../helpers/run_until.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";

function tagOf(): string {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
}

interface Scenario {
  db: pg.Client;
  schema: string;
  id: string;
  slot: string;
  table: string;
  cdcStream: string;
  snapStream: string;
  args(mode: string, ...extra: string[]): string[];
  /** The rows of the cdc stream's changes, by id. */
  cdcIds(): Promise<number[]>;
  cleanUp(): Promise<void>;
}

/**
 * A schema with one table on `db`, an id streaming it in `full` until row 10's insert is in
 * its cdc stream, then stopped cleanly: the id has a realtime checkpoint.
 */
async function streamedOnce(
  db: pg.Client,
  conn: { host: string; port: number; database: string; user: string },
  extraConn = "",
): Promise<Scenario> {
  const tag = tagOf();
  const schema = `gap_${tag}`;
  const id = `gap-pg-${tag}`;
  const slot = `replicant_default_${id}`.replace(/[^a-z0-9_]/g, "_");
  const redis = redisClient();
  const home = scratchHome();
  const connFile = home.write(
    "pg.yaml",
    `type: POSTGRESQL\nhost: ${conn.host}\nport: ${conn.port}\ndatabase: ${conn.database}\n` +
      `username: ${conn.user}\n${extraConn}`,
  );
  const filter = home.write(
    "filter.yaml",
    `allow:\n  - catalog: ${conn.database}\n    schema: ${schema}\n`,
  );
  const table = `${conn.database}.${schema}.t`;
  const snapStream = `${conn.database}_${schema}_t`;
  const cdcStream = `${snapStream}_cdc_logs`;
  const args = (mode: string, ...extra: string[]) =>
    replicationArgs(mode, {
      source: connFile,
      target: home.redisConn,
      filter,
      id,
      home: home.dir,
    }, ...extra);
  const cdcIds = async () =>
    (await readEntries(redis, cdcStream)).filter((e) => !e.tombstone).map((e) => Number(e.key?.id));
  await db.query(`CREATE SCHEMA ${schema}`);
  await db.query(`CREATE TABLE ${schema}.t (id int PRIMARY KEY, v text)`);
  await db.query(`INSERT INTO ${schema}.t SELECT g, 'v' || g FROM generate_series(1, 5) g`);
  const inserted = (async () => {
    await waitFor(async () => (await redis.xlen(snapStream)) === 5, { what: "the snapshot" });
    await db.query(`INSERT INTO ${schema}.t VALUES (10, 'ten')`);
  })();
  await runUntil(
    args("full"),
    async () => (await cdcIds()).includes(10),
    "row 10 in the cdc stream",
  );
  await inserted;
  return {
    db,
    schema,
    id,
    slot,
    table,
    cdcStream,
    snapStream,
    args,
    cdcIds,
    cleanUp: async () => {
      await db.query(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots " +
          "WHERE slot_name = $1 AND active",
        [slot],
      ).catch(() => {});
      await db.query(
        "SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1",
        [slot],
      ).catch(() => {});
      await db.query(`DROP PUBLICATION IF EXISTS ${slot}`).catch(() => {});
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
      await redis.del(snapStream, cdcStream);
      await deleteKeys(redis, `replicate_io_*_default_${id}`);
      redis.disconnect();
    },
  };
}

function assertGap(out: RunResult, s: Scenario, available: RegExp): void {
  assertGapExit(out, s.table, available);
}

/** The recovery command of the message takes the table anew, row 11 included. */
async function assertRecovers(out: { stderr: string }, s: Scenario): Promise<void> {
  const redis = redisClient();
  try {
    await runUntil(
      recoveryArgs(out.stderr),
      async () => (await readEntries(redis, s.snapStream)).some((e) => Number(e.key?.id) === 11),
      "row 11 in the new snapshot",
    );
  } finally {
    redis.disconnect();
  }
}

Deno.test("gap (pg): slot advanced by another consumer past the checkpoint → exit 5", async () => {
  const db = await pgClient();
  const s = await streamedOnce(db, serviceEnv().pg);
  try {
    await db.query(`INSERT INTO ${s.schema}.t VALUES (11, 'lost')`);
    await db.query("SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())", [s.slot]);
    const out = await runWithin(s.args("realtime", "--resume"));
    assertGap(out, s, /confirmed_flush_lsn of slot/);
    assert.match(out.stderr, /moved past the checkpoint/);
    assert.ok(!(await s.cdcIds()).includes(11));
    await assertRecovers(out, s);
  } finally {
    await s.cleanUp();
    await db.end();
  }
});

Deno.test("gap (pg): slot dropped, and dropped then created again → exit 5", async () => {
  const db = await pgClient();
  const s = await streamedOnce(db, serviceEnv().pg);
  try {
    await db.query(`INSERT INTO ${s.schema}.t VALUES (11, 'lost')`);
    await db.query("SELECT pg_drop_replication_slot($1)", [s.slot]);
    const missing = await runWithin(s.args("full", "--resume"));
    assertGap(missing, s, /replication slot "[a-z0-9_]+" does not exist/);
    await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [s.slot]);
    const recreated = await runWithin(s.args("realtime", "--resume"));
    assertGap(recreated, s, /confirmed_flush_lsn of slot/);
    assert.ok(!(await s.cdcIds()).includes(11));
    await assertRecovers(recreated, s);
  } finally {
    await s.cleanUp();
    await db.end();
  }
});

Deno.test("gap (pg): the connection file now leads to another server → exit 5", async () => {
  const hba = ["host all all 127.0.0.0/8 trust", "host replication all 127.0.0.0/8 trust"];
  const first = await startPrivatePostgres({ hba });
  const second = await startPrivatePostgres({ hba });
  const conn = (port: number) => ({
    host: "127.0.0.1",
    port,
    database: "postgres",
    user: "postgres",
  });
  const a = await first.admin();
  const b = await second.admin();
  let s: Scenario | null = null;
  try {
    s = await streamedOnce(a, conn(first.port));
    // The same schema on the other server, as a restored or rebuilt source would have it.
    await b.query(`CREATE SCHEMA ${s.schema}`);
    await b.query(`CREATE TABLE ${s.schema}.t (id int PRIMARY KEY, v text)`);
    const file = s.args("realtime")[1];
    Deno.writeTextFileSync(
      file,
      Deno.readTextFileSync(file).replace(`port: ${first.port}`, `port: ${second.port}`),
    );
    const out = await runWithin(s.args("realtime", "--resume"));
    assertGap(out, s, /a different server/);
    assert.match(out.stderr, /system identifier/);
  } finally {
    await s?.cleanUp();
    await a.end();
    await b.end();
    await first.stop();
    await second.stop();
  }
});

Deno.test("gap (pg): a restart inside a running realtime finds the slot moved → exit 5", async () => {
  const db = await pgClient();
  // Room between the lost connection and the restart for another consumer to move the slot.
  const s = await streamedOnce(
    db,
    serviceEnv().pg,
    "max-retries: 5\nretry-wait-duration-ms: 4000\n",
  );
  try {
    const run = startReplicant(s.args("realtime", "--resume"));
    try {
      await waitFor(async () => {
        const r = await db.query(
          "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
          [s.slot],
        );
        return r.rows[0]?.active === true;
      }, { what: "the slot streaming" });
      await db.query(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1",
        [s.slot],
      );
      await db.query(`INSERT INTO ${s.schema}.t VALUES (11, 'lost')`);
      await waitFor(async () => {
        const r = await db.query(
          "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
          [s.slot],
        );
        return r.rows[0]?.active === false;
      }, { what: "the slot released" });
      await db.query("SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())", [s.slot]);
    } catch (err) {
      run.kill("SIGKILL");
      throw err;
    }
    const timer = setTimeout(() => run.kill("SIGTERM"), 30_000);
    const out = await run.done.finally(() => clearTimeout(timer));
    assertGap(out, s, /confirmed_flush_lsn of slot/);
    assert.ok(!(await s.cdcIds()).includes(11));
  } finally {
    await s.cleanUp();
    await db.end();
  }
});
