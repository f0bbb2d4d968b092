/**
 * Text-protocol result sets of the snapshot read straight into JsonRowBatches: each row
 * packet's length-encoded values become JSON in the batch (mysql_text_bytes.ts) while the
 * packet is still in mysql2's buffer, so no value ever becomes a Buffer or a string.
 *
 * mysql2 still sends the query, parses the column definitions, the EOF and errors; only its
 * row state is replaced, on the Query instance: `fieldsEOF` moves to `this.row`, which is
 * looked up on the instance (mysql2 3.x, lib/commands/query.js). The tests cover this, so a
 * mysql2 upgrade that changes it fails them rather than the snapshot.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type mysql from "mysql2";
import { JsonRowBatch } from "../../core/json_row_batch.ts";
import { SourceError } from "../../core/errors.ts";
import type { MysqlConnection } from "./mysql_endpoint.ts";
import { type TextWriter, textWriterOf, writeTextValue } from "./mysql_text_bytes.ts";
import {
  type MysqlColumnType,
  mysqlSnapshotDecoder,
  type SnapshotValueDecoder,
} from "./mysql_value_decoder.ts";

/** The callback connection under a promise one: the one that takes Query commands. */
export function coreConnection(conn: MysqlConnection): mysql.Connection {
  return (conn as unknown as { connection: mysql.Connection }).connection;
}

/** The parts of mysql2's Packet the row reader touches. */
interface RowPacket {
  buffer: Uint8Array;
  start: number;
  offset: number;
  end: number;
  isEOF(): boolean;
}

type RowState = (this: unknown, packet: RowPacket, connection: unknown) => unknown;

/** The parts of mysql2's Query command the row reader touches. */
interface QueryCommand {
  row: RowState;
  _fieldCount: number;
}

/**
 * Row reader of one table for one connection. Two batches circulate: the one the consumer
 * holds and the one being filled; when both hold rows the consumer has not taken, the socket
 * is paused, so the reader is never more than about one chunk ahead of the consumer (and
 * the server waits in its send buffer). A batch handed out by `next()` is reused after the
 * consumer's next call to `next()` on any query of this reader.
 */
export class MysqlTextRows {
  readonly #writers: TextWriter[];
  readonly #decoders: SnapshotValueDecoder[];
  readonly #free: JsonRowBatch[];
  #lent: JsonRowBatch | null = null;
  #paused = false;
  /** Queries whose result is still coming. */
  readonly #running = new Set<MysqlTextQuery>();

  constructor(
    private readonly connection: mysql.Connection,
    private readonly types: readonly MysqlColumnType[],
    /** Columns whose last values `MysqlTextQuery.lastKey()` gives back. */
    private readonly keyColumns: readonly number[] = [],
  ) {
    this.#writers = types.map(textWriterOf);
    this.#decoders = types.map(mysqlSnapshotDecoder);
    this.#free = [new JsonRowBatch(types.length), new JsonRowBatch(types.length)];
  }

  /**
   * Runs `sql` (with `?` placeholders filled from `values` by mysql2) on the connection,
   * after whatever it runs already; its rows come out of the query's `next()` in batches of
   * `chunkRows`.
   */
  query(sql: string, values: unknown[], chunkRows: number): MysqlTextQuery {
    const q = new MysqlTextQuery(this, sql, values, chunkRows);
    this.#running.add(q);
    return q;
  }

  /**
   * The consumer stops early: the rest of every running query is read and dropped (at most
   * about a chunk on the keyset path), which leaves the connection usable.
   */
  abandon(): void {
    for (const q of this.#running) q.abandon();
    this.#running.clear();
    this.#lent = null;
    this.resumeSocket();
  }

  // ------------------------------------------------------------ for MysqlTextQuery

  get writers(): TextWriter[] {
    return this.#writers;
  }
  get decoders(): SnapshotValueDecoder[] {
    return this.#decoders;
  }
  get keys(): readonly number[] {
    return this.keyColumns;
  }
  get conn(): mysql.Connection {
    return this.connection;
  }

  finished(q: MysqlTextQuery): void {
    this.#running.delete(q);
  }

  /** A reset batch to fill, or null when both are taken. */
  takeBatch(): JsonRowBatch | null {
    const b = this.#free.pop();
    if (!b) return null;
    b.reset();
    return b;
  }

  /** The consumer takes `b`; the one it held before is free again. */
  lend(b: JsonRowBatch): void {
    this.release();
    this.#lent = b;
  }

  /** The consumer is done with the batch it holds. */
  release(): void {
    if (this.#lent) {
      this.#free.push(this.#lent);
      this.#lent = null;
      this.resumeSocket();
    }
  }

  /** A batch a query took and did not fill. */
  putBack(b: JsonRowBatch): void {
    this.#free.push(b);
  }

  /** A query whose batch just filled up: pause the socket if no batch is left to fill. */
  pauseIfNoBatch(): void {
    if (this.#free.length === 0 && !this.#paused) {
      this.#paused = true;
      this.connection.pause();
    }
  }

  resumeSocket(): void {
    if (this.#paused) {
      this.#paused = false;
      // Replays the packets mysql2 queued while paused, synchronously.
      this.connection.resume();
    }
  }
}

/** One running query of a MysqlTextRows. */
export class MysqlTextQuery {
  readonly #writers: TextWriter[];
  readonly #decoders: SnapshotValueDecoder[];
  /** Per column, its position in the key, or -1. */
  readonly #keySlot: Int32Array;
  #filling: JsonRowBatch | null = null;
  #ready: JsonRowBatch[] = [];
  #done = false;
  #error: unknown = null;
  #discard = false;
  #wake: (() => void) | null = null;
  /** Raw bytes of the key values of the last row; per key column its span, start -1 for NULL. */
  #keyBytes = new Uint8Array(64);
  #keyStarts: Int32Array;
  #keyEnds: Int32Array;
  #rowsSeen = 0;

