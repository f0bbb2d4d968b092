import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
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
import { slotNameOf } from "../../src/source/postgres/pg_replication_slot.ts";

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
  // No slot name: each replication id gets its own (a slot hands each change out once).
  assert.deepEqual(pg.replicationSlots, []);
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

Deno.test("the sample PostgreSQL connection gives each id of the docs and scripts its own slot", () => {
  const pg = loadConnection(join(conf, "conn", "postgresql.yaml"), {
    role: "source",
  }) as PostgresConnection;
  // The README's quickstart, scripts/demo, scripts/bench.
  const ids = ["quickstart", "demo", "bench-cdc"];
  const slots = ids.map((id) => slotNameOf(pg, "default", id));
  assert.deepEqual(slots, [
    "replicant_default_quickstart",
    "replicant_default_demo",
    "replicant_default_bench_cdc",
  ]);
  assert.equal(new Set(slots).size, ids.length);
});

Deno.test("every sample extractor, applier and filter loads without problems or warnings", () => {
  const pg = loadExtractor(join(conf, "src", "postgresql.yaml"), "POSTGRESQL");
  const my = loadExtractor(join(conf, "src", "mysql.yaml"), "MARIADB");
  assert.deepEqual([...pg.warnings, ...my.warnings], []);
  for (const file of files("dst")) assert.deepEqual(loadApplier(file).warnings, [], file);
  for (const file of files("filter")) assert.deepEqual(loadFilter(file).warnings, [], file);
});

Deno.test("sample filters select the Quickstart's sample data", () => {
  const pg = loadFilter(join(conf, "filter", "postgresql_filter.yaml"));
  assert.equal(tableSelected(pg, { catalog: "replicant", schema: "shop", table: "orders" }), true);
  assert.equal(
    tableSelected(pg, { catalog: "replicant", schema: "public", table: "orders" }),
    false,
  );
  assert.equal(tableSelected(pg, { catalog: "postgres", schema: "shop", table: "orders" }), false);
  const my = loadFilter(join(conf, "filter", "mysql_filter.yaml"));
  assert.equal(tableSelected(my, { catalog: "shop_my", table: "orders" }), true);
  assert.equal(tableSelected(my, { catalog: "replicant", table: "orders" }), false);
  assert.equal(tableSelected(my, { catalog: "mysql", table: "user" }), false);
});

Deno.test("every sample key Replicant accepts and does not use says so", () => {
  // Keys the docs list as accepted and not used (docs/configuration.md, arcion-compatibility.md).
  const unused: Record<string, string[]> = {
    "conn/postgresql.yaml": ["max-connections"],
    "conn/mysql.yaml": ["max-connections"],
    "src/postgresql.yaml": ["min-job-size-rows", "max-jobs-per-chunk", "per-table-config"],
    "src/mysql.yaml": ["min-job-size-rows", "max-jobs-per-chunk", "per-table-config"],
    "dst/redis_stream.yaml": ["txn-size-rows"],
  };
  for (const [file, keys] of Object.entries(unused)) {
    const lines = readFileSync(join(conf, file), "utf8").split("\n");
    for (const key of keys) {
      const at = lines.flatMap((l, i) => new RegExp(`^\\s*#?\\s*${key}:`).test(l) ? [i] : []);
      assert.ok(at.length > 0, `${file}: ${key}`);
      for (const i of at) {
        // The line's own comment, or a comment in the lines right above it (one paragraph).
        let text = lines[i];
        for (let j = i - 1; j >= 0 && lines[j].trim() !== "" && j >= i - 3; j--) text += lines[j];
        assert.match(text, /not used/, `${file}:${i + 1}: ${key}`);
      }
    }
  }
  // Nothing describes a setting as doing what Replicant does not do.
  for (const dir of ["conn", "src", "dst"]) {
    for (const file of files(dir)) {
      const text = readFileSync(file, "utf8");
      assert.doesNotMatch(
        text,
        /read as one job|parallel ranges|keep below|checkpointed unit/,
        file,
      );
    }
  }
});
