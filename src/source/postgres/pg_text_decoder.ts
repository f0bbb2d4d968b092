/**
 * PostgreSQL text representation → JSON fragment, one specialised function per column.
 *
 * Replicant reads snapshot rows and pgoutput changes as PostgreSQL's TEXT output, in a
 * session with `TimeZone='UTC'`, `DateStyle='ISO, YMD'`, `IntervalStyle='iso_8601'`,
 * `extra_float_digits=3` and `bytea_output='hex'`, and turns each value into a piece of
 * JSON text that the encoder concatenates into the entry (values are lossless).
 *
 * | PostgreSQL type | JSON |
 * |---|---|
 * | NULL | `null` |
 * | int2, int4, oid | number, as PostgreSQL prints it |
 * | int8 | number when within ±(2^53-1), else string of the exact digits |
 * | numeric | string of the exact text (`"1.50"`, `"NaN"`, `"Infinity"`) |
 * | float4, float8 | number (round-trip exact text); `"NaN"`, `"Infinity"`, `"-Infinity"` as strings |
 * | bool | `true` / `false` |
 * | bytea | string, base64 of the bytes |
 * | date, time, timetz, interval | string, PostgreSQL's ISO text as is |
 * | timestamp | string `2024-01-31T13:45:00.123456` |
 * | timestamptz | string `2024-01-31T13:45:00.123456Z` |
 * | json, jsonb | string holding the JSON text exactly as PostgreSQL prints it (Debezium's `io.debezium.data.Json`) |
 * | arrays | arrays (any dimension; lower bounds dropped, as `array_to_json` does), elements decoded by their type |
 * | int2vector, oidvector | arrays of numbers |
 * | domains | as their base type |
 * | everything else (text, varchar, char, name, uuid, inet, cidr, macaddr, money, bit, varbit, xml, enums, ranges, composites, geometric, unknown) | string of PostgreSQL's text |
 *
 * Special values: `infinity`/`-infinity` dates and timestamps stay the strings
 * `"infinity"`/`"-infinity"`. Years before 1 AD keep PostgreSQL's ` BC` suffix, like
 * PostgreSQL's own `to_json`: date `"0044-03-15 BC"`, timestamp
 * `"0044-03-15T13:45:00 BC"`, timestamptz `"0044-03-15T13:45:00Z BC"`. A timestamptz
 * read in another time zone than UTC keeps its offset as `±HH:MM`.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { type ConnectType, JSON_TEXT_TYPE } from "../../core/table_schema.ts";
import type { PgTypeCatalog, PgTypeInfo } from "./pg_type_catalog.ts";

/** PostgreSQL text of one value (null for SQL NULL) → JSON fragment. */
export type JsonFragmentDecoder = (text: string | null) => string;

// ---------------------------------------------------------------------------------------
// Scalar decoders (shared, allocation-free apart from the result string).

/** Text that is already a JSON number (int2, int4, oid). */
const asIs: JsonFragmentDecoder = (t) => t === null ? "null" : t;

/** Text that never holds `"`, `\` or control characters: quote without scanning. */
const quoted: JsonFragmentDecoder = (t) => t === null ? "null" : '"' + t + '"';

/** Any text: a JSON string with full escaping. */
const jsonString: JsonFragmentDecoder = (t) => t === null ? "null" : JSON.stringify(t);

const bool: JsonFragmentDecoder = (t) => t === null ? "null" : t === "t" ? "true" : "false";

/**
 * int8: a JSON number when exactly representable as a double (|v| ≤ 2^53-1), else a
 * string. PostgreSQL prints no leading zeros or `+`, so digit count decides, and
 * equal-length digit strings compare like their numbers.
 */
const int8: JsonFragmentDecoder = (t) => {
  if (t === null) return "null";
  const negative = t.charCodeAt(0) === 45;
  const digits = negative ? t.length - 1 : t.length;
  if (digits < 16) return t;
  if (digits === 16 && (negative ? t <= "-9007199254740991" : t <= "9007199254740991")) return t;
  return '"' + t + '"';
};

