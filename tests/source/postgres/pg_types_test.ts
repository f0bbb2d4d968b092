/**
 * Integration test of the PostgreSQL value decoders against a real server.
 *
 * Creates a table with a column of every supported type in a schema of its own, fills it
 * with tricky values, reads it back as TEXT in the session Replicant uses, decodes each
 * value, and checks the decoded JSON two ways against what the server itself says:
 *
 * - expectation: a JSON rendering computed by the server from the stored value
 *   (`to_json`, `encode(…, 'base64')`, `::text`, per-element over `unnest`), adjusted only
 *   where Replicant's format differs on purpose (int8 beyond 2^53 and numeric as strings,
 *   timestamptz with `Z`);
 * - round trip (scalar columns): the decoded value is sent back as a parameter, cast to
 *   the column type, and must equal the stored value.
 *
 * Server: REPLICANT_PG_HOST/PORT/USER/DATABASE (defaults 127.0.0.1, 55432, postgres,
 * replicant; see scripts/services).
 */
import assert from "node:assert/strict";
import pg from "pg";
import { pgTextDecoder } from "../../../src/source/postgres/pg_text_decoder.ts";
import { pgTextByteWriter } from "../../../src/source/postgres/pg_text_bytes.ts";
import { PgCopyRows } from "../../../src/source/postgres/pg_copy_rows.ts";
import {
  PG_TYPE_CATALOG_SQL,
  PgTypeCatalog,
  type PgTypeRow,
} from "../../../src/source/postgres/pg_type_catalog.ts";
import { serviceEnv } from "../../helpers/services.ts";

const SCHEMA = `replicant_pg_types_${Deno.pid}_${Date.now()}`;
const S = `"${SCHEMA}"`;

/** The session Replicant's PostgreSQL readers use. */
const SESSION = [
  "SET TimeZone = 'UTC'",
  "SET DateStyle = 'ISO, YMD'",
  "SET IntervalStyle = 'iso_8601'",
  "SET extra_float_digits = 3",
  "SET bytea_output = 'hex'",
  "SET client_encoding = 'UTF8'",
];

/** Every type as text: what Replicant's readers get. */
const TEXT_TYPES = { getTypeParser: () => (value: string) => value };

// --- server-side expectations ({c} is the column or element) --------------------------

const int8Json = (x: string) =>
  `CASE WHEN abs((${x})::numeric) <= 9007199254740991 THEN to_json(${x}) ` +
  `ELSE to_json((${x})::text) END`;
const tstzJson = (x: string) => `to_json(replace(to_json(${x}) #>> '{}', '+00:00', 'Z'))`;
const base64Json = (x: string) => `to_json(translate(encode(${x}, 'base64'), E'\\n', ''))`;
/** A 1-D array column, each element rendered by `element` (of `x`). */
const perElement = (element: (x: string) => string) =>
  `CASE WHEN {c} IS NULL THEN NULL ELSE (SELECT coalesce(json_agg(${
    element("u.x")
  } ORDER BY u.i), '[]'::json) FROM unnest({c}) WITH ORDINALITY AS u(x, i)) END`;

interface Column {
  name: string;
  type: string;
  /** SQL rendering the expected JSON (json or text); default `to_json({c})`. */
  expect?: string;
  /**
   * Round trip: SQL true when the decoded value `$` (as text) equals `{c}`;
   * default `$::<type> IS NOT DISTINCT FROM {c}`; null for none (arrays).
   */
  roundTrip?: string | null;
  /** Send the JSON fragment itself as `$`, not the value parsed from it (json, jsonb). */
  sendFragment?: boolean;
}

