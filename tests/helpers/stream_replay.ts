/**
 * An independent consumer of MySQL/MariaDB streams: reads compact entries, replays a table's
 * snapshot then its changes (by key, or as a multiset of rows for a table without a key), and
 * names the differences with the source's rows column by column.
 */
import assert from "node:assert/strict";
import { readStream, type redisClient } from "./clients.ts";
import { canonical } from "./change_log.ts";

export interface Change {
  op: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  source: Record<string, unknown> | null;
  tombstone: boolean;
}

export async function changes(
  redis: ReturnType<typeof redisClient>,
  stream: string,
): Promise<Change[]> {
  return (await readStream(redis, stream)).map(([, f]) => {
    if (f[1] === "default") {
      return { op: "tombstone", before: null, after: null, source: null, tombstone: true };
    }
    const p = JSON.parse(f[1]).payload;
    return { op: p.op, before: p.before, after: p.after, source: p.source, tombstone: false };
  });
}

/** Replays a table's snapshot then its changes: by key, or as a multiset of rows (no key). */
export function replayTable(keys: string[], entries: Change[]): Map<string, number> {
  const rows = new Map<string, number>();
  const keyOf = (row: Record<string, unknown>) =>
    keys.length > 0 ? canonical(keys.map((k) => row[k])) : canonical(row);
  const byKey = new Map<string, string>();
  const add = (row: Record<string, unknown>) => {
    if (keys.length > 0) byKey.set(keyOf(row), canonical(row));
    else rows.set(canonical(row), (rows.get(canonical(row)) ?? 0) + 1);
  };
  const remove = (row: Record<string, unknown>) => {
    if (keys.length > 0) return byKey.delete(keyOf(row));
    const k = canonical(row);
    const n = rows.get(k) ?? 0;
    if (n <= 1) rows.delete(k);
    else rows.set(k, n - 1);
  };
  for (const e of entries) {
    if (e.tombstone) continue;
    if (e.op === "t") {
      rows.clear();
      byKey.clear();
    } else if (e.op === "d") remove(e.before!);
    else if (e.op === "u") {
      remove(e.before!);
      add(e.after!);
    } else add(e.after!);
  }
  if (keys.length > 0) { for (const row of byKey.values()) rows.set(row, 1); }
  return rows;
}

export function multiset(rows: Record<string, unknown>[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of rows) out.set(canonical(r), (out.get(canonical(r)) ?? 0) + 1);
  return out;
}

export function differences(
  table: string,
  keys: string[],
  got: Map<string, number>,
  want: Map<string, number>,
): string[] {
  const out: string[] = [];
  const short = (s: string) => s.length > 400 ? s.slice(0, 400) + "…" : s;
  // Rows with a key are compared column by column; keyless rows as a multiset.
  const keyOf = (row: string) => {
    const o = JSON.parse(row);
    return canonical(keys.map((k) => o[k]));
  };
  const gotByKey = new Map([...got.keys()].map((r) => [keys.length ? keyOf(r) : r, r]));
  for (const [row, n] of want) {
    const k = keys.length ? keyOf(row) : row;
    const other = gotByKey.get(k);
    if (keys.length === 0 && got.get(row) !== n) {
      out.push(`${table}: source ×${n}, streams ×${got.get(row) ?? 0}: ${short(row)}`);
    } else if (keys.length > 0 && other !== row) {
      const a = JSON.parse(row), b = other ? JSON.parse(other) : null;
      const cols = b
        ? Object.keys(a).filter((c) => canonical(a[c]) !== canonical(b[c])).map((c) =>
          `${c}: source ${short(canonical(a[c]))}, streams ${short(canonical(b[c]))}`
        ).join("; ")
        : "missing from the streams";
      out.push(`${table} ${k}: ${cols}`);
    }
  }
  const wantKeys = new Set([...want.keys()].map((r) => keys.length ? keyOf(r) : r));
  for (const [row, n] of got) {
    if (!wantKeys.has(keys.length ? keyOf(row) : row)) {
      out.push(`${table}: not in source, streams ×${n}: ${short(row)}`);
    }
  }
  return out;
}

/** Positions grow strictly along each change stream: nothing delivered twice. */
export function assertStrictPositions(stream: string, entries: Change[]): void {
  const key = (s: Record<string, unknown>) =>
    `${String(s.file)} ${String(s.pos).padStart(20, "0")} ${String(s.row).padStart(10, "0")}`;
  const keys = entries.filter((e) => !e.tombstone).map((e) => key(e.source!));
  keys.forEach((k, i) => {
    if (i > 0) assert.ok(k > keys[i - 1], `${stream}: ${k} after ${keys[i - 1]}`);
  });
}
