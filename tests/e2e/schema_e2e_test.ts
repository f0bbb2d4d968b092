/**
 * End-to-end: every run writes the schema dump stream (one entry per table and schema
 * version), and `fetch-schemas` turns it (or the source itself) into schemas.yaml.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { parse } from "yaml";
import { deleteKeys, pgClient, readStream, redisClient } from "../helpers/clients.ts";
import { runReplicant, scratchHome } from "../helpers/replicant.ts";
import { serviceEnv } from "../helpers/services.ts";

const SCHEMA = "e2e_schemadump";
const ID = "schemadump_pg";
const DUMP = `replicate_io_replication_schema_default_${ID}`;

interface YamlTable {
  catalog: string;
  schema?: string;
  table: string;
  version?: number;
  columns: { name: string; type: string; nullable: boolean; "primary-key-position": number }[];
}

function tablesOf(path: string): YamlTable[] {
  return parse(readFileSync(path, "utf8")).tables;
}

async function ok(args: string[], cwd?: string) {
  const r = await runReplicant(args, { cwd });
  assert.equal(r.code, 0, `replicant ${args.join(" ")}: ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

Deno.test("schema dump: PostgreSQL versions per change; fetch-schemas matches the source", async () => {
  const db = await pgClient();
  const redis = redisClient();
  const home = scratchHome();
  const cleanup = async () => {
    await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    await deleteKeys(redis, `replicant_${SCHEMA}_*`);
    await redis.del(DUMP, `replicate_io_checkpoint_default_${ID}`);
  };
  try {
    await cleanup();
    await db.query(`CREATE SCHEMA ${SCHEMA};
      CREATE TABLE ${SCHEMA}.orders (id bigint PRIMARY KEY, note varchar(20) NOT NULL DEFAULT 'x');
      CREATE TABLE ${SCHEMA}.tags (code text NOT NULL UNIQUE, label text);
      INSERT INTO ${SCHEMA}.orders VALUES (1, 'a');`);
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: replicant\n    schema: ${SCHEMA}\n    types: [TABLE]\n`,
    );
    const run = (extra: string[]) =>
      ok([
        "snapshot",
        home.pgConn,
        home.redisConn,
        "--filter",
        filter,
        "--id",
        ID,
        "--home",
        home.dir,
        ...extra,
      ]);
    await run([]);
    let dump = await readStream(redis, DUMP);
    assert.equal(dump.length, 2, "one entry per table");
    const first = Object.fromEntries(
      dump.map(([, f]) => {
        const m = new Map<string, string>();
        for (let i = 0; i < f.length; i += 2) m.set(f[i], f[i + 1]);
        return [m.get("table")!, m];
      }),
    );
    assert.equal(first.orders.get("catalog"), "replicant");
    assert.equal(first.orders.get("schema"), SCHEMA);
    assert.equal(first.orders.get("version"), "1");
    assert.deepEqual(JSON.parse(first.orders.get("columns")!), [
      {
        name: "id",
        type: "bigint",
        normalized_type: "int64",
        nullable: false,
        default: null,
        primary_key_position: 1,
      },
      {
        name: "note",
        type: "character varying(20)",
        normalized_type: "string",
        nullable: false,
        default: "'x'::character varying",
        primary_key_position: null,
      },
    ]);
    assert.deepEqual(JSON.parse(first.tags.get("unique_keys")!), [["code"]]);

    // Same schema again: no new version.
    await run(["--overwrite", "--replace-existing"]);
    assert.equal((await readStream(redis, DUMP)).length, 2);

    // ADD, DROP, RENAME COLUMN and a type change: one new version of orders.
    await db.query(`ALTER TABLE ${SCHEMA}.orders ADD COLUMN qty int;
      ALTER TABLE ${SCHEMA}.orders ALTER COLUMN note TYPE text;
      ALTER TABLE ${SCHEMA}.tags RENAME COLUMN label TO title`);
    await run(["--overwrite", "--replace-existing"]);
    dump = await readStream(redis, DUMP);
    assert.equal(dump.length, 4);

    const out = join(home.dir, "schemas.yaml");
    await ok(["fetch-schemas", home.redisConn, "--id", ID, "--output-file", out]);
    const fromDump = tablesOf(out);
    assert.deepEqual(fromDump.map((t) => [t.table, t.version]), [["orders", 2], ["tags", 2]]);
    assert.deepEqual(fromDump[0].columns.map((c) => [c.name, c.type]), [
      ["id", "bigint"],
      ["note", "text"],
      ["qty", "integer"],
    ]);
    assert.deepEqual(fromDump[1].columns.map((c) => c.name), ["code", "title"]);

    // The same from the source itself (no versions there).
    const srcOut = join(home.dir, "src_schemas.yaml");
    await ok(["fetch-schemas", home.pgConn, "--filter", filter, "--output-file", srcOut]);
    const fromSource = tablesOf(srcOut);
    assert.deepEqual(
      fromSource,
      fromDump.map(({ version: _v, ...rest }) => rest),
    );

    // --filter narrows the dump's tables; the id's manifest gives the target connection.
    const tagsFilter = home.write(
      "tags.yaml",
      `allow:\n  - catalog: replicant\n    schema: ${SCHEMA}\n    types: [TABLE]\n    allow:\n      tags: {}\n`,
    );
    await ok(
      ["fetch-schemas", "--id", ID, "--home", home.dir, "--filter", tagsFilter],
      home.dir,
    );
    assert.deepEqual(tablesOf(join(home.dir, "schemas.yaml")).map((t) => t.table), ["tags"]);
  } finally {
    await cleanup();
    await db.end();
    redis.disconnect();
  }
});

Deno.test("fetch-schemas without a dump for the id: exit 2 naming the id and the stream", async () => {
  const home = scratchHome();
  const r = await runReplicant(["fetch-schemas", home.redisConn, "--id", "no_such_id_e2e"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /"no_such_id_e2e"/);
  assert.match(r.stderr, /replicate_io_replication_schema_default_no_such_id_e2e/);
});

Deno.test("schema dump: MariaDB snapshot; fetch-schemas from the dump equals the source's", async () => {
  const env = serviceEnv().mysql;
  const db = await mysql.createConnection({
    host: env.host,
    port: env.port,
    user: env.user,
    password: env.password,
  });
  const redis = redisClient();
  const home = scratchHome();
  const database = "e2e_schemadump_my";
  const id = "schemadump_my";
  const dumpStream = `replicate_io_replication_schema_default_${id}`;
  const cleanup = async () => {
    await db.query(`DROP DATABASE IF EXISTS ${database}`);
    await deleteKeys(redis, `${database}_*`);
    await redis.del(dumpStream, `replicate_io_checkpoint_default_${id}`);
  };
  try {
    await cleanup();
    await db.query(`CREATE DATABASE ${database}`);
    await db.query(
      `CREATE TABLE ${database}.items (id int unsigned PRIMARY KEY, name varchar(30) NOT NULL ` +
        `DEFAULT 'n', price decimal(10,2), doc json)`,
    );
    await db.query(`INSERT INTO ${database}.items VALUES (1, 'a', 1.50, '{}')`);
    const conn = home.write(
      "mysql.yaml",
      `type: MARIADB\nhost: ${env.host}\nport: ${env.port}\nusername: ${env.user}\n` +
        `password: "${env.password}"\nslave-server-ids: [9101]\n`,
    );
    const filter = home.write("my_filter.yaml", `allow:\n  - catalog: ${database}\n`);
    await ok([
      "snapshot",
      conn,
      home.redisConn,
      "--filter",
      filter,
      "--id",
      id,
      "--home",
      home.dir,
    ]);
    assert.equal((await readStream(redis, dumpStream)).length, 1);
    const out = join(home.dir, "my.yaml");
    await ok(["fetch-schemas", home.redisConn, "--id", id, "--output-file", out]);
    const fromDump = tablesOf(out);
    assert.equal(fromDump[0].catalog, database);
    assert.equal("schema" in fromDump[0], false);
    assert.deepEqual(fromDump[0].columns.map((c) => [c.name, c.type, c.nullable]), [
      ["id", "int(10) unsigned", false],
      ["name", "varchar(30)", false],
      ["price", "decimal(10,2)", true],
      ["doc", "json", true],
    ]);
    const srcOut = join(home.dir, "my_src.yaml");
    await ok(["fetch-schemas", conn, "--filter", filter, "--output-file", srcOut]);
    assert.deepEqual(tablesOf(srcOut), fromDump.map(({ version: _v, ...rest }) => rest));
  } finally {
    await cleanup();
    await db.end();
    redis.disconnect();
  }
});
