import type { RowFragments } from "../core/change_event.ts";
import { decodeRawEntry, type RawEntry } from "../core/entry_decoder.ts";
import type { JsonRowBatch } from "../core/json_row_batch.ts";
import { type EntryOptions, TableEntryEncoder } from "../core/entry_encoder.ts";
import type { StreamNaming } from "../core/stream_naming.ts";
import { qualifiedName, type TableSchema } from "../core/table_schema.ts";
import type { StreamScan } from "../ports/stream_sink.ts";
import type { SnapshotTable, TableReader } from "../ports/snapshot_source.ts";
import type { VerifyPoint } from "../ports/verify_point.ts";
import { type TableDiff, TableRebuild } from "./table_rebuild.ts";
import { collectGarbageHint } from "./memory_budget.ts";

export interface VerifySettings {
  entry: EntryOptions;
  naming: StreamNaming;
  /** GLOBAL: every table's changes are in the one global stream. */
  global: boolean;
  /** Where the spilled partitions go (a folder of this run; removed by the caller). */
  spillDir: string;
  /** Rows per source read. */
  fetchRows: number;
  /** Streams whose entries may be incomplete (trimmed), with the reason. */
  incomplete: ReadonlyMap<string, string>;
  /**
   * Per cdc stream: the sort key through which the table's snapshot holds its changes (a
   * table that joined the id or was taken again); its earlier changes are not replayed.
   */
  snapshotPoints?: ReadonlyMap<string, string>;
  /** Change-side bytes compared in memory at once (default PARTITION_BYTES). */
  partitionBytes?: number;
  progress?: (message: string) => void;
}

export interface TableVerdict {
  table: string;
  streams: string[];
  status: "equal" | "different" | "not_verified";
  /** Why a table was not verified. */
  reason?: string;
  diff?: TableDiff;
}

/** Rows per partition aimed at when a table's partitions are planned. */
const ROWS_PER_PARTITION = 250_000;
/** GLOBAL stream entries between two flushes of every waiting table's buffers. */
const GLOBAL_FLUSH_ENTRIES = 50_000;

/** The streams a table's entries are in, in the order they are replayed. */
export function tableStreams(schema: TableSchema, s: VerifySettings): string[] {
  const streams = [s.naming.snapshotStream(schema.id)];
  if (s.global) streams.push(s.naming.globalCdcStream());
  else if (s.naming.splitStream) streams.push(s.naming.cdcStream(schema.id));
  return streams;
}

/**
 * Rebuilds each table from its streams — snapshot entries, then changes at or before the
 * point, by key — and compares it with the source rows read at the point, every column of
 * every row, the source rows encoded by the entries' own encoder so values compare as text.
 * Tables with an incomplete stream are not verified (and not claimed equal).
 */
export async function verifyTables(
  client: StreamScan,
  point: VerifyPoint,
  tables: SnapshotTable[],
  s: VerifySettings,
): Promise<TableVerdict[]> {
  const verdicts: TableVerdict[] = [];
  /** GLOBAL: tables waiting for the global stream, by qualified name. */
  const waiting = new Map<string, { verdict: TableVerdict; rebuild: TableRebuild }>();
  let index = 0;
  try {
    for (const t of tables) {
      const name = qualifiedName(t.schema.id);
      const streams = tableStreams(t.schema, s);
      const verdict: TableVerdict = { table: name, streams, status: "not_verified" };
      verdicts.push(verdict);
      const cut = streams.find((st) => s.incomplete.has(st));
      if (cut !== undefined) {
        verdict.reason = `stream ${cut}: ${s.incomplete.get(cut)}`;
        continue;
      }
      let entries = 0;
      for (const st of streams.slice(0, s.global ? 1 : 2)) entries += await client.length(st);
      const partitions = Math.max(
        1,
        Math.min(256, Math.ceil(Math.max(entries, t.estimatedRows) / ROWS_PER_PARTITION)),
      );
      const rebuild = new TableRebuild(
        s.spillDir,
        `t${index++}`,
        partitions,
        t.schema.hasKey,
        s.partitionBytes,
      );
      s.progress?.(`${name}: reading the source table`);
      await readSource(point.reader, t.schema, rebuild, s);
      s.progress?.(`${name}: reading ${streams.join(", ")}`);
      await replayStream(client, streams[0], point, s, false, () => rebuild);
      if (s.global) {
        rebuild.flush();
        waiting.set(name, { verdict, rebuild });
        continue;
      }
      if (streams.length > 1) {
        const from = s.snapshotPoints?.get(streams[1]);
        await replayStream(client, streams[1], point, s, true, () => rebuild, from);
      }
      s.progress?.(`${name}: comparing`);
      finish(verdict, rebuild);
    }
    if (waiting.size > 0) {
      const global = s.naming.globalCdcStream();
      s.progress?.(`reading ${global}`);
      let routed = 0;
      await replayStream(client, global, point, s, true, (e, source) => {
        // Every table's files buffer at once here: flushed often, they stay small together.
        if (++routed % GLOBAL_FLUSH_ENTRIES === 0) {
          for (const w of waiting.values()) w.rebuild.flush();
        }
        const name = e.table ?? (source ? tableOfSource(source) : null);
        return name === null ? null : waiting.get(name)?.rebuild ?? null;
      });
      for (const [name, { verdict, rebuild }] of waiting) {
        s.progress?.(`${name}: comparing`);
        finish(verdict, rebuild);
      }
      waiting.clear();
    }
  } finally {
    for (const { rebuild } of waiting.values()) rebuild.discard();
  }
  return verdicts;
}