/** float4/float8: PostgreSQL's text is valid JSON except NaN and ±Infinity. */
const float: JsonFragmentDecoder = (t) => {
  if (t === null) return "null";
  const c = t.charCodeAt(0);
  if (c === 78 /* N */ || c === 73 /* I */ || (c === 45 && t.charCodeAt(1) === 73)) {
    return '"' + t + '"';
  }
  return t;
};

/** bytea: `\x` + hex (or the legacy escape format) → base64. */
const bytea: JsonFragmentDecoder = (t) => {
  if (t === null) return "null";
  if (t.charCodeAt(0) === 92 && t.charCodeAt(1) === 120) return '"' + hexToBase64(t) + '"';
  return '"' + byteaEscapeToBuffer(t).toString("base64") + '"';
};

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX_VALUE = new Int8Array(128);
for (let i = 0; i < 10; i++) HEX_VALUE[48 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[65 + i] = HEX_VALUE[97 + i] = 10 + i;

/** Native hex decoding (ES2026 `Uint8Array.fromHex`) where the runtime has it. */
const nativeFromHex: ((hex: string) => Uint8Array) | undefined =
  typeof Uint8Array.fromHex === "function" && typeof Uint8Array.prototype.toBase64 === "function"
    ? (hex) => Uint8Array.fromHex(hex)
    : undefined;

/** Up to this many hex digits the plain loop beats the native calls (measured). */
const SMALL_HEX = 128;

/** `\x…hex…` → base64 of the bytes. */
function hexToBase64(t: string): string {
  const n = t.length;
  if (n - 2 > SMALL_HEX) {
    const hex = t.substring(2);
    return nativeFromHex !== undefined
      ? nativeFromHex(hex).toBase64()
      : Buffer.from(hex, "hex").toString("base64");
  }
  const h = HEX_VALUE;
  let out = "";
  let i = 2;
  for (; i + 6 <= n; i += 6) {
    const v = (h[t.charCodeAt(i)] << 20) | (h[t.charCodeAt(i + 1)] << 16) |
      (h[t.charCodeAt(i + 2)] << 12) | (h[t.charCodeAt(i + 3)] << 8) |
      (h[t.charCodeAt(i + 4)] << 4) | h[t.charCodeAt(i + 5)];
    out += BASE64[v >> 18] + BASE64[(v >> 12) & 63] + BASE64[(v >> 6) & 63] + BASE64[v & 63];
  }
  if (n - i === 2) {
    const v = (h[t.charCodeAt(i)] << 4) | h[t.charCodeAt(i + 1)];
    out += BASE64[v >> 2] + BASE64[(v & 3) << 4] + "==";
  } else if (n - i === 4) {
    const v = (h[t.charCodeAt(i)] << 12) | (h[t.charCodeAt(i + 1)] << 8) |
      (h[t.charCodeAt(i + 2)] << 4) | h[t.charCodeAt(i + 3)];
    out += BASE64[v >> 10] + BASE64[(v >> 4) & 63] + BASE64[(v & 15) << 2] + "=";
  }
  return out;
}

/** bytea_output='escape': `\\` is a backslash, `\ooo` an octal byte, other bytes as is. */
function byteaEscapeToBuffer(t: string): Buffer {
  const out = Buffer.allocUnsafe(t.length);
  let n = 0;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c !== 92) {
      out[n++] = c;
    } else if (t.charCodeAt(i + 1) === 92) {
      out[n++] = 92;
      i++;
    } else {
      out[n++] = ((t.charCodeAt(i + 1) - 48) << 6) | ((t.charCodeAt(i + 2) - 48) << 3) |
        (t.charCodeAt(i + 3) - 48);
      i += 3;
    }
  }
  return out.subarray(0, n);
}

