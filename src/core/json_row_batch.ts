import type { RowFragments } from "./change_event.ts";
import { writeJsonEscape } from "./json_escape.ts";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/**
 * Rows of one table as UTF-8 JSON fragments in one byte buffer: the snapshot's unit between
 * a source and the encoder. A source writes each value's JSON straight from the bytes it
 * read (no string per value), the encoder copies the bytes into entries, and the batch is
 * reused chunk after chunk, so reading a table allocates almost nothing per row.
 *
 * Fragment `k` (row `k / columns`, column `k % columns`) spans `bytes[start(k), end(k))`.
 * Writers append to `bytes` at `length` after `room(n)`, then call `endFragment()`; after
 * the last column of a row, `endRow()`.
 */
export class JsonRowBatch {
  bytes: Uint8Array;
  /** Bytes used. */
  length = 0;
  /** End offset of each fragment written so far. */
  ends: Int32Array;
  fragments = 0;
  rows = 0;

  constructor(readonly columns: number, initialBytes = 64 * 1024, initialFragments = 1024) {
    this.bytes = new Uint8Array(initialBytes);
    this.ends = new Int32Array(Math.max(initialFragments, columns));
  }

  /** Makes room for `n` more bytes at `length` (the buffer may move: re-read `bytes`). */
  room(n: number): void {
    const need = this.length + n;
    if (need <= this.bytes.length) return;
    let size = Math.max(1024, this.bytes.length * 2);
    while (size < need) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }

  /** Ends the fragment being written at `length`. */
  endFragment(): void {
    if (this.fragments === this.ends.length) {
      const grown = new Int32Array(Math.max(64, this.ends.length * 2));
      grown.set(this.ends);
      this.ends = grown;
    }
    this.ends[this.fragments++] = this.length;
  }

  /** Appends a whole fragment given as text. */
  pushFragment(json: string): void {
    const n = json.length;
    this.room(n * 3);
    const b = this.bytes;
    let p = this.length;
    // Fragments are short and mostly ASCII: a loop costs less than a view and encodeInto.
    for (let i = 0; i < n; i++) {
      const c = json.charCodeAt(i);
      if (c >= 0x80) {
        p += utf8.encodeInto(json.slice(i), b.subarray(p)).written;
        break;
      }
      b[p++] = c;
    }
    this.length = p;
    this.endFragment();
  }

  /** Appends `s` as a JSON string, as `pushFragment(JSON.stringify(s))` does. */
  pushJsonString(s: string): void {
    const n = s.length;
    this.room(n * 6 + 2);
    const b = this.bytes;
    let p = this.length;
    b[p++] = QUOTE;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        // Non-ASCII (and lone surrogates, which JSON.stringify escapes): its rules.
        this.pushFragment(JSON.stringify(s));
        return;
      }
      if (c < 0x20 || c === QUOTE || c === BACKSLASH) p = writeJsonEscape(b, p, c);
      else b[p++] = c;
    }
    b[p++] = QUOTE;
    this.length = p;
    this.endFragment();
  }

  /** Appends `null`. */
  pushNull(): void {
    this.room(4);
    const b = this.bytes;
    const at = this.length;
    b[at] = 0x6e; // n
    b[at + 1] = 0x75; // u
    b[at + 2] = 0x6c; // l
    b[at + 3] = 0x6c; // l
    this.length = at + 4;
    this.endFragment();
  }

  /** Ends a row; every row has exactly `columns` fragments. */
  endRow(): void {
    this.rows++;
    if (this.fragments !== this.rows * this.columns) {
      throw new Error(
        `JsonRowBatch: row ${this.rows - 1} has ${
          this.fragments - (this.rows - 1) * this.columns
        } fragments, expected ${this.columns}`,
      );
    }
  }

  /** Start offset of fragment `k`. */
  start(k: number): number {
    return k === 0 ? 0 : this.ends[k - 1];
  }

  /** End offset of fragment `k`. */
  end(k: number): number {
    return this.ends[k];
  }

  /** Fragment `k` as text. */
  text(k: number): string {
    return utf8Decoder.decode(this.bytes.subarray(this.start(k), this.ends[k]));
  }

  /** Whether fragments `a` and `b` are the same bytes. */
  sameFragment(a: number, b: number): boolean {
    const sa = this.start(a), sb = this.start(b);
    const len = this.ends[a] - sa;
    if (this.ends[b] - sb !== len) return false;
    const bytes = this.bytes;
    for (let i = 0; i < len; i++) if (bytes[sa + i] !== bytes[sb + i]) return false;
    return true;
  }

  /** Row `r` as text fragments. */
  row(r: number): RowFragments {
    const out: RowFragments = new Array(this.columns);
    for (let c = 0, k = r * this.columns; c < this.columns; c++, k++) out[c] = this.text(k);
    return out;
  }

  /** The rows as text fragments (for paths that still take strings, and for tests). */
  toRows(): RowFragments[] {
    const out: RowFragments[] = new Array(this.rows);
    for (let r = 0; r < this.rows; r++) out[r] = this.row(r);
    return out;
  }

  /** Empties the batch for the next chunk; the buffers are kept. */
  reset(): void {
    this.length = 0;
    this.fragments = 0;
    this.rows = 0;
  }

  /** A batch of rows given as text fragments. */
  static fromRows(columns: number, rows: readonly RowFragments[]): JsonRowBatch {
    const batch = new JsonRowBatch(columns, 1024, Math.max(1, rows.length * columns));
    for (const row of rows) {
      for (const f of row) batch.pushFragment(f);
      batch.endRow();
    }
    return batch;
  }
}

/** The batch of events without rows (truncate). */
export const NO_ROWS: JsonRowBatch = new JsonRowBatch(0, 0, 0);