function finish(verdict: TableVerdict, rebuild: TableRebuild): void {
  const diff = rebuild.compare();
  verdict.diff = diff;
  verdict.status = diff.missing + diff.extra + diff.different === 0 ? "equal" : "different";
}

/** The source rows, keyed and encoded as the snapshot entries are. */
async function readSource(
  reader: TableReader,
  schema: TableSchema,
  rebuild: TableRebuild,
  s: VerifySettings,
): Promise<void> {
  const encoder = new TableEntryEncoder(schema, s.entry);
  for await (const batch of reader.read(schema, null, s.fetchRows)) {
    for (let r = 0; r < batch.rows; r++) {
      const row = rowFragments(batch, r);
      rebuild.sourceRow(encoder.keyPayload(row), encoder.rowJson(row));
    }
    collectGarbageHint();
  }
}

const utf8 = new TextDecoder();

/**
 * Row `r` of a batch as text fragments: the row's bytes decoded at once and cut where the
 * fragments end when they are ASCII (the common case), else fragment by fragment.
 */
function rowFragments(batch: JsonRowBatch, r: number): RowFragments {
  const columns = batch.columns;
  if (columns === 0) return [];
  const first = r * columns;
  const start = batch.start(first);
  const end = batch.end(first + columns - 1);
  const text = utf8.decode(batch.bytes.subarray(start, end));
  if (text.length !== end - start) return batch.row(r);
  const out: RowFragments = new Array(columns);
  for (let c = 0, at = 0; c < columns; c++) {
    const to = batch.end(first + c) - start;
    out[c] = text.slice(at, to);
    at = to;
  }
  return out;
}

/**
 * Applies a stream's entries to the tables `route` names: snapshot reads always, changes
 * when at or before the point. Change streams are in source order, so with `stopBeyond` the
 * first change past the point ends the stream.
 */
async function replayStream(
  client: StreamScan,
  stream: string,
  point: VerifyPoint,
  s: VerifySettings,
  stopBeyond: boolean,
  route: (e: RawEntry, source: Record<string, unknown> | null) => TableRebuild | null,
  /** Changes at or before this sort key are in the snapshot already. */
  after?: string,
): Promise<void> {
  const format = s.entry.format;
  for await (const page of client.pages(stream)) {
    for (const [, fields] of page) {
      const e = decodeRawEntry(fields, format);
      if (e.op === "tombstone") continue;
      let source: Record<string, unknown> | null = null;
      if (e.op !== "r") {
        source = e.source ? JSON.parse(e.source) : null;
        const key = point.sortKeyOf(source);
        if (key !== null && !point.includes(key)) {
          if (stopBeyond) return;
          continue;
        }
        if (key !== null && after !== undefined && key <= after) continue;
      }
      const rebuild = route(e, source);
      if (rebuild !== null) apply(e, rebuild);
    }
    collectGarbageHint();
  }
}

function apply(e: RawEntry, t: TableRebuild): void {
  switch (e.op) {
    case "r":
    case "c":
    case "u":
      if (e.after === null) return;
      if (t.keyed) t.set(e.key, e.after);
      else {
        if (e.op === "u" && e.before !== null) t.remove(e.before);
        t.add(e.after);
      }
      return;
    case "d":
      if (t.keyed) t.unset(e.key);
      else t.remove(e.before ?? e.key);
      return;
    case "t":
      t.truncate();
  }
}

/** The qualified name of the table a change's `source` block names. */
function tableOfSource(source: Record<string, unknown>): string | null {
  const { db, schema, table } = source;
  if (typeof db !== "string" || typeof table !== "string") return null;
  return qualifiedName({ catalog: db, schema: typeof schema === "string" ? schema : null, table });
}
