/**
 * MySQL/MariaDB values → JSON fragments, one specialised function per column (pure).
 *
 * Two inputs, one output: the snapshot side takes the server's own text protocol bytes of
 * each value (nothing parsed or rounded by the driver; the snapshot reader itself writes
 * them as JSON bytes in mysql_text_bytes.ts, which must give exactly what the snapshot
 * decoders here give, and falls back to them), and the binlog source hands what
 * `@vlasky/zongji` decoded from a row event (with `dateStrings: true`, `timezone: "Z"`,
 * `jsonStrings: true`, and TIME and GEOMETRY columns re-typed so zongji returns their raw
 * bytes, see `patchZongjiColumns`). Both produce the same fragment for the same stored
 * value (values are lossless).
 *
 * | MySQL type | JSON |
 * |---|---|
 * | NULL | `null` |
 * | TINYINT … BIGINT, signed or unsigned | number when within ±(2^53-1), else a string of the exact digits (ZEROFILL padding dropped) |
 * | DECIMAL / NUMERIC | string of the exact text, scale kept (`"1.50"`) |
 * | FLOAT | number: the shortest decimal that reads back as the same 32-bit float (`1.1`, not `1.100000023841858`) |
 * | DOUBLE | number (shortest round-trip text); NaN/±Infinity, impossible in MySQL, would be strings |
 * | BIT(n) | the bits as an unsigned integer: a number up to 2^53-1, beyond that a string of its decimal digits (same rule as BIGINT) |
 * | YEAR | number (`2024`; the zero year is `0`) |
 * | DATE | string `"2024-01-31"` |
 * | TIME(n) | string as MySQL prints it, sign and hours beyond 24 kept: `"-838:59:59.000000"`, `"12:00:00"` |
 * | DATETIME(n) | string `"2024-01-31T13:45:00.123456"` (as many fraction digits as the column has) |
 * | TIMESTAMP(n) | string in UTC with `Z`: `"2024-01-31T13:45:00.123456Z"` |
 * | CHAR, VARCHAR, TEXT (any charset) | string (unicode; the server converts to utf8mb4) |
 * | BINARY, VARBINARY, BLOB | string, base64 of the bytes (BINARY(n) keeps its zero padding) |
 * | ENUM | string of the value (`""` for the invalid-value index 0) |
 * | SET | string: the chosen members comma-separated in definition order, as MySQL prints it (`"a,c"`, `""` for none) |
 * | JSON (MySQL JSON, MariaDB JSON = LONGTEXT with a `json_valid` check) | string holding the JSON text as the server gives it (Debezium's `io.debezium.data.Json`): a value of any JSON type fits one declared type |
 * | GEOMETRY and spatial types | string, base64 of MySQL's internal value (4-byte little-endian SRID + WKB) |
 *
 * Zero dates (allowed without NO_ZERO_DATE) stay MySQL's text: DATE `"0000-00-00"`,
 * DATETIME `"0000-00-00T00:00:00"`, TIMESTAMP `"0000-00-00T00:00:00Z"` (a TIMESTAMP column
 * always carries the `Z`, so each column has one format); partial zero dates such as
 * `"2024-00-00"` likewise.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { type ColumnSchema, JSON_TEXT_TYPE } from "../../core/table_schema.ts";
import type { JsonRowBatch } from "../../core/json_row_batch.ts";
import { parseEnumSetLabels } from "./mysql_enum_labels.ts";

/** How a column's values are decoded; derived from information_schema.COLUMNS. */
export type MysqlValueKind =
  | "int"
  | "decimal"
  | "float"
  | "double"
  | "bit"
  | "year"
  | "date"
  | "time"
  | "datetime"
  | "timestamp"
  | "text"
  | "binary"
  | "enum"
  | "set"
  | "json"
  | "geometry";

export interface MysqlColumnType {
  kind: MysqlValueKind;
  /** information_schema DATA_TYPE, lower case (`int`, `datetime`, `longtext`). */
  dataType: string;
  /** information_schema COLUMN_TYPE (`int(10) unsigned`, `datetime(6)`, `enum('a','b')`). */
  columnType: string;
  unsigned: boolean;
  /** Fractional second digits of TIME/DATETIME/TIMESTAMP (0–6). */
  fsp: number;
  /** ENUM/SET: the labels, in definition order (see mysql_enum_labels.ts). */
  labels?: string[];
  /**
   * ENUM/SET whose labels information_schema may have printed with `?` for characters it
   * cannot show, and that could not be read back: why (the server's refusal).
   */
  labelsProblem?: string;
}

/** Snapshot input: the server's text-protocol bytes of a value, null for SQL NULL. */
export type SnapshotValueDecoder = (raw: Uint8Array | null) => string;
/** Binlog input: a value as zongji decoded it (null/undefined for SQL NULL). */
export type BinlogValueDecoder = (value: unknown) => string;