  constructor(
    private readonly rows: MysqlTextRows,
    sql: string,
    values: unknown[],
    private readonly chunkRows: number,
  ) {
    this.#writers = rows.writers;
    this.#decoders = rows.decoders;
    this.#keySlot = new Int32Array(this.#writers.length).fill(-1);
    rows.keys.forEach((c, i) => this.#keySlot[c] = i);
    this.#keyStarts = new Int32Array(rows.keys.length);
    this.#keyEnds = new Int32Array(rows.keys.length);
    const cmd = rows.conn.query(
      { sql, values, rowsAsArray: true },
      (err: unknown) => {
        if (err) this.#error = err;
        this.#finish();
      },
    ) as unknown as QueryCommand;
    const original = cmd.row;
    if (typeof original !== "function") {
      throw new SourceError("mysql2's Query has no row state: unsupported mysql2 version");
    }
    const ownRow: RowState = function (this: unknown, packet, connection) {
      // The EOF ends the command and calls back, as mysql2 does it.
      if (packet.isEOF()) return original.call(this, packet, connection);
      read(packet);
      return ownRow;
    };
    const read = (packet: RowPacket) => {
      if (this.#rowsSeen++ === 0 && cmd._fieldCount !== this.#writers.length) {
        throw new SourceError(
          `The snapshot query returned ${cmd._fieldCount} columns, expected ${this.#writers.length}`,
        );
      }
      if (!this.#discard) this.#readRow(packet);
    };
    cmd.row = ownRow;
  }

  /**
   * The next batch of up to `chunkRows` rows (only the last one may be shorter), or null when
   * the result is read. Frees the batch the consumer took before.
   */
  async next(): Promise<JsonRowBatch | null> {
    this.rows.release();
    for (;;) {
      if (this.#error) throw this.#error;
      const full = this.#ready.shift();
      if (full) {
        this.rows.lend(full);
        return full;
      }
      if (this.#done) {
        const last = this.#filling;
        this.#filling = null;
        if (last && last.rows > 0) {
          this.rows.lend(last);
          return last;
        }
        if (last) this.rows.putBack(last);
        return null;
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** Whether the server finished sending the result (or the query failed). */
  get done(): boolean {
    return this.#done;
  }

  /** Rows the result had so far. */
  get rowCount(): number {
    return this.#rowsSeen;
  }

  /** The key values (raw text-protocol bytes, in key order) of the last row; null before any. */
  lastKey(): (Buffer | null)[] | null {
    if (this.#rowsSeen === 0) return null;
    const out: (Buffer | null)[] = [];
    for (let i = 0; i < this.#keyStarts.length; i++) {
      const s = this.#keyStarts[i];
      out.push(s < 0 ? null : Buffer.from(this.#keyBytes.slice(s, this.#keyEnds[i])));
    }
    return out;
  }

  /** The rest of the result is read and dropped; the connection stays usable. */
  abandon(): void {
    this.#discard = true;
    this.#ready = [];
    this.#filling = null;
  }

  #finish(): void {
    this.#done = true;
    this.rows.finished(this);
    this.#wakeUp();
  }

  #wakeUp(): void {
    const w = this.#wake;
    if (w) {
      this.#wake = null;
      w();
    }
  }

  #readRow(packet: RowPacket): void {
    let batch = this.#filling;
    if (!batch) {
      batch = this.rows.takeBatch();
      if (!batch) throw new SourceError("MysqlTextRows: a row arrived with no batch to fill");
      this.#filling = batch;
    }
    const writers = this.#writers, decoders = this.#decoders, keySlot = this.#keySlot;
    const n = writers.length;
    const buf = packet.buffer;
    let p = packet.offset;
    let kb = 0;
    for (let c = 0; c < n; c++) {
      let len = buf[p++];
      if (len === 0xfb) {
        batch.pushNull();
        if (keySlot[c] >= 0) this.#keyStarts[keySlot[c]] = -1;
        continue;
      }
      if (len >= 0xfc) {
        if (len === 0xfc) {
          len = buf[p] | (buf[p + 1] << 8);
          p += 2;
        } else if (len === 0xfd) {
          len = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16);
          p += 3;
        } else {
          len = buf[p] + buf[p + 1] * 0x100 + buf[p + 2] * 0x10000 + buf[p + 3] * 0x1000000 +
            (buf[p + 4] + buf[p + 5] * 0x100 + buf[p + 6] * 0x10000 + buf[p + 7] * 0x1000000) *
              0x100000000;
          p += 8;
        }
      }
      writeTextValue(batch, writers[c], buf, p, p + len, decoders[c]);
      if (keySlot[c] >= 0) kb = this.#keepKey(keySlot[c], kb, buf, p, len);
      p += len;
    }
    if (p !== packet.end) {
      throw new SourceError(`A row packet has ${packet.end - p} bytes beyond its values`);
    }
    batch.endRow();
    if (batch.rows === this.chunkRows) {
      this.#ready.push(batch);
      this.#filling = null;
      this.rows.pauseIfNoBatch();
      this.#wakeUp();
    }
  }

  #keepKey(slot: number, at: number, buf: Uint8Array, p: number, len: number): number {
    if (at + len > this.#keyBytes.length) {
      const grown = new Uint8Array(Math.max(this.#keyBytes.length * 2, at + len));
      grown.set(this.#keyBytes.subarray(0, at));
      this.#keyBytes = grown;
    }
    const kb = this.#keyBytes;
    for (let j = 0; j < len; j++) kb[at + j] = buf[p + j];
    this.#keyStarts[slot] = at;
    this.#keyEnds[slot] = at + len;
    return at + len;
  }
}
