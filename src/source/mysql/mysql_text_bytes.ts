/**
 * Snapshot values from the server's text-protocol bytes straight into a JsonRowBatch, with no
 * string per value. Each writer produces exactly the bytes of what `mysqlSnapshotDecoder`
 * (mysql_value_decoder.ts) returns for the same input, UTF-8 encoded: that decoder stays the
 * specification, and inputs a writer does not handle byte for byte (FLOAT, BIT, DOUBLE text
 * outside the plain forms, invalid UTF-8, non-ASCII bytes where ASCII is expected) go
 * through it and `pushFragment`. The connection's character set is utf8mb4, so the server
 * already converted every text column (latin1 ones too) to UTF-8 before sending it.
 *
 * @module
 */

import { copyBytes } from "../../core/byte_copy.ts";
import { writeJsonEscape } from "../../core/json_escape.ts";
import type { JsonRowBatch } from "../../core/json_row_batch.ts";
import type { MysqlColumnType, SnapshotValueDecoder } from "./mysql_value_decoder.ts";

/** How a column's bytes become JSON; see `textWriterOf`. */
export type TextWriter = number;

/** Integer digits, ZEROFILL zeros dropped, beyond ±(2^53-1) quoted. */
export const W_INT = 0;
/** ASCII text between quotes, as is (DECIMAL, DATE, TIME). */
export const W_QUOTED = 1;
/** `YYYY-MM-DD hh:mm:ss[.f]` quoted, the space turned into `T`. */
export const W_DATETIME = 2;
/** As W_DATETIME, with a `Z` before the closing quote. */
export const W_TIMESTAMP = 3;
/** Digits as a number, leading zeros dropped (`0000` → `0`). */
export const W_YEAR = 4;
/** UTF-8 text as a JSON string, escaped like JSON.stringify. */
export const W_STRING = 5;
/** Bytes as a base64 string. */
export const W_BASE64 = 7;
/** Server text of a DOUBLE: as is when JavaScript prints the number the same way. */
export const W_DOUBLE = 8;
/** Through the string decoder. */
export const W_DECODER = 9;

/** The byte writer of a column. */
export function textWriterOf(t: MysqlColumnType): TextWriter {
  switch (t.kind) {
    case "int":
      return W_INT;
    case "decimal":
    case "date":
    case "time":
      return W_QUOTED;
    case "datetime":
      return W_DATETIME;
    case "timestamp":
      return W_TIMESTAMP;
    case "year":
      return W_YEAR;
    case "text":
    case "enum":
    case "set":
    case "json":
      return W_STRING;
    case "binary":
    case "geometry":
      return W_BASE64;
    case "double":
      return W_DOUBLE;
    default:
      // FLOAT needs the shortest 32-bit rendering and BIT a big-endian integer: rare
      // enough that the string decoder is fine.
      return W_DECODER;
  }
}

/**
 * Appends the JSON of one non-NULL value, `src[start, end)` as the server sent it, as the
 * next fragment of `batch` (`endFragment` included). `decoder` is the column's string
 * decoder, used where the bytes are not handled here.
 */
export function writeTextValue(
  batch: JsonRowBatch,
  writer: TextWriter,
  src: Uint8Array,
  start: number,
  end: number,
  decoder: SnapshotValueDecoder,
): void {
  let ok: boolean;
  switch (writer) {
    case W_INT:
      ok = writeInt(batch, src, start, end);
      break;
    case W_QUOTED:
      ok = writeQuoted(batch, src, start, end, 0);
      break;
    case W_DATETIME:
      ok = writeQuoted(batch, src, start, end, 1);
      break;
    case W_TIMESTAMP:
      ok = writeQuoted(batch, src, start, end, 2);
      break;
    case W_YEAR:
      ok = writeYear(batch, src, start, end);
      break;
    case W_STRING:
      ok = writeString(batch, src, start, end);
      break;
    case W_BASE64:
      ok = writeBase64(batch, src, start, end);
      break;
    case W_DOUBLE:
      ok = writeDouble(batch, src, start, end);
      break;
    default:
      ok = false;
  }
  if (ok) batch.endFragment();
  else batch.pushFragment(decoder(src.subarray(start, end)));
}

