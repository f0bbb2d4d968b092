/**
 * Binlog positions (pure): sort keys, checkpoint tokens, `SHOW MASTER STATUS` rows and GTID
 * sets of both flavours (MariaDB `domain-server-seq` lists, MySQL `uuid:1-5:7` sets).
 *
 * @module
 */

import type { PositionField } from "../../core/entry_encoder.ts";
import { SourceError } from "../../core/errors.ts";

/** A binlog coordinate: file, byte position, and the GTID set executed up to it (if any). */
export interface BinlogCoordinate {
  file: string;
  pos: number;
  /** GTID set/position after this point: MariaDB `0-1-6,1-2-9`, MySQL `uuid:1-7,uuid2:1-3`. */
  gtid?: string;
}

/** The numeric suffix of a binlog file name (`binlog.000042` → 42). */
export function binlogFileSequence(file: string): number {
  const m = /\.(\d+)$/.exec(file);
  if (!m) throw new SourceError(`Unexpected binlog file name ${JSON.stringify(file)}`);
  return Number(m[1]);
}

function pad(n: number | string, width: number): string {
  const s = String(n);
  return s.length >= width ? s : "0".repeat(width - s.length) + s;
}

/**
 * Sort key of a change: binlog file sequence (10 digits), the transaction's position (20
 * digits), the change's order within the transaction (10 digits). Strings compare like
 * the positions.
 */
export function mysqlSortKey(file: string, pos: number, row: number): string {
  return pad(binlogFileSequence(file), 10) + pad(pos, 20) + pad(row, 10);
}

/**
 * Sort key at or below which every change is covered by a snapshot taken at `coordinate`
 * (a transaction starting at or after the snapshot's binlog position is not in it): so the
 * rule "skip changes whose sortKey ≤ the table's mark" works for snapshot marks and stream
 * tails alike.
 */
export function snapshotSkipThrough(coordinate: BinlogCoordinate): string {
  const seq = binlogFileSequence(coordinate.file);
  return coordinate.pos > 0
    ? pad(seq, 10) + pad(coordinate.pos - 1, 20) + "9".repeat(10)
    : pad(seq - 1, 10) + "9".repeat(30);
}

/** Schema of the position fields a MySQL/MariaDB change adds to `source`. */
export const MYSQL_POSITION_FIELDS: readonly PositionField[] = [
  ["server_id", "int64"],
  ["gtid", "string"],
  ["file", "string"],
  ["pos", "int64"],
  ["row", "int32"],
];

/** The `source` position fields of a MySQL change (docs/entry-format.md). */
export function mysqlPositionFields(
  serverId: number,
  gtid: string | undefined,
  file: string,
  pos: number,
  row: number,
): string {
  return `"server_id":${serverId},` + (gtid ? `"gtid":${JSON.stringify(gtid)},` : "") +
    `"file":${JSON.stringify(file)},"pos":${pos},"row":${row}`;
}

/** Checkpoint token of a transaction: where to resume right after it. */
export function formatCheckpoint(c: BinlogCoordinate): string {
  return JSON.stringify(
    c.gtid !== undefined && c.gtid !== ""
      ? { file: c.file, pos: c.pos, gtid: c.gtid }
      : { file: c.file, pos: c.pos },
  );
}

export function parseCheckpoint(token: string): BinlogCoordinate {
  let v: unknown;
  try {
    v = JSON.parse(token);
  } catch {
    v = undefined;
  }
  const o = v as { file?: unknown; pos?: unknown; gtid?: unknown } | undefined;
  if (!o || typeof o.file !== "string" || typeof o.pos !== "number" || !Number.isInteger(o.pos)) {
    throw new SourceError(
      `Invalid MySQL checkpoint ${JSON.stringify(token)}: expected {"file":…,"pos":…}`,
    );
  }
  return {
    file: o.file,
    pos: o.pos,
    ...(typeof o.gtid === "string" && o.gtid !== "" ? { gtid: o.gtid } : {}),
  };
}

/** Compares two coordinates by (file sequence, position). */
export function compareCoordinates(a: BinlogCoordinate, b: BinlogCoordinate): number {
  const fa = binlogFileSequence(a.file), fb = binlogFileSequence(b.file);
  return fa !== fb ? fa - fb : a.pos - b.pos;
}

/**
 * A `SHOW MASTER STATUS` (MySQL 8.2+: `SHOW BINARY LOG STATUS`) row → coordinate. MySQL's
 * `Executed_Gtid_Set` spans lines (`uuid1:1-5,\nuuid2:1-3`); whitespace is dropped. On
 * MariaDB pass `@@gtid_binlog_pos` as `mariadbGtid` (the row has no GTID column).
 */
export function parseMasterStatus(
  row: Record<string, unknown>,
  mariadbGtid?: string,
): BinlogCoordinate {
  const file = row.File ?? row.file;
  const pos = row.Position ?? row.position;
  if (typeof file !== "string" || file === "" || pos === undefined || pos === null) {
    throw new SourceError(
      "SHOW MASTER STATUS returned no binary log: is `log-bin` enabled on the source?",
    );
  }
  const executed = row.Executed_Gtid_Set ?? row.executed_gtid_set;
  const gtid = mariadbGtid !== undefined
    ? mariadbGtid.replace(/\s+/g, "")
    : typeof executed === "string"
    ? executed.replace(/\s+/g, "")
    : "";
  return { file, pos: Number(pos), ...(gtid !== "" ? { gtid } : {}) };
}

