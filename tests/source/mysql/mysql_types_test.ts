/**
 * Every MySQL type round-trips exactly, through the snapshot reader and through the binlog
 * source, checked against the server's own rendering of each value. The snapshot reader
 * writes JSON bytes from the packets (mysql_text_bytes.ts); each of its values is also
 * checked against the string path (mysql2's value bytes through mysqlSnapshotDecoder).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { MysqlBinlogSource } from "../../../src/source/mysql/mysql_binlog_source.ts";
import { MysqlSnapshotSource } from "../../../src/source/mysql/mysql_snapshot_source.ts";
import type { MysqlTable } from "../../../src/source/mysql/mysql_schema_reader.ts";
import type { JsonRowBatch } from "../../../src/core/json_row_batch.ts";
import {
  admin,
  collect,
  endpoint,
  selectTables,
  stringPathRows,
  uniqueName,
} from "./mysql_test_helpers.ts";

/** Column → [definition, server expression rendering the value as text, check]. */
type Check = (fragment: string, server: string | null) => void;

const same = (parse: (v: unknown) => string): Check => (frag, server) => {
  const v = JSON.parse(frag);
  if (server === null) return assert.equal(v, null);
  assert.equal(parse(v), server);
};
const asText = same((v) => String(v));
const intCheck: Check = (frag, server) => {
  const v = JSON.parse(frag);
  if (server === null) return assert.equal(v, null);
  // Exact: a number only within ±(2^53-1), else the digits as a string.
  if (Math.abs(Number(server)) <= Number.MAX_SAFE_INTEGER) assert.equal(typeof v, "number");
  else assert.equal(typeof v, "string");
  assert.equal(String(v), server);
};
const hexCheck: Check = (frag, server) => {
  const v = JSON.parse(frag);
  if (server === null) return assert.equal(v, null);
  assert.equal(Buffer.from(v, "base64").toString("hex").toUpperCase(), server);
};
const utf8HexCheck: Check = (frag, server) => {
  const v = JSON.parse(frag);
  if (server === null) return assert.equal(v, null);
  assert.equal(Buffer.from(v, "utf8").toString("hex").toUpperCase(), server);
};
const floatCheck: Check = (frag, server) => {
  const v = JSON.parse(frag);
  if (server === null) return assert.equal(v, null);
  assert.equal(Math.fround(v), Math.fround(Number(server)));
  assert.equal(Math.fround(v), Number(server)); // the server's double is the float, exactly
};
const doubleCheck: Check = (frag, server) => {
  const v = JSON.parse(frag);
  if (server === null) return assert.equal(v, null);
  assert.equal(v, Number(server));
};
const jsonCheck: Check = (frag, server) => {
  if (server === null) return assert.equal(frag, "null");
  // A string holding the JSON text as written (MariaDB keeps it verbatim).
  assert.equal(JSON.parse(frag), server);
  JSON.parse(JSON.parse(frag));
};