// "9007199254740991" (2^53-1): 16-digit integers above it are quoted.
const MAX_SAFE = [
  0x39,
  0x30,
  0x30,
  0x37,
  0x31,
  0x39,
  0x39,
  0x32,
  0x35,
  0x34,
  0x37,
  0x34,
  0x30,
  0x39,
  0x39,
  0x31,
];

function writeInt(batch: JsonRowBatch, src: Uint8Array, start: number, end: number): boolean {
  if (end === start) return false;
  const negative = src[start] === 0x2d;
  const first = negative ? start + 1 : start;
  let d = first;
  while (d < end - 1 && src[d] === 0x30) d++;
  const digits = end - d;
  if (negative && d > first && digits === 1 && src[d] === 0x30) {
    // `-00` loses its zeros and then its sign, as in intFragment.
    batch.room(1);
    batch.bytes[batch.length++] = 0x30;
    return true;
  }
  let quoted = digits > 16;
  if (digits === 16) {
    for (let i = 0; i < 16; i++) {
      const a = src[d + i], m = MAX_SAFE[i];
      if (a !== m) {
        quoted = a > m;
        break;
      }
    }
  }
  batch.room(digits + 3);
  const out = batch.bytes;
  let o = batch.length;
  if (quoted) out[o++] = 0x22;
  if (negative) out[o++] = 0x2d;
  for (let i = d; i < end; i++) {
    const c = src[i];
    if (c >= 0x80) return false; // latin1 would make it two UTF-8 bytes: the decoder's job
    out[o++] = c;
  }
  if (quoted) out[o++] = 0x22;
  batch.length = o;
  return true;
}

function writeYear(batch: JsonRowBatch, src: Uint8Array, start: number, end: number): boolean {
  // Number(text) is exact for up to 15 digits, which then print without the leading zeros.
  if (end - start > 15) return false;
  let d = start;
  while (d < end && src[d] === 0x30) d++;
  batch.room(end - d + 1);
  const out = batch.bytes;
  let o = batch.length;
  if (d === end) out[o++] = 0x30;
  for (let i = d; i < end; i++) {
    const c = src[i];
    if (c < 0x30 || c > 0x39) return false;
    out[o++] = c;
  }
  batch.length = o;
  return true;
}

/** `tail`: 0 plain, 1 datetime (space at 10 → `T`), 2 timestamp (same, and `Z`). */
function writeQuoted(
  batch: JsonRowBatch,
  src: Uint8Array,
  start: number,
  end: number,
  tail: number,
): boolean {
  const n = end - start;
  batch.room(n + 3);
  const out = batch.bytes;
  const at = batch.length;
  let o = at;
  out[o++] = 0x22;
  for (let i = start; i < end; i++) {
    const c = src[i];
    if (c >= 0x80) return false;
    out[o++] = c;
  }
  if (tail !== 0) {
    if (n > 10 && out[at + 11] === 0x20) out[at + 11] = 0x54; // T
    if (tail === 2) out[o++] = 0x5a; // Z
  }
  out[o++] = 0x22;
  batch.length = o;
  return true;
}

/**
 * Length of the valid UTF-8 sequence starting with the non-ASCII byte at `i`, or 0 when it
 * is invalid (overlong, surrogate, beyond U+10FFFF or cut short): the decoder then renders
 * it with U+FFFD as Buffer does.
 */
function utf8Sequence(src: Uint8Array, i: number, end: number): number {
  const b = src[i];
  if (b < 0xc2) return 0;
  if (b < 0xe0) return i + 1 < end && (src[i + 1] & 0xc0) === 0x80 ? 2 : 0;
  if (b < 0xf0) {
    if (i + 2 >= end) return 0;
    const b1 = src[i + 1];
    if ((b1 & 0xc0) !== 0x80 || (src[i + 2] & 0xc0) !== 0x80) return 0;
    if (b === 0xe0 ? b1 < 0xa0 : b === 0xed && b1 >= 0xa0) return 0;
    return 3;
  }
  if (b < 0xf5) {
    if (i + 3 >= end) return 0;
    const b1 = src[i + 1];
    if (
      (b1 & 0xc0) !== 0x80 || (src[i + 2] & 0xc0) !== 0x80 || (src[i + 3] & 0xc0) !== 0x80
    ) return 0;
    if (b === 0xf0 ? b1 < 0x90 : b === 0xf4 && b1 >= 0x90) return 0;
    return 4;
  }
  return 0;
}

