import type {
  AnyBinlogEvent,
  MariadbGtidEvent,
  QueryEvent,
  RowData,
  UpdateRowData,
} from "@vlasky/zongji";
import { setImmediate } from "node:timers";
import { BatchChangeEvent, type Op } from "../../core/change_event.ts";
import { type JsonRowBatch, NO_ROWS } from "../../core/json_row_batch.ts";
import { SourceError } from "../../core/errors.ts";
import type { TableId } from "../../core/table_schema.ts";
import type { SourceTransactionPart } from "../../ports/streaming_source.ts";
import { TransactionAssembler } from "../transaction_assembler.ts";
import { ddlTargets } from "./mysql_ddl.ts";
import { formatCheckpoint, mysqlPositionFields, mysqlSortKey } from "./mysql_position.ts";
import type { MysqlTable } from "./mysql_schema_reader.ts";
import type { BinlogStringWriter, BinlogValueDecoder } from "./mysql_value_decoder.ts";
import { eventName, ZONGJI_NO_COLUMNS, type ZongjiAdapter } from "./zongji_adapter.ts";

/** A table as the binlog source decodes it (null table: not replicated). */
export interface BinlogTableEntry {
  table: MysqlTable | null;
  decoders: BinlogValueDecoder[];
  /** Per column: the writer of values zongji gives as strings (null: use the decoder). */
  strings: (BinlogStringWriter | null)[];
  generation: number;
  /** Rebuilt from the schema history, not read from the server's current catalog. */
  historical: boolean;
}

/** What a run needs of the source's schema cache and selection. */
export interface BinlogSchemas {
  /** The table's entry when known and current. */
  known(database: string, table: string): BinlogTableEntry | undefined;
  /** The table's entry, read from the server when not known. */
  lookup(database: string, table: string): Promise<BinlogTableEntry>;
  /** The table's schema after a DDL statement at `sortKey` (null: dropped). */
  afterDdl(id: TableId, sortKey: string): Promise<MysqlTable | null>;
  /** The table was dropped. */
  dropped(id: TableId): void;
  /** A DDL Replicant cannot attribute: every table is read again on next use. */
  catalogChanged(): void;
  /** The table is replicated (its database and the selection). */
  selected(id: TableId): boolean;
}

export interface BinlogRunSettings {
  /** The checkpoint the run starts after (null: the current end of the binlog). */
  from: string | null;
  maxEvents: number;
  /** See MysqlBinlogOptions.idleCheckpointMs. */
  idleMs: number;
  /** The server's own @@server_id (for MySQL GTID events, which do not carry one). */
  serverOwnId: number;
}

/** Where the open transaction's changes are in the binlog, built once per transaction. */
interface OpenTransaction {
  file: string;
  pos: number;
  tsMs: number;
  /** `source` fields up to `"row":` and the sort key up to the row part. */
  fieldsPrefix: string;
  sortKeyPrefix: string;
}

type RowsEvent = AnyBinlogEvent & { tableId: number; rows: unknown[] };

/**
 * Rows decoded between two turns of the event loop. zongji hands over every event of one
 * socket read (up to 512 KiB of binlog, thousands of rows) in one synchronous burst; the
 * writers' Redis replies that arrive meanwhile are read only after it, so Redis idles while
 * rows are decoded. Letting the loop turn every few hundred rows keeps decoding and writing
 * overlapped (a 1M-row transaction's backlog: about 100k events/s without turns, 135–145k with
 * them on two CPUs; docs/performance.md).
 */
const ROWS_PER_TURN = 256;

/** Lets the event loop run what is ready (I/O first) before the next job. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const TX_MARKERS = new Set(["BEGIN", "COMMIT", "ROLLBACK", "XA START", "XA END"]);

/**
 * One `start` of the binlog source: reads zongji's events, frames them into transactions
 * (GTID/BEGIN to XID/COMMIT, a DDL statement alone), decodes row images, and delivers what
 * the transaction assembler gives, one delivery at a time. The binlog connection is paused
 * while queued work runs, so the backlog stays in the server's binlog.
 */
