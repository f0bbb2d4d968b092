/**
 * Rows of one `COPY (…) TO STDOUT` (text format) straight into JsonRowBatches: a pg
 * Submittable (`client.query(new PgCopyRows(…))`) that splits each CopyData message (one
 * row) into fields and hands every field's bytes to its column's PgByteWriter, so no string
 * is made per value. While the rows stream it reads them off the socket itself (see the
 * take-over below). The socket is paused while a full batch waits for the consumer, which
 * keeps the reader about one chunk ahead of it whatever the size of the result.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { JsonRowBatch } from "../../core/json_row_batch.ts";
import { jsonString, type PgByteWriter, pgJsonRoom, pgText } from "./pg_text_bytes.ts";
import { writeJsonEscape } from "../../core/json_escape.ts";

/** The part of pg's Connection a Submittable uses. */
interface PgConnection {
  query(text: string): void;
  sendCopyFail(message: string): void;
  stream: PgStream;
}

type DataListener = (chunk: Buffer) => void;

/** The connection's socket (TCP or TLS). */
interface PgStream {
  pause(): void;
  resume(): void;
  listeners(event: "data"): unknown[];
  on(event: "data", listener: DataListener): void;
  removeListener(event: "data", listener: DataListener): void;
}

/** Protocol message types read while a COPY is taken over (see PgCopyRows.submit). */
const COPY_DATA = 0x64; // d
const COPY_OUT_RESPONSE = 0x48; // H

const TAB = 9;
const QUOTE = 0x22;
const NEWLINE = 10;
const BACKSLASH = 92;

/** Length field of the protocol message at `pos` (it counts itself, not the type byte). */
function messageLength(b: Uint8Array, pos: number): number {
  return ((b[pos + 1] << 24) | (b[pos + 2] << 16) | (b[pos + 3] << 8) | b[pos + 4]) >>> 0;
}

/** Spare batches kept for the next chunks (one being read, one waiting, one spare). */
const POOL_SIZE = 3;

/** A COPY text escape's byte: `\b \f \n \r \t \v`, or the character itself. */
const ESCAPED = new Uint8Array(256);
for (let c = 0; c < 256; c++) ESCAPED[c] = c;
ESCAPED[0x62] = 8; // b
ESCAPED[0x66] = 12; // f
ESCAPED[0x6e] = 10; // n
ESCAPED[0x72] = 13; // r
ESCAPED[0x74] = 9; // t
ESCAPED[0x76] = 11; // v

const isOctal = (c: number) => c >= 0x30 && c <= 0x37;

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/**
 * The byte of the COPY text escape whose backslash is at `src[i]` (as PostgreSQL's COPY FROM
 * reads them: `\ooo` octal, `\xhh` hex, `\b \f \n \r \t \v`, any other character as
 * itself), in `escapeByte`; returns the index of the escape's last byte.
 */
function readEscape(src: Uint8Array, i: number, e: number): number {
  let c = src[++i];
  if (isOctal(c)) {
    let v = c - 0x30;
    if (i + 1 < e && isOctal(src[i + 1])) {
      v = v * 8 + src[++i] - 0x30;
      if (i + 1 < e && isOctal(src[i + 1])) v = v * 8 + src[++i] - 0x30;
    }
    c = v & 0xff;
  } else if (c === 0x78 /* x */ && i + 1 < e && hexValue(src[i + 1]) >= 0) {
    let v = hexValue(src[++i]);
    if (i + 1 < e && hexValue(src[i + 1]) >= 0) v = v * 16 + hexValue(src[++i]);
    c = v;
  } else c = ESCAPED[c];
  escapeByte = c;
  return i;
}
/** readEscape's second result, read at once by its synchronous caller: no state between calls. */
let escapeByte = 0;

/** Undoes COPY's text escapes of `src[s, e)` into `dst` from 0; returns the length. */
export function unescapeCopyText(src: Uint8Array, s: number, e: number, dst: Uint8Array): number {
  let p = 0;
  for (let i = s; i < e; i++) {
    const c = src[i];
    if (c === BACKSLASH && i + 1 < e) {
      i = readEscape(src, i, e);
      dst[p++] = escapeByte;
    } else dst[p++] = c;
  }
  return p;
}

interface Waiter {
  resolve(batch: JsonRowBatch | null): void;
  reject(err: Error): void;
}

export class PgCopyRows {
  /**
   * Key values as text (COPY's escapes undone; null for NULL) of the last row of the last
   * full batch: where the next keyset chunk starts.
   */
  lastKey: (string | null)[] | null = null;
  /** Rows parsed so far. */
  rows = 0;
  /** Settles once the connection is free again (ReadyForQuery), or with the COPY's error. */
  readonly finished: Promise<void>;
  #finish!: () => void;
  #fail!: (err: Error) => void;
  #done = false;

