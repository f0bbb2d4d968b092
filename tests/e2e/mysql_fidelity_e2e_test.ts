/**
 * MariaDB sources with what real schemas and Arcion's own files bring, through the binary:
 * filter column lists as Arcion's samples write them, ENUM/SET labels beyond the BMP,
 * declared types, Arcion's heartbeat table, server ids, grants, foreign-key cascades.
 */
import assert from "node:assert/strict";
import mysql from "mysql2/promise";
import { deleteKeys, readStream, redisClient } from "../helpers/clients.ts";
import { runReplicant, type ScratchHome, scratchHome } from "../helpers/replicant.ts";
import { serviceEnv } from "../helpers/services.ts";

const env = serviceEnv().mysql;

function connect(database?: string): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: env.host,
    port: env.port,
    user: env.user,
    password: env.password,
    database,
    charset: "utf8mb4_general_ci",
  });
}

/** A fresh database, a scratch home with a MariaDB connection file, and their cleanup. */
async function fixture(prefix: string) {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const database = `${prefix}_${tag}`;
  const id = `${prefix.replaceAll("_", "-")}-${tag}`;
  const db = await connect();
  await db.query(`CREATE DATABASE ${database} CHARACTER SET utf8mb4`);
  await db.query(`USE ${database}`);
  const home = scratchHome();
  const serverId = 2000 + Math.floor(Math.random() * 60_000);
  const sourceConn = home.write(
    "mysql.yaml",
    `type: MARIADB\nhost: ${env.host}\nport: ${env.port}\nusername: ${env.user}\n` +
      `password: "${env.password}"\nslave-server-ids: [${serverId}]\nmax-connections: 4\n`,
  );
  const redis = redisClient();
  return {
    database,
    id,
    db,
    home,
    sourceConn,
    redis,
    args(mode: string, extra: string[] = []) {
      return [mode, sourceConn, home.redisConn, "--id", id, "--home", home.dir, ...extra];
    },
    async cleanup() {
      await db.query(`DROP DATABASE IF EXISTS ${database}`);
      await deleteKeys(redis, `${database}_*`);
      await deleteKeys(redis, `replicate_io_*_default_${id}`);
      await db.end();
      redis.disconnect();
    },
  };
}

function filterFile(home: ScratchHome, text: string): string {
  return home.write("filter.yaml", text);
}

/** The `after` payloads of a compact stream's entries. */
async function afters(redis: ReturnType<typeof redisClient>, stream: string) {
  const entries = await readStream(redis, stream);
  return entries.map(([, f]) => JSON.parse(f[1]).payload.after as Record<string, unknown>);
}

Deno.test("filter columns: Arcion's upper-case comma form selects them; an unknown one is exit 2", async () => {
  const f = await fixture("myfid_cols");
  try {
    await f.db.query(
      "CREATE TABLE customers (id INT PRIMARY KEY, first_name VARCHAR(20), last_name VARCHAR(20), " +
        "email VARCHAR(40))",
    );
    await f.db.query("INSERT INTO customers VALUES (1, 'Ada', 'Lovelace', 'ada@example.org')");
    const arcionForm = filterFile(
      f.home,
      `allow:\n  catalog: "${f.database}"\n  types: [TABLE]\n  allow:\n    CUSTOMERS:\n` +
        `      allow: ["FIRST_NAME, LAST_NAME"]\n`,
    );
    const ok = await runReplicant(f.args("snapshot", ["--filter", arcionForm]));
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(await afters(f.redis, `${f.database}_customers`), [
      { id: 1, first_name: "Ada", last_name: "Lovelace" },
    ]);

    const unknown = filterFile(
      f.home,
      `allow:\n  - catalog: "${f.database}"\n    allow:\n      customers:\n` +
        `        allow: [first_name, no_such_column]\n`,
    );
    const bad = await runReplicant(f.args("snapshot", ["--filter", unknown, "--overwrite"]));
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(
      bad.stderr,
      new RegExp(
        `filter\\.yaml: allow\\[0\\]\\.allow\\.customers\\.allow: column "no_such_column" is ` +
          `not a column of table ${f.database}\\.customers \\(id, first_name, last_name, email\\)`,
      ),
    );
    // Nothing was written: the stream of the first run is still there as it was.
    assert.equal(await f.redis.xlen(`${f.database}_customers`), 1);
  } finally {
    await f.cleanup();
  }
});
