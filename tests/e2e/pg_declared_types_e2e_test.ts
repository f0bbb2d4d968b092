/**
 * End-to-end through the binary (`full`, include-schema true): what the `schema` half of
 * PostgreSQL entries and the schema dump declare is what the payload holds, for arrays,
 * domains, json/jsonb and the rest, in snapshot and realtime alike; stored generated
 * columns are in neither, so both carry the same columns and one schema version; arrays
 * with a lower bound other than 1 are plain arrays of their elements.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { dropPublication, dropSlot } from "../../src/source/postgres/pg_replication_slot.ts";
import { readSchemaDump } from "../../src/sink/redis/schema_dump_store.ts";
import { deleteKeys, pgClient, readStream, redisClient } from "../helpers/clients.ts";
import {
  type RunningReplicant,
  runReplicant,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";

interface FieldSchema {
  type: string;
  optional: boolean;
  field?: string;
  name?: string;
  items?: FieldSchema;
  fields?: FieldSchema[];
}

/** Whether a payload value is what its Kafka Connect schema declares. */
function conforms(schema: FieldSchema, value: unknown): boolean {
  if (value === null) return schema.optional;
  switch (schema.type) {
    case "int16":
    case "int32":
    case "int64":
      return Number.isInteger(value);
    case "float":
    case "double":
      return typeof value === "number";
    case "boolean":
      return typeof value === "boolean";
    case "string":
      return typeof value === "string";
    case "bytes":
      return typeof value === "string" && /^[A-Za-z0-9+/]*={0,2}$/.test(value);
    case "array":
      return Array.isArray(value) && value.every((v) => conforms(schema.items!, v));
    default:
      return false;
  }
}

interface Entry {
  op: string;
  after: Record<string, unknown> | null;
  fields: Map<string, FieldSchema>;
  version: number;
}

async function entries(stream: string): Promise<Entry[]> {
  const redis = redisClient();
  try {
    return (await readStream(redis, stream)).filter(([, f]) => f[1] !== "default").map(
      ([, f]) => {
        const v = JSON.parse(f[1]);
        const after = (v.schema.fields as FieldSchema[]).find((s) => s.field === "after")!;
        return {
          op: v.payload.op,
          after: v.payload.after,
          fields: new Map(after.fields!.map((s) => [s.field!, s])),
          version: v.payload.source.schema_version,
        };
      },
    );
  } finally {
    redis.disconnect();
  }
}

const optional = <T extends object>(s: T) => ({ ...s, optional: true });
const item = (type: string) => ({ type, optional: true });

interface FullRun {
  snapshot: Entry[];
  cdc: Entry[];
  dump: Awaited<ReturnType<typeof readSchemaDump>>;
  trace: string;
}

/**
 * Creates a schema with `setup` (`{s}` stands for its name), runs `full` with schemas in the
 * entries until `table` has `rows` snapshot entries, runs `changes`, waits for `changed`
 * entries in its cdc stream, stops with SIGTERM; gives what the streams and logs hold.
 */