const COLUMNS: Column[] = [
  { name: "c_bool", type: "bool" },
  { name: "c_int2", type: "int2" },
  { name: "c_int4", type: "int4" },
  { name: "c_int8", type: "int8", expect: int8Json("{c}") },
  { name: "c_oid", type: "oid", expect: "to_json({c}::int8)" },
  { name: "c_numeric", type: "numeric", expect: "to_json({c}::text)" },
  { name: "c_float4", type: "float4" },
  { name: "c_float8", type: "float8" },
  { name: "c_money", type: "money" },
  { name: "c_char", type: `"char"` },
  { name: "c_name", type: "name" },
  { name: "c_text", type: "text" },
  { name: "c_varchar", type: "varchar(100)" },
  { name: "c_bpchar", type: "char(10)" },
  {
    name: "c_bytea",
    type: "bytea",
    expect: base64Json("{c}"),
    roundTrip: "decode($, 'base64') IS NOT DISTINCT FROM {c}",
  },
  { name: "c_date", type: "date" },
  { name: "c_time", type: "time" },
  { name: "c_timetz", type: "timetz" },
  { name: "c_timestamp", type: "timestamp" },
  { name: "c_timestamptz", type: "timestamptz", expect: tstzJson("{c}") },
  { name: "c_interval", type: "interval" },
  { name: "c_bit", type: "bit(8)" },
  { name: "c_varbit", type: "varbit" },
  { name: "c_uuid", type: "uuid" },
  { name: "c_inet", type: "inet" },
  { name: "c_cidr", type: "cidr" },
  { name: "c_macaddr", type: "macaddr" },
  { name: "c_xml", type: "xml", roundTrip: "$::xml::text IS NOT DISTINCT FROM {c}::text" },
  {
    name: "c_json",
    type: "json",
    expect: "to_json({c}::text)",
    roundTrip: "$::json::text IS NOT DISTINCT FROM {c}::text",
  },
  { name: "c_jsonb", type: "jsonb", expect: "to_json({c}::text)" },
  { name: "c_mood", type: `${S}.mood` },
  { name: "c_big_id", type: `${S}.big_id`, expect: int8Json("{c}") },
  { name: "c_int8_arr", type: "int8[]", expect: perElement(int8Json), roundTrip: null },
  { name: "c_text_arr", type: "text[]", roundTrip: null },
  { name: "c_varchar_arr", type: "varchar(20)[]", roundTrip: null },
  {
    name: "c_jsonb_arr",
    type: "jsonb[]",
    expect: perElement((x) => `to_json(${x}::text)`),
    roundTrip: null,
  },
  {
    name: "c_json_arr",
    type: "json[]",
    expect: perElement((x) => `to_json(${x}::text)`),
    roundTrip: null,
  },
  {
    name: "c_numeric_arr",
    type: "numeric[]",
    expect: perElement((x) => `to_json(${x}::text)`),
    roundTrip: null,
  },
  { name: "c_int4_2d", type: "int4[]", roundTrip: null },
  { name: "c_bytea_arr", type: "bytea[]", expect: perElement(base64Json), roundTrip: null },
  { name: "c_tstz_arr", type: "timestamptz[]", expect: perElement(tstzJson), roundTrip: null },
  { name: "c_float8_arr", type: "float8[]", roundTrip: null },
  { name: "c_bool_arr", type: "bool[]", roundTrip: null },
  { name: "c_date_arr", type: "date[]", roundTrip: null },
  { name: "c_uuid_arr", type: "uuid[]", roundTrip: null },
  { name: "c_mood_arr", type: `${S}.mood[]`, roundTrip: null },
  { name: "c_big_id_arr", type: `${S}.big_id[]`, expect: perElement(int8Json), roundTrip: null },
];

