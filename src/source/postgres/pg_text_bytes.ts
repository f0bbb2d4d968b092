/**
 * PostgreSQL text representation → JSON fragment, on bytes: the snapshot's twin of
 * `pg_text_decoder.ts`. A writer takes a value's UTF-8 text as it arrived (`src[s, e)`, never
 * SQL NULL) and appends its JSON to a JsonRowBatch as one fragment, without making a string.
 * The output is byte for byte the UTF-8 of what the string decoder of the same type returns;
 * the types whose conversion is involved (arrays, vectors, BC or non-UTC timestamps, bytea in
 * escape format) go through that decoder instead.
 *
 * @module
 */

import { copyBytes } from "../../core/byte_copy.ts";
import { writeJsonEscape } from "../../core/json_escape.ts";
import type { JsonRowBatch } from "../../core/json_row_batch.ts";
import { pgTextDecoder, pgTextDecoderKind } from "./pg_text_decoder.ts";
import type { PgTypeCatalog } from "./pg_type_catalog.ts";

/**
 * Appends the JSON of one value (its text `src[s, e)`) to `out` as a whole fragment. The
 * caller has made room (`out.room`) for {@link pgJsonRoom}`(e - s)` bytes: checking once per
 * row instead of once per value is measurably faster.
 */
export type PgByteWriter = (src: Uint8Array, s: number, e: number, out: JsonRowBatch) => void;

/**
 * The most bytes a writer appends for `n` bytes of text: a control character becomes
 * `\u00XX` (6 bytes), `t` becomes `true`, and quotes or a `T`/`Z` add a few.
 */
export function pgJsonRoom(n: number): number {
  return 6 * n + 8;
}

const utf8Decoder = new TextDecoder();

