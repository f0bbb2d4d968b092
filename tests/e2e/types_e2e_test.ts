/**
 * Every PostgreSQL type of the foundation issue, through the binary into Redis: each value
 * in the snapshot entry equals the server's own rendering of the stored value, with
 * Replicant's documented adjustments (int8 beyond 2^53 and numeric as strings, bytea as
 * base64, timestamps ISO with `T` and `Z`, NaN/Infinity as strings).
 */
import assert from "node:assert/strict";
import { deleteKeys, pgClient, readStream, redisClient } from "../helpers/clients.ts";
import { runReplicant, scratchHome } from "../helpers/replicant.ts";

const SCHEMA = "e2e_types";

const int8 = (c: string) =>
  `CASE WHEN abs(${c}::numeric) <= 9007199254740991 THEN to_jsonb(${c}) ELSE to_jsonb(${c}::text) END`;
/** Floats as PostgreSQL's text: jsonb would turn -0 into 0; compared numerically below. */
const float = (c: string) => `to_jsonb(${c}::text)`;
const FLOATS = new Set(["c_real", "c_double"]);
const iso = (c: string) => `to_jsonb(replace(${c}::text, ' ', 'T'))`;

/** name, type, expected JSON (SQL over the column). */
const COLUMNS: [string, string, string][] = [
  ["c_int2", "smallint", "to_jsonb(c_int2)"],
  ["c_int4", "integer", "to_jsonb(c_int4)"],
  ["c_int8", "bigint", int8("c_int8")],
  ["c_numeric", "numeric", "to_jsonb(c_numeric::text)"],
  ["c_real", "real", float("c_real")],
  ["c_double", "double precision", float("c_double")],
  ["c_bool", "boolean", "to_jsonb(c_bool)"],
  ["c_text", "text", "to_jsonb(c_text)"],
  ["c_varchar", "varchar(40)", "to_jsonb(c_varchar)"],
  ["c_char", "char(5)", "to_jsonb(c_char::text || repeat(' ', 5 - length(c_char)))"],
  ["c_bytea", "bytea", "to_jsonb(translate(encode(c_bytea, 'base64'), E'\\n', ''))"],
  ["c_date", "date", "to_jsonb(c_date::text)"],
  ["c_time", "time", "to_jsonb(c_time::text)"],
  ["c_timetz", "timetz", "to_jsonb(c_timetz::text)"],
  ["c_ts", "timestamp", iso("c_ts")],
  ["c_tstz", "timestamptz", "to_jsonb(replace(replace(c_tstz::text, ' ', 'T'), '+00', 'Z'))"],
  ["c_interval", "interval", "to_jsonb(c_interval::text)"],
  ["c_uuid", "uuid", "to_jsonb(c_uuid::text)"],
  ["c_json", "json", "to_jsonb(c_json::text)"],
  ["c_jsonb", "jsonb", "to_jsonb(c_jsonb::text)"],
  ["c_int_arr", "integer[]", "to_jsonb(c_int_arr)"],
  ["c_text_arr", "text[]", "to_jsonb(c_text_arr)"],
  ["c_enum", "e2e_types.mood", "to_jsonb(c_enum::text)"],
];

const ROWS = [
  `1, -32768, -2147483648, -9223372036854775808, '-12345678901234567890.123456789', '-3.4e38', '-1.7976931348623157e308', true,
   'plain', 'unicode ✓ "quoted" \\ back', 'ab', '\\x00ff10', '2024-02-29', '23:59:59.999999', '13:45:00+05:30',
   '2024-01-31 13:45:00.123456', '2024-01-31 13:45:00.5+02', 'P1Y2M3DT4H5M6.5S', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
   '{"a": [1, 2.50, {"b": null}]}', '{"n": 12345678901234567890}', '{1,NULL,3}', '{"x","y z",NULL,"NULL","q\\"r"}', 'happy'`,
  `2, 32767, 2147483647, 9007199254740993, 'NaN', 'NaN', 'Infinity', false, '', '', '', '\\x', '0044-03-15 BC',
   '00:00:00', '00:00:00+00', 'infinity', '-infinity', '-1 days -00:00:01', '00000000-0000-0000-0000-000000000000',
   '[]', '{}', '{}', '{}', 'sad'`,
  `3, NULL, NULL, 9007199254740991, '0.00', '-Infinity', '-0', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, 'null', NULL, NULL, NULL, NULL`,
];

Deno.test("every PostgreSQL type round-trips through the binary into Redis", async () => {
  const db = await pgClient();
  const redis = redisClient();
  try {
    await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE; CREATE SCHEMA ${SCHEMA}`);
    await db.query(`CREATE TYPE ${SCHEMA}.mood AS ENUM ('sad', 'happy')`);
    await db.query(
      `CREATE TABLE ${SCHEMA}.t (id int PRIMARY KEY, ${
        COLUMNS.map(([n, t]) => `${n} ${t}`).join(", ")
      })`,
    );
    for (const row of ROWS) await db.query(`INSERT INTO ${SCHEMA}.t VALUES (${row})`);
    await deleteKeys(redis, `replicant_${SCHEMA}_*`);
    const home = scratchHome();
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: replicant\n    schema: ${SCHEMA}\n`,
    );
    const applier = home.write("applier.yaml", "include-schema: false\n");
    const res = await runReplicant([
      "snapshot",
      home.pgConn,
      home.redisConn,
      "--filter",
      filter,
      "--applier",
      applier,
      "--id",
      "e2e-types",
      "--home",
      home.dir,
      "--overwrite",
      "--replace-existing",
    ]);
    assert.equal(res.code, 0, res.stderr);
    const entries = await readStream(redis, `replicant_${SCHEMA}_t`);
    assert.equal(entries.length, ROWS.length);
    const expected = await db.query(
      `SET TimeZone = 'UTC'; SET IntervalStyle = 'iso_8601';
       SELECT id, jsonb_build_object(${
        COLUMNS.map(([n, , e]) => `'${n}', ${e}`).join(", ")
      }) AS j FROM ${SCHEMA}.t ORDER BY id`,
    );
    const rows =
      (expected as unknown as { rows: { id: number; j: Record<string, unknown> }[] }[])[2]
        .rows;
    for (const [, fields] of entries) {
      const after = JSON.parse(fields[1]).after as Record<string, unknown>;
      const want = rows.find((r) => r.id === after.id)!;
      for (const [name] of COLUMNS) {
        const got = after[name];
        const exp = want.j[name] ?? null;
        const what = `row ${after.id} column ${name}: ${JSON.stringify(got)} vs ${exp}`;
        if (FLOATS.has(name) && typeof got === "number") {
          assert.ok(Object.is(got, Number(exp)), what);
        } else assert.deepEqual(got, exp, what);
      }
    }
    // JSON columns are their text, digits a JSON parser would round included.
    assert.match(entries[0][1][1], /"c_jsonb":"\{\\"n\\": 12345678901234567890\}"/);
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    await deleteKeys(redis, `replicant_${SCHEMA}_*`);
    await deleteKeys(redis, "replicate_io_*_default_e2e-types");
    await db.end();
    redis.disconnect();
  }
});