const COLUMNS: [string, string, string, Check][] = [
  ["ti", "TINYINT", "CAST(ti AS CHAR)", intCheck],
  ["tiu", "TINYINT UNSIGNED", "CAST(tiu AS CHAR)", intCheck],
  ["si", "SMALLINT", "CAST(si AS CHAR)", intCheck],
  ["siu", "SMALLINT UNSIGNED", "CAST(siu AS CHAR)", intCheck],
  ["mi", "MEDIUMINT", "CAST(mi AS CHAR)", intCheck],
  ["miu", "MEDIUMINT UNSIGNED", "CAST(miu AS CHAR)", intCheck],
  ["i", "INT", "CAST(i AS CHAR)", intCheck],
  ["iu", "INT UNSIGNED", "CAST(iu AS CHAR)", intCheck],
  ["bi", "BIGINT", "CAST(bi AS CHAR)", intCheck],
  ["biu", "BIGINT UNSIGNED", "CAST(biu AS CHAR)", intCheck],
  ["zf", "INT(8) UNSIGNED ZEROFILL", "CAST(zf + 0 AS CHAR)", intCheck],
  ["dec1", "DECIMAL(10,2)", "CAST(dec1 AS CHAR)", asText],
  ["dec2", "DECIMAL(65,30)", "CAST(dec2 AS CHAR)", asText],
  ["dec3", "DECIMAL(5,0)", "CAST(dec3 AS CHAR)", asText],
  ["f", "FLOAT", "CAST(f AS DOUBLE)", floatCheck],
  ["d", "DOUBLE", "CAST(d AS CHAR)", doubleCheck],
  ["b1", "BIT(1)", "CAST(b1 + 0 AS CHAR)", intCheck],
  ["b10", "BIT(10)", "CAST(b10 + 0 AS CHAR)", intCheck],
  ["b64", "BIT(64)", "CAST(b64 + 0 AS CHAR)", intCheck],
  ["y", "YEAR", "CAST(y + 0 AS CHAR)", same((v) => String(v))],
  ["dt0", "DATE", "CAST(dt0 AS CHAR)", asText],
  ["tm", "TIME", "CAST(tm AS CHAR)", asText],
  ["tm3", "TIME(3)", "CAST(tm3 AS CHAR)", asText],
  ["tm6", "TIME(6)", "CAST(tm6 AS CHAR)", asText],
  ["tm1", "TIME(1)", "CAST(tm1 AS CHAR)", asText],
  ["dtm", "DATETIME", "CAST(dtm AS CHAR)", same((v) => String(v).replace("T", " "))],
  ["dtm3", "DATETIME(3)", "CAST(dtm3 AS CHAR)", same((v) => String(v).replace("T", " "))],
  ["dtm6", "DATETIME(6)", "CAST(dtm6 AS CHAR)", same((v) => String(v).replace("T", " "))],
  [
    "ts",
    "TIMESTAMP NULL",
    "CAST(ts AS CHAR)",
    same((v) => String(v).replace("T", " ").replace(/Z$/, "")),
  ],
  [
    "ts6",
    "TIMESTAMP(6) NULL",
    "CAST(ts6 AS CHAR)",
    same((v) => String(v).replace("T", " ").replace(/Z$/, "")),
  ],
  ["c", "CHAR(10)", "HEX(c)", utf8HexCheck],
  ["vc", "VARCHAR(100)", "HEX(vc)", utf8HexCheck],
  ["vl", "VARCHAR(100) CHARACTER SET latin1", "HEX(CONVERT(vl USING utf8mb4))", utf8HexCheck],
  ["tx", "TEXT", "HEX(tx)", utf8HexCheck],
  ["lt", "LONGTEXT CHARACTER SET latin1", "HEX(CONVERT(lt USING utf8mb4))", utf8HexCheck],
  ["bn", "BINARY(4)", "HEX(bn)", hexCheck],
  ["vb", "VARBINARY(20)", "HEX(vb)", hexCheck],
  ["bl", "BLOB", "HEX(bl)", hexCheck],
  ["e", "ENUM('a','b c','ü')", "CAST(e AS CHAR)", asText],
  ["st", "SET('x','y','z')", "CAST(st AS CHAR)", asText],
  ["j", "JSON", "CAST(j AS CHAR)", jsonCheck],
  ["g", "GEOMETRY", "HEX(g)", hexCheck],
];

