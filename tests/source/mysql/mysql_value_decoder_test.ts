import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  bitsFragment,
  decodeTime2,
  doubleFragment,
  floatFragment,
  intFragment,
  mysqlBinlogDecoder,
  mysqlBinlogStringWriter,
  mysqlColumnType,
  mysqlConnectType,
  mysqlSnapshotDecoder,
  snapshotSelectExpr,
} from "../../../src/source/mysql/mysql_value_decoder.ts";
import { patchZongjiColumns } from "../../../src/source/mysql/zongji_adapter.ts";
import { JsonRowBatch } from "../../../src/core/json_row_batch.ts";

const snap = (
  dataType: string,
  columnType: string,
  text: string | Uint8Array | null,
  json = false,
) =>
  mysqlSnapshotDecoder(mysqlColumnType(dataType, columnType, json))(
    typeof text === "string" ? Buffer.from(text, "utf8") : text,
  );
const bin = (dataType: string, columnType: string, v: unknown, json = false) =>
  mysqlBinlogDecoder(mysqlColumnType(dataType, columnType, json))(v);

Deno.test("mysql decoder: integers exact, strings beyond 2^53, zerofill dropped", () => {
  assert.equal(intFragment("0"), "0");
  assert.equal(intFragment("-128"), "-128");
  assert.equal(intFragment("9007199254740991"), "9007199254740991");
  assert.equal(intFragment("-9007199254740991"), "-9007199254740991");
  assert.equal(intFragment("9007199254740992"), '"9007199254740992"');
  assert.equal(intFragment("-9007199254740992"), '"-9007199254740992"');
  assert.equal(intFragment("18446744073709551615"), '"18446744073709551615"');
  assert.equal(intFragment("00000042"), "42");
  assert.equal(intFragment("00000000"), "0");
  assert.equal(snap("bigint", "bigint(20)", "-9223372036854775808"), '"-9223372036854775808"');
  assert.equal(snap("int", "int(11)", null), "null");
  assert.equal(
    bin("bigint", "bigint(20) unsigned", "18446744073709551615"),
    '"18446744073709551615"',
  );
  assert.equal(bin("bigint", "bigint(20)", -5), "-5");
  assert.equal(bin("tinyint", "tinyint(4)", null), "null");
  assert.equal(bin("int", "int(11)", undefined), "null");
});

Deno.test("mysql decoder: DECIMAL, FLOAT, DOUBLE", () => {
  assert.equal(snap("decimal", "decimal(10,2)", "-1.50"), '"-1.50"');
  assert.equal(bin("decimal", "decimal(10,2)", "0.05"), '"0.05"');
  assert.equal(floatFragment(Math.fround(1.1)), "1.1");
  assert.equal(floatFragment(Math.fround(3.14159265)), "3.1415927");
  assert.equal(floatFragment(16777216), "16777216");
  assert.equal(floatFragment(Math.fround(1e-45)), "1e-45");
  assert.equal(floatFragment(NaN), '"NaN"');
  assert.equal(doubleFragment(0.1 + 0.2), "0.30000000000000004");
  assert.equal(doubleFragment(-0), "-0");
  assert.equal(doubleFragment(Infinity), '"Infinity"');
  assert.equal(doubleFragment(-Infinity), '"-Infinity"');
  assert.equal(snap("float", "float", "3.1415927410125732"), "3.1415927");
  assert.equal(bin("float", "float", 3.1415927410125732), "3.1415927");
  assert.equal(snap("double", "double", "1.7976931348623157e308"), "1.7976931348623157e+308");
  assert.equal(bin("double", "double", 5e-324), "5e-324");
  assert.equal(snapshotSelectExpr(mysqlColumnType("float", "float"), "`f`"), "(`f` + 0e0)");
  assert.equal(snapshotSelectExpr(mysqlColumnType("double", "double"), "`d`"), "`d`");
});

Deno.test("mysql decoder: BIT as unsigned integer, YEAR", () => {
  assert.equal(bitsFragment(new Uint8Array([])), "0");
  assert.equal(bitsFragment(new Uint8Array([1])), "1");
  assert.equal(bitsFragment(new Uint8Array([2, 0xaa])), "682");
  assert.equal(
    bitsFragment(new Uint8Array([0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])),
    "9007199254740991",
  );
  assert.equal(bitsFragment(new Uint8Array([0x20, 0, 0, 0, 0, 0, 0])), '"9007199254740992"');
  assert.equal(bitsFragment(new Uint8Array(8).fill(255)), '"18446744073709551615"');
  assert.equal(bin("bit", "bit(10)", Buffer.from([2, 0xaa])), "682");
  assert.equal(snap("bit", "bit(1)", new Uint8Array([1])), "1");
  assert.equal(snap("year", "year(4)", "0000"), "0");
  assert.equal(snap("year", "year(4)", "2024"), "2024");
  assert.equal(bin("year", "year(4)", 1900), "0", "zongji's 1900 is the stored zero year");
  assert.equal(bin("year", "year(4)", 2155), "2155");
});