/** Index of the space between date and time (10 unless the year has 5+ digits). */
function dateTimeSpace(t: string): number {
  return t.charCodeAt(10) === 32 ? 10 : t.indexOf(" ");
}

/** timestamp: `2024-01-31 13:45:00.5` → `"2024-01-31T13:45:00.5"`. */
const timestamp: JsonFragmentDecoder = (t) => {
  if (t === null) return "null";
  const c = t.charCodeAt(0);
  if (c < 48 || c > 57) return '"' + t + '"'; // infinity, -infinity
  const sp = dateTimeSpace(t);
  if (sp < 0) return '"' + t + '"';
  return '"' + t.substring(0, sp) + "T" + t.substring(sp + 1) + '"';
};

/** timestamptz: `2024-01-31 13:45:00.5+00` → `"2024-01-31T13:45:00.5Z"`. */
const timestamptz: JsonFragmentDecoder = (t) => {
  if (t === null) return "null";
  const c = t.charCodeAt(0);
  if (c < 48 || c > 57) return '"' + t + '"'; // infinity, -infinity
  const sp = dateTimeSpace(t);
  if (sp < 0) return '"' + t + '"';
  const n = t.length;
  if (t.charCodeAt(n - 3) === 43 && t.charCodeAt(n - 2) === 48 && t.charCodeAt(n - 1) === 48) {
    return '"' + t.substring(0, sp) + "T" + t.substring(sp + 1, n - 3) + 'Z"';
  }
  return timestamptzSlow(t, sp);
};

/** BC values and non-UTC offsets. */
function timestamptzSlow(t: string, sp: number): string {
  let end = t.length;
  let suffix = "";
  if (t.endsWith(" BC")) {
    end -= 3;
    suffix = " BC";
  }
  // The offset starts at the last sign after the time (the date part is before `sp`).
  let sign = end - 1;
  while (sign > sp) {
    const ch = t.charCodeAt(sign);
    if (ch === 43 || ch === 45) break;
    sign--;
  }
  if (sign <= sp) return '"' + t.substring(0, sp) + "T" + t.substring(sp + 1) + '"';
  const offset = t.substring(sign, end);
  const zone = offset === "+00" ? "Z" : offset.length === 3 ? offset + ":00" : offset;
  return '"' + t.substring(0, sp) + "T" + t.substring(sp + 1, sign) + zone + suffix + '"';
}

/** int2vector / oidvector: `1 2 3` → `[1,2,3]`. */
const numberVector: JsonFragmentDecoder = (t) =>
  t === null ? "null" : "[" + t.replaceAll(" ", ",") + "]";

// ---------------------------------------------------------------------------------------
// Arrays

const OPEN = 123; // {
const CLOSE = 125; // }
const QUOTE = 34; // "
const BACKSLASH = 92; // \

/** Whether `s[from, to)` is an unquoted `NULL` (any case, as array_in accepts). */
function isNullToken(s: string, from: number, to: number): boolean {
  return to - from === 4 &&
    (s.charCodeAt(from) | 32) === 110 && // n
    (s.charCodeAt(from + 1) | 32) === 117 && // u
    (s.charCodeAt(from + 2) | 32) === 108 && // l
    (s.charCodeAt(from + 3) | 32) === 108;
}

function malformed(s: string, why: string): Error {
  const shown = s.length > 200 ? s.substring(0, 200) + "…" : s;
  return new Error(`malformed PostgreSQL array literal (${why}): ${shown}`);
}

/**
 * Parses an array literal as `array_out` writes it — optional bounds `[l:u][l:u]=`,
 * nested `{…}`, elements separated by `delim`, `"…"` quoting with `\` escapes, unquoted
 * `NULL` for null — and returns the JSON array with each element through `element`.
 */