const ROWS: Record<string, string>[] = [
  {}, // all NULL
  {
    ti: "-128",
    tiu: "255",
    si: "-32768",
    siu: "65535",
    mi: "-8388608",
    miu: "16777215",
    i: "-2147483648",
    iu: "4294967295",
    bi: "-9223372036854775808",
    biu: "18446744073709551615",
    zf: "42",
    dec1: "-12345678.90",
    dec2: "-12345678901234567890123456789012345.123456789012345678901234567890",
    dec3: "-99999",
    f: "3.14159265",
    d: "1.7976931348623157e308",
    b1: "b'1'",
    b10: "b'1010101010'",
    b64: "b'1111111111111111111111111111111111111111111111111111111111111111'",
    y: "0",
    dt0: "'0000-00-00'",
    tm: "'-838:59:59'",
    tm3: "'-00:01:00.5'",
    tm6: "'-838:59:59.000000'",
    tm1: "'-00:00:00.1'",
    dtm: "'0000-00-00 00:00:00'",
    dtm3: "'1000-01-01 00:00:00.001'",
    dtm6: "'9999-12-31 23:59:59.999999'",
    ts: "'1970-01-01 00:00:01'",
    ts6: "'2038-01-19 03:14:07.999999'",
    c: "''",
    vc: "'quote \" back\\\\slash \\n tab\\t ctrl\\Z 😀 日本'",
    vl: "'café € ÿ'",
    tx: "'𝄞 music'",
    lt: "'Grüße'",
    bn: "X'00000000'",
    vb: "X''",
    bl: "X'00FF10'",
    e: "''",
    st: "''",
    j: `'{"big": 12345678901234567890123, "f": 1.5e300, "s": "é\\\\u00e9", "a": [1, {"b": null}]}'`,
    g: "ST_GeomFromText('POINT(1 2)')",
  },
  {
    ti: "127",
    tiu: "0",
    si: "32767",
    siu: "0",
    mi: "8388607",
    miu: "0",
    i: "2147483647",
    iu: "0",
    bi: "9223372036854775807",
    biu: "9007199254740992",
    zf: "0",
    dec1: "0.05",
    dec2: "0.000000000000000000000000000001",
    dec3: "0",
    f: "-1.1",
    d: "-0.1",
    b1: "b'0'",
    b10: "b'0'",
    b64: "b'11111111111111111111111111111111111111111111111111111'",
    y: "2155",
    dt0: "'9999-12-31'",
    tm: "'838:59:59'",
    tm3: "'12:34:56.789'",
    tm6: "'-00:00:01.000001'",
    tm1: "'23:59:59.9'",
    dtm: "'2024-01-31 13:45:00'",
    dtm3: "'2024-02-29 23:59:59.999'",
    dtm6: "'2024-01-31 13:45:00.123456'",
    ts: "'2024-01-31 13:45:00'",
    ts6: "'1970-01-01 00:00:01.000001'",
    c: "'abc'",
    vc: "''",
    vl: "''",
    tx: "''",
    lt: "''",
    bn: "X'61'",
    vb: "X'00'",
    bl: "X''",
    e: "'ü'",
    st: "'x,z'",
    j: `'[]'`,
    g: "ST_GeomFromText('LINESTRING(0 0, 1.5 2.25)', 4326)",
  },
  {
    ti: "0",
    bi: "9007199254740991",
    biu: "9007199254740991",
    dec1: "1.50",
    f: "16777217",
    d: "5e-324",
    y: "1901",
    dt0: "'2024-01-31'",
    tm: "'00:00:00'",
    tm3: "'-00:00:00.001'",
    tm6: "'-12:00:00.5'",
    dtm: "'2024-01-31 13:45:00'",
    c: "'pad  '",
    e: "'b c'",
    st: "'x,y,z'",
    j: `'"str"'`,
  },
];