Deno.test("mysql decoder: TIME2 bytes, including negative and fractional values", () => {
  // Encoder per MySQL's my_time_packed_to_binary, to build test bytes.
  const encode = (neg: boolean, h: number, m: number, s: number, frac: number, fsp: number) => {
    const fb = (fsp + 1) >> 1;
    const unit = 2 ** (8 * fb);
    const fracStored = fb === 0 ? 0 : fb === 1 ? frac / 1e4 : fb === 2 ? frac / 100 : frac;
    let packed = ((h << 12) | (m << 6) | s) * unit + fracStored;
    if (neg) packed = -packed;
    let n = packed + 0x800000 * unit;
    const out = new Uint8Array(3 + fb);
    for (let i = out.length - 1; i >= 0; i--) {
      out[i] = n % 256;
      n = Math.floor(n / 256);
    }
    return out;
  };
  assert.equal(decodeTime2(encode(false, 0, 0, 0, 0, 0), 0), "00:00:00");
  assert.equal(decodeTime2(encode(true, 0, 1, 0, 0, 0), 0), "-00:01:00");
  assert.equal(decodeTime2(encode(true, 838, 59, 59, 0, 0), 0), "-838:59:59");
  assert.equal(decodeTime2(encode(false, 838, 59, 59, 0, 6), 6), "838:59:59.000000");
  assert.equal(decodeTime2(encode(true, 0, 0, 1, 1, 6), 6), "-00:00:01.000001");
  assert.equal(decodeTime2(encode(true, 0, 1, 0, 500000, 3), 3), "-00:01:00.500");
  assert.equal(decodeTime2(encode(true, 0, 0, 0, 100000, 1), 1), "-00:00:00.1");
  assert.equal(decodeTime2(encode(false, 23, 59, 59, 990000, 2), 2), "23:59:59.99");
  assert.equal(decodeTime2(encode(false, 12, 34, 56, 789000, 5), 5), "12:34:56.78900");
  assert.equal(bin("time", "time(3)", encode(true, 0, 1, 0, 500000, 3)), '"-00:01:00.500"');
  assert.equal(bin("time", "time", "10:00:00"), '"10:00:00"', "strings pass through");
  assert.equal(snap("time", "time(6)", "-838:59:59.000000"), '"-838:59:59.000000"');
});

Deno.test("mysql decoder: dates, datetimes, timestamps, zero dates", () => {
  assert.equal(snap("date", "date", "0000-00-00"), '"0000-00-00"');
  assert.equal(bin("date", "date", "2024-01-31"), '"2024-01-31"');
  assert.equal(
    snap("datetime", "datetime(6)", "2024-01-31 13:45:00.123456"),
    '"2024-01-31T13:45:00.123456"',
  );
  assert.equal(bin("datetime", "datetime", "0000-00-00 00:00:00"), '"0000-00-00T00:00:00"');
  assert.equal(
    snap("timestamp", "timestamp(3)", "2024-01-31 13:45:00.123"),
    '"2024-01-31T13:45:00.123Z"',
  );
  assert.equal(bin("timestamp", "timestamp", "0000-00-00 00:00:00"), '"0000-00-00T00:00:00Z"');
  assert.equal(mysqlColumnType("datetime", "datetime(6)").fsp, 6);
  assert.equal(mysqlColumnType("time", "time").fsp, 0);
});