/** Writes a binlog value that zongji gave as a string straight into a batch as JSON. */
export type BinlogStringWriter = (value: string, batch: JsonRowBatch) => void;

const INT_TYPES = new Set(["tinyint", "smallint", "mediumint", "int", "integer", "bigint"]);
const TEXT_TYPES = new Set([
  "char",
  "varchar",
  "tinytext",
  "text",
  "mediumtext",
  "longtext",
  "long",
  "long varchar",
]);
const BINARY_TYPES = new Set([
  "binary",
  "varbinary",
  "tinyblob",
  "blob",
  "mediumblob",
  "longblob",
  "long varbinary",
]);
const GEOMETRY_TYPES = new Set([
  "geometry",
  "point",
  "linestring",
  "polygon",
  "multipoint",
  "multilinestring",
  "multipolygon",
  "geometrycollection",
  "geomcollection",
]);

/**
 * The decoding kind of a column. `isJson` is true for MySQL's JSON type and for MariaDB
 * columns declared JSON (stored as LONGTEXT with a `json_valid(col)` check constraint).
 */
export function mysqlColumnType(
  dataType: string,
  columnType: string,
  isJson = false,
  datetimePrecision: number | null = null,
): MysqlColumnType {
  const dt = dataType.toLowerCase();
  const ct = columnType.toLowerCase();
  const unsigned = /\bunsigned\b/.test(ct);
  const fspMatch = /^(?:time|datetime|timestamp)\((\d)\)/.exec(ct);
  const fsp = datetimePrecision ?? (fspMatch ? Number(fspMatch[1]) : 0);
  let kind: MysqlValueKind;
  if (isJson || dt === "json") kind = "json";
  else if (INT_TYPES.has(dt)) kind = "int";
  else if (dt === "decimal" || dt === "numeric" || dt === "dec" || dt === "fixed") {
    kind = "decimal";
  } else if (dt === "float") kind = "float";
  else if (dt === "double" || dt === "real" || dt === "double precision") kind = "double";
  else if (dt === "bit") kind = "bit";
  else if (dt === "year") kind = "year";
  else if (dt === "date") kind = "date";
  else if (dt === "time") kind = "time";
  else if (dt === "datetime") kind = "datetime";
  else if (dt === "timestamp") kind = "timestamp";
  else if (dt === "enum") kind = "enum";
  else if (dt === "set") kind = "set";
  else if (BINARY_TYPES.has(dt)) kind = "binary";
  else if (GEOMETRY_TYPES.has(dt)) kind = "geometry";
  else if (TEXT_TYPES.has(dt)) kind = "text";
  else kind = "text"; // uuid, inet4, inet6 and anything newer: the server's text
  const out: MysqlColumnType = { kind, dataType: dt, columnType: ct, unsigned, fsp };
  if (kind === "enum" || kind === "set") {
    const labels = parseEnumSetLabels(columnType);
    if (labels) out.labels = labels;
  }
  return out;
}

function intConnectType(t: MysqlColumnType): ColumnSchema["connectType"] {
  switch (t.dataType) {
    case "tinyint":
      return "int16";
    case "smallint":
      return t.unsigned ? "int32" : "int16";
    case "mediumint":
      return "int32";
    case "int":
    case "integer":
      return t.unsigned ? "int64" : "int32";
    default:
      return "int64";
  }
}

/**
 * Kafka-Connect-style type of a column for the entry's `schema` half: the type of every
 * payload value of the column. JSON is a string (of JSON text). BIGINT and BIT(n > 53) values
 * beyond ±(2^53−1) are JSON strings of their digits in an `int64` field (see the table above).
 */
export function mysqlConnectType(t: MysqlColumnType): ColumnSchema["connectType"] {
  switch (t.kind) {
    case "int":
      return intConnectType(t);
    case "year":
      return "int32";
    case "bit":
      return "int64";
    case "float":
      return "float";
    case "double":
      return "double";
    case "binary":
    case "geometry":
      return "bytes";
    case "json":
      return JSON_TEXT_TYPE;
    default:
      return "string";
  }
}

// ---------------------------------------------------------------------------------------
// Shared scalar helpers.

const MAX_SAFE = "9007199254740991";

/**
 * Decimal integer text (optional `-`, digits, maybe leading zeros from ZEROFILL) → a JSON
 * number when |v| ≤ 2^53-1, else a JSON string of the exact digits.
 */
