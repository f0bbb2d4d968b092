import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import {
  loadApplier,
  loadConnection,
  loadExtractor,
  loadFilter,
  type MysqlConnection,
  type PostgresConnection,
  type RedisConnection,
  tableSelected,
} from "../../src/config/mod.ts";

const conf = join(import.meta.dirname!, "..", "..", "conf");
const files = (dir: string) =>
  readdirSync(join(conf, dir)).filter((f) => f.endsWith(".yaml")).map((f) => join(conf, dir, f));

Deno.test("every sample connection loads without problems or warnings", () => {
  const all = files("conn");
  assert.ok(all.length >= 3);
  for (const file of all) assert.deepEqual(loadConnection(file).warnings, [], file);
});

Deno.test("sample connections point at the project's test services", () => {
  const redis = loadConnection(join(conf, "conn", "redis_stream.yaml"), {
    role: "target",
  }) as RedisConnection;
  assert.deepEqual([redis.type, redis.host, redis.port], ["REDIS_STREAM", "127.0.0.1", 56379]);
  const pg = loadConnection(join(conf, "conn", "postgresql.yaml"), {
    role: "source",
  }) as PostgresConnection;
  assert.deepEqual([pg.type, pg.host, pg.port, pg.database, pg.username, pg.password], [
    "POSTGRESQL",
    "127.0.0.1",
    55432,
    "replicant",
    "postgres",
    undefined,
  ]);
  assert.deepEqual(pg.replicationSlots, [{ name: "replicant_default_demo", plugin: "pgoutput" }]);
  const maria = loadConnection(join(conf, "conn", "mysql.yaml"), {
    role: "source",
  }) as MysqlConnection;
  assert.deepEqual([maria.type, maria.host, maria.port, maria.username, maria.password], [
    "MARIADB",
    "127.0.0.1",
    53306,
    "root",
    undefined,
  ]);
});

Deno.test("every sample extractor, applier and filter loads without problems or warnings", () => {
  const pg = loadExtractor(join(conf, "src", "postgresql.yaml"), "POSTGRESQL");
  const my = loadExtractor(join(conf, "src", "mysql.yaml"), "MARIADB");
  assert.deepEqual([...pg.warnings, ...my.warnings], []);
  for (const file of files("dst")) assert.deepEqual(loadApplier(file).warnings, [], file);
  for (const file of files("filter")) assert.deepEqual(loadFilter(file).warnings, [], file);
});

Deno.test("sample filters select the test database", () => {
  const pg = loadFilter(join(conf, "filter", "postgresql_filter.yaml"));
  assert.equal(
    tableSelected(pg, { catalog: "replicant", schema: "public", table: "orders" }),
    true,
  );
  assert.equal(
    tableSelected(pg, { catalog: "postgres", schema: "public", table: "orders" }),
    false,
  );
  const my = loadFilter(join(conf, "filter", "mysql_filter.yaml"));
  assert.equal(tableSelected(my, { catalog: "replicant", table: "orders" }), true);
  assert.equal(tableSelected(my, { catalog: "mysql", table: "user" }), false);
});
