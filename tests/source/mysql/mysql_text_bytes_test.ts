/**
 * The snapshot's byte writers give, byte for byte, the UTF-8 of what the string decoder
 * gives for the same text-protocol bytes: edge cases and random inputs of every writer.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { JsonRowBatch } from "../../../src/core/json_row_batch.ts";
import { textWriterOf, writeTextValue } from "../../../src/source/mysql/mysql_text_bytes.ts";
import {
  mysqlColumnType,
  mysqlSnapshotDecoder,
} from "../../../src/source/mysql/mysql_value_decoder.ts";

const utf8 = new TextEncoder();

/** A deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Writes every input through the byte path into one batch (each at an offset inside a larger
 * buffer, as values sit in a packet) and compares each fragment with the string path.
 */
function checkSame(dataType: string, columnType: string, inputs: Uint8Array[], isJson = false) {
  const t = mysqlColumnType(dataType, columnType, isJson);
  const writer = textWriterOf(t), decoder = mysqlSnapshotDecoder(t);
  const batch = new JsonRowBatch(1, 16, 4);
  for (const input of inputs) {
    const packet = new Uint8Array(input.length + 7).fill(0x22);
    packet.set(input, 3);
    writeTextValue(batch, writer, Buffer.from(packet.buffer), 3, 3 + input.length, decoder);
    batch.endRow();
  }
  inputs.forEach((input, k) => {
    const expected = utf8.encode(decoder(Buffer.from(input)));
    const actual = batch.bytes.subarray(batch.start(k), batch.end(k));
    if (Buffer.compare(Buffer.from(actual), Buffer.from(expected)) !== 0) {
      assert.fail(
        `${columnType} of bytes [${Buffer.from(input).toString("hex")}]: byte path ${
          JSON.stringify(Buffer.from(actual).toString("latin1"))
        }, string path ${JSON.stringify(Buffer.from(expected).toString("latin1"))}`,
      );
    }
  });
}

const ascii = (...texts: string[]): Uint8Array[] => texts.map((t) => Buffer.from(t, "latin1"));

function randomText(next: () => number, alphabet: string, maxLength: number): string {
  let s = "";
  const n = Math.floor(next() * (maxLength + 1));
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(next() * alphabet.length)];
  return s;
}

