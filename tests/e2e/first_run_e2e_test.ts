/**
 * End-to-end: a first run that fails before both connections work (refused connection,
 * wrong password) leaves no state for its id, so the corrected command runs unchanged, without
 * `--resume` or `--overwrite`.
 */
import assert from "node:assert/strict";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import { freePort } from "../helpers/free_port.ts";
import { replicationArgs, runReplicant, scratchHome } from "../helpers/replicant.ts";
import { serviceEnv } from "../helpers/services.ts";
import mysql from "mysql2/promise";

function tagOf(): string {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
}

Deno.test("first run: refused PostgreSQL connection leaves no state; the corrected command succeeds unchanged", async () => {
  const env = serviceEnv();
  const tag = tagOf();
  const schema = `first_${tag}`;
  const id = `first-pg-${tag}`;
  const slot = `replicant_default_${id}`.replace(/[^a-z0-9_]/g, "_");
  const db = await pgClient();
  const redis = redisClient();
  const home = scratchHome();
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(`CREATE TABLE ${schema}.t (id int PRIMARY KEY, v text)`);
    await db.query(`INSERT INTO ${schema}.t VALUES (1, 'a'), (2, 'b')`);
    const connText = (port: number) =>
      `type: POSTGRESQL\nhost: ${env.pg.host}\nport: ${port}\ndatabase: ${env.pg.database}\n` +
      `username: ${env.pg.user}\n`;
    const conn = home.write("pg.yaml", connText(freePort()));
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: ${env.pg.database}\n    schema: ${schema}\n`,
    );
    const args = replicationArgs("full", {
      source: conn,
      target: home.redisConn,
      filter,
      id,
      home: home.dir,
    }, "--terminate-post-snapshot");
    const refused = await runReplicant(args);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /connection refused/);
    assert.equal(await redis.exists(`replicate_io_checkpoint_default_${id}`), 0, "no state");

    home.write("pg.yaml", connText(env.pg.port));
    const fixed = await runReplicant(args);
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.equal(await redis.xlen(`${env.pg.database}_${schema}_t`), 2);
  } finally {
    await db.query(
      "SELECT pg_drop_replication_slot($1) FROM pg_replication_slots " +
        "WHERE slot_name = $1",
      [slot],
    ).catch(() => {});
    await db.query(`DROP PUBLICATION IF EXISTS ${slot}`);
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await deleteKeys(redis, `${env.pg.database}_${schema}_*`);
    await deleteKeys(redis, `replicate_io_*_default_${id}`);
    await db.end();
    redis.disconnect();
  }
});

Deno.test("first run: wrong MariaDB password leaves no state; the corrected command succeeds unchanged", async () => {
  const env = serviceEnv();
  const tag = tagOf();
  const database = `first_${tag}`;
  const id = `first-my-${tag}`;
  const admin = await mysql.createConnection({
    host: env.mysql.host,
    port: env.mysql.port,
    user: env.mysql.user,
    password: env.mysql.password,
  });
  const redis = redisClient();
  const home = scratchHome();
  try {
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.query(`CREATE TABLE ${database}.t (id int PRIMARY KEY, v text)`);
    await admin.query(`INSERT INTO ${database}.t VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
    const connText = (password: string) =>
      `type: MARIADB\nhost: ${env.mysql.host}\nport: ${env.mysql.port}\n` +
      `username: ${env.mysql.user}\npassword: "${password}"\nslave-server-ids: [171]\n`;
    const conn = home.write("my.yaml", connText(env.mysql.password + "-wrong"));
    const filter = home.write("filter.yaml", `allow:\n  - catalog: ${database}\n`);
    const args = replicationArgs("full", {
      source: conn,
      target: home.redisConn,
      filter,
      id,
      home: home.dir,
    }, "--terminate-post-snapshot");
    const denied = await runReplicant(args);
    assert.equal(denied.code, 1, denied.stderr);
    assert.match(denied.stderr, /access denied/i);
    assert.equal(await redis.exists(`replicate_io_checkpoint_default_${id}`), 0, "no state");

    home.write("my.yaml", connText(env.mysql.password));
    const fixed = await runReplicant(args);
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.equal(await redis.xlen(`${database}_t`), 3);
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${database}`);
    await deleteKeys(redis, `${database}_*`);
    await deleteKeys(redis, `replicate_io_*_default_${id}`);
    await admin.end();
    redis.disconnect();
  }
});