/** The text `src[s, e)` as a string. */
export function pgText(src: Uint8Array, s: number, e: number): string {
  return utf8Decoder.decode(src.subarray(s, e));
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Appends `src[s, e)` at `out.length` (room already made). */
function copy(out: JsonRowBatch, src: Uint8Array, s: number, e: number): void {
  out.length = copyBytes(out.bytes, out.length, src, s, e);
}

/** int2, int4, oid: a JSON number as printed. */
const asIs: PgByteWriter = (src, s, e, out) => {
  copy(out, src, s, e);
  out.endFragment();
};

/** Text that never holds `"`, `\` or control characters: quoted without scanning. */
const quoted: PgByteWriter = (src, s, e, out) => {
  out.bytes[out.length++] = QUOTE;
  copy(out, src, s, e);
  out.bytes[out.length++] = QUOTE;
  out.endFragment();
};

/**
 * Any text as a JSON string, escaped like JSON.stringify: `"`, `\` and the control
 * characters (see writeJsonEscape); everything else (UTF-8 included) as is.
 */
export const jsonString: PgByteWriter = (src, s, e, out) => {
  const b = out.bytes;
  let p = out.length;
  b[p++] = QUOTE;
  for (let i = s; i < e; i++) {
    const c = src[i];
    if (c >= 0x20 && c !== QUOTE && c !== BACKSLASH) b[p++] = c;
    else p = writeJsonEscape(b, p, c);
  }
  b[p++] = QUOTE;
  out.length = p;
  out.endFragment();
};

const TRUE = new TextEncoder().encode("true");
const FALSE = new TextEncoder().encode("false");

const bool: PgByteWriter = (src, s, _e, out) => {
  const word = src[s] === 0x74 /* t */ ? TRUE : FALSE;
  copy(out, word, 0, word.length);
  out.endFragment();
};

const MAX_SAFE = new TextEncoder().encode("9007199254740991");

/**
 * int8: a JSON number when exactly representable as a double (|v| ≤ 2^53-1), else a string.
 * PostgreSQL prints no leading zeros or `+`, so digit count decides, and equal-length digit
 * strings compare like their numbers.
 */
const int8: PgByteWriter = (src, s, e, out) => {
  const negative = src[s] === 0x2d;
  const from = negative ? s + 1 : s;
  const digits = e - from;
  let safe = digits < 16;
  if (digits === 16) {
    safe = true;
    for (let i = 0; i < 16; i++) {
      const d = src[from + i] - MAX_SAFE[i];
      if (d !== 0) {
        safe = d < 0;
        break;
      }
    }
  }
  if (safe) asIs(src, s, e, out);
  else quoted(src, s, e, out);
};

/** float4/float8: PostgreSQL's text is valid JSON except NaN and ±Infinity. */
const float: PgByteWriter = (src, s, e, out) => {
  const c = src[s];
  if (c === 0x4e /* N */ || c === 0x49 /* I */ || (c === 0x2d && src[s + 1] === 0x49)) {
    quoted(src, s, e, out);
  } else asIs(src, s, e, out);
};

const BASE64 = new TextEncoder().encode(
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
);
const HEX_VALUE = new Int8Array(256);
for (let i = 0; i < 10; i++) HEX_VALUE[48 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[65 + i] = HEX_VALUE[97 + i] = 10 + i;

/** bytea `\x…hex…` → `"base64"`. */
function hexToBase64(src: Uint8Array, s: number, e: number, out: JsonRowBatch): void {
  const b = out.bytes;
  const h = HEX_VALUE;
  let p = out.length;
  b[p++] = QUOTE;
  let i = s;
  for (; i + 6 <= e; i += 6) {
    const v = (h[src[i]] << 20) | (h[src[i + 1]] << 16) | (h[src[i + 2]] << 12) |
      (h[src[i + 3]] << 8) | (h[src[i + 4]] << 4) | h[src[i + 5]];
    b[p++] = BASE64[v >> 18];
    b[p++] = BASE64[(v >> 12) & 63];
    b[p++] = BASE64[(v >> 6) & 63];
    b[p++] = BASE64[v & 63];
  }
  if (e - i === 2) {
    const v = (h[src[i]] << 4) | h[src[i + 1]];
    b[p++] = BASE64[v >> 2];
    b[p++] = BASE64[(v & 3) << 4];
    b[p++] = 0x3d; // =
    b[p++] = 0x3d;
  } else if (e - i === 4) {
    const v = (h[src[i]] << 12) | (h[src[i + 1]] << 8) | (h[src[i + 2]] << 4) | h[src[i + 3]];
    b[p++] = BASE64[v >> 10];
    b[p++] = BASE64[(v >> 4) & 63];
    b[p++] = BASE64[(v & 15) << 2];
    b[p++] = 0x3d;
  }
  b[p++] = QUOTE;
  out.length = p;
  out.endFragment();
}

/** A writer that decodes the text to a string and converts it like the string decoder. */
function viaString(decode: (text: string) => string): PgByteWriter {
  return (src, s, e, out) => out.pushFragment(decode(pgText(src, s, e)));
}

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/** Writes `"date` `T` `time…` for a timestamp whose date part is 10 bytes. */
function isoDateTime(src: Uint8Array, s: number, e: number, out: JsonRowBatch): void {
  const b = out.bytes;
  b[out.length++] = QUOTE;
  copy(out, src, s, s + 10);
  b[out.length++] = 0x54; // T
  copy(out, src, s + 11, e);
}

/**
 * The writer for values of type `oid`; same choice of conversion as `pgTextDecoder`, whose
 * decoder it falls back to where the bytes are not worth handling.
 */
export function pgTextByteWriter(oid: number, catalog: PgTypeCatalog): PgByteWriter {
  const kind = pgTextDecoderKind(oid, catalog);
  switch (kind) {
    case "number":
      return asIs;
    case "quoted":
      return quoted;
    case "string":
    case "json":
      return jsonString;
    case "bool":
      return bool;
    case "int8":
      return int8;
    case "float":
      return float;
  }
  const decode = pgTextDecoder(oid, catalog);
  const slow = viaString(decode);
  switch (kind) {
    case "bytea":
      return (src, s, e, out) => {
        if (src[s] === BACKSLASH && src[s + 1] === 0x78 /* x */) hexToBase64(src, s + 2, e, out);
        else slow(src, s, e, out);
      };
    case "timestamp":
      // `2024-01-31 13:45:00.5` → `"2024-01-31T13:45:00.5"` (the space is at 10 unless the
      // year has 5+ digits; infinity has no digit first).
      return (src, s, e, out) => {
        if (e - s <= 10 || !isDigit(src[s]) || src[s + 10] !== 0x20) return slow(src, s, e, out);
        isoDateTime(src, s, e, out);
        out.bytes[out.length++] = QUOTE;
        out.endFragment();
      };
    case "timestamptz":
      // `…13:45:00.5+00` → `"…T13:45:00.5Z"`; other offsets and BC go the string way.
      return (src, s, e, out) => {
        if (
          e - s <= 13 || !isDigit(src[s]) || src[s + 10] !== 0x20 ||
          src[e - 3] !== 0x2b || src[e - 2] !== 0x30 || src[e - 1] !== 0x30
        ) return slow(src, s, e, out);
        isoDateTime(src, s, e - 3, out);
        out.bytes[out.length++] = 0x5a; // Z
        out.bytes[out.length++] = QUOTE;
        out.endFragment();
      };
    default:
      return slow; // arrays, int2vector, oidvector
  }
}
