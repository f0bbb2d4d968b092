import type { ChangeEvent } from "../core/change_event.ts";
import type { ByteArena } from "../core/byte_arena.ts";
import { type EntryOptions, TableEntryEncoder } from "../core/entry_encoder.ts";
import { fieldLength } from "../core/entry_field.ts";
import type { StreamNaming } from "../core/stream_naming.ts";
import { qualifiedName, type TableSchema } from "../core/table_schema.ts";
import { encodeDdlEntry } from "../schema/ddl_entry.ts";
import type { InFlightTransaction } from "./checkpointer.ts";
import type { SchemaChange } from "./schema_tracker.ts";
import type { StreamWriter, WriterPool } from "./realtime_writers.ts";

/** Label of the DDL stream's writer in outcomes and messages. */
export const SCHEMA_CHANGES = "(schema changes)";

/** Label of the GLOBAL stream's writer in outcomes and messages. */
export const ALL_TABLES = "(all tables)";

/**
 * The router and encoder: picks a change's stream (its table's `_cdc_logs` stream with
 * EVENTUAL, the one global stream with GLOBAL), encodes its entries in the configured format
 * and queues them on that stream's writer, counted as pending in their transaction.
 */
export class RealtimeRouter {
  /** Per (labelled) schema object: its stream's writer and its encoder. */
  readonly #routes = new WeakMap<
    TableSchema,
    { writer: StreamWriter; encoder: TableEntryEncoder<true> }
  >();

  constructor(
    private readonly pool: WriterPool,
    private readonly naming: StreamNaming,
    private readonly entry: EntryOptions,
    private readonly global: boolean,
    /** Per stream: what the table's snapshot covers (MySQL `full`); cleared at a server move. */
    private readonly skipThrough: ReadonlyMap<string, string>,
    /** `n` more entries of `tx` are on their way (the checkpointer's count). */
    private readonly pending: (tx: InFlightTransaction) => void,
    /** DDL replication on: the DDL stream receives every schema change. */
    private readonly ddlStream: string | null,
    /** Where changes are encoded; each block is held until its entries are accepted. */
    private readonly arena: ByteArena,
  ) {}

  /** The writer and encoder of a schema object, made once per object (hot path). */
  #route(table: TableSchema): { writer: StreamWriter; encoder: TableEntryEncoder<true> } {
    let r = this.#routes.get(table);
    if (!r) {
      const stream = this.global ? this.naming.globalCdcStream() : this.naming.cdcStream(table.id);
      r = {
        writer: this.pool.writer(stream, this.global ? ALL_TABLES : qualifiedName(table.id)),
        encoder: new TableEntryEncoder(table, this.entry, true, this.arena),
      };
      this.#routes.set(table, r);
    }
    return r;
  }

  /**
   * Queues a change of `table` (its labelled schema); returns its writer, or null when the
   * change is not written (its table is skipped, or its snapshot already holds it).
   */
  change(ev: ChangeEvent, table: TableSchema, tx: InFlightTransaction, now: number) {
    const route = this.#route(table);
    const w = route.writer;
    if (w.skipped) return null;
    if (this.global && this.skipThrough.size > 0) {
      // MySQL `full`: each table's snapshot covers its changes up to its own position.
      const floor = this.skipThrough.get(this.naming.cdcStream(table.id));
      const key = ev.position.sortKey;
      if (floor !== undefined && key !== undefined && key <= floor) return null;
    }
    const entries = route.encoder.encode(ev, now);
    const block = route.encoder.lastBlock;
    if (block !== null) this.arena.hold(block);
    let bytes = 64;
    for (const e of entries) for (const f of e) bytes += fieldLength(f);
    this.pending(tx);
    this.pool.enqueue(w, {
      entries,
      tx,
      bytes,
      sortKey: ev.position.sortKey,
      op: ev.op,
      table,
      tsMs: ev.position.tsMs,
      block,
    });
    return w;
  }

  /** A schema change or DDL statement: an entry of the DDL stream, when it is on. */
  ddl({ change }: SchemaChange, tx: InFlightTransaction): void {
    const stream = this.ddlStream;
    if (!stream) return;
    const fields = encodeDdlEntry(change, this.entry, Date.now());
    const w = this.pool.writer(stream, SCHEMA_CHANGES, true);
    let bytes = 64;
    for (const f of fields) bytes += f.length;
    this.pending(tx);
    const position = change.position;
    this.pool.enqueue(w, {
      entries: [fields],
      tx,
      bytes,
      sortKey: position.sortKey,
      tsMs: position.tsMs,
    });
    this.pool.kick(w);
  }
}
