// deno-lint-ignore-file require-await
/**
 * What the pipeline tests over MemorySink share: two tables, changes with positions that sort
 * like their sequence number, a scripted change source and snapshot source, a recording log.
 */
import type { ChangeEvent } from "../../src/core/change_event.ts";
import { decodeEntry } from "../../src/core/entry_decoder.ts";
import type { EntryOptions } from "../../src/core/entry_encoder.ts";
import { JsonRowBatch } from "../../src/core/json_row_batch.ts";
import { markRetriable } from "../../src/core/errors.ts";
import type { TableSchema } from "../../src/core/table_schema.ts";
import type { SortKeyOfSource } from "../../src/ports/position.ts";
import type {
  KeyValue,
  SnapshotSource,
  SnapshotTable,
  TableReader,
} from "../../src/ports/snapshot_source.ts";
import type {
  SourceTransaction,
  SourceTransactionPart,
  StreamingSource,
} from "../../src/ports/streaming_source.ts";
import type { PipelineLog } from "../../src/pipeline/realtime_pipeline.ts";

export function table(name: string): TableSchema {
  return {
    id: { catalog: "db", schema: null, table: name },
    columns: [
      {
        name: "id",
        sourceType: "int",
        connectType: "int64",
        nullable: false,
        keyPosition: 1,
        defaultValue: null,
      },
      {
        name: "v",
        sourceType: "text",
        connectType: "string",
        nullable: true,
        keyPosition: null,
        defaultValue: null,
      },
    ],
    keyColumns: [0],
    hasKey: true,
  };
}

export const T1 = table("t1");
export const T2 = table("t2");

export const entryOptions: EntryOptions = {
  format: "compact",
  includeSchema: false,
  tombstones: false,
  connector: "memory",
  positionFields: [["seq", "int64"]],
  replicationId: "r1",
  version: "0.0.0",
};

const pad = (n: number) => String(n).padStart(12, "0");

export const sortKeyOf: SortKeyOfSource = (source) =>
  typeof source?.seq === "number" ? pad(source.seq) : null;

/** An insert of row `id` into `t` at position `seq`. */
export function insert(t: TableSchema, id: number, seq: number): ChangeEvent {
  return {
    table: t,
    op: "c",
    before: null,
    after: [String(id), JSON.stringify(`v${id}`)],
    position: { tsMs: 1_700_000_000_000 + seq, fields: `"seq":${seq}`, sortKey: pad(seq) },
  };
}

/**
 * `n` transactions; transaction i (checkpoint token `i`) inserts row i into each of `tables`,
 * at positions that grow through all of them.
 */
export function transactions(n: number, tables: TableSchema[] = [T1, T2]): SourceTransaction[] {
  const out: SourceTransaction[] = [];
  let seq = 0;
  for (let i = 1; i <= n; i++) {
    out.push({
      checkpoint: String(i),
      events: tables.map((t) => insert(t, i, ++seq)),
      bytes: 100,
      commitTsMs: 1_700_000_000_000 + i,
    });
  }
  return out;
}

/** The (table-local) ids of the rows a stream holds, in stream order. */
export function rowIds(entries: string[][]): number[] {
  return entries.map((e) => (decodeEntry(e, "compact").key as { id: number }).id);
}

/** The positions (`seq`) of the entries a stream holds, in stream order. */
export function seqs(entries: string[][]): number[] {
  return entries.map((e) => decodeEntry(e, "compact").source!.seq as number);
}

/**
 * Delivers its transactions after the checkpoint it is started from (tokens are numbers), each
 * awaited, then returns. `failAfter`: the first start fails (a lost connection) after that many
 * deliveries; `failures` such starts fail in a row.
 */
export class ScriptedSource implements StreamingSource {
  readonly connector = "memory";
  readonly acknowledged: string[] = [];
  readonly starts: (string | null)[] = [];
  onServerChange = undefined;
  /** Starts still to fail, and after how many deliveries each fails. */
  failures = 0;
  failAfter = 0;
  /** After the last transaction, waits for the stop like a real change stream. */
  holdOpen = false;
  constructor(
    readonly txs: SourceTransactionPart[],
    readonly schemas: TableSchema[] = [T1, T2],
  ) {}
  tables(): TableSchema[] {
    return this.schemas;
  }
  async start(
    from: string | null,
    onTransaction: (tx: SourceTransaction) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    this.starts.push(from);
    let delivered = 0;
    for (const tx of this.txs) {
      if (from !== null && Number(tx.checkpoint) <= Number(from)) continue;
      if (signal.aborted) return;
      if (this.failures > 0 && delivered === this.failAfter) {
        this.failures--;
        throw markRetriable(new Error("source connection lost (scripted)"));
      }
      await onTransaction(tx);
      delivered++;
    }
    // A change stream ends only when stopped.
    if (this.holdOpen && !signal.aborted) {
      await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
    }
  }
  async acknowledge(checkpoint: string): Promise<void> {
    this.acknowledged.push(checkpoint);
  }
  async close(): Promise<void> {}
}

/** Rows 1..n of each table, read in key order in chunks. */
export class ScriptedSnapshot implements SnapshotSource {
  readonly connector = "memory";
  readonly snapshotTsMs = 1_700_000_000_000;
  constructor(readonly rows: Map<TableSchema, number>) {}
  async tables(): Promise<SnapshotTable[]> {
    return [...this.rows].map(([schema, n]) => ({ schema, estimatedRows: n }));
  }
  async reader(): Promise<TableReader> {
    const rows = this.rows;
    return {
      async *read(t: TableSchema, after: KeyValue[] | null, chunkRows: number) {
        const n = rows.get(t) ?? 0;
        let id = after === null ? 1 : Number(after[0]) + 1;
        while (id <= n) {
          const batch = new JsonRowBatch(2);
          for (let k = 0; k < chunkRows && id <= n; k++, id++) {
            batch.pushFragment(String(id));
            batch.pushFragment(JSON.stringify(`v${id}`));
            batch.endRow();
          }
          yield batch;
        }
      },
      async close() {},
    };
  }
  async close(): Promise<void> {}
}

export class RecordingLog implements PipelineLog {
  readonly lines: string[] = [];
  info(m: string): void {
    this.lines.push(`INFO ${m}`);
  }
  warn(m: string): void {
    this.lines.push(`WARN ${m}`);
  }
  fail(m: string): void {
    this.lines.push(`FAIL ${m}`);
  }
  has(level: string, part: string): boolean {
    return this.lines.some((l) => l.startsWith(level) && l.includes(part));
  }
}