// ---------------------------------------------------------------------------------------
// GTID sets.

/** MySQL GTID set: uuid (plus `:tag` on 8.3+) → sorted disjoint inclusive intervals. */
export type MysqlGtidSet = Map<string, [bigint, bigint][]>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Parses a MySQL GTID set `uuid:1-5:7,uuid2:1-3` (whitespace ignored; tagged sets
 * `uuid:tag:1-3` keep `uuid:tag` as the key).
 */
export function parseMysqlGtidSet(text: string): MysqlGtidSet {
  const set: MysqlGtidSet = new Map();
  const s = text.replace(/\s+/g, "");
  if (s === "") return set;
  for (const part of s.split(",")) {
    const pieces = part.split(":");
    const uuid = pieces.shift()!.toLowerCase();
    if (!UUID.test(uuid) || pieces.length === 0) {
      throw new SourceError(
        `Invalid MySQL GTID set ${JSON.stringify(text)} at ${JSON.stringify(part)}`,
      );
    }
    let keyName = uuid;
    for (const p of pieces) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(p);
      if (!m) {
        if (/^[a-z_][a-z0-9_]{0,31}$/i.test(p)) {
          keyName = `${uuid}:${p.toLowerCase()}`;
          continue;
        }
        throw new SourceError(
          `Invalid MySQL GTID set ${JSON.stringify(text)} at ${JSON.stringify(p)}`,
        );
      }
      const lo = BigInt(m[1]), hi = BigInt(m[2] ?? m[1]);
      if (hi < lo) throw new SourceError(`Invalid GTID interval ${p} in ${JSON.stringify(text)}`);
      addInterval(set, keyName, lo, hi);
    }
  }
  return set;
}

function addInterval(set: MysqlGtidSet, key: string, lo: bigint, hi: bigint): void {
  const list = set.get(key) ?? [];
  list.push([lo, hi]);
  list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const merged: [bigint, bigint][] = [];
  for (const iv of list) {
    const last = merged[merged.length - 1];
    if (last && iv[0] <= last[1] + 1n) {
      if (iv[1] > last[1]) last[1] = iv[1];
    } else merged.push([iv[0], iv[1]]);
  }
  set.set(key, merged);
}

/** Adds one transaction `uuid:n` (or `uuid:tag:n`) to a MySQL GTID set. */
export function addMysqlGtid(set: MysqlGtidSet, gtid: string): void {
  const i = gtid.lastIndexOf(":");
  const n = BigInt(gtid.substring(i + 1));
  addInterval(set, gtid.substring(0, i).toLowerCase(), n, n);
}

/** True when `gtid` (`uuid:n`) is in the set. */
export function mysqlGtidSetContains(set: MysqlGtidSet, gtid: string): boolean {
  const i = gtid.lastIndexOf(":");
  const n = BigInt(gtid.substring(i + 1));
  return (set.get(gtid.substring(0, i).toLowerCase()) ?? []).some(([lo, hi]) => n >= lo && n <= hi);
}

export function formatMysqlGtidSet(set: MysqlGtidSet): string {
  return [...set.keys()].sort().map((k) =>
    k + ":" + set.get(k)!.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`)).join(":")
  ).join(",");
}

/** MariaDB GTID position: domain → [server, seq] of the last transaction per domain. */
export type MariadbGtidPos = Map<number, { server: number; seq: bigint }>;

export function parseMariadbGtidPos(text: string): MariadbGtidPos {
  const pos: MariadbGtidPos = new Map();
  const s = text.replace(/\s+/g, "");
  if (s === "") return pos;
  for (const part of s.split(",")) {
    const m = /^(\d+)-(\d+)-(\d+)$/.exec(part);
    if (!m) throw new SourceError(`Invalid MariaDB GTID position ${JSON.stringify(text)}`);
    pos.set(Number(m[1]), { server: Number(m[2]), seq: BigInt(m[3]) });
  }
  return pos;
}

/** True when the MariaDB GTID `d-s-n` is at or before the position in its domain. */
export function mariadbGtidCovered(pos: MariadbGtidPos, gtid: string): boolean {
  const m = /^(\d+)-(\d+)-(\d+)$/.exec(gtid);
  if (!m) return false;
  const last = pos.get(Number(m[1]));
  return last !== undefined && BigInt(m[3]) <= last.seq;
}

/** Whether a GTID text is MySQL-style (contains `:`) rather than MariaDB-style. */
export function isMysqlGtid(text: string): boolean {
  return text.includes(":");
}

/**
 * The sort key of an entry Replicant wrote, from its decoded `source` block (`file`, `pos`,
 * `row`); null when the entry carries no realtime position (a snapshot row, a tombstone).
 */
export function mysqlSortKeyOfSource(source: Record<string, unknown> | null): string | null {
  if (!source) return null;
  const { file, pos, row } = source;
  if (typeof file !== "string" || !/\.\d+$/.test(file)) return null;
  if (typeof pos !== "number" || !Number.isInteger(pos) || pos < 0) return null;
  if (typeof row !== "number" || !Number.isInteger(row) || row < 0) return null;
  return mysqlSortKey(file, pos, row);
}
