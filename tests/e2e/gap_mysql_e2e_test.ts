/**
 * End-to-end: when a MariaDB source can no longer deliver every change after the checkpoint
 * (binlog purged past it, a start-position it no longer has, another server behind the
 * connection file), `replicant` stops with exit 5 and a message naming the checkpoint, what
 * the source can deliver, the tables affected and the command that takes them anew.
 */
import assert from "node:assert/strict";
import type mysql from "mysql2/promise";
import { deleteKeys, redisClient } from "../helpers/clients.ts";
import { readEntries } from "../helpers/change_log.ts";
import { type PrivateMariadb, startPrivateMariadb } from "../helpers/private_mariadb.ts";
import {
  replicationArgs,
  type RunResult,
  type ScratchHome,
  scratchHome,
} from "../helpers/replicant.ts";
import { assertGapExit, recoveryArgs, runUntil, runWithin } from "../helpers/run_until.ts";
import { waitFor } from "../helpers/services.ts";

const USER = "gap_user";
const PASSWORD = "gap-pw";

/** A private MariaDB with a replication user for Replicant. */
async function server(): Promise<{ server: PrivateMariadb; admin: mysql.Connection }> {
  const server = await startPrivateMariadb();
  const admin = await server.admin();
  await admin.query(`CREATE USER '${USER}'@'%' IDENTIFIED BY '${PASSWORD}'`);
  await admin.query(`GRANT ALL PRIVILEGES ON *.* TO '${USER}'@'%'`);
  return { server, admin };
}

interface Scenario {
  home: ScratchHome;
  database: string;
  id: string;
  args(mode: string, ...extra: string[]): string[];
  cdcIds(): Promise<number[]>;
  snapStream: string;
  pointAt(port: number): void;
  cleanUp(): Promise<void>;
}

/** One table streamed in `full` until row 10's insert is in its cdc stream, then stopped. */
async function streamedOnce(admin: mysql.Connection, port: number): Promise<Scenario> {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const database = `gapm_${tag}`;
  const id = `gap-my-${tag}`;
  const redis = redisClient();
  const home = scratchHome();
  const connText = (p: number) =>
    `type: MARIADB\nhost: 127.0.0.1\nport: ${p}\nusername: ${USER}\npassword: ${PASSWORD}\n` +
    `slave-server-ids: [181]\n`;
  const conn = home.write("my.yaml", connText(port));
  const filter = home.write("filter.yaml", `allow:\n  - catalog: ${database}\n`);
  const snapStream = `${database}_t`;
  const cdcStream = `${database}_t_cdc_logs`;
  const args = (mode: string, ...extra: string[]) =>
    replicationArgs(mode, {
      source: conn,
      target: home.redisConn,
      filter,
      id,
      home: home.dir,
    }, ...extra);
  const cdcIds = async () =>
    (await readEntries(redis, cdcStream)).filter((e) => !e.tombstone).map((e) => Number(e.key?.id));
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.query(`CREATE TABLE ${database}.t (id int PRIMARY KEY, v text)`);
  await admin.query(`INSERT INTO ${database}.t VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
  const inserted = (async () => {
    await waitFor(async () => (await redis.xlen(snapStream)) === 3, { what: "the snapshot" });
    await admin.query(`INSERT INTO ${database}.t VALUES (10, 'ten')`);
  })();
  await runUntil(args("full"), async () => (await cdcIds()).includes(10), "row 10 streamed");
  await inserted;
  return {
    home,
    database,
    id,
    args,
    cdcIds,
    snapStream,
    pointAt: (p: number) => home.write("my.yaml", connText(p)),
    cleanUp: async () => {
      await redis.del(snapStream, cdcStream);
      await deleteKeys(redis, `replicate_io_*_default_${id}`);
      redis.disconnect();
    },
  };
}

function assertGap(out: RunResult, s: Scenario, reason: RegExp): void {
  assertGapExit(out, `${s.database}.t`, reason);
  assert.match(out.stderr, /checkpoint: binlog \S+:\d+/);
}

Deno.test("gap (mariadb): binlog purged past the checkpoint, and a start-position gone → exit 5", async () => {
  const { server: db, admin } = await server();
  let s: Scenario | null = null;
  try {
    s = await streamedOnce(admin, db.port);
    await admin.query(`INSERT INTO ${s.database}.t VALUES (11, 'lost')`);
    await admin.query("FLUSH BINARY LOGS");
    const [status] = await admin.query("SHOW MASTER STATUS") as unknown as [{ File: string }[]];
    // MariaDB keeps a binlog until InnoDB has made its commits durable (its binlog
    // checkpoint moved on): purge until the old file is gone.
    await waitFor(async () => {
      await admin.query(`PURGE BINARY LOGS TO '${status[0].File}'`);
      const [logs] = await admin.query("SHOW BINARY LOGS") as unknown as [
        { Log_name: string }[],
      ];
      return logs[0].Log_name === status[0].File;
    }, { what: "the binlogs before the checkpoint's purged", intervalMs: 200 });
    const out = await runWithin(s.args("realtime", "--resume"));
    assertGap(out, s, /were purged/);
    assert.ok(!(await s.cdcIds()).includes(11));

    // A start-position in a purged binlog, for a new id: a gap too.
    const extractor = s.home.write(
      "extractor.yaml",
      "realtime:\n  start-position:\n    log: binlog.000001\n    position: 4\n",
    );
    const fresh = s.args("realtime", "--extractor", extractor).map((a) =>
      a === s!.id ? `${s!.id}-start` : a
    );
    const start = await runWithin(fresh);
    assert.equal(start.code, 5, start.stderr);
    assert.match(start.stderr, /start-position/);
    assert.match(start.stderr, /Binlog binlog\.000001 was purged/);

    // The command the message gives takes the table anew, row 11 included.
    const redis = redisClient();
    try {
      await runUntil(
        recoveryArgs(out.stderr),
        async () => (await readEntries(redis, s!.snapStream)).some((e) => Number(e.key?.id) === 11),
        "row 11 in the new snapshot",
      );
      await deleteKeys(redis, `replicate_io_*_default_${s.id}-start`);
    } finally {
      redis.disconnect();
    }
  } finally {
    await s?.cleanUp();
    await admin.end();
    await db.stop();
  }
});

Deno.test("gap (mariadb): the connection file now leads to another server → exit 5", async () => {
  const first = await server();
  const second = await server();
  let s: Scenario | null = null;
  try {
    s = await streamedOnce(first.admin, first.server.port);
    await second.admin.query(`CREATE DATABASE ${s.database}`);
    await second.admin.query(`CREATE TABLE ${s.database}.t (id int PRIMARY KEY, v text)`);
    for (let i = 0; i < 30; i++) {
      // More transactions than the first server had: its GTID sequence numbers pass the
      // checkpoint's, under the same server_id.
      await second.admin.query(`INSERT INTO ${s.database}.t VALUES (${100 + i}, 'other')`);
    }
    s.pointAt(second.server.port);
    const out = await runWithin(s.args("realtime", "--resume"));
    assertGap(out, s, /another server than the checkpoint's/);
  } finally {
    await s?.cleanUp();
    for (const x of [first, second]) {
      await x.admin.end();
      await x.server.stop();
    }
  }
});