  readonly #writers: PgByteWriter[];
  readonly #keyColumns: readonly number[];
  readonly #chunkRows: number;
  readonly #pool: JsonRowBatch[];
  #current: JsonRowBatch | null = null;
  readonly #ready: JsonRowBatch[] = [];
  #waiter: Waiter | null = null;
  /** All rows are parsed (CommandComplete). */
  #ended = false;
  #error: Error | null = null;
  #connection: PgConnection | null = null;
  #paused = false;
  #discarding = false;
  /** Where each field of the row being parsed starts and ends (-1: NULL). */
  readonly #fieldStart: Int32Array;
  readonly #fieldEnd: Int32Array;
  /** 1 for the columns written as JSON strings, which are parsed in one pass. */
  readonly #strings: Uint8Array;
  #scratch = new Uint8Array(256);

  /**
   * `text`: the COPY statement; `writers`: one per column of its result; `keyColumns`: the
   * columns whose values `lastKey` keeps; rows come in batches of `chunkRows`; `pool` holds
   * spare batches (shared by the COPYs of one table; give batches back with `release`).
   * `takeOver: false` leaves the rows to pg's parser (slower; for tests of both paths).
   */
  constructor(
    readonly text: string,
    writers: PgByteWriter[],
    keyColumns: readonly number[],
    chunkRows: number,
    pool: JsonRowBatch[] = [],
    private readonly takeOver = true,
  ) {
    this.#writers = writers;
    this.#keyColumns = keyColumns;
    this.#chunkRows = chunkRows;
    this.#pool = pool;
    this.#fieldStart = new Int32Array(writers.length);
    this.#fieldEnd = new Int32Array(writers.length);
    this.#strings = Uint8Array.from(writers, (w) => w === jsonString ? 1 : 0);
    this.finished = new Promise<void>((resolve, reject) => {
      this.#finish = resolve;
      this.#fail = reject;
    });
    // Looked at by whoever awaits it; a COPY nobody waits for must not crash the process.
    this.finished.catch(() => {});
  }

  /** True while reading stops because a full batch waits for the consumer. */
  get paused(): boolean {
    return this.#paused;
  }

  /** True once the connection is free again (or the COPY failed). */
  get done(): boolean {
    return this.#done;
  }

