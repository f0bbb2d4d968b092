import assert from "node:assert/strict";
import { MysqlHeartbeatWriter } from "../../../src/source/mysql/mysql_heartbeat.ts";
import { openMysql } from "../../../src/source/mysql/mysql_endpoint.ts";
import { admin, endpoint, env, uniqueName } from "./mysql_test_helpers.ts";

Deno.test("heartbeat: replicantId-column-name keeps one row per replication id", async () => {
  const db = await admin();
  const table = uniqueName("hb_ids");
  const conn = await openMysql(endpoint());
  const warnings: string[] = [];
  const writer = (id: string) =>
    new MysqlHeartbeatWriter({
      database: env.database,
      table,
      column: "arcion_replicant_timestamp",
      idColumn: "arcion_replicant_id",
      replicationId: id,
      intervalMs: 1000,
      create: true,
      warn: (m) => warnings.push(m),
    }, () => conn);
  try {
    assert.equal(await writer("a").beat(), true);
    assert.equal(await writer("b").beat(), true);
    assert.equal(await writer("a").beat(), true);
    const [rows] = await db.query(
      `SELECT arcion_replicant_id AS id FROM ${table} ORDER BY arcion_replicant_id`,
    );
    assert.deepEqual((rows as { id: string }[]).map((r) => r.id), ["a", "b"]);
    assert.deepEqual(warnings, []);
  } finally {
    await db.query(`DROP TABLE IF EXISTS ${table}`);
    await conn.end();
    await db.end();
  }
});

Deno.test("heartbeat: a user without INSERT is told which grant is missing, once", async () => {
  const db = await admin();
  const table = uniqueName("hb_denied");
  const user = uniqueName("hbuser").slice(0, 32);
  await db.query(`CREATE TABLE ${table} (timestamp BIGINT NOT NULL PRIMARY KEY)`);
  await db.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw'`);
  await db.query(`GRANT SELECT ON ${env.database}.* TO '${user}'@'%'`);
  const conn = await openMysql(endpoint({ user, password: "pw" }));
  const warnings: string[] = [];
  const writer = new MysqlHeartbeatWriter({
    database: env.database,
    table,
    column: "timestamp",
    intervalMs: 1000,
    create: true,
    warn: (m) => warnings.push(m),
  }, () => conn);
  try {
    assert.equal(await writer.beat(), false);
    assert.equal(await writer.beat(), false);
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0], /command denied/);
    assert.match(warnings[0], new RegExp(`grant the user INSERT, UPDATE on \`${env.database}\``));
  } finally {
    await conn.end();
    await db.query(`DROP USER '${user}'@'%'`);
    await db.query(`DROP TABLE IF EXISTS ${table}`);
    await db.end();
  }
});