Deno.test("mysql text bytes: integers, ZEROFILL, beyond 2^53, odd input through the decoder", () => {
  const next = random(1);
  const inputs = ascii(
    "0",
    "-0",
    "-00",
    "000",
    "007",
    "-007",
    "42",
    "9007199254740991",
    "9007199254740992",
    "-9007199254740991",
    "-9007199254740992",
    "0009007199254740991",
    "0009007199254740992",
    "18446744073709551615",
    "-9223372036854775808",
    "1000000000000000",
    "9999999999999999",
    "",
    "-",
  );
  inputs.push(new Uint8Array([0x31, 0xe9]), new Uint8Array([0x2d, 0x30, 0xff]));
  for (let i = 0; i < 5000; i++) {
    const sign = next() < 0.3 ? "-" : "";
    const zeros = next() < 0.2 ? "0".repeat(Math.floor(next() * 4)) : "";
    inputs.push(...ascii(sign + zeros + randomText(next, "0123456789", 22)));
  }
  for (const type of ["int(11)", "bigint(20) unsigned", "int(8) unsigned zerofill", "tinyint(1)"]) {
    checkSame(type.replace(/\(.*/, ""), type, inputs);
  }
});

Deno.test("mysql text bytes: YEAR, DECIMAL, DATE, TIME, DATETIME, TIMESTAMP", () => {
  const next = random(2);
  checkSame("year", "year(4)", [
    ...ascii("0000", "2024", "1901", "2155", "0", "0070", "", "12a", "1234567890123456"),
    ...Array.from({ length: 200 }, () => ascii(randomText(next, "0123456789", 6))[0]),
  ]);
  const decimals = ascii(
    "-12345678.90",
    "0.05",
    "1.50",
    "-99999",
    "0",
    "0.000000000000000000000000000001",
  );
  decimals.push(new Uint8Array([0x31, 0xb7, 0x35]));
  checkSame("decimal", "decimal(10,2)", decimals);
  const temporal = ascii(
    "2024-01-31",
    "0000-00-00",
    "2024-00-00",
    "-838:59:59.000000",
    "12:00:00",
    "2024-01-31 13:45:00.123456",
    "0000-00-00 00:00:00",
    "9999-12-31 23:59:59.999999",
    "2024-01-31 13:45:00",
    "2024-01-31T13:45:00",
    "2024-01-31 ",
    "2024-01-31  ",
    "",
    'a"b\\c',
    "\u0001",
  );
  temporal.push(new Uint8Array([0x32, 0x30, 0xe9]));
  for (let i = 0; i < 500; i++) temporal.push(...ascii(randomText(next, "0123456789-: .T", 28)));
  checkSame("date", "date", temporal);
  checkSame("time", "time(6)", temporal);
  checkSame("datetime", "datetime(6)", temporal);
  checkSame("timestamp", "timestamp(6)", temporal);
});

Deno.test("mysql text bytes: DOUBLE text copied only when JavaScript prints it the same", () => {
  const next = random(3);
  const texts = [
    "0",
    "-0",
    "1",
    "-1",
    "100",
    "1e15",
    "1e21",
    "1e-7",
    "1.5e-7",
    "0.000001",
    "0.0000001",
    "0.00001234",
    "-0.1",
    "0.1",
    "1.0",
    "1.10",
    "01",
    "00.5",
    ".5",
    "5.",
    "-",
    "",
    "+1",
    "1.7976931348623157e308",
    "5e-324",
    "123456789012345",
    "1234567890123456",
    "12345678901234567",
    "123456789012345000000",
    "1234567890123450000000",
    "100000000000000000000",
    "999999999999999900000",
    "0.30000000000000004",
    "3.141592653589793",
    "3.14159265358979",
    "inf",
    "NaN",
    "-1e-5",
    "1e+20",
  ];
  for (let i = 0; i < 3000; i++) {
    const x = (next() - 0.5) * 10 ** Math.floor(next() * 40 - 20);
    const p = 1 + Math.floor(next() * 17);
    texts.push(
      String(x),
      x.toPrecision(p),
      x.toFixed(Math.floor(next() * 12)),
      x.toExponential(Math.floor(next() * 16)),
      String(Math.round(x)),
      String(Math.fround(x)),
      randomText(next, "0123456789.-e", 12),
    );
  }
  checkSame("double", "double", ascii(...texts));
  checkSame("float", "float", ascii(...texts.slice(0, 500)));
});

Deno.test("mysql text bytes: strings escaped like JSON.stringify, invalid UTF-8 through the decoder", () => {
  const next = random(4);
  const inputs: Uint8Array[] = [
    ...ascii("", "abc", 'quote " back\\slash', "\n\r\t\b\f\v\0\u001f\u007f", "x".repeat(200)),
    utf8.encode("é 日本 😀 \u2028 \u2029 \ufeff \uffff 𝄞"),
    utf8.encode("\ufeffBOM first"),
    utf8.encode("y".repeat(100) + "\n" + "é".repeat(50)),
  ];
  for (let b = 0; b < 256; b++) inputs.push(new Uint8Array([b]), new Uint8Array([0x61, b, 0x62]));
  // Boundaries of UTF-8: overlongs, surrogates, beyond U+10FFFF, truncated sequences.
  const edges = [
    [0xc0, 0x80],
    [0xc1, 0xbf],
    [0xc2, 0x80],
    [0xdf, 0xbf],
    [0xe0, 0x9f, 0xbf],
    [0xe0, 0xa0, 0x80],
    [0xed, 0x9f, 0xbf],
    [0xed, 0xa0, 0x80],
    [0xee, 0x80, 0x80],
    [0xef, 0xbf, 0xbf],
    [0xf0, 0x8f, 0xbf, 0xbf],
    [0xf0, 0x90, 0x80, 0x80],
    [0xf4, 0x8f, 0xbf, 0xbf],
    [0xf4, 0x90, 0x80, 0x80],
    [0xf5, 0x80, 0x80, 0x80],
    [0xe2, 0x82],
    [0xf0, 0x9f, 0x98],
    [0xc3],
    [0x80],
    [0xc3, 0x41],
    [0xe2, 0x41, 0x82],
  ];
  for (const e of edges) inputs.push(new Uint8Array(e), new Uint8Array([0x22, ...e, 0x5c]));
  const pieces = [
    ...Array.from({ length: 40 }, (_, i) => [i]),
    [0x22],
    [0x5c],
    [0x7f],
    [0x61],
    [0x7a],
    [0x20],
    ...[..."é日😀\u2028𝄞\ufeff"].map((c) => [...utf8.encode(c)]),
    ...edges,
  ];
  for (let i = 0; i < 20000; i++) {
    const bytes: number[] = [];
    const n = Math.floor(next() * 12);
    for (let j = 0; j < n; j++) bytes.push(...pieces[Math.floor(next() * pieces.length)]);
    if (next() < 0.05) bytes.push(...new Array(60).fill(0x61)); // the long copy
    inputs.push(new Uint8Array(bytes));
  }
  for (
    const [dt, ct] of [["varchar", "varchar(100)"], ["enum", "enum('a')"], ["set", "set('a')"]]
  ) {
    checkSame(dt, ct, inputs);
  }
  checkSame("longtext", "longtext", inputs, true); // JSON: verbatim
});

Deno.test("mysql text bytes: binary and geometry as base64; BIT through the decoder", () => {
  const next = random(5);
  const inputs: Uint8Array[] = [new Uint8Array(0)];
  for (let i = 0; i < 3000; i++) {
    const n = Math.floor(next() * (next() < 0.1 ? 300 : 10));
    inputs.push(Uint8Array.from({ length: n }, () => Math.floor(next() * 256)));
  }
  checkSame("varbinary", "varbinary(20)", inputs);
  checkSame("geometry", "geometry", inputs);
  checkSame("bit", "bit(64)", inputs.filter((b) => b.length > 0 && b.length <= 8));
});