function decodeArray(s: string, element: JsonFragmentDecoder, delim: number): string {
  const n = s.length;
  let i = 0;
  if (s.charCodeAt(0) === 91 /* [ */) {
    i = s.indexOf("=") + 1;
    if (i === 0) throw malformed(s, "bounds without '='");
  }
  if (s.charCodeAt(i) !== OPEN) throw malformed(s, "expected '{'");
  let out = "";
  let depth = 0;
  // expectItem: just after '{' or a delimiter, an element or '{' (or '}' for {}) follows.
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === OPEN) {
      out += "[";
      depth++;
      i++;
      continue;
    }
    if (c === CLOSE) {
      out += "]";
      i++;
      if (--depth === 0) break;
      continue;
    }
    if (c === delim) {
      out += ",";
      i++;
      continue;
    }
    if (c === QUOTE) {
      // Quoted element: "…" with \" and \\ (any \x means x).
      let start = ++i;
      let text = "";
      for (;;) {
        if (i >= n) throw malformed(s, "unterminated quoted element");
        const q = s.charCodeAt(i);
        if (q === QUOTE) break;
        if (q === BACKSLASH) {
          text += s.substring(start, i);
          start = ++i; // keep the escaped character as the start of the next run
        }
        i++;
      }
      text = text === "" ? s.substring(start, i) : text + s.substring(start, i);
      out += element(text);
      i++; // closing quote
      continue;
    }
    // Unquoted element: up to the delimiter or '}'. array_out never leaves whitespace or
    // backslashes unquoted; array_in would, so honour backslash escapes anyway.
    const start = i;
    let escaped = false;
    while (i < n) {
      const u = s.charCodeAt(i);
      if (u === delim || u === CLOSE) break;
      if (u === BACKSLASH) {
        escaped = true;
        i++;
      }
      i++;
    }
    if (!escaped && isNullToken(s, start, i)) {
      out += element(null);
    } else {
      out += element(escaped ? unescapeUnquoted(s.substring(start, i)) : s.substring(start, i));
    }
  }
  if (depth !== 0) throw malformed(s, "unbalanced braces");
  return out;
}

function unescapeUnquoted(t: string): string {
  let out = "";
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c === BACKSLASH && i + 1 < t.length) i++;
    out += t[i];
  }
  return out.trim();
}

function arrayDecoder(element: JsonFragmentDecoder, delimiter: string): JsonFragmentDecoder {
  const delim = delimiter.charCodeAt(0);
  return (t) => t === null ? "null" : decodeArray(t, element, delim);
}

// ---------------------------------------------------------------------------------------
// Choosing the decoder

/**
 * How a type's text becomes JSON, one name per conversion of the table above; the byte
 * writers of `pg_text_bytes.ts` follow the same kinds.
 */
export type PgValueKind =
  | "number" // text is a JSON number: int2, int4, oid
  | "json" // json, jsonb: the JSON text as a string
  | "quoted" // text needs quotes, never escapes: numeric, date, time, uuid, inet…
  | "string" // any text: JSON string with escaping
  | "bool"
  | "int8"
  | "float"
  | "bytea"
  | "timestamp"
  | "timestamptz"
  | "vector" // int2vector, oidvector
  | "array";

/** Built-in types with a conversion other than "JSON string of the text". */
const BY_OID: ReadonlyMap<number, PgValueKind> = new Map<number, PgValueKind>([
  [16, "bool"],
  [17, "bytea"],
  [20, "int8"],
  [21, "number"], // int2
  [22, "vector"], // int2vector
  [23, "number"], // int4
  [26, "number"], // oid
  [30, "vector"], // oidvector
  [114, "json"], // json
  [3802, "json"], // jsonb
  [700, "float"], // float4
  [701, "float"], // float8
  [1700, "quoted"], // numeric
  [1082, "quoted"], // date
  [1083, "quoted"], // time
  [1114, "timestamp"],
  [1184, "timestamptz"],
  [1186, "quoted"], // interval
  [1266, "quoted"], // timetz
  [1560, "quoted"], // bit
  [1562, "quoted"], // varbit
  [2950, "quoted"], // uuid
  [869, "quoted"], // inet
  [650, "quoted"], // cidr
  [829, "quoted"], // macaddr
  [774, "quoted"], // macaddr8
  [3220, "quoted"], // pg_lsn
]);