export function intFragment(t: string): string {
  const negative = t.charCodeAt(0) === 45;
  let start = negative ? 1 : 0;
  if (t.charCodeAt(start) === 48 && t.length > start + 1) {
    while (start < t.length - 1 && t.charCodeAt(start) === 48) start++;
    t = (negative ? "-" : "") + t.substring(start);
    start = negative ? 1 : 0;
    if (t === "-0") t = "0";
  }
  const digits = t.length - start;
  if (digits < 16) return t;
  if (digits === 16 && t.substring(start) <= MAX_SAFE) return t;
  return '"' + t + '"';
}

/** Big-endian unsigned bytes (BIT values) → integer fragment. */
export function bitsFragment(bytes: Uint8Array): string {
  if (bytes.length <= 6) {
    let v = 0;
    for (let i = 0; i < bytes.length; i++) v = v * 256 + bytes[i];
    return String(v);
  }
  let v = 0n;
  for (let i = 0; i < bytes.length; i++) v = (v << 8n) | BigInt(bytes[i]);
  return intFragment(v.toString());
}

/** A double → JSON number; the (MySQL-impossible) non-finite values as strings. */
export function doubleFragment(n: number): string {
  if (Number.isFinite(n)) return Object.is(n, -0) ? "-0" : String(n);
  return Number.isNaN(n) ? '"NaN"' : n > 0 ? '"Infinity"' : '"-Infinity"';
}

/** A 32-bit float (as a double) → the shortest decimal that reads back as the same float. */
export function floatFragment(n: number): string {
  if (!Number.isFinite(n)) return doubleFragment(n);
  const f = Math.fround(n);
  for (let p = 1; p <= 9; p++) {
    const s = f.toPrecision(p);
    if (Math.fround(Number(s)) === f) return doubleFragment(Number(s));
  }
  return doubleFragment(f);
}

function toBuffer(raw: Uint8Array): Buffer {
  return Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
}

const latin1 = (raw: Uint8Array): string => toBuffer(raw).toString("latin1");
const utf8 = (raw: Uint8Array): string => toBuffer(raw).toString("utf8");
const base64 = (raw: Uint8Array): string => '"' + toBuffer(raw).toString("base64") + '"';

/** `2024-01-31 13:45:00.123` → `2024-01-31T13:45:00.123` (any other text unchanged). */
function isoDateTime(t: string): string {
  return t.length > 10 && t.charCodeAt(10) === 32 ? t.substring(0, 10) + "T" + t.substring(11) : t;
}

/**
 * MySQL 5.6+ TIME2 storage bytes (3 bytes of packed h:m:s plus 0–3 fraction bytes,
 * big-endian, offset-encoded; MySQL's my_time_packed_from_binary) → `[-]HH:MM:SS[.ffffff]`.
 */
