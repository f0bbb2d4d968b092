/**
 * An independent replay of PostgreSQL streams, compared with the source table column by
 * column: the rows of a table as PostgreSQL renders each value the way entries carry it
 * (computed by the server from the catalog's types), and the rows a consumer rebuilds from
 * the snapshot stream then the cdc stream. Keyed tables replay by key; tables without a key
 * (replica identity FULL) as a multiset of whole rows. An unchanged TOAST value left out of a
 * change (its placeholder) keeps the row's previous value, as a consumer of such entries must.
 */
import assert from "node:assert/strict";
import type pg from "pg";
import type { Redis } from "ioredis";
import { readStream } from "./clients.ts";
import { canonical } from "./change_log.ts";

const PLACEHOLDER = "__replicant_unavailable_value";
const PLACEHOLDERS = new Set([
  JSON.stringify(PLACEHOLDER),
  JSON.stringify(btoa(PLACEHOLDER)),
  JSON.stringify([PLACEHOLDER]),
  JSON.stringify([...new TextEncoder().encode(PLACEHOLDER)]),
]);

/** Whether a value is the stand-in for an unchanged TOAST value PostgreSQL did not send. */
function isUnavailable(value: unknown): boolean {
  return PLACEHOLDERS.has(JSON.stringify(value));
}

export interface PgTableShape {
  /** Columns replicated (stored generated columns are not). */
  columns: string[];
  /** Primary key columns; null without a key. */
  key: string[] | null;
}

/** The SQL rendering of a column as an entry carries it (session in UTC). */
function rendering(column: string, type: string, category: string, element: string): string {
  const c = `t.${JSON.stringify(column)}`;
  if (category === "A") {
    if (["int2", "int4", "int8", "text", "varchar", "bpchar", "bool"].includes(element)) {
      return `to_jsonb(${c})`;
    }
    return `(SELECT jsonb_agg(to_jsonb(e::text)) FROM unnest(${c}) e)`;
  }
  switch (type) {
    case "int2":
    case "int4":
    case "bool":
    case "text":
    case "varchar":
    case "bpchar":
      return `to_jsonb(${c})`;
    case "int8":
      return `CASE WHEN abs(${c}) <= 9007199254740991 THEN to_jsonb(${c}) ELSE to_jsonb(${c}::text) END`;
    case "bytea":
      return `to_jsonb(translate(encode(${c}, 'base64'), E'\\n', ''))`;
    case "timestamptz":
      return `to_jsonb(regexp_replace(replace(${c}::text, ' ', 'T'), '\\+00$', 'Z'))`;
    case "timestamp":
      return `to_jsonb(replace(${c}::text, ' ', 'T'))`;
    default:
      return `to_jsonb(${c}::text)`; // numeric, date, json, jsonb, enums, tsvector, uuid…
  }
}

/** The replicated columns and primary key of a table, from the catalog. */
async function tableShape(db: pg.Client, table: string): Promise<PgTableShape> {
  const cols = await db.query({
    text: `SELECT a.attname FROM pg_attribute a
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
              AND a.attgenerated = '' ORDER BY a.attnum`,
    values: [table],
    rowMode: "array",
  });
  const key = await db.query({
    text: `SELECT a.attname FROM pg_index i
             JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n) ON true
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.n`,
    values: [table],
    rowMode: "array",
  });
  return {
    columns: cols.rows.map((r: string[]) => r[0]),
    key: key.rows.length > 0 ? key.rows.map((r: string[]) => r[0]) : null,
  };
}

/** Every row of a table (qualified, quoted as needed) as sorted canonical JSON. */
async function sourceRows(db: pg.Client, table: string): Promise<string[]> {
  const types = await db.query({
    text: `SELECT a.attname, bt.typname, bt.typcategory, coalesce(et.typname, '')
             FROM pg_attribute a
             JOIN pg_type t ON t.oid = a.atttypid
             JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
             LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
              AND a.attgenerated = '' ORDER BY a.attnum`,
    values: [table],
    rowMode: "array",
  });
  const fields = (types.rows as string[][]).map(([name, type, category, element]) =>
    `${db.escapeLiteral(name)}, ${rendering(name, type, category, element)}`
  );
  await db.query("SET TimeZone = 'UTC'");
  const res = await db.query({
    text: `SELECT jsonb_build_object(${fields.join(", ")})::text FROM ${table} t`,
    rowMode: "array",
  });
  return (res.rows as string[][]).map((r) => canonical(JSON.parse(r[0]))).sort();
}

interface StreamEntry {
  op: string;
  key: Record<string, unknown> | null;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  source: Record<string, unknown> | null;
}