/** Extra output bytes of each ASCII byte in a JSON string (JSON.stringify's escapes). */
const ESCAPE_EXTRA = new Uint8Array(128);
for (let c = 0; c < 0x20; c++) ESCAPE_EXTRA[c] = 5; // \u00XX
for (const c of [0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x22, 0x5c]) ESCAPE_EXTRA[c] = 1;

function writeString(batch: JsonRowBatch, src: Uint8Array, start: number, end: number): boolean {
  // First pass: validate, and size the escapes so the copy can be a straight one.
  let extra = 0;
  for (let i = start; i < end;) {
    const c = src[i];
    if (c < 0x80) {
      extra += ESCAPE_EXTRA[c];
      i++;
    } else {
      const n = utf8Sequence(src, i, end);
      if (n === 0) return false;
      i += n;
    }
  }
  batch.room(end - start + extra + 2);
  const out = batch.bytes;
  let o = batch.length;
  out[o++] = 0x22;
  if (extra === 0) o = copyBytes(out, o, src, start, end);
  else {
    for (let i = start; i < end; i++) {
      const c = src[i];
      if (c >= 0x80 || ESCAPE_EXTRA[c] === 0) out[o++] = c;
      else o = writeJsonEscape(out, o, c);
    }
  }
  out[o++] = 0x22;
  batch.length = o;
  return true;
}

const B64 = new TextEncoder().encode(
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
);

function writeBase64(batch: JsonRowBatch, src: Uint8Array, start: number, end: number): boolean {
  batch.room(Math.ceil((end - start) / 3) * 4 + 2);
  const out = batch.bytes;
  let o = batch.length;
  out[o++] = 0x22;
  let i = start;
  for (; i + 2 < end; i += 3) {
    const v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2];
    out[o++] = B64[v >> 18];
    out[o++] = B64[(v >> 12) & 63];
    out[o++] = B64[(v >> 6) & 63];
    out[o++] = B64[v & 63];
  }
  if (end - i === 1) {
    const v = src[i] << 16;
    out[o++] = B64[v >> 18];
    out[o++] = B64[(v >> 12) & 63];
    out[o++] = 0x3d;
    out[o++] = 0x3d;
  } else if (end - i === 2) {
    const v = (src[i] << 16) | (src[i + 1] << 8);
    out[o++] = B64[v >> 18];
    out[o++] = B64[(v >> 12) & 63];
    out[o++] = B64[(v >> 6) & 63];
    out[o++] = 0x3d;
  }
  out[o++] = 0x22;
  batch.length = o;
  return true;
}

/**
 * DOUBLE text copied as is when `String(Number(text))` gives it back: plain decimal notation
 * (`-`, integer digits without leading zeros, an optional fraction without trailing zeros),
 * at most 15 significant digits (so no shorter decimal reads back as the same double, and
 * JavaScript prints exactly these digits), and a magnitude JavaScript prints without an
 * exponent (below 1e21, at least 1e-6). Anything else (exponents, 17-digit values) goes
 * through the decoder.
 */
function writeDouble(batch: JsonRowBatch, src: Uint8Array, start: number, end: number): boolean {
  let i = start;
  if (i < end && src[i] === 0x2d) i++;
  const intStart = i;
  while (i < end && src[i] >= 0x30 && src[i] <= 0x39) i++;
  const intDigits = i - intStart;
  if (intDigits === 0 || intDigits > 21) return false;
  const intZero = src[intStart] === 0x30;
  if (intZero && intDigits > 1) return false;
  let significant: number;
  if (i === end) {
    // An integer: its trailing zeros are not significant.
    let last = end - 1;
    while (last > intStart && src[last] === 0x30) last--;
    significant = last - intStart + 1;
  } else {
    if (src[i] !== 0x2e) return false;
    i++;
    const fracStart = i;
    while (i < end && src[i] >= 0x30 && src[i] <= 0x39) i++;
    if (i !== end || i === fracStart || src[end - 1] === 0x30) return false;
    if (intZero) {
      let z = fracStart;
      while (src[z] === 0x30) z++;
      if (z - fracStart > 5) return false; // below 1e-6: JavaScript prints 1e-7
      significant = end - z;
    } else significant = intDigits + (end - fracStart);
  }
  if (significant > 15) return false;
  batch.room(end - start);
  batch.length = copyBytes(batch.bytes, batch.length, src, start, end);
  return true;
}