/** Rows as SQL expressions per column; a column left out is NULL. Row 1 is all NULL. */
const ROWS: Array<Record<string, string>> = [
  {},
  {
    c_bool: "true",
    c_int2: "42",
    c_int4: "123456",
    c_int8: "1234567890123",
    c_oid: "16384",
    c_numeric: "12345.6789000",
    c_float4: "1.5",
    c_float8: "0.1",
    c_money: "1234.56",
    c_char: "'a'",
    c_name: "'a_name'",
    c_text: "'hello, world'",
    c_varchar: "'varchar'",
    c_bpchar: "'xx'",
    c_bytea: String.raw`'\x68656c6c6f'`,
    c_date: "'2024-01-31'",
    c_time: "'13:45:00.123456'",
    c_timetz: "'13:45:00+02'",
    c_timestamp: "'2024-01-31 13:45:00.123456'",
    c_timestamptz: "'2024-01-31 13:45:00.123456+02'",
    c_interval: "'1 year 2 months 3 days 04:05:06.5'",
    c_bit: "B'10101010'",
    c_varbit: "B'101'",
    c_uuid: "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
    c_inet: "'192.168.1.5/24'",
    c_cidr: "'10.0.0.0/8'",
    c_macaddr: "'08:00:2b:01:02:03'",
    c_xml: `'<a b="c">d &amp; e</a>'`,
    c_json: `'{"a": 1,   "b": [true, null]}'`,
    c_jsonb: `'{"a": 1, "nested": {"x": [1, 2.5, "s"]}}'`,
    c_mood: "'happy'",
    c_big_id: "42",
    c_int8_arr: "'{1,2,3}'",
    c_text_arr: "'{a,b}'",
    c_varchar_arr: "'{x}'",
    c_jsonb_arr: `ARRAY['{"a":1}', '[1,2]']::jsonb[]`,
    c_json_arr: `ARRAY['{"a":  1}']::json[]`,
    c_numeric_arr: "'{1.50,2}'",
    c_int4_2d: "'{{1,2},{3,4}}'",
    c_bytea_arr: String.raw`ARRAY['\x00ff'::bytea, '\x'::bytea]`,
    c_tstz_arr: "ARRAY['2024-01-31 13:45:00.5+00'::timestamptz]",
    c_float8_arr: "'{1.5,-2.25}'",
    c_bool_arr: "'{t,f}'",
    c_date_arr: "'{2024-01-31}'",
    c_uuid_arr: "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'",
    c_mood_arr: `ARRAY['happy', 'sad face']::${S}.mood[]`,
    c_big_id_arr: "'{1,2}'",
  },
  {
    c_bool: "false",
    c_int2: "-32768",
    c_int4: "-2147483648",
    c_int8: "-9223372036854775808",
    c_oid: "0",
    c_numeric: "-0.000000000000000000000000000001",
    c_float4: "'-Infinity'",
    c_float8: "'-0'",
    c_money: "'-92233720368547758.08'",
    c_char: `'"'`,
    c_name: `'na"me ☃'`,
    c_text: String.raw`E'tricky "quotes" \\ backslash\nnewline\ttab ☃ 😀 \x01 {NULL}'`,
    c_varchar: "''",
    c_bpchar: "'ü'",
    c_bytea: String.raw`'\x'`,
    c_date: "'0044-03-15 BC'",
    c_time: "'00:00:00'",
    c_timetz: "'00:00:00.5-03:30'",
    c_timestamp: "'0044-03-15 13:45:00.5 BC'",
    c_timestamptz: "'0044-03-15 13:45:00.5+00 BC'",
    c_interval: "'-1 year -2 months +3 days -04:05:06.5'",
    c_bit: "B'00000000'",
    c_varbit: "B''",
    c_uuid: "'00000000-0000-0000-0000-000000000000'",
    c_inet: "'2001:db8::1/64'",
    c_cidr: "'2001:db8::/32'",
    c_macaddr: "'00:00:00:00:00:00'",
    c_xml: String.raw`E'<x>"quote" \\ ☃\n</x>'`,
    c_json: String.raw`'"a string with \"escapes\" \\ \u00e9 \n"'`,
    c_jsonb: `'[1, "two", null, true, {"k": "v"}, -0.0000001]'`,
    c_mood: String.raw`'quote"back\slash'`,
    c_big_id: "-9223372036854775808",
    c_int8_arr: "'{-9223372036854775808,-9007199254740992,-9007199254740991,NULL}'",
    c_text_arr: String.raw`ARRAY['a b', 'c"d', NULL, 'NULL', 'null', 'x\y', '', ' ', '{}', ',', ` +
      String.raw`E'new\nline', '☃ 😀', '\', 'tab' || chr(9)]`,
    c_varchar_arr: "'{}'",
    c_jsonb_arr: String.raw`ARRAY['"s"', 'null', NULL, '{"q": "\"", "b": "\\\\"}']::jsonb[]`,
    c_json_arr: String.raw`ARRAY['[1,  2]', NULL, '"x\"y"', '12345678901234567890']::json[]`,
    c_numeric_arr: "'{NaN,-Infinity,Infinity,NULL,-0.000001}'",
    c_int4_2d: "'[0:1][-1:0]={{1,NULL},{3,4}}'",
    c_bytea_arr: String.raw`ARRAY[NULL, '\x00'::bytea, decode(repeat('ff', 100), 'hex')]`,
    c_tstz_arr: "ARRAY['infinity', '-infinity', NULL, '0044-03-15 00:00:00+00 BC']::timestamptz[]",
    c_float8_arr: "'{NaN,Infinity,-Infinity,-0,NULL}'",
    c_bool_arr: "'{NULL}'",
    c_date_arr: "ARRAY['infinity', '-infinity', '0044-03-15 BC', NULL]::date[]",
    c_uuid_arr: "'{}'",
    c_mood_arr: String.raw`ARRAY['NULL', 'quote"back\slash', NULL, 'ünï ☃']::${S}.mood[]`,
    c_big_id_arr: "'{-9223372036854775808,NULL}'",
  },
  {
    c_bool: "true",
    c_int2: "32767",
    c_int4: "2147483647",
    c_int8: "9223372036854775807",
    c_oid: "4294967295",
    c_numeric: "'123456789012345678901234567890.123456789012345678901234567890'",
    c_float4: "'3.4028235e38'",
    c_float8: "'1.7976931348623157e308'",
    c_money: "'92233720368547758.07'",
    c_char: "'z'",
    c_name: "repeat('n', 63)",
    c_text: String.raw`E'ünïcödé 中文 𝄞 \u2028 </script>'`,
    c_varchar: "repeat('x', 100)",
    c_bpchar: "'abcdefghij'",
    c_bytea: "(SELECT string_agg(set_byte('\\x00'::bytea, 0, b), ''::bytea ORDER BY b) " +
      "FROM generate_series(0, 255) AS b)",
    c_date: "'5874897-12-31'",
    c_time: "'24:00:00'",
    c_timetz: "'24:00:00-15:59'",
    c_timestamp: "'294276-12-31 23:59:59.999999'",
    c_timestamptz: "'294276-12-31 23:59:59.999999+00'",
    c_interval: "'178000000 years 11 months'",
    c_bit: "B'11111111'",
    c_varbit: "repeat('10', 40)::varbit",
    c_uuid: "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
    c_inet: "'255.255.255.255'",
    c_cidr: "'0.0.0.0/0'",
    c_macaddr: "'ff:ff:ff:ff:ff:ff'",
    c_xml: "'<r/>'",
    c_json: `'{"big": 123456789012345678901234567890, "dup": 1, "dup": 2}'`,
    c_jsonb: `'{"big": 123456789012345678901234567890.5, "e": 1e-30}'`,
    c_mood: "'ünï ☃'",
    c_big_id: "9223372036854775807",
    c_int8_arr: "'{9007199254740991,9007199254740992,9223372036854775807}'",
    c_text_arr: String.raw`'{{"a b",NULL},{"c\"d","NULL"}}'`,
    c_varchar_arr: "ARRAY['☃', NULL, ' spaced ']::varchar(20)[]",
    c_jsonb_arr: "'{}'",
    c_json_arr: "'{}'",
    c_numeric_arr: "'{123456789012345678901234567890.000000000000000000001}'",
    c_int4_2d: "'{{{1},{2}},{{3},{4}}}'",
    c_bytea_arr: "'{}'",
    c_tstz_arr: "ARRAY['1970-01-01 00:00:00+00', '2000-02-29 23:59:59.999999+00']::timestamptz[]",
    c_float8_arr: "'{5e-324,1e+30,1e-07,0.1}'",
    c_bool_arr: "'{t,f,NULL}'",
    c_date_arr: "'{5874897-12-31}'",
    c_uuid_arr: "'{00000000-0000-0000-0000-000000000000,NULL}'",
    c_mood_arr: "'{}'",
    c_big_id_arr: "'{9007199254740991,9007199254740992}'",
  },
  {
    c_int2: "0",
    c_int4: "0",
    c_int8: "9007199254740991",
    c_numeric: "'NaN'",
    c_float4: "'NaN'",
    c_float8: "'NaN'",
    c_money: "0",
    c_text: "''",
    c_date: "'infinity'",
    c_timestamp: "'infinity'",
    c_timestamptz: "'-infinity'",
    c_interval: "'0'",
    c_json: "'null'",
    c_jsonb: "'null'",
    c_big_id: "9007199254740992",
  },
  {
    c_int8: "9007199254740992",
    c_numeric: "'Infinity'",
    c_float4: "'Infinity'",
    c_float8: "'Infinity'",
    c_date: "'-infinity'",
    c_timestamp: "'-infinity'",
    c_timestamptz: "'infinity'",
    c_interval: "'-00:00:00.000001'",
    c_json: "'[]'",
    c_jsonb: "'\"\"'",
    c_big_id: "-9007199254740991",
  },
  {
    c_int8: "-9007199254740991",
    c_numeric: "'-Infinity'",
    c_float4: "'1e-45'",
    c_float8: "'5e-324'",
    c_timestamp: "'2024-01-31 13:45:00.000001'",
    c_timestamptz: "'1999-12-31 23:59:59.999999-08'",
    c_interval: "'P1Y2M3DT4H5M6.5S'",
    c_time: "'23:59:59.999999'",
    c_big_id: "-9007199254740992",
  },
  {
    // Text that COPY escapes, or that looks like its escapes.
    c_text: String.raw`'\N'`,
    c_varchar: "(SELECT string_agg(chr(c), '') FROM generate_series(1, 31) c) || chr(127)",
    c_name: String.raw`E'\\x41\\101\\\\ \\t\\'`,
    c_bpchar: String.raw`E'\t\r\n\b\f\v'`,
    c_json: String.raw`E'{"a":\n\t"b\\tc\\"\\\\",\r\n"\\u0000x": "\\\\N"}'`,
    c_jsonb: String.raw`E'{"k\\n": "\\t\\\\ ☃"}'`,
    c_bytea: String.raw`'\x5c4e09'`,
    c_mood: String.raw`'quote"back\slash'`,
    c_text_arr: String.raw`ARRAY[E'\\N', E'tab\there', E'\\', '"']`,
    c_xml: String.raw`E'<x a="\\t">\t\n</x>'`,
    c_int8: "12",
  },
  {
    c_int8: "-9007199254740992",
    c_numeric: "'0.0'",
    c_float4: "'0.1'",
    c_float8: "'-1.2345678901234567e-300'",
    c_timestamptz: "'2024-01-31 13:45:00.1+05:30'",
    c_big_id: "1",
  },
];