export class BinlogRun {
  #finished = false;
  /** Queued work (decoding that needs a schema, deliveries) is running. */
  #inFlight = false;
  readonly #jobs: (() => Promise<void>)[] = [];
  /** The binlog file being read. */
  #file = "";
  #tx: OpenTransaction | null = null;
  readonly #asm: TransactionAssembler;
  #lastDeliveryMs = Date.now();
  /** The checkpoint of transactions with no selected change, not delivered yet. */
  #pendingEmpty: { checkpoint: string; tsMs: number } | null = null;
  #idleTimer: ReturnType<typeof setTimeout> | null = null;
  /** Rows decoded since the event loop last turned (see ROWS_PER_TURN). */
  #rowsSinceTurn = 0;
  readonly #onAbort = () => {
    // Let a delivery in flight finish; nothing new is read meanwhile (paused).
    if (!this.#inFlight) this.finish();
  };

  constructor(
    private readonly binlog: ZongjiAdapter,
    private readonly schemas: BinlogSchemas,
    private readonly settings: BinlogRunSettings,
    private readonly onTransaction: (tx: SourceTransactionPart) => Promise<void>,
    private readonly signal: AbortSignal,
    /** Called once when the run ends: without an error when stopped. */
    private readonly ended: (err?: unknown) => void,
  ) {
    this.#asm = new TransactionAssembler({ maxEvents: settings.maxEvents }, settings.from);
    signal.addEventListener("abort", this.#onAbort);
    binlog.onEvent((e) => this.#onEvent(e));
    binlog.onError((err) => this.#onError(err));
  }

  get finished(): boolean {
    return this.#finished;
  }

  /** The binlog is read from `file`; `checkpoint`: the start's token, when none was given. */
  startAt(file: string, checkpoint: string | null): void {
    this.#file = file;
    if (checkpoint !== null) this.#asm.checkpoint = checkpoint;
  }

  /** Once zongji reads: a stop asked for meanwhile ends the run. */
  started(): void {
    if (this.signal.aborted) this.#onAbort();
  }

  finish(err?: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.signal.removeEventListener("abort", this.#onAbort);
    this.binlog.stop();
    this.ended(err);
  }

  // ---------------------------------------------------------------- delivery queue

  /**
   * Queues async work (decoding that needs a schema, deliveries) and pauses the binlog
   * connection until all queued work is done, so events wait in the server, in order.
   * The connection is resumed through the adapter, which leaves it paused while zongji
   * reads a table's columns. (A delivery that no binlog event started, the idle
   * checkpoint, can end in the middle of such a lookup.)
   */
  #schedule(job: () => Promise<void>): void {
    this.#jobs.push(job);
    this.binlog.pause();
    if (this.#inFlight) return;
    this.#inFlight = true;
    (async () => {
      while (this.#jobs.length > 0 && !this.#finished) await this.#jobs.shift()!();
    })().then(() => {
      this.#inFlight = false;
      if (this.signal.aborted) return this.finish();
      if (!this.#finished) this.binlog.resume();
    }, (err) => {
      this.#inFlight = false;
      this.finish(err);
    });
  }

  async #deliver(t: SourceTransactionPart): Promise<void> {
    this.#pendingEmpty = null;
    if (this.#idleTimer) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = null;
    }
    this.#lastDeliveryMs = Date.now();
    await this.onTransaction(t);
  }

  /**
   * Transactions with no selected change are acknowledged by an empty delivery at most
   * every `idleMs`, and at the latest `idleMs` after they happened.
   */
  #emptyCommitted(checkpoint: string, tsMs: number): void {
    this.#pendingEmpty = { checkpoint, tsMs };
    const due = this.#lastDeliveryMs + this.settings.idleMs - Date.now();
    if (due <= 0) this.#flushEmpty();
    else if (this.#idleTimer === null) this.#idleTimer = setTimeout(() => this.#flushEmpty(), due);
  }

  #flushEmpty(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    if (this.#finished) return;
    this.#schedule(async () => {
      const p = this.#pendingEmpty;
      if (p) {
        await this.#deliver({ checkpoint: p.checkpoint, events: [], bytes: 0, commitTsMs: p.tsMs });
      }
    });
  }

  // ---------------------------------------------------------------- transactions

  #beginTx(pos: number, gtid: string | undefined, serverId: number, tsMs: number): void {
    // A group that ended without a commit marker (not expected) ends where this begins.
    if (this.#tx !== null && this.#asm.touched) {
      this.#commit({ nextPosition: pos, timestamp: tsMs });
    }
    const fields = mysqlPositionFields(serverId, gtid, this.#file, pos, 0);
    this.#asm.begin(tsMs);
    this.#tx = {
      file: this.#file,
      pos,
      tsMs,
      fieldsPrefix: fields.substring(0, fields.length - 1),
      sortKeyPrefix: mysqlSortKey(this.#file, pos, 0).substring(0, 30),
    };
  }

  #ensureTx(e: AnyBinlogEvent): OpenTransaction {
    if (this.#tx === null) {
      this.#beginTx(this.binlog.eventStart(e), e.gtid, this.settings.serverOwnId, e.timestamp);
    }
    return this.#tx!;
  }

  /** The position of the open transaction's next change or DDL statement. */
  #nextPosition(t: OpenTransaction, tsMs: number) {
    const row = this.#asm.nextOrdinal();
    return {
      tsMs,
      fields: t.fieldsPrefix + row,
      sortKey: t.sortKeyPrefix + (row < 10 ? "000000000" + row : String(row).padStart(10, "0")),
    };
  }