async function fullRun(
  setup: string,
  table: string,
  rows: number,
  changes: string,
  changed: number,
): Promise<FullRun> {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const schema = `types_pg_${tag}`;
  const id = `types-pg-${tag}`;
  const slot = `replicant_default_${id}`.replace(/[^a-z0-9_]/g, "_");
  const db = await pgClient();
  const redis = redisClient();
  let run: RunningReplicant | null = null;
  try {
    await db.query(`CREATE SCHEMA ${schema}; ${setup.replaceAll("{s}", schema)}`);
    const home = scratchHome();
    run = startReplicant([
      "full",
      home.pgConn,
      home.redisConn,
      "--filter",
      home.write(
        "filter.yaml",
        `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
      ),
      "--applier",
      home.write("applier.yaml", "include-schema: true\n"),
      "--id",
      id,
      "--home",
      home.dir,
    ]);
    const snap = `replicant_${schema}_${table}`;
    const cdc = `${snap}_cdc_logs`;
    await waitFor(async () => (await redis.xlen(snap)) === rows, {
      what: "the snapshot",
      timeoutMs: 60_000,
    });
    await db.query(changes.replaceAll("{s}", schema));
    await waitFor(async () => (await redis.xlen(cdc)) >= changed, { what: "changes" });
    run.kill("SIGTERM");
    const out = await run.done;
    run = null;
    assert.equal(out.code, 0, out.stderr);
    return {
      snapshot: await entries(snap),
      cdc: await entries(cdc),
      dump: (await readSchemaDump(redis, `replicate_io_replication_schema_default_${id}`))
        .filter((e) => e.id.table === table),
      trace: readFileSync(join(home.dir, "data", id, "trace.log"), "utf8"),
    };
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await dropSlot(db, slot).catch(() => {});
    await dropPublication(db, slot).catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await deleteKeys(redis, `replicant_${schema}_*`);
    await deleteKeys(redis, `replicate_io_*_default_${id}`);
    await db.end();
    redis.disconnect();
  }
}

Deno.test("declared types (pg): schema halves and dump match payloads, arrays with any bounds", async () => {
  const { snapshot, cdc, dump } = await fullRun(
    `CREATE TYPE {s}.mood AS ENUM ('happy', 'sad');
      CREATE DOMAIN {s}.year AS integer CHECK (VALUE >= 1901 AND VALUE <= 2155);
      CREATE DOMAIN {s}.words AS text[];
      CREATE TABLE {s}.typed (
        id int PRIMARY KEY, tags text[], grid int[][], doc jsonb, js json, yr {s}.year,
        moods {s}.mood[], w {s}.words, raw bytea, ok boolean, f real, big int8,
        amount numeric(7,2), vec int2vector, lb int[]);
      INSERT INTO {s}.typed VALUES (1, '{a,"b c",NULL}', '{{1,2},{3,4}}',
        '{"k": [1, 2.5, "x"], "n": null}', '[1, {"a": "b"}]', 2006, '{happy,sad}', '{x,y}',
        '\\x00ff', true, 1.5, 9007199254740991, 12.34, '1 2 3', '[0:2]={7,8,9}');
      INSERT INTO {s}.typed (id) VALUES (2);`,
    "typed",
    2,
    `UPDATE {s}.typed SET lb = '[-1:1]={4,5,6}', yr = 2024, doc = '"text"' WHERE id = 1;
      INSERT INTO {s}.typed (id, grid) VALUES (3, '{{5}}');`,
    2,
  );
  const all = [...snapshot, ...cdc];
  assert.deepEqual(all.map((e) => e.op), ["r", "r", "u", "c"]);
  const expected: Record<string, object> = {
    id: { type: "int32", optional: false, field: "id" },
    tags: optional({ type: "array", items: item("string"), field: "tags" }),
    grid: optional({
      type: "array",
      items: { type: "array", items: item("int32"), optional: true },
      field: "grid",
    }),
    doc: optional({ type: "string", name: "io.debezium.data.Json", field: "doc" }),
    js: optional({ type: "string", name: "io.debezium.data.Json", field: "js" }),
    yr: optional({ type: "int32", field: "yr" }),
    moods: optional({ type: "array", items: item("string"), field: "moods" }),
    w: optional({ type: "array", items: item("string"), field: "w" }),
    raw: optional({ type: "bytes", field: "raw" }),
    ok: optional({ type: "boolean", field: "ok" }),
    f: optional({ type: "float", field: "f" }),
    big: optional({ type: "int64", field: "big" }),
    amount: optional({ type: "string", field: "amount" }),
    vec: optional({ type: "array", items: item("int16"), field: "vec" }),
    lb: optional({ type: "array", items: item("int32"), field: "lb" }),
  };
  for (const e of all) {
    assert.deepEqual(Object.fromEntries(e.fields), expected, `${e.op}: declared types`);
    assert.deepEqual(Object.keys(e.after!), Object.keys(expected));
    for (const [name, value] of Object.entries(e.after!)) {
      assert.ok(
        conforms(e.fields.get(name)!, value),
        `${e.op} ${name}: ${JSON.stringify(value)} is not a ${JSON.stringify(e.fields.get(name))}`,
      );
    }
  }
  const [first, , update, insert] = all;
  assert.deepEqual(first.after, {
    id: 1,
    tags: ["a", "b c", null],
    grid: [[1, 2], [3, 4]],
    doc: '{"k": [1, 2.5, "x"], "n": null}',
    js: '[1, {"a": "b"}]',
    yr: 2006,
    moods: ["happy", "sad"],
    w: ["x", "y"],
    raw: "AP8=",
    ok: true,
    f: 1.5,
    big: 9007199254740991,
    amount: "12.34",
    vec: [1, 2, 3],
    lb: [7, 8, 9],
  });
  assert.deepEqual([update.after!.lb, update.after!.yr, update.after!.doc], [
    [4, 5, 6],
    2024,
    '"text"',
  ]);
  assert.deepEqual(insert.after!.grid, [[5]]);

  assert.equal(dump.length, 1, "one version in the dump");
  assert.deepEqual(
    Object.fromEntries(dump[0].columns.map((c) => [c.name, c.normalized_type])),
    {
      id: "int32",
      tags: { type: "array", items: "string" },
      grid: { type: "array", items: { type: "array", items: "int32" } },
      doc: { type: "string", name: "io.debezium.data.Json" },
      js: { type: "string", name: "io.debezium.data.Json" },
      yr: "int32",
      moods: { type: "array", items: "string" },
      w: { type: "array", items: "string" },
      raw: "bytes",
      ok: "boolean",
      f: "float",
      big: "int64",
      amount: "string",
      vec: { type: "array", items: "int16" },
      lb: { type: "array", items: "int32" },
    },
  );
});

Deno.test("generated columns (pg): left out of snapshot and realtime alike, one schema version", async () => {
  const { snapshot, cdc, dump, trace } = await fullRun(
    `CREATE TABLE {s}.line (id int PRIMARY KEY, price numeric(7,2), qty int,
        total numeric GENERATED ALWAYS AS (price * qty) STORED);
      INSERT INTO {s}.line VALUES (1, 2.50, 4), (2, 1.00, 1);`,
    "line",
    2,
    `UPDATE {s}.line SET qty = 5 WHERE id = 1; INSERT INTO {s}.line VALUES (3, 3.00, 3);`,
    2,
  );
  for (const e of [...snapshot, ...cdc]) {
    assert.deepEqual([...e.fields.keys()], ["id", "price", "qty"], `${e.op}: declared columns`);
    assert.deepEqual(Object.keys(e.after!), ["id", "price", "qty"], `${e.op}: row`);
    assert.equal(e.version, 1, `${e.op}: one schema version for snapshot and realtime`);
  }
  assert.deepEqual(cdc.map((e) => [e.op, e.after]), [
    ["u", { id: 1, price: "2.50", qty: 5 }],
    ["c", { id: 3, price: "3.00", qty: 3 }],
  ]);
  assert.equal(dump.length, 1, "one version in the dump");
  assert.doesNotMatch(trace, /schema of \S+line: v1 -> v2/);
  // Once, though full sets up the publication for the snapshot and again for realtime.
  assert.equal(
    trace.match(/line: stored generated column\(s\) total are not replicated/g)?.length,
    1,
  );
});

Deno.test("generated columns (pg): a snapshot run says so too, once per table", async () => {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const schema = `types_pg_${tag}`;
  const id = `types-pg-${tag}`;
  const db = await pgClient();
  const redis = redisClient();
  const home = scratchHome();
  try {
    await db.query(`CREATE SCHEMA ${schema};
      CREATE TABLE ${schema}.line (id int PRIMARY KEY, price int, qty int,
        total int GENERATED ALWAYS AS (price * qty) STORED);
      CREATE TABLE ${schema}.box (id int PRIMARY KEY, w int, h int,
        area int GENERATED ALWAYS AS (w * h) STORED, half int GENERATED ALWAYS AS (w / 2) STORED);
      CREATE TABLE ${schema}.plain (id int PRIMARY KEY);
      INSERT INTO ${schema}.line VALUES (1, 2, 3); INSERT INTO ${schema}.box VALUES (1, 2, 3);`);
    const r = await runReplicant([
      "snapshot",
      home.pgConn,
      home.redisConn,
      "--filter",
      home.write(
        "filter.yaml",
        `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
      ),
      "--id",
      id,
      "--home",
      home.dir,
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const trace = readFileSync(join(home.dir, "data", id, "trace.log"), "utf8");
    const told = [...trace.matchAll(/(\S+): stored generated column\(s\) (.+) are not replicated/g)]
      .map((m) => `${m[1]}: ${m[2]}`).sort();
    assert.deepEqual(told, [
      `replicant.${schema}.box: area, half`,
      `replicant.${schema}.line: total`,
    ], trace);
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
    await deleteKeys(redis, `replicant_${schema}_*`);
    await deleteKeys(redis, `replicate_io_*_${id}`);
    redis.disconnect();
    rmSync(home.dir, { recursive: true, force: true });
  }
});