  /**
   * The next batch of up to `chunkRows` rows (only the last one is smaller), or null after
   * the last. The batch stays the caller's until it calls `release` with it.
   */
  next(): Promise<JsonRowBatch | null> {
    if (this.#ready.length > 0) {
      const batch = this.#ready.shift()!;
      this.#resume();
      return Promise.resolve(batch);
    }
    if (this.#error) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  /** Gives a batch back for later chunks. */
  release(batch: JsonRowBatch): void {
    if (this.#pool.length < POOL_SIZE && batch.columns === this.#writers.length) {
      batch.reset();
      this.#pool.push(batch);
    }
  }

  /**
   * Stops delivering rows: the rest of the result is read and dropped, so the connection
   * can serve the next query once `finished` settles.
   */
  discard(): Promise<void> {
    this.#discarding = true;
    this.#ready.length = 0;
    this.#current = null;
    this.#resume();
    return this.finished.catch(() => {});
  }

  // ------------------------------------------------------------- pg Submittable

  submit(connection: PgConnection): void {
    this.#connection = connection;
    connection.query(this.text);
    if (this.takeOver) this.#takeOver(connection.stream);
  }

  /** A row pg parsed itself (before or without the take-over). */
  handleCopyData(msg: { chunk: Buffer }): void {
    this.#copyData(msg.chunk, 0, msg.chunk.length);
  }

  handleCommandComplete(): void {
    const batch = this.#current;
    this.#current = null;
    if (batch !== null && batch.rows > 0 && !this.#discarding) this.#push(batch);
    this.#ended = true;
    this.#wake();
  }

  handleReadyForQuery(): void {
    this.#ended = true;
    this.#wake();
    this.#done = true;
    if (this.#error) this.#fail(this.#error);
    else this.#finish();
  }

  handleError(err: Error): void {
    this.#setError(err);
    this.#resume();
    // pg does not call handleReadyForQuery after an error: the query is over.
    this.#done = true;
    this.#fail(err);
  }

  handleCopyInResponse(connection: PgConnection): void {
    connection.sendCopyFail("replicant only reads");
  }

  handleRowDescription(): void {
    this.#setError(new Error(`not a COPY … TO STDOUT statement: ${this.text}`));
  }

  handleDataRow(): void {}

  handleEmptyQuery(): void {}

  handlePortalSuspended(): void {}

  // --------------------------------------------------------------------- rows

  #setError(err: Error): void {
    this.#error ??= err;
    const w = this.#waiter;
    if (w !== null) {
      this.#waiter = null;
      w.reject(this.#error);
    }
  }

  /** Hands a waiting consumer the next batch, or null after the last. */
  #wake(): void {
    const w = this.#waiter;
    if (w === null) return;
    if (this.#ready.length > 0) {
      this.#waiter = null;
      w.resolve(this.#ready.shift()!);
      this.#resume();
    } else if (this.#error) {
      this.#waiter = null;
      w.reject(this.#error);
    } else if (this.#ended) {
      this.#waiter = null;
      w.resolve(null);
    }
  }

  #push(batch: JsonRowBatch): void {
    this.#ready.push(batch);
    this.#wake();
    // A whole chunk waits for the consumer: read no further until it takes it.
    if (this.#ready.length > 0 && !this.#paused && this.#connection !== null) {
      this.#paused = true;
      this.#connection.stream.pause();
    }
  }

  #resume(): void {
    if (this.#paused && this.#ready.length === 0) {
      this.#paused = false;
      this.#connection!.stream.resume();
    }
  }

  #batch(): JsonRowBatch {
    return this.#current ??= this.#pool.pop() ??
      new JsonRowBatch(
        this.#writers.length,
        64 * 1024,
        Math.min(this.#chunkRows, 10_000) * this.#writers.length,
      );
  }

  /** One row, `src[s, e)`; a row that fails to parse fails the COPY. */
  #copyData(src: Buffer, s: number, e: number): void {
    if (this.#discarding || this.#error) return;
    try {
      this.#row(src, s, e);
    } catch (err) {
      // A row that does not parse: nothing after it can be trusted either.
      this.#discarding = true;
      this.#setError(err as Error);
    }
  }

  // --------------------------------------------------------------- take-over
  //
  // pg's parser copies every socket chunk into its own buffer and makes a message object and
  // a Buffer view per row: about a fifth of the snapshot's time. While the COPY's rows
  // stream, they are read from the socket's chunks here instead. Only CopyOutResponse and
  // CopyData are taken: at the first other message (CopyDone, an error, a notice…) pg's
  // listeners are put back and given the rest, so pg sees the end of the COPY as usual. A
  // response that does not start with CopyOutResponse is left to pg whole (rows, if any,
  // then come through handleCopyData).

  #stream: PgStream | null = null;
  #pgListeners: DataListener[] = [];
  readonly #onData = (chunk: Buffer) => this.#take(chunk);
  /** A message cut at the end of a chunk. */
  #carry = new Uint8Array(1024);
  #carried = 0;
  #started = false;

  #takeOver(stream: PgStream): void {
    if (typeof stream.listeners !== "function") return;
    this.#stream = stream;
    this.#pgListeners = stream.listeners("data") as DataListener[];
    for (const l of this.#pgListeners) stream.removeListener("data", l);
    stream.on("data", this.#onData);
  }

  /** Puts pg's listeners back and hands them `rest`. */
  #handBack(rest: Buffer): void {
    const stream = this.#stream!;
    this.#stream = null;
    stream.removeListener("data", this.#onData);
    for (const l of this.#pgListeners) stream.on("data", l);
    if (rest.length > 0) { for (const l of this.#pgListeners) l(rest); }
  }

  #take(chunk: Buffer): void {
    let pos = 0;
    if (!this.#started) {
      this.#started = true;
      if (chunk[0] !== COPY_OUT_RESPONSE) return this.#handBack(chunk);
    }
    if (this.#carried > 0) {
      pos = this.#completeCarried(chunk);
      if (pos < 0) return;
    }
    const end = chunk.length;
    while (pos + 5 <= end) {
      const type = chunk[pos];
      if (type !== COPY_DATA && type !== COPY_OUT_RESPONSE) {
        return this.#handBack(chunk.subarray(pos));
      }
      const next = pos + 1 + messageLength(chunk, pos);
      if (next > end) break;
      if (type === COPY_DATA) this.#copyData(chunk, pos + 5, next);
      pos = next;
    }
    if (pos < end) this.#keep(chunk, pos, end);
  }

  /**
   * Adds the start of `chunk` to the carried message; once it is whole, handles it and
   * returns where the rest of `chunk` starts, else -1 (all of `chunk` carried).
   */
  #completeCarried(chunk: Buffer): number {
    let pos = 0;
    if (this.#carried < 5) {
      pos = Math.min(5 - this.#carried, chunk.length);
      this.#keep(chunk, 0, pos);
      if (this.#carried < 5) return -1;
    }
    const carry = this.#carry;
    const type = carry[0];
    if (type !== COPY_DATA && type !== COPY_OUT_RESPONSE) {
      // Not ours: pg gets the carried bytes and everything after them.
      const rest = Buffer.concat([carry.subarray(0, this.#carried), chunk.subarray(pos)]);
      this.#carried = 0;
      this.#handBack(rest);
      return -1;
    }
    const total = 1 + messageLength(carry, 0);
    const take = Math.min(total - this.#carried, chunk.length - pos);
    this.#keep(chunk, pos, pos + take);
    pos += take;
    if (this.#carried < total) return -1;
    this.#carried = 0;
    if (type === COPY_DATA) this.#copyData(this.#carry as Buffer, 5, total);
    return pos;
  }

  #keep(chunk: Buffer, s: number, e: number): void {
    const need = this.#carried + e - s;
    if (need > this.#carry.length) {
      const grown = new Uint8Array(Math.max(need, 2 * this.#carry.length));
      grown.set(this.#carry.subarray(0, this.#carried));
      this.#carry = grown;
    }
    this.#carry.set(chunk.subarray(s, e), this.#carried);
    this.#carried = need;
  }

  // --------------------------------------------------------------------- rows

  /** Parses one row (`field\tfield…\n`, `src[s0, e)`) into the current batch. */
  #row(src: Buffer, s0: number, e: number): void {
    const batch = this.#batch();
    const writers = this.#writers;
    const n = writers.length;
    const strings = this.#strings;
    const starts = this.#fieldStart;
    const ends = this.#fieldEnd;
    // Room for the JSON of every field of the row (see PgByteWriter).
    batch.room(pgJsonRoom(e - s0) + 8 * n);
    let i = s0;
    for (let c = 0; c < n; c++) {
      const s = i;
      if (src[i] === BACKSLASH && src[i + 1] === 0x4e /* N */) {
        // `\N` alone is NULL (a value `\N` would be `\\N`).
        batch.pushNull();
        starts[c] = -1;
        i += 2;
      } else if (strings[c] === 1) {
        i = this.#stringField(src, i, e, batch);
        starts[c] = s;
        ends[c] = i;
      } else {
        let escaped = false;
        for (;;) {
          const ch = src[i];
          if (ch === TAB || ch === NEWLINE) break;
          if (ch === BACKSLASH) {
            escaped = true;
            i++;
          }
          if (++i >= e) throw this.#malformed(src, s0, e);
        }
        starts[c] = s;
        ends[c] = i;
        if (!escaped) writers[c](src, s, i, batch);
        else {
          if (this.#scratch.length < i - s) this.#scratch = new Uint8Array(2 * (i - s));
          writers[c](this.#scratch, 0, unescapeCopyText(src, s, i, this.#scratch), batch);
        }
      }
      if (src[i] !== (c === n - 1 ? NEWLINE : TAB)) throw this.#malformed(src, s0, e);
      i++;
    }
    if (n === 0 && src[i++] !== NEWLINE) throw this.#malformed(src, s0, e);
    if (i !== e) throw this.#malformed(src, s0, e);
    batch.endRow();
    this.rows++;
    if (batch.rows >= this.#chunkRows) {
      this.lastKey = this.#keyColumns.map((c) => this.#fieldText(src, c));
      this.#current = null;
      this.#push(batch);
    }
  }

  /**
   * A text field (COPY text from `src[i]` to its tab or newline) as a JSON string, escapes
   * of both formats handled in one pass; returns the index of the field's end. The same
   * bytes as undoing COPY's escapes and then `jsonString`.
   */
  #stringField(src: Buffer, i: number, e: number, batch: JsonRowBatch): number {
    const b = batch.bytes;
    let p = batch.length;
    b[p++] = QUOTE;
    for (;;) {
      let c = src[i];
      if (c >= 0x20 && c !== QUOTE && c !== BACKSLASH) {
        b[p++] = c;
        i++;
        continue;
      }
      if (c === TAB || c === NEWLINE) break;
      if (i >= e - 1) throw this.#malformed(src, i, e); // no newline at the end
      if (c === BACKSLASH) {
        i = readEscape(src, i, e);
        c = escapeByte;
      }
      if (c >= 0x20 && c !== QUOTE && c !== BACKSLASH) b[p++] = c;
      else p = writeJsonEscape(b, p, c);
      i++;
    }
    b[p++] = QUOTE;
    batch.length = p;
    batch.endFragment();
    return i;
  }

  /** Field `c` of the row just parsed as text (null for NULL). */
  #fieldText(src: Buffer, c: number): string | null {
    const s = this.#fieldStart[c];
    if (s < 0) return null;
    const e = this.#fieldEnd[c];
    if (this.#scratch.length < e - s) this.#scratch = new Uint8Array(2 * (e - s));
    return pgText(this.#scratch, 0, unescapeCopyText(src, s, e, this.#scratch));
  }

  #malformed(src: Uint8Array, s: number, e: number): Error {
    const shown = pgText(src, s, Math.min(e, s + 200));
    return new Error(
      `COPY row ${this.rows + 1} does not have the ${this.#writers.length} column(s) ` +
        `expected: ${JSON.stringify(shown)}`,
    );
  }
}