Deno.test("mysql types: every type round-trips exactly through snapshot and binlog", async () => {
  const table = uniqueName("types");
  const db = await admin();
  const source = await MysqlBinlogSource.open(endpoint(), { selection: selectTables(table) });
  try {
    await db.query("SET SESSION sql_mode = ''");
    await db.query(
      `CREATE TABLE ${table} (id INT PRIMARY KEY, ${
        COLUMNS.map(([n, def]) => `${n} ${def}`).join(", ")
      }, CHECK (JSON_VALID(j))) DEFAULT CHARSET = utf8mb4`,
    );
    const from = await source.currentPosition();
    for (const [i, row] of ROWS.entries()) {
      const names = Object.keys(row);
      await db.query(
        `INSERT INTO ${table} (id${names.map((n) => ", " + n).join("")}) VALUES (${i}${
          names.map((n) => ", " + row[n]).join("")
        })`,
      );
    }
    const stream = collect(source, from);
    // The table did not exist when the source opened: its schema is read on first use.
    await stream.waitEvents(ROWS.length);
    await stream.stop();
    const binlogRows = new Map<number, string[]>();
    for (const ev of stream.events()) {
      assert.equal(ev.op, "c");
      binlogRows.set(Number(ev.after![0]), ev.after!);
    }

    const snap = await MysqlSnapshotSource.open(endpoint(), selectTables(table));
    const snapRows = new Map<number, string[]>();
    try {
      const [t] = await snap.tables();
      assert.equal(t.schema.id.table, table);
      const reader = await snap.reader();
      for await (const chunk of reader.read(t.schema, null, 2)) {
        for (const r of chunk.toRows()) snapRows.set(Number(r[0]), r);
      }
      const cols = (t.schema as MysqlTable).columns.map((c) => c.name);
      assert.deepEqual(cols, ["id", ...COLUMNS.map(([n]) => n)]);
      assert.equal(t.schema.columns.find((c) => c.name === "j")!.sourceType, "json");
      // Byte path = string path, value by value.
      const strings = await stringPathRows(t.schema as MysqlTable);
      assert.equal(strings.length, ROWS.length);
      for (const row of strings) {
        const bytes = snapRows.get(Number(row[0]))!;
        ["id", ...COLUMNS.map(([n]) => n)].forEach((name, ci) =>
          assert.equal(bytes[ci], row[ci], `row ${row[0]} column ${name}: byte vs string path`)
        );
      }
    } finally {
      await snap.close();
    }

    const [server] = await db.query({
      sql: `SELECT id, ${COLUMNS.map(([, , expr]) => expr).join(", ")} FROM ${table} ORDER BY id`,
      rowsAsArray: true,
    }) as unknown as [(string | number | null)[][]];
    assert.equal(server.length, ROWS.length);
    for (const srow of server) {
      const id = Number(srow[0]);
      const s = snapRows.get(id)!, b = binlogRows.get(id)!;
      assert.ok(s && b, `row ${id} read by both`);
      COLUMNS.forEach(([name, , , check], ci) => {
        const sv = srow[ci + 1] === null ? null : String(srow[ci + 1]);
        const where = `row ${id} column ${name}: snapshot ${s[ci + 1]} binlog ${
          b[ci + 1]
        } server ${sv}`;
        assert.equal(s[ci + 1], b[ci + 1], "snapshot and binlog differ: " + where);
        try {
          check(s[ci + 1], sv);
        } catch (err) {
          throw new Error(where + ": " + (err as Error).message);
        }
      });
    }
    // Spot checks of the documented representations.
    const r1 = snapRows.get(1)!;
    const at = (name: string) => r1[1 + COLUMNS.findIndex(([n]) => n === name)];
    assert.equal(at("bi"), '"-9223372036854775808"');
    assert.equal(at("b64"), '"18446744073709551615"');
    assert.equal(at("y"), "0");
    assert.equal(at("dt0"), '"0000-00-00"');
    assert.equal(at("dtm"), '"0000-00-00T00:00:00"');
    assert.equal(at("tm6"), '"-838:59:59.000000"');
    assert.equal(at("tm3"), '"-00:01:00.500"');
    assert.equal(at("ts6"), '"2038-01-19T03:14:07.999999Z"');
    assert.equal(at("f"), "3.1415927");
    assert.equal(at("zf"), "42");
    assert.equal(snapRows.get(2)![1 + COLUMNS.findIndex(([n]) => n === "f")], "-1.1");
    assert.equal(snapRows.get(2)![1 + COLUMNS.findIndex(([n]) => n === "st")], '"x,z"');
  } finally {
    await source.close();
    await db.query(`DROP TABLE IF EXISTS ${table}`);
    await db.end();
  }
});

/** Fragments of every batch, copied as they come (batches are reused). */
async function readRows(it: AsyncIterable<JsonRowBatch>): Promise<string[][]> {
  const rows: string[][] = [];
  for await (const b of it) rows.push(...b.toRows());
  return rows;
}