function connectionConfig() {
  const { host, port, user, database } = serviceEnv().pg;
  const password = Deno.env.get("REPLICANT_PG_PASSWORD");
  return { host, port, user, database, ...(password ? { password } : {}), types: TEXT_TYPES };
}

/** The decoded fragment's value as the text parameter of a round-trip check. */
function asParameter(raw: string | null, fragment: string, sendFragment: boolean): string | null {
  if (raw === null) return null;
  if (sendFragment) return fragment;
  const v: unknown = JSON.parse(fragment);
  if (v === null) return null;
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw new Error(`round trip of a non-scalar: ${fragment}`);
}

Deno.test({
  name: "PostgreSQL text of every type decodes to the JSON the server agrees with",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const client = new pg.Client(connectionConfig());
    await client.connect();
    try {
      for (const sql of SESSION) await client.query(sql);
      await client.query(`CREATE SCHEMA ${S}`);
      await client.query(
        `CREATE TYPE ${S}.mood AS ENUM ('happy', 'sad face', 'NULL', 'quote"back\\slash', 'ünï ☃')`,
      );
      await client.query(`CREATE DOMAIN ${S}.big_id AS int8 CHECK (VALUE IS DISTINCT FROM 0)`);
      await client.query(
        `CREATE TABLE ${S}.t (id int4 PRIMARY KEY, ` +
          COLUMNS.map((c) => `${c.name} ${c.type}`).join(", ") + ")",
      );
      for (const [i, row] of ROWS.entries()) {
        const names = Object.keys(row);
        for (const n of names) assert.ok(COLUMNS.some((c) => c.name === n), `unknown column ${n}`);
        await client.query(
          `INSERT INTO ${S}.t (id${names.map((n) => ", " + n).join("")}) ` +
            `VALUES (${i + 1}${names.map((n) => ", " + row[n]).join("")})`,
        );
      }

      // User types, and the column types as pgoutput's Relation message gives them.
      const catalog = new PgTypeCatalog();
      const types = await client.query(PG_TYPE_CATALOG_SQL);
      catalog.loadRows(types.rows as PgTypeRow[]);
      const attrs = await client.query({
        text: "SELECT attname, atttypid::int8 FROM pg_attribute " +
          "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        values: [`${S}.t`],
        rowMode: "array",
      });
      const typeOf = new Map<string, number>(
        (attrs.rows as string[][]).map(([name, oid]) => [name, Number(oid)]),
      );
      const mood = typeOf.get("c_mood")!;
      assert.equal(catalog.get(mood)?.category, "E");
      assert.equal(catalog.get(typeOf.get("c_big_id")!)?.baseOid, 20);
      assert.equal(catalog.get(typeOf.get("c_mood_arr")!)?.elementOid, mood);

      const names = COLUMNS.map((c) => c.name);
      const data = await client.query({
        text: `SELECT ${names.join(", ")} FROM ${S}.t ORDER BY id`,
        rowMode: "array",
      });
      const expected = await client.query({
        text: "SELECT " +
          COLUMNS.map((c) => `(${(c.expect ?? "to_json({c})").replaceAll("{c}", c.name)})::text`)
            .join(", ") +
          ` FROM ${S}.t ORDER BY id`,
        rowMode: "array",
      });
      assert.equal(data.rows.length, ROWS.length);

      const decoders = COLUMNS.map((c) => pgTextDecoder(typeOf.get(c.name)!, catalog));
      // The result's own type OIDs (RowDescription) must lead to the same decoding.
      const byResultOid = data.fields.map((f: { dataTypeID: number }) =>
        pgTextDecoder(f.dataTypeID, catalog)
      );

      // The snapshot's byte path: the same rows through COPY, in batches of 3 rows, rows
      // read from the socket by PgCopyRows (as the snapshot does) and parsed by pg.
      const writers = COLUMNS.map((c) => pgTextByteWriter(typeOf.get(c.name)!, catalog));
      const copyRows = async (takeOver: boolean) => {
        const copy = new PgCopyRows(
          `COPY (SELECT ${names.join(", ")} FROM ${S}.t ORDER BY id) TO STDOUT`,
          writers,
          [],
          3,
          [],
          takeOver,
        );
        client.query(copy);
        const rows: Uint8Array[][] = [];
        for (let batch; (batch = await copy.next()) !== null;) {
          assert.ok(batch.rows <= 3);
          for (let r = 0, k = 0; r < batch.rows; r++) {
            const row: Uint8Array[] = [];
            for (let i = 0; i < COLUMNS.length; i++, k++) {
              row.push(batch.bytes.slice(batch.start(k), batch.end(k)));
            }
            rows.push(row);
          }
          copy.release(batch);
        }
        await copy.finished;
        return rows;
      };
      const copied = await copyRows(true);
      assert.equal(copied.length, ROWS.length);
      assert.deepEqual(await copyRows(false), copied);
      const utf8 = new TextEncoder();

      const failures: string[] = [];
      let checked = 0;
      for (const [r, row] of (data.rows as (string | null)[][]).entries()) {
        const want = expected.rows[r] as (string | null)[];
        const params: (string | null)[] = [String(r + 1)];
        const checks: string[] = [];
        for (const [i, col] of COLUMNS.entries()) {
          const raw = row[i];
          const where = `row ${r + 1} ${col.name} (${col.type}) text ${JSON.stringify(raw)}`;
          const fragment = decoders[i](raw);
          checked++;
          if (String(utf8.encode(fragment)) !== String(copied[r][i])) {
            failures.push(
              `${where}: COPY bytes give ${
                JSON.stringify(new TextDecoder().decode(copied[r][i]))
              }, the string decoder ${JSON.stringify(fragment)}`,
            );
          }
          if (fragment !== byResultOid[i](raw)) {
            failures.push(
              `${where}: decodes differently by result OID ${data.fields[i].dataTypeID}`,
            );
          }
          let got: unknown;
          try {
            got = JSON.parse(fragment);
          } catch {
            failures.push(`${where}: invalid JSON ${fragment}`);
            continue;
          }
          const wantValue = want[i] === null ? null : JSON.parse(want[i]!);
          try {
            assert.deepEqual(got, wantValue);
          } catch {
            failures.push(`${where}: got ${fragment}, server says ${want[i]}`);
          }
          if (raw !== null && !col.sendFragment && fragment === "null") {
            failures.push(`${where}: non-NULL became null`);
          }
          if (col.sendFragment && raw !== null && fragment !== raw) {
            failures.push(`${where}: JSON not verbatim: ${fragment}`);
          }
          if (col.roundTrip === null) continue;
          params.push(asParameter(raw, fragment, col.sendFragment ?? false));
          const sql = col.roundTrip ?? `$::${col.type} IS NOT DISTINCT FROM {c}`;
          checks.push(sql.replaceAll("$", `$${params.length}`).replaceAll("{c}", col.name));
        }
        const roundTrip = await client.query({
          text: `SELECT ${checks.join(", ")} FROM ${S}.t WHERE id = $1::int4`,
          values: params,
          rowMode: "array",
        });
        const scalar = COLUMNS.filter((c) => c.roundTrip !== null);
        for (const [k, ok] of (roundTrip.rows[0] as string[]).entries()) {
          if (ok !== "t") {
            failures.push(
              `row ${r + 1} ${scalar[k].name}: decoded ${JSON.stringify(params[k + 1])} ` +
                `does not read back as the stored value`,
            );
          }
        }
      }
      assert.deepEqual(failures, []);
      assert.equal(checked, ROWS.length * COLUMNS.length);
    } finally {
      try {
        await client.query(`DROP SCHEMA IF EXISTS ${S} CASCADE`);
      } finally {
        await client.end();
      }
    }
  },
});
