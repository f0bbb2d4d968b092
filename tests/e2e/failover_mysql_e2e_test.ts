/**
 * End-to-end: a MariaDB failover. Replicant streams from a primary; its GTID replica (its
 * binlog files numbered lower than the primary's) is promoted and the connection file
 * pointed at it. While the replica lacks the checkpoint's transactions, `--resume` stops
 * with exit 5 and changes nothing; once it has them, replication continues there: every
 * change lands exactly once, also in a table whose last entry still carries the old
 * primary's (higher) positions.
 */
import assert from "node:assert/strict";
import type mysql from "mysql2/promise";
import { deleteKeys, redisClient } from "../helpers/clients.ts";
import { readEntries } from "../helpers/change_log.ts";
import { type PrivateMariadb, startPrivateMariadb } from "../helpers/private_mariadb.ts";
import { replicationArgs, scratchHome } from "../helpers/replicant.ts";
import { runUntil, runWithin } from "../helpers/run_until.ts";
import { waitFor } from "../helpers/services.ts";

const USER = "fo_user";
const PASSWORD = "fo-pw";

async function server(serverId: number, args: string[] = []) {
  const server: PrivateMariadb = await startPrivateMariadb({ serverId, args });
  const admin = await server.admin();
  // Not binlogged: each server's own set-up stays out of the replicated history.
  await admin.query("SET sql_log_bin = 0");
  await admin.query(`CREATE USER '${USER}'@'%' IDENTIFIED BY '${PASSWORD}'`);
  await admin.query(`GRANT ALL PRIVILEGES ON *.* TO '${USER}'@'%'`);
  await admin.query("SET sql_log_bin = 1");
  return { server, admin };
}

async function scalar(c: mysql.Connection, sql: string): Promise<string> {
  const [rows] = await c.query({ sql, rowsAsArray: true }) as unknown as [unknown[][]];
  return String(rows[0][0]);
}

Deno.test("failover (mariadb): a replica without the checkpoint's GTIDs is a gap; one with them continues exactly once", async () => {
  const primary = await server(1);
  const replica = await server(2, ["--log-slave-updates"]);
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const database = `fo_${tag}`;
  const id = `fo-${tag}`;
  const redis = redisClient();
  const home = scratchHome();
  const connText = (port: number) =>
    `type: MARIADB\nhost: 127.0.0.1\nport: ${port}\nusername: ${USER}\npassword: ${PASSWORD}\n` +
    `slave-server-ids: [181]\n`;
  const conn = home.write("my.yaml", connText(primary.server.port));
  const filter = home.write("filter.yaml", `allow:\n  - catalog: ${database}\n`);
  const args = (mode: string, ...extra: string[]) =>
    replicationArgs(mode, {
      source: conn,
      target: home.redisConn,
      filter,
      id,
      home: home.dir,
    }, ...extra);
  const cdc = (t: string) => `${database}_${t}_cdc_logs`;
  const ids = async (t: string) =>
    (await readEntries(redis, cdc(t))).filter((e) => !e.tombstone).map((e) => Number(e.key?.id));
  const caughtUp = () =>
    waitFor(async () =>
      (await scalar(replica.admin, "SELECT @@GLOBAL.gtid_slave_pos")) ===
        (await scalar(primary.admin, "SELECT @@GLOBAL.gtid_binlog_pos")), {
      what: "the replica caught up",
      timeoutMs: 20_000,
    });
  try {
    await replica.admin.query(
      `CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = ${primary.server.port}, ` +
        `MASTER_USER = '${USER}', MASTER_PASSWORD = '${PASSWORD}', MASTER_USE_GTID = slave_pos`,
    );
    await replica.admin.query("START SLAVE");
    const p = primary.admin;
    await p.query(`CREATE DATABASE ${database}`);
    for (const t of ["t", "u"]) {
      await p.query(`CREATE TABLE ${database}.${t} (id int PRIMARY KEY, v text)`);
      await p.query(`INSERT INTO ${database}.${t} VALUES (1, 'a'), (2, 'b')`);
    }
    // The primary's binlog moves on to later files than the replica's.
    for (let i = 0; i < 3; i++) await p.query("FLUSH BINARY LOGS");
    await caughtUp();
    await replica.admin.query("STOP SLAVE");

    const inserted = (async () => {
      await waitFor(async () => (await redis.xlen(`${database}_u`)) === 2, { what: "snapshot" });
      await p.query(`INSERT INTO ${database}.t VALUES (10, 'ten')`);
      await p.query(`INSERT INTO ${database}.u VALUES (10, 'ten')`);
    })();
    await runUntil(
      args("full"),
      async () => (await ids("t")).includes(10) && (await ids("u")).includes(10),
      "row 10 of t and u streamed from the primary",
    );
    await inserted;

    // The replica stopped before those rows: it cannot continue the checkpoint.
    home.write("my.yaml", connText(replica.server.port));
    const lagging = await runWithin(args("realtime", "--resume"));
    assert.equal(lagging.code, 5, lagging.stderr + lagging.stdout);
    assert.match(lagging.stderr, /does not have the checkpoint's transactions 0-1-\d+/);

    // It catches up, then the primary goes away and the replica takes over.
    home.write("my.yaml", connText(primary.server.port));
    await replica.admin.query("START SLAVE");
    await p.query(`INSERT INTO ${database}.t VALUES (20, 'twenty')`);
    await caughtUp();
    await replica.admin.query("STOP SLAVE");
    await primary.admin.end();
    await primary.server.stop();
    home.write("my.yaml", connText(replica.server.port));
    await replica.admin.query(`INSERT INTO ${database}.t VALUES (30, 'thirty')`);
    await runUntil(
      args("realtime", "--resume"),
      async () => (await ids("t")).includes(30),
      "row 30 streamed from the new primary",
    );
    // u's newest entry still has the old primary's positions, higher than the new ones.
    await replica.admin.query(`INSERT INTO ${database}.u VALUES (40, 'forty')`);
    await runUntil(
      args("realtime", "--resume"),
      async () => (await ids("u")).includes(40),
      "row 40 of u streamed from the new primary",
    );
    assert.deepEqual(await ids("t"), [10, 20, 30]);
    assert.deepEqual(await ids("u"), [10, 40]);
    const trace = Deno.readTextFileSync(`${home.dir}/data/${id}/trace.log`);
    assert.match(trace, /the source is now server mariadb:2:/);
  } finally {
    await redis.del(`${database}_t`, `${database}_u`, cdc("t"), cdc("u"));
    await deleteKeys(redis, `replicate_io_*_default_${id}`);
    redis.disconnect();
    await primary.admin.end().catch(() => {});
    await primary.server.stop().catch(() => {});
    await replica.admin.end();
    await replica.server.stop();
  }
});
