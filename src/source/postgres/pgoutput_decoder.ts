/**
 * pgoutput (logical replication protocol v1) messages decoded to raw text values. Pure.
 *
 * pg-logical-replication's own parser turns values into JS objects with node-postgres'
 * global type parsers (dates, numbers) and loses the difference between NULL and an
 * unchanged TOAST value. Replicant needs PostgreSQL's exact text for its lossless decoders,
 * so this parser keeps each value as its bytes in the message (RawTuple): text, SQL NULL,
 * or an unchanged TOAST value not sent (kind `u`).
 */
import type { Buffer } from "node:buffer";

/** One column value: text, SQL NULL, or `undefined` for an unchanged TOAST value. */
export type RawValue = string | null | undefined;

/** Value kinds of a TupleData column (the protocol's own bytes). */
export const TUPLE_TEXT = 0x74; // t
export const TUPLE_NULL = 0x6e; // n
export const TUPLE_TOAST = 0x75; // u
export const TUPLE_BINARY = 0x62; // b

/**
 * A TupleData as it arrived: each column's kind and the byte range of its text in the
 * message, so values can be written as JSON straight from the bytes (no string per value).
 */
export class RawTuple {
  /** `kind, start, end` per column. */
  readonly refs: number[];
  constructor(readonly buf: Buffer, refs: number[]) {
    this.refs = refs;
  }
  get length(): number {
    return this.refs.length / 3;
  }
  kind(i: number): number {
    return this.refs[3 * i];
  }
  start(i: number): number {
    return this.refs[3 * i + 1];
  }
  end(i: number): number {
    return this.refs[3 * i + 2];
  }
  /** The column's text (binary values as `\x` hex, so nothing is lost). */
  value(i: number): RawValue {
    const r = this.refs, k = r[3 * i];
    if (k === TUPLE_TEXT) return this.buf.toString("utf8", r[3 * i + 1], r[3 * i + 2]);
    if (k === TUPLE_NULL) return null;
    if (k === TUPLE_TOAST) return undefined;
    return "\\x" + this.buf.toString("hex", r[3 * i + 1], r[3 * i + 2]);
  }
  values(): RawValue[] {
    const out: RawValue[] = new Array(this.length);
    for (let i = 0; i < out.length; i++) out[i] = this.value(i);
    return out;
  }
}

export interface RawRelationColumn {
  name: string;
  /** Bit 1: part of the replica identity key. */
  flags: number;
  typeOid: number;
  typeMod: number;
}

export type RawMessage =
  | { tag: "begin"; finalLsn: bigint; commitTimeMs: number; xid: number }
  | { tag: "commit"; commitLsn: bigint; endLsn: bigint; commitTimeMs: number }
  | {
    tag: "relation";
    relationOid: number;
    schema: string;
    name: string;
    replicaIdentity: string;
    columns: RawRelationColumn[];
  }
  | { tag: "insert"; relationOid: number; new: RawTuple; bytes: number }
  | {
    tag: "update";
    relationOid: number;
    key: RawTuple | null;
    old: RawTuple | null;
    new: RawTuple;
    bytes: number;
  }
  | {
    tag: "delete";
    relationOid: number;
    key: RawTuple | null;
    old: RawTuple | null;
    bytes: number;
  }
  | { tag: "truncate"; relationOids: number[]; cascade: boolean; restartIdentity: boolean }
  | { tag: "message"; transactional: boolean; lsn: bigint; prefix: string; content: Uint8Array }
  | { tag: "origin"; lsn: bigint; name: string }
  | { tag: "type"; typeOid: number; schema: string; name: string };

/** Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01. */
const PG_EPOCH_US = 946_684_800_000_000n;