export function decodeTime2(bytes: Uint8Array, fsp: number): string {
  const fracBytes = (fsp + 1) >> 1;
  let n = 0;
  for (let i = 0; i < 3 + fracBytes; i++) n = n * 256 + bytes[i];
  const fracUnit = 2 ** (8 * fracBytes);
  let x = n - 0x800000 * fracUnit;
  const negative = x < 0;
  if (negative) x = -x;
  const intPart = Math.floor(x / fracUnit);
  const frac = x - intPart * fracUnit;
  const hour = (intPart >> 12) & 0x3ff;
  const minute = (intPart >> 6) & 0x3f;
  const second = intPart & 0x3f;
  let out = (negative ? "-" : "") + (hour < 10 ? "0" + hour : String(hour)) + ":" +
    (minute < 10 ? "0" : "") + minute + ":" + (second < 10 ? "0" : "") + second;
  if (fsp > 0) {
    // Stored in units of 1/100 (fsp 1–2), 1/10^4 (3–4) or 1/10^6 (5–6).
    const digits = String(frac).padStart(2 * fracBytes, "0");
    out += "." + digits.substring(0, fsp);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Snapshot decoders: the server's text protocol bytes.

const snapNull = (f: (raw: Uint8Array) => string): SnapshotValueDecoder => (raw) =>
  raw === null ? "null" : f(raw);

const SNAPSHOT: Record<MysqlValueKind, SnapshotValueDecoder> = {
  int: snapNull((r) => intFragment(latin1(r))),
  decimal: snapNull((r) => '"' + latin1(r) + '"'),
  // FLOAT columns are selected as `col + 0e0` (exact as a double), see floatSelectExpr.
  float: snapNull((r) => floatFragment(Number(latin1(r)))),
  double: snapNull((r) => doubleFragment(Number(latin1(r)))),
  bit: snapNull(bitsFragment),
  year: snapNull((r) => String(Number(latin1(r)))),
  date: snapNull((r) => '"' + latin1(r) + '"'),
  time: snapNull((r) => '"' + latin1(r) + '"'),
  datetime: snapNull((r) => '"' + isoDateTime(latin1(r)) + '"'),
  timestamp: snapNull((r) => '"' + isoDateTime(latin1(r)) + 'Z"'),
  text: snapNull((r) => JSON.stringify(utf8(r))),
  binary: snapNull(base64),
  enum: snapNull((r) => JSON.stringify(utf8(r))),
  set: snapNull((r) => JSON.stringify(utf8(r))),
  json: snapNull((r) => JSON.stringify(utf8(r))),
  geometry: snapNull(base64),
};

/** Decoder of snapshot values (text-protocol bytes) of one column. */
export function mysqlSnapshotDecoder(t: MysqlColumnType): SnapshotValueDecoder {
  return SNAPSHOT[t.kind];
}

/**
 * The select-list expression for a column in snapshot reads: FLOAT is widened to DOUBLE
 * (exactly), because the server prints FLOAT with only 6 significant digits.
 */
export function snapshotSelectExpr(t: MysqlColumnType, quotedName: string): string {
  return t.kind === "float" ? `(${quotedName} + 0e0)` : quotedName;
}

// ---------------------------------------------------------------------------------------
// Binlog decoders: zongji's values.

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

const text = (v: unknown): string =>
  typeof v === "string" ? v : isBytes(v) ? utf8(v) : v === undefined ? "" : String(v);

const binNull = (f: (v: unknown) => string): BinlogValueDecoder => (v) =>
  v === null || v === undefined ? "null" : f(v);

/** Decoder of binlog values (as zongji gives them) of one column. */
export function mysqlBinlogDecoder(t: MysqlColumnType): BinlogValueDecoder {
  switch (t.kind) {
    case "int":
      return binNull((v) => typeof v === "number" ? intFragment(String(v)) : intFragment(text(v)));
    case "decimal":
      return binNull((v) => '"' + text(v) + '"');
    case "float":
      return binNull((v) => floatFragment(Number(v)));
    case "double":
      return binNull((v) => doubleFragment(Number(v)));
    case "bit":
      return binNull((v) => isBytes(v) ? bitsFragment(v) : intFragment(String(v)));
    case "year":
      // zongji adds 1900 to the stored byte; the stored 0 is the zero year 0000.
      return binNull((v) => {
        const y = Number(v);
        return y === 1900 ? "0" : String(y);
      });
    case "date":
      return binNull((v) => '"' + text(v) + '"');
    case "time": {
      const fsp = t.fsp;
      return binNull((v) => '"' + (isBytes(v) ? decodeTime2(v, fsp) : text(v)) + '"');
    }
    case "datetime":
      return binNull((v) => '"' + isoDateTime(text(v)) + '"');
    case "timestamp":
      return binNull((v) => '"' + isoDateTime(text(v)) + 'Z"');
    case "text":
    case "enum":
    case "set":
      // zongji gives `undefined` for ENUM's invalid-value index 0: MySQL prints ''.
      return (v) => v === null ? "null" : JSON.stringify(text(v));
    case "binary":
    case "geometry":
      return binNull((v) => isBytes(v) ? base64(v) : base64(Buffer.from(text(v), "latin1")));
    case "json":
      return binNull((v) =>
        JSON.stringify(typeof v === "string" ? v : isBytes(v) ? utf8(v) : JSON.stringify(v))
      );
  }
}

/**
 * For columns whose binlog values come as strings, a writer of their JSON into the batch
 * without an intermediate string: the same JSON as `mysqlBinlogDecoder`'s. Null otherwise.
 */
export function mysqlBinlogStringWriter(t: MysqlColumnType): BinlogStringWriter | null {
  switch (t.kind) {
    case "text":
    case "enum":
    case "set":
    case "json":
    case "decimal":
    case "date":
      return (v, batch) => batch.pushJsonString(v);
    case "datetime":
      return (v, batch) => writeIsoDateTime(v, batch, false);
    case "timestamp":
      return (v, batch) => writeIsoDateTime(v, batch, true);
    default:
      return null;
  }
}

/** `"` + isoDateTime(t) + (`Z` when `utc`) + `"`, written into the batch. */
function writeIsoDateTime(t: string, batch: JsonRowBatch, utc: boolean): void {
  const n = t.length;
  batch.room(n + 3);
  const b = batch.bytes;
  let p = batch.length;
  b[p++] = 0x22; // "
  for (let i = 0; i < n; i++) {
    const c = t.charCodeAt(i);
    if (c >= 0x80 || c < 0x20 || c === 0x22 || c === 0x5c) {
      // Not a server's date text: the general path.
      batch.pushFragment('"' + isoDateTime(t) + (utc ? 'Z"' : '"'));
      return;
    }
    b[p++] = i === 10 && c === 32 ? 0x54 /* T */ : c;
  }
  if (utc) b[p++] = 0x5a; // Z
  b[p++] = 0x22;
  batch.length = p;
  batch.endFragment();
}