  #addEvent(
    t: OpenTransaction,
    table: MysqlTable,
    op: Op,
    batch: JsonRowBatch,
    before: number,
    after: number,
  ): void {
    this.#asm.add(
      new BatchChangeEvent(table, op, { batch, before, after }, this.#nextPosition(t, t.tsMs)),
    );
  }

  #commit(e: { nextPosition: number; timestamp: number }): void {
    this.#tx = null;
    const checkpoint = formatCheckpoint({
      file: this.#file,
      pos: e.nextPosition,
      gtid: this.binlog.gtidSet,
    });
    for (const ev of this.#asm.events) ev.position.tsMs = e.timestamp;
    for (const d of this.#asm.ddl) d.position.tsMs = e.timestamp;
    const delivery = this.#asm.commit(checkpoint, e.timestamp);
    if (delivery !== null) this.#schedule(() => this.#deliver(delivery));
    else this.#emptyCommitted(checkpoint, e.timestamp);
  }

  // ---------------------------------------------------------------- row events

  /** Writes a row image as the next row of the batch; gives the row. */
  #decodeRow(entry: BinlogTableEntry, batch: JsonRowBatch, row: RowData): number {
    const table = entry.table!;
    const values = Object.values(row);
    const ord = table.ordinals;
    const dec = entry.decoders;
    const strings = entry.strings;
    const from = batch.length;
    for (let i = 0; i < ord.length; i++) {
      const o = ord[i];
      if (o >= values.length) batch.pushNull();
      else {
        const v = values[o];
        const write = strings[i];
        if (write !== null && typeof v === "string") write(v, batch);
        else batch.pushFragment(dec[i](v));
      }
    }
    batch.endRow();
    this.#asm.addBytes(64 + batch.length - from);
    return batch.rows - 1;
  }

  #addRows(
    e: RowsEvent,
    entry: BinlogTableEntry,
    t: OpenTransaction,
    from: number,
    to: number,
  ): void {
    const table = entry.table!;
    const batch = this.#asm.batch(table, table.ordinals.length);
    const n = batch.columns;
    const name = eventName(e);
    for (let i = from; i < to; i++) {
      const r = e.rows[i];
      if (name === "writerows") {
        this.#addEvent(t, table, "c", batch, -1, this.#decodeRow(entry, batch, r as RowData));
      } else if (name === "deleterows") {
        this.#addEvent(t, table, "d", batch, this.#decodeRow(entry, batch, r as RowData), -1);
      } else {
        const u = r as UpdateRowData;
        const before = this.#decodeRow(entry, batch, u.before);
        const after = this.#decodeRow(entry, batch, u.after);
        if (
          table.hasKey &&
          !table.keyColumns.every((c) => batch.sameFragment(before * n + c, after * n + c))
        ) {
          this.#addEvent(t, table, "d", batch, before, -1);
          this.#addEvent(t, table, "c", batch, -1, after);
        } else this.#addEvent(t, table, "u", batch, before, after);
      }
    }
  }

  /** Slow path: the table's schema must be read, or a part must be handed over. */
  async #onRows(e: RowsEvent): Promise<void> {
    const map = this.binlog.table(e.tableId);
    if (!map) return;
    const entry = await this.schemas.lookup(map.parentSchema, map.tableName);
    if (!entry.table) return;
    const t = this.#ensureTx(e);
    this.#checkWidth(e, entry.table, t);
    for (let i = 0; i < e.rows.length; i++) {
      // A full part is handed over only when more changes follow (the assembler's rule), so
      // the last part always goes with the commit (and its checkpoint).
      const part = this.#asm.takeFullPart();
      if (part !== null) await this.#deliver(part);
      this.#addRows(e, entry, t, i, i + 1);
    }
  }

  /** Fast path, synchronous: known table, no part boundary inside this event. */
  #onRowsNow(e: RowsEvent): void {
    const map = this.binlog.table(e.tableId);
    if (!map) return;
    const entry = this.schemas.known(map.parentSchema, map.tableName);
    if (entry === undefined) return this.#schedule(() => this.#onRows(e));
    if (!entry.table) return;
    const t = this.#ensureTx(e);
    if (this.#asm.events.length + 2 * e.rows.length > this.settings.maxEvents) {
      return this.#schedule(() => this.#onRows(e));
    }
    this.#checkWidth(e, entry.table, t);
    this.#addRows(e, entry, t, 0, e.rows.length);
    this.#rowsSinceTurn += e.rows.length;
    if (this.#rowsSinceTurn >= ROWS_PER_TURN) {
      this.#rowsSinceTurn = 0;
      // Queued like any other work: the events after this one wait in order, paused.
      this.#schedule(nextTurn);
    }
  }

  /**
   * A row image must have the width of the schema it is decoded with; it does not when
   * several DDLs changed the table while Replicant was not reading (the catalog is
   * ahead of the binlog). Stop rather than decode columns under wrong names.
   */
  #checkWidth(e: RowsEvent, table: MysqlTable, t: OpenTransaction): void {
    const width = (e as unknown as { numberOfColumns?: number }).numberOfColumns;
    if (width === undefined || width === table.totalColumns) return;
    throw new SourceError(
      `Row image of ${table.id.catalog}.${table.id.table} at ${t.file}:${t.pos} has ${width} ` +
        `columns, but the table's schema at that point is not known (it has ` +
        `${table.totalColumns} now): it was changed more than once while Replicant was not ` +
        `reading. Take a new snapshot of it (replicant full --overwrite)`,
      table.id.table,
    );
  }

  // ---------------------------------------------------------------- query events

  async #onQuery(e: QueryEvent): Promise<void> {
    const q = e.query.trim();
    const upper = q.substring(0, 13).toUpperCase();
    if (upper === "BEGIN" || upper.startsWith("XA START") || upper.startsWith("XA END")) {
      this.#ensureTx(e);
      return;
    }
    if (upper === "COMMIT" || upper === "ROLLBACK" || upper.startsWith("XA COMMIT")) {
      this.#commit(e);
      return;
    }
    if (
      TX_MARKERS.has(upper) || upper.startsWith("SAVEPOINT") ||
      upper.startsWith("ROLLBACK TO") ||
      upper.startsWith("RELEASE SAVEP")
    ) return;
    await this.#onDdl(e, q);
    this.#commit(e);
  }

  /**
   * A DDL statement (its own transaction). Tables it names are re-read now, in binlog
   * order; anything else that may change tables is re-read on next use.
   */
  async #onDdl(e: QueryEvent, q: string): Promise<void> {
    const t = this.#ensureTx(e);
    const targets = ddlTargets(q, e.schema || null);
    if (targets === null) {
      if (/^\s*(?:\/\*[\s\S]*?\*\/\s*)*(?:ALTER|CREATE|DROP|RENAME)\b/i.test(q)) {
        this.schemas.catalogChanged();
      }
    }
    for (const target of targets ?? []) {
      if (target.database === null) continue;
      const id: TableId = { catalog: target.database, schema: null, table: target.table };
      if (!this.schemas.selected(id)) continue;
      const position = this.#nextPosition(t, e.timestamp);
      if (target.kind === "truncate") {
        const entry = await this.schemas.lookup(id.catalog, id.table);
        if (entry.table) this.#addEvent(t, entry.table, "t", NO_ROWS, -1, -1);
        this.#asm.addDdl({ table: id, statement: q, after: null, dropped: false, position });
        continue;
      }
      if (target.kind === "drop") {
        this.schemas.dropped(id);
        this.#asm.addDdl({ table: id, statement: q, after: null, dropped: true, position });
        continue;
      }
      const after = await this.schemas.afterDdl(id, position.sortKey);
      this.#asm.addDdl({
        table: id,
        statement: q,
        after,
        dropped: after === null,
        snapshot: target.renamed === true && after !== null,
        position,
      });
    }
  }

  // ---------------------------------------------------------------- events

  #onEvent(e: AnyBinlogEvent): void {
    if (this.#finished) return;
    // Events that arrive while queued work runs (only possible when zongji itself
    // resumed the connection) wait behind it, in order.
    if (this.#inFlight) return this.#schedule(() => Promise.resolve(this.#handle(e)));
    this.#handle(e);
  }

  #handle(e: AnyBinlogEvent): void {
    if (this.#finished) return;
    try {
      switch (eventName(e)) {
        case "rotate":
          this.#file = (e as { binlogName: string }).binlogName;
          return;
        case "mariadbgtid": {
          const g = e as MariadbGtidEvent;
          this.#beginTx(this.binlog.eventStart(g), g.gtid, g.serverId, g.timestamp);
          return;
        }
        case "gtid":
        case "anonymousgtid":
          this.#beginTx(
            this.binlog.eventStart(e),
            eventName(e) === "gtid" ? e.gtid : undefined,
            this.settings.serverOwnId,
            e.timestamp,
          );
          return;
        case "tablemap":
          this.binlog.tableMapped((e as { tableId: number }).tableId);
          return;
        case "writerows":
        case "updaterows":
        case "deleterows":
          this.#onRowsNow(e as RowsEvent);
          return;
        case "query":
          this.#schedule(() => this.#onQuery(e as QueryEvent));
          return;
        case "xid":
          this.#commit(e);
          return;
        case "xaprepare":
          if (this.#tx !== null && this.#asm.touched) {
            throw new SourceError(
              "XA transactions on replicated tables are not supported (XA PREPARE at " +
                `${this.#file}:${this.binlog.eventStart(e)})`,
            );
          }
          this.#tx = null;
          this.#asm.drop();
          return;
      }
    } catch (err) {
      this.finish(err);
    }
  }

  #onError(err: Error): void {
    if (ZONGJI_NO_COLUMNS.test(err.message)) {
      const table = err.message.replace(ZONGJI_NO_COLUMNS, "");
      return this.finish(
        new SourceError(
          `Cannot decode rows of ${table} near ${this.#file}: the server no longer has this ` +
            `table (or the user cannot read its columns in information_schema) and its ` +
            `columns at that point of the binlog are not known. If it was dropped, take ` +
            `a new snapshot (replicant full --overwrite); else grant SELECT on it`,
          table,
        ),
      );
    }
    this.finish(err);
  }
}