/** Entries of a compact stream (tombstones left out), payloads parsed. */
async function streamEntries(redis: Redis, stream: string): Promise<StreamEntry[]> {
  const unwrap = (t: string) => {
    const v = JSON.parse(t);
    return v && typeof v === "object" && "payload" in v && "schema" in v ? v.payload : v;
  };
  return (await readStream(redis, stream)).filter(([, f]) => f[1] !== "default").map(([, f]) => {
    const v = unwrap(f[1]);
    return {
      op: v.op,
      key: f[0] === "default" ? null : unwrap(f[0]),
      before: v.before,
      after: v.after,
      source: v.source,
    };
  });
}

/**
 * The rows a consumer rebuilds from a snapshot stream then a cdc stream, as sorted canonical
 * JSON. Checks on the way that positions grow strictly along the cdc stream.
 */
function replayRows(
  snapshot: StreamEntry[],
  cdc: StreamEntry[],
  shape: PgTableShape,
  what: string,
): string[] {
  let last: [number, number] | null = null;
  for (const e of cdc) {
    const at: [number, number] = [Number(e.source!.lsn), Number(e.source!.sequence)];
    assert.ok(
      last === null || at[0] > last[0] || (at[0] === last[0] && at[1] > last[1]),
      `${what}: position ${at} does not follow ${last} (duplicate or out of order)`,
    );
    last = at;
  }
  if (shape.key) {
    const keyOf = (row: Record<string, unknown>) => canonical(shape.key!.map((k) => row[k]));
    const rows = new Map<string, Record<string, unknown>>();
    for (const e of [...snapshot, ...cdc]) {
      if (e.op === "t") rows.clear();
      else if (e.op === "d") rows.delete(keyOf(e.before ?? e.key!));
      else {
        const after = { ...e.after! };
        const previous = rows.get(keyOf(after));
        for (const [column, value] of Object.entries(after)) {
          if (isUnavailable(value)) {
            assert.ok(previous, `${what}: ${e.op} of a row never seen has an unavailable value`);
            after[column] = previous[column];
          }
        }
        rows.set(keyOf(after), after);
      }
    }
    return [...rows.values()].map(canonical).sort();
  }
  const rows = new Map<string, number>();
  const add = (row: Record<string, unknown>, n: number) => {
    const k = canonical(row);
    const count = (rows.get(k) ?? 0) + n;
    assert.ok(count >= 0, `${what}: removes a row it does not hold: ${k}`);
    if (count === 0) rows.delete(k);
    else rows.set(k, count);
  };
  for (const e of [...snapshot, ...cdc]) {
    if (e.op === "t") rows.clear();
    if (e.before && e.op !== "r" && e.op !== "c") add(e.before, -1);
    if (e.after && e.op !== "d") add(e.after, 1);
  }
  return [...rows].flatMap(([k, n]) => Array<string>(n).fill(k)).sort();
}

/** Asserts two sorted row lists are equal, naming the first rows on either side only. */
function assertSameRows(replayed: string[], source: string[], what: string): void {
  if (replayed.length === source.length && replayed.every((r, i) => r === source[i])) return;
  const count = (list: string[]) => {
    const m = new Map<string, number>();
    for (const r of list) m.set(r, (m.get(r) ?? 0) + 1);
    return m;
  };
  const a = count(replayed);
  const b = count(source);
  const onlyStreams = [...a].filter(([r, n]) => (b.get(r) ?? 0) < n).map(([r]) => r);
  const onlySource = [...b].filter(([r, n]) => (a.get(r) ?? 0) < n).map(([r]) => r);
  assert.fail(
    `${what}: ${replayed.length} rows replayed, ${source.length} in the source; ` +
      `${onlySource.length} source row(s) not replayed, e.g. ${
        onlySource.slice(0, 3).join(" ")
      }; ` +
      `${onlyStreams.length} replayed row(s) not in the source, e.g. ${
        onlyStreams.slice(0, 3).join(" ")
      }`,
  );
}

/** Replays one table's streams and compares every column of every row with the source. */
export async function assertTableReplays(
  db: pg.Client,
  redis: Redis,
  table: string,
  streams: { snapshot: string; cdc: string },
): Promise<{ rows: number; changes: number }> {
  const shape = await tableShape(db, table);
  const cdc = await streamEntries(redis, streams.cdc);
  const replayed = replayRows(await streamEntries(redis, streams.snapshot), cdc, shape, table);
  const source = await sourceRows(db, table);
  assertSameRows(replayed, source, table);
  return { rows: source.length, changes: cdc.length };
}