Deno.test("mysql decoder: strings, binary, ENUM, SET, JSON, GEOMETRY", () => {
  assert.equal(snap("varchar", "varchar(10)", 'a"\\\n😀'), JSON.stringify('a"\\\n😀'));
  assert.equal(bin("varchar", "varchar(10)", "café €"), '"café €"');
  assert.equal(snap("blob", "blob", new Uint8Array([0, 255, 16])), '"AP8Q"');
  assert.equal(bin("varbinary", "varbinary(4)", Buffer.from([])), '""');
  assert.equal(bin("binary", "binary(2)", Buffer.from([0x61, 0])), '"YQA="');
  assert.equal(bin("enum", "enum('a','b')", "b"), '"b"');
  assert.equal(bin("enum", "enum('a','b')", undefined), '""', "invalid ENUM index 0");
  assert.equal(bin("enum", "enum('a','b')", null), "null");
  assert.equal(bin("set", "set('x','y')", "x,y"), '"x,y"');
  assert.equal(snap("set", "set('x','y')", ""), '""');
  // JSON: a string holding the JSON text (Debezium's io.debezium.data.Json).
  assert.equal(
    snap("longtext", "longtext", '{"a": 12345678901234567890}', true),
    JSON.stringify('{"a": 12345678901234567890}'),
  );
  assert.equal(bin("longtext", "longtext", '{"a": [1]}', true), JSON.stringify('{"a": [1]}'));
  assert.equal(bin("json", "json", { a: [1] }), JSON.stringify('{"a":[1]}'));
  assert.equal(bin("geometry", "point", Buffer.from([1, 2])), '"AQI="');
  assert.equal(mysqlColumnType("longtext", "longtext", true).kind, "json");
  assert.equal(mysqlColumnType("json", "json").kind, "json");
  assert.equal(mysqlColumnType("inet6", "inet6").kind, "text");
});

Deno.test("mysql decoder: connect types", () => {
  const ct = (d: string, c: string) => mysqlConnectType(mysqlColumnType(d, c));
  assert.equal(ct("tinyint", "tinyint(1)"), "int16");
  assert.equal(ct("smallint", "smallint(5) unsigned"), "int32");
  assert.equal(ct("int", "int(11)"), "int32");
  assert.equal(ct("int", "int(10) unsigned"), "int64");
  assert.equal(ct("bigint", "bigint(20) unsigned"), "int64");
  assert.equal(ct("float", "float"), "float");
  assert.equal(ct("double", "double"), "double");
  assert.equal(ct("blob", "blob"), "bytes");
  assert.equal(ct("decimal", "decimal(5,2)"), "string");
  assert.equal(ct("bit", "bit(3)"), "int64");
});

Deno.test("mysql decoder: zongji column patch turns TIME2 into raw BIT bytes, GEOMETRY into BLOB", () => {
  const entry = {
    columnSchemas: [],
    parentSchema: "d",
    tableName: "t",
    columns: [
      { name: "t", charset: null, type: 19, metadata: { decimals: 3 } },
      { name: "g", charset: "binary", type: 255, metadata: { length_size: 4 } },
      { name: "i", charset: null, type: 3, metadata: {} },
    ],
  };
  patchZongjiColumns(entry);
  patchZongjiColumns(entry); // idempotent
  assert.deepEqual(entry.columns.map((c) => c.type), [16, 252, 3]);
  assert.equal((entry.columns[0].metadata as Record<string, unknown>).bits, 40);
  assert.equal(entry.columns[1].charset, null);
});

Deno.test("mysql decoder: string writers write what the binlog decoders give", () => {
  const cases: [string, string, string[]][] = [
    ["varchar", "varchar(64)", ["", "plain", 'q"\\b', "tab\tnl\n\u0001", "ünï 😀", "\ud800"]],
    ["text", "text", ["x".repeat(3000)]],
    ["enum", "enum('a','b')", ["a", ""]],
    ["set", "set('a','b')", ["a,b", ""]],
    ["decimal", "decimal(12,2)", ["0.00", "-123.45", "9999999999.99"]],
    ["date", "date", ["2024-01-31", "0000-00-00"]],
    ["datetime", "datetime(6)", [
      "2024-01-31 13:45:00.123456",
      "0000-00-00 00:00:00",
      "2024-01-31",
    ]],
    ["timestamp", "timestamp", ["2024-01-31 13:45:00", "1970-01-01 00:00:01"]],
    ["json", "json", ['{"a": [1, 2.50]}', "null", '"s\\u00e9"']],
  ];
  let written = 0;
  for (const [dataType, columnType, values] of cases) {
    const t = mysqlColumnType(dataType, columnType, false);
    const write = mysqlBinlogStringWriter(t);
    assert.ok(write, `${columnType} has a string writer`);
    const batch = new JsonRowBatch(1, 4, 2);
    for (const v of values) {
      write(v, batch);
      batch.endRow();
    }
    assert.deepEqual(
      batch.toRows().map((r) => r[0]),
      values.map((v) => mysqlBinlogDecoder(t)(v)),
      columnType,
    );
    written += values.length;
  }
  assert.equal(written, 24);
  for (const [dataType, columnType] of [["int", "int"], ["double", "double"]]) {
    assert.equal(mysqlBinlogStringWriter(mysqlColumnType(dataType, columnType)), null);
  }
});