Deno.test("mysql types: the byte path equals the string path on edge values of every writer", async () => {
  const table = uniqueName("edges");
  const db = await admin();
  try {
    await db.query("SET SESSION sql_mode = ''");
    await db.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, d DOUBLE, f FLOAT,
      s VARCHAR(300), l TEXT CHARACTER SET latin1, big MEDIUMTEXT, bin VARBINARY(300),
      j JSON, i BIGINT, u BIGINT UNSIGNED, zf INT(6) ZEROFILL, y YEAR, ts TIMESTAMP(3) NULL,
      dt DATETIME(2), dc DECIMAL(20,6), tm TIME(1), b BIT(33), e ENUM('x','é'),
      CHECK (JSON_VALID(j))) DEFAULT CHARSET = utf8mb4`);
    // Doubles the server prints in every form: plain, long fractions, exponents.
    const doubles = [
      0,
      -0,
      1,
      -1,
      100,
      1e15,
      1e16,
      1e21,
      1e-7,
      1.5e-7,
      0.000001,
      0.00001234,
      0.1,
      -0.1,
      0.30000000000000004,
      Math.PI,
      123456789012345,
      1234567890123456,
      12345678901234567,
      2 ** 53,
      -(2 ** 63),
      Number.MAX_VALUE,
      Number.MIN_VALUE,
      2.5e-308,
      1 / 3,
      123.456,
    ];
    const strings = [
      "",
      "plain",
      'quote " back\\ slash',
      "\n\r\t\b\f\u0000\u0001\u001f\u007f",
      "é 日本 😀 \u2028 \u2029 𝄞",
      "\ufeffBOM first",
      "x".repeat(250),
      "é".repeat(120),
    ];
    const latin = ["", "café € ÿ", "\u0080\u009f ¡ ¿ Þ ß", "tab\there"];
    const rows: unknown[][] = [];
    for (let id = 0; id < 60; id++) {
      const pick = <T>(xs: T[]) => xs[id % xs.length];
      rows.push([
        id,
        id === 59 ? null : pick(doubles) * (id >= doubles.length ? -1 : 1),
        pick(doubles) > 3.4e38 || (Math.abs(pick(doubles)) < 1e-38 && pick(doubles) !== 0)
          ? 1.5
          : pick(doubles),
        pick(strings),
        pick(latin),
        // 251+ bytes and 64 KiB+ bytes take the 3- and 4-byte length prefixes.
        id % 5 === 0 ? "a".repeat(70_000) + "é" : id % 5 === 1 ? "b".repeat(300) : null,
        Buffer.from(Array.from({ length: id * 5 }, (_, k) => (k * 37 + id) & 255)),
        JSON.stringify({ id, s: pick(strings), n: 12345678901234567890n.toString() }),
        String(BigInt(id) ** 13n * (id % 2 ? -1n : 1n) % 9223372036854775807n),
        String(BigInt(id) ** 14n % 18446744073709551615n),
        id * 37,
        id === 0 ? 0 : 1901 + id,
        id === 0
          ? null
          : `2024-01-${String(1 + (id % 28)).padStart(2, "0")} 10:00:0${id % 10}.${id}`,
        id === 0 ? "0000-00-00 00:00:00" : `1999-12-31 23:59:${String(id).padStart(2, "0")}.5`,
        `${id % 2 ? "-" : ""}${id * 1000003}.${String(id).padStart(6, "0")}`,
        `${id % 2 ? "-" : ""}${id * 13}:0${id % 6}:00.${id % 10}`,
        id * 123456789,
        id % 3 === 0 ? "x" : id % 3 === 1 ? "é" : "",
      ]);
    }
    await db.query(`INSERT INTO ${table} VALUES ?`, [rows]);
    const snap = await MysqlSnapshotSource.open(endpoint(), selectTables(table));
    try {
      const [t] = await snap.tables();
      const expected = await stringPathRows(t.schema as MysqlTable);
      assert.equal(expected.length, rows.length);
      const reader = await snap.reader();
      for (const chunk of [7, 60, 1000]) {
        const got = await readRows(reader.read(t.schema, null, chunk));
        assert.equal(got.length, expected.length);
        const names = (t.schema as MysqlTable).columns.map((c) => c.name);
        got.forEach((row, r) =>
          row.forEach((v, c) =>
            assert.equal(v, expected[r][c], `chunks of ${chunk}, row ${r}, column ${names[c]}`)
          )
        );
      }
      // The plain doubles were copied as is, the others came through the decoder: both kinds
      // are in the table.
      const d = expected.map((r) => r[1]);
      assert.ok(d.includes("0.1") && d.includes("1e+21") && d.includes("0.30000000000000004"));
      await reader.close();
    } finally {
      await snap.close();
    }
  } finally {
    await db.query(`DROP TABLE IF EXISTS ${table}`);
    await db.end();
  }
});
