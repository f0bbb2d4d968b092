/**
 * PostgreSQL WAL positions (LSNs) and the sortable position keys of pgoutput changes. Pure.
 *
 * LSNs arrive in several spellings (`0/1528A70` from PostgreSQL, `00000000/01528A70` from
 * pg-logical-replication): they are compared as numbers, never as text.
 */

import type { PositionField } from "../../core/entry_encoder.ts";

/** `X/Y` (hex halves, any zero padding) → the 64-bit LSN. */
export function parseLsn(text: string): bigint {
  const m = /^\s*([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})\s*$/.exec(text);
  if (!m) throw new Error(`not a PostgreSQL LSN: ${JSON.stringify(text)}`);
  return (BigInt("0x" + m[1]) << 32n) | BigInt("0x" + m[2]);
}

/** The 64-bit LSN → PostgreSQL's own spelling `X/Y` (upper-case hex, no padding). */
export function formatLsn(lsn: bigint): string {
  if (lsn < 0n) throw new Error(`negative LSN ${lsn}`);
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${
    (lsn & 0xffffffffn).toString(16).toUpperCase()
  }`;
}

export function compareLsn(a: string, b: string): number {
  const x = parseLsn(a);
  const y = parseLsn(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Sort key of a change: 16 hex digits of its transaction's commit LSN, then its 10-digit
 * sequence within the transaction. Plain string order is position order.
 */
export function pgSortKey(commitLsn: bigint, sequence: number): string {
  return commitLsn.toString(16).toUpperCase().padStart(16, "0") +
    String(sequence).padStart(10, "0");
}

/** Schema of the position fields a PostgreSQL change adds to `source`. */
export const PG_POSITION_FIELDS: readonly PositionField[] = [
  ["lsn", "int64"],
  ["txId", "int64"],
  ["sequence", "int64"],
];

/** The `source` position fields of a PostgreSQL change: `"lsn":…,"txId":…,"sequence":…`. */
export function pgPositionFields(commitLsn: bigint, txId: number, sequence: number): string {
  return `"lsn":${commitLsn},"txId":${txId},"sequence":${sequence}`;
}

/**
 * The sort key of an entry Replicant wrote, from its decoded `source` block; null when the
 * entry carries no realtime position (a snapshot row, a tombstone).
 */
export function pgSortKeyOfSource(source: Record<string, unknown> | null): string | null {
  if (!source) return null;
  const lsn = source.lsn;
  const seq = source.sequence;
  if ((typeof lsn !== "number" && typeof lsn !== "string") || lsn === "") return null;
  if (typeof seq !== "number") return null;
  let value: bigint;
  try {
    value = BigInt(lsn);
  } catch {
    return null;
  }
  return pgSortKey(value, seq);
}