class Reader {
  p = 0;
  readonly #view: DataView;
  constructor(readonly b: Buffer) {
    this.#view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  u8(): number {
    return this.b[this.p++];
  }
  i16(): number {
    const v = this.#view.getInt16(this.p);
    this.p += 2;
    return v;
  }
  u32(): number {
    const v = this.#view.getUint32(this.p);
    this.p += 4;
    return v;
  }
  i32(): number {
    const v = this.#view.getInt32(this.p);
    this.p += 4;
    return v;
  }
  u64(): bigint {
    const v = this.#view.getBigUint64(this.p);
    this.p += 8;
    return v;
  }
  timeMs(): number {
    const us = this.#view.getBigInt64(this.p);
    this.p += 8;
    return Number((us + PG_EPOCH_US) / 1000n);
  }
  str(): string {
    const end = this.b.indexOf(0, this.p);
    if (end < 0) throw new Error("pgoutput: unterminated string");
    const s = this.b.toString("utf8", this.p, end);
    this.p = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    const v = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return v;
  }
  /** A TupleData; returns it and the number of text bytes in it. */
  tuple(): [RawTuple, number] {
    const n = this.i16();
    const refs: number[] = new Array(3 * n);
    const b = this.b;
    let p = this.p;
    let bytes = 0;
    for (let i = 0, j = 0; i < n; i++, j += 3) {
      const kind = b[p++];
      refs[j] = kind;
      if (kind === TUPLE_TEXT || kind === TUPLE_BINARY) {
        const len = (b[p] << 24 | b[p + 1] << 16 | b[p + 2] << 8 | b[p + 3]) >>> 0;
        p += 4;
        refs[j + 1] = p;
        refs[j + 2] = p + len;
        p += len;
        bytes += len;
      } else if (kind === TUPLE_NULL || kind === TUPLE_TOAST) {
        refs[j + 1] = refs[j + 2] = 0;
      } else throw new Error(`pgoutput: unknown tuple value kind ${kind}`);
    }
    this.p = p;
    return [new RawTuple(b, refs), bytes];
  }
}

/** Decodes one pgoutput message (the payload of an XLogData message). */
export function decodePgoutput(buf: Buffer): RawMessage {
  const r = new Reader(buf);
  const tag = r.u8();
  switch (tag) {
    case 0x42: /* B */ {
      const finalLsn = r.u64();
      const commitTimeMs = r.timeMs();
      return { tag: "begin", finalLsn, commitTimeMs, xid: r.u32() };
    }
    case 0x43: /* C */ {
      r.u8();
      const commitLsn = r.u64();
      const endLsn = r.u64();
      return { tag: "commit", commitLsn, endLsn, commitTimeMs: r.timeMs() };
    }
    case 0x52: /* R */ {
      const relationOid = r.u32();
      const schema = r.str();
      const name = r.str();
      const replicaIdentity = String.fromCharCode(r.u8());
      const n = r.i16();
      const columns: RawRelationColumn[] = [];
      for (let i = 0; i < n; i++) {
        const flags = r.u8();
        const cname = r.str();
        columns.push({ flags, name: cname, typeOid: r.u32(), typeMod: r.i32() });
      }
      return { tag: "relation", relationOid, schema, name, replicaIdentity, columns };
    }
    case 0x49: /* I */ {
      const relationOid = r.u32();
      r.u8(); // 'N'
      const [tuple, bytes] = r.tuple();
      return { tag: "insert", relationOid, new: tuple, bytes };
    }
    case 0x55: /* U */ {
      const relationOid = r.u32();
      let key: RawTuple | null = null;
      let old: RawTuple | null = null;
      let bytes = 0;
      let sub = r.u8();
      if (sub === 0x4b /* K */ || sub === 0x4f /* O */) {
        const [t, b] = r.tuple();
        bytes += b;
        if (sub === 0x4b) key = t;
        else old = t;
        sub = r.u8();
      }
      if (sub !== 0x4e) throw new Error(`pgoutput: unexpected update submessage ${sub}`);
      const [tuple, b] = r.tuple();
      return { tag: "update", relationOid, key, old, new: tuple, bytes: bytes + b };
    }
    case 0x44: /* D */ {
      const relationOid = r.u32();
      const sub = r.u8();
      const [t, bytes] = r.tuple();
      return {
        tag: "delete",
        relationOid,
        key: sub === 0x4b ? t : null,
        old: sub === 0x4f ? t : null,
        bytes,
      };
    }
    case 0x54: /* T */ {
      const n = r.u32();
      const flags = r.u8();
      const relationOids: number[] = [];
      for (let i = 0; i < n; i++) relationOids.push(r.u32());
      return {
        tag: "truncate",
        relationOids,
        cascade: (flags & 1) !== 0,
        restartIdentity: (flags & 2) !== 0,
      };
    }
    case 0x4d: /* M */ {
      const flags = r.u8();
      const lsn = r.u64();
      const prefix = r.str();
      const len = r.u32();
      return {
        tag: "message",
        transactional: (flags & 1) !== 0,
        lsn,
        prefix,
        content: r.bytes(len),
      };
    }
    case 0x4f: /* O */ {
      const lsn = r.u64();
      return { tag: "origin", lsn, name: r.str() };
    }
    case 0x59: /* Y */ {
      const typeOid = r.u32();
      const schema = r.str();
      return { tag: "type", typeOid, schema, name: r.str() };
    }
    default:
      throw new Error(`pgoutput: unknown message type ${String.fromCharCode(tag)}`);
  }
}