const SCALAR_DECODERS: Record<Exclude<PgValueKind, "array">, JsonFragmentDecoder> = {
  number: asIs,
  json: jsonString,
  quoted,
  string: jsonString,
  bool,
  int8,
  float,
  bytea,
  timestamp,
  timestamptz,
  vector: numberVector,
};

const MAX_TYPE_DEPTH = 32;

/** The type with its domains resolved: its kind and, for arrays, the element type. */
function resolve(
  oid: number,
  catalog: PgTypeCatalog,
  depth: number,
): { kind: PgValueKind; oid: number } {
  const builtin = BY_OID.get(oid);
  if (builtin !== undefined) return { kind: builtin, oid };
  const info: PgTypeInfo | undefined = catalog.get(oid);
  if (info === undefined || depth > MAX_TYPE_DEPTH) return { kind: "string", oid };
  if (info.baseOid !== 0) return resolve(info.baseOid, catalog, depth + 1); // domain
  if (info.category === "A" && info.elementOid !== 0) return { kind: "array", oid };
  return { kind: "string", oid }; // text types, enums, money, xml, composite, range, unknown…
}

function choose(oid: number, catalog: PgTypeCatalog, depth: number): JsonFragmentDecoder {
  const { kind, oid: resolved } = resolve(oid, catalog, depth);
  if (kind !== "array") return SCALAR_DECODERS[kind];
  const elementOid = catalog.get(resolved)!.elementOid;
  return arrayDecoder(
    choose(elementOid, catalog, depth + 1),
    catalog.get(elementOid)?.delimiter ?? ",",
  );
}

/** How values of type `oid` become JSON (domains resolved to their base type). */
export function pgTextDecoderKind(oid: number, catalog: PgTypeCatalog): PgValueKind {
  return resolve(oid, catalog, 0).kind;
}

/**
 * The decoder for values of type `oid` (a column's `atttypid`, or the type OID of a
 * pgoutput Relation column). Resolve once per column and call it for every value.
 * Unknown OIDs decode as JSON strings of the text.
 */
export function pgTextDecoder(oid: number, catalog: PgTypeCatalog): JsonFragmentDecoder {
  return choose(oid, catalog, 0);
}

/**
 * The declared type (the entries' `schema` half) of values of type `oid`: what the decoder of
 * the same type writes, domains resolved to their base type. `dimensions` is the column's
 * declared array dimensions (`pg_attribute.attndims`; PostgreSQL does not enforce it, and 0
 * means one).
 */
export function pgConnectType(oid: number, catalog: PgTypeCatalog, dimensions = 1): ConnectType {
  return declared(oid, catalog, 0, dimensions);
}

function declared(oid: number, catalog: PgTypeCatalog, depth: number, dims: number): ConnectType {
  const { kind, oid: resolved } = resolve(oid, catalog, depth);
  switch (kind) {
    case "number":
      return resolved === 21 ? "int16" : resolved === 23 ? "int32" : "int64";
    case "int8":
      return "int64";
    case "float":
      return resolved === 700 ? "float" : "double";
    case "bool":
      return "boolean";
    case "bytea":
      return "bytes";
    case "json":
      return JSON_TEXT_TYPE;
    case "vector":
      return { type: "array", items: resolved === 22 ? "int16" : "int64" };
    case "array": {
      let type = declared(catalog.get(resolved)!.elementOid, catalog, depth + 1, 1);
      for (let d = 0; d < Math.max(1, dims); d++) type = { type: "array", items: type };
      return type;
    }
    default:
      return "string";
  }
}
