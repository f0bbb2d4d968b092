import type { Buffer } from "node:buffer";
import type pg from "pg";
import { BatchChangeEvent, type Op, type SourcePosition } from "../../core/change_event.ts";
import { matchColumnNames } from "../../config/table_selected.ts";
import { type JsonRowBatch, NO_ROWS } from "../../core/json_row_batch.ts";
import {
  GapError,
  OwnershipError,
  SourceConnectionError,
  SourceError,
  SourceSetupError,
} from "../../core/errors.ts";
import {
  type ConnectType,
  qualifiedName,
  type TableId,
  type TableSchema,
} from "../../core/table_schema.ts";
import type { TableSelection } from "../../ports/snapshot_source.ts";
import { TransactionAssembler } from "../transaction_assembler.ts";
import type { SourceTransactionPart, StreamingSource } from "../../ports/streaming_source.ts";
import { openPg, type PgEndpoint, quoteIdent } from "./pg_endpoint.ts";
import { ensureSlot, readSlot } from "./pg_replication_slot.ts";
import { type PgTable, readPgTables, selectedPgRelations } from "./pg_schema_reader.ts";
import {
  parsePublicationMessage,
  planPublication,
  preparePublication,
  PUBLICATION_MESSAGE_PREFIX,
  readPublication,
} from "./pg_publication.ts";
import { assertPgNoGap, type PgNeededPosition } from "./pg_slot_gap.ts";
import type { ReplicationOwner } from "./pg_source_ownership.ts";
import type { SchemaHistory } from "../../schema/schema_history.ts";
import { type JsonFragmentDecoder, pgConnectType, pgTextDecoder } from "./pg_text_decoder.ts";
import { PG_TYPE_CATALOG_SQL, PgTypeCatalog } from "./pg_type_catalog.ts";
import { pgJsonRoom, pgTextByteWriter } from "./pg_text_bytes.ts";
import {
  type RawMessage,
  type RawTuple,
  TUPLE_NULL,
  TUPLE_TEXT,
  TUPLE_TOAST,
} from "./pgoutput_decoder.ts";
import { formatLsn, parseLsn } from "./pgoutput_position.ts";
import { PgoutputConnection } from "./pgoutput_adapter.ts";

/** The text that stands for a TOAST value PostgreSQL did not send. */
const UNAVAILABLE_VALUE = "__replicant_unavailable_value";

const UNAVAILABLE_BYTES = new TextEncoder().encode(UNAVAILABLE_VALUE);

/**
 * The JSON of an unchanged TOAST value PostgreSQL did not send, in the column's declared type
 * (as Debezium does): the text for strings (json included), its UTF-8 bytes for bytea, and
 * for arrays one element of that kind, or the text's byte values for arrays of numbers.
 * Only variable-length values are ever left out, so numbers and booleans never need one.
 */
export function unavailableFragment(type: ConnectType): string {
  const text = JSON.stringify(UNAVAILABLE_VALUE);
  if (typeof type === "string" || type.type !== "array") {
    const t = typeof type === "string" ? type : type.type;
    return t === "bytes" ? `"${btoa(UNAVAILABLE_VALUE)}"` : text;
  }
  const items = type.items;
  const t = typeof items === "string" ? items : items.type;
  if (t === "int16" || t === "int32" || t === "int64" || t === "float" || t === "double") {
    return `[${UNAVAILABLE_BYTES.join(",")}]`;
  }
  return `[${unavailableFragment(items)}]`;
}
/** Prefix of the non-transactional heartbeat messages Replicant emits. */
export const HEARTBEAT_PREFIX = "replicant_heartbeat";

export interface PgLogicalOptions {
  slotName: string;
  publicationName: string;
  /**
   * How often the tables the filter selects are compared with the publication while
   * streaming (ms; default 2 s; 0 = never): a table created or renamed into the selection is
   * added, and its rows copied.
   */
  tableCheckMs?: number;
  /** Where publication changes and warnings are told. */
  log?: { info(message: string): void; warn(message: string): void };
  /** Emit a heartbeat message after this long without data (ms); 0 = never. Default 10 s. */
  heartbeatMs?: number;
  /** Standby status update interval (ms), so the server never times us out. Default 10 s. */
  statusIntervalMs?: number;
  /** `start-position` LSN used when there is no checkpoint. */
  startLsn?: string | null;
  /** The replication the slot belongs to, recorded on a publication this source creates. */
  owner?: ReplicationOwner;
  /**
   * Create the publication and slot when missing (default true). False when the id already
   * has a position: a missing slot is then a gap, never silently replaced.
   */
  createSlot?: boolean;
  /** Where this id's slot started, when no checkpoint was written yet (gap check). */
  slotStartLsn?: string | null;
  /** System identifier of the server the checkpoint came from; another server is a gap. */
  systemIdentifier?: string | null;
  /** A transaction is delivered in parts of at most this many events (default 2 000)… */
  maxPartEvents?: number;
  /** …or this many decoded bytes (default 16 MiB). */
  maxPartBytes?: number;
}

interface SelectedRelation {
  selected: true;
  schema: TableSchema;
  /** For each schema column, its index in the relation message's columns. */
  relIndex: number[];
  decoders: JsonFragmentDecoder[];
  /** For each schema column, writes a text value as JSON into a batch. */
  writers: PgValueWriter[];
  /** For each schema column, the JSON of an unchanged TOAST value that was not sent. */
  unavailable: string[];
}

/** Writes the JSON of the text value `buf[start, end)` as the next fragment of `batch`. */
type PgValueWriter = (buf: Buffer, start: number, end: number, batch: JsonRowBatch) => void;

function valueWriter(oid: number, catalog: PgTypeCatalog): PgValueWriter {
  const write = pgTextByteWriter(oid, catalog);
  return (buf, start, end, batch) => {
    batch.room(pgJsonRoom(end - start));
    write(buf, start, end, batch);
  };
}
/**
 * A relation whose changes are not replicated. `partitionOf` names the selected partitioned
 * table of a partition: its changes must come as that table's, so one arriving under the
 * partition's own name means the publication does not route them (and stops the stream).
 */
type Relation = SelectedRelation | { selected: false; id: TableId; partitionOf?: TableId };

interface OpenTransaction {
  token: string;
  lsnDecimal: string;
  lsnHex: string;
  xid: number;
  tsMs: number;
}

/** What the stream hands over: pgoutput messages, and the WAL end of each keepalive. */
type StreamMessage = RawMessage | { tag: "walEnd"; lsn: bigint };

/**
 * PostgreSQL streaming source: pgoutput from a logical slot through PgoutputConnection
 * (pgoutput_adapter.ts, the one place that knows pg-logical-replication), with manual
 * acknowledgement and flow control (the awaited handler is the backpressure).
 *
 * Checkpoint tokens are the commit LSN of a transaction (`X/Y`, the LSN of its commit
 * record, which BEGIN already announces, so every part of a large transaction carries the
 * same token); `acknowledge(token)` confirms `token + 1` as flushed, which is past that
 * commit record, and `start(token)` asks the server to resume at `token + 1`. Heartbeat
 * messages yield empty transactions whose token is the message's LSN.
 *
 * A keepalive that finds the stream between transactions, with everything before it
 * handled, yields an empty transaction whose token is one before the keepalive's WAL end:
 * once acknowledged, the slot is confirmed up to that end, where a transaction committing
 * next still starts. Without it, the server's walsender, which waits at shutdown until its
 * client confirms everything it sent (the shutdown checkpoint included), would hold a clean
 * shutdown of PostgreSQL for as long as Replicant stays connected.
 */
export class PgLogicalSource implements StreamingSource {
  readonly connector = "postgresql" as const;
  #relations = new Map<number, Relation>();
  #connection: PgoutputConnection | null = null;
  /** What the server has been told is flushed (confirmed_flush_lsn). */
  #flushed = 0n;
  #lastDataAt = Date.now();
  #timers: ReturnType<typeof setInterval>[] = [];
  #tx: OpenTransaction | null = null;
  /** The open transaction's changes and parts (made again by every start). */
  #asm: TransactionAssembler;
  /** The LSN of the last token delivered (commit, heartbeat message or WAL end - 1). */
  #delivered = 0n;
  #stopping = false;
  #closed = false;
  #history: SchemaHistory | null = null;
  /** The first LSN this run must deliver from when it has no checkpoint (set at the first start). */
  #baseline: bigint | null = null;
  /** The slot's confirmed position when this source opened (or created) it. */
  slotPosition: string | null = null;

  private constructor(
    readonly endpoint: PgEndpoint,
    private readonly selection: TableSelection,
    private readonly options: PgLogicalOptions,
    private control: pg.Client,
    private readonly catalog: PgTypeCatalog,
    private selected: PgTable[],
    private readonly serverVersion: number,
  ) {
    // In the constructor: a field initializer may run before the parameter properties are
    // set (bun's transpiler does so).
    this.#asm = this.#assembler(null);
  }

  /** Connects, creates the publication and the slot when missing, reads the selected tables. */
  static async open(
    endpoint: PgEndpoint,
    selection: TableSelection,
    options: PgLogicalOptions,
  ): Promise<PgLogicalSource> {
    const control = await openPg(endpoint, "replicant-realtime");
    try {
      const version = Number(
        (await control.query({ text: "SHOW server_version_num", rowMode: "array" })).rows[0][0],
      );
      const catalog = new PgTypeCatalog();
      catalog.loadRows((await control.query(PG_TYPE_CATALOG_SQL)).rows);
      const selected = await readPgTables(control, endpoint.database, selection, catalog);
      // A new position makes the publication (recording its owner) and the slot; once the id
      // has one, a missing one is a gap (found when the stream starts), never made again.
      const create = options.createSlot ?? true;
      await preparePublication(control, options.publicationName, selected, options.log, {
        owner: options.owner,
        createMissing: create,
      });
      if (create) await ensureSlot(control, options.slotName);
      const confirmed = (await readSlot(control, options.slotName))?.confirmedFlushLsn ?? null;
      const source = new PgLogicalSource(
        endpoint,
        selection,
        options,
        control,
        catalog,
        selected,
        version,
      );
      source.slotPosition = confirmed === null ? null : formatLsn(confirmed);
      return source;
    } catch (err) {
      await control.end().catch(() => {});
      throw err;
    }
  }

  tables(): TableSchema[] {
    return this.selected;
  }

  /** Relation messages describe their columns; the history fills in what they leave out. */
  useSchemaHistory(history: SchemaHistory): void {
    this.#history = history;
  }

  start(
    from: string | null,
    onTransaction: (tx: SourceTransactionPart) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    // A source may be started again after a connection failure: reset the stream state.
    this.#stopping = false;
    this.#tx = null;
    this.#asm = this.#assembler(from);
    this.#delivered = from ? parseLsn(from) : 0n;
    this.#relations.clear();
    return new Promise<void>((resolve, reject) => {
      let busy: Promise<void> = Promise.resolve();
      let settled = false;
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        this.#stopping = true;
        for (const t of this.#timers) clearInterval(t);
        this.#timers = [];
        const connection = this.#connection;
        if (err !== undefined && connection) {
          // A failed stream is abandoned: the caller starts again from its checkpoint.
          this.#connection = null;
          connection.close();
        }
        // Let the handler in progress finish before reporting: the caller drains after us.
        busy.then(() => err === undefined ? resolve() : reject(err));
      };
      if (signal.aborted) return finish();
      signal.addEventListener("abort", () => finish(), { once: true });
      this.#begin(from).then((startLsn) => {
        // Flow control is ours: a message is handled synchronously unless it has to wait
        // (a delivery, a relation's types).
        const queue: StreamMessage[] = [];
        let head = 0;
        let draining = false;
        const drain = async () => {
          try {
            while (head < queue.length && !this.#stopping) {
              const msg = queue[head];
              queue[head++] = undefined as unknown as StreamMessage;
              const wait = this.#handle(msg, onTransaction);
              if (wait !== undefined) await wait;
            }
          } catch (err) {
            finish(err);
          } finally {
            queue.length = 0;
            head = 0;
            draining = false;
            // Stopping: nothing more is handled; what was not is sent again from the checkpoint.
            if (!this.#stopping) connection.resume();
          }
        };
        const enqueue = (msg: StreamMessage) => {
          if (this.#stopping) return;
          queue.push(msg);
          if (!draining) {
            // No chunk is read until every queued message was handled (they point into the
            // parser's buffer). The drain starts after the chunk's last message (a
            // microtask): one pause per chunk.
            connection.pause();
            draining = true;
            this.#lastDataAt = Date.now();
            busy = Promise.resolve().then(drain);
          }
        };
        const connection = new PgoutputConnection(this.endpoint, {
          message: enqueue,
          keepalive: (walEnd, reply) => {
            // After the messages before it: the WAL end is confirmable once they are handled.
            enqueue({ tag: "walEnd", lsn: walEnd });
            if (reply) this.#sendStatus();
          },
          error: (err) => finish(this.#wrap(err)),
        });
        this.#connection = connection;
        connection.stream({
          slotName: this.options.slotName,
          publicationName: this.options.publicationName,
          messages: this.serverVersion >= 140000,
          startLsn,
        }).then(
          () =>
            finish(
              this.#stopping ? undefined : new SourceConnectionError("replication stream ended"),
            ),
          (err) => finish(this.#wrap(err)),
        );
        this.#timers.push(
          setInterval(() => this.#sendStatus(), this.options.statusIntervalMs ?? 10_000),
        );
        const every = this.options.tableCheckMs ?? 2_000;
        if (every > 0) {
          let checking = false;
          this.#timers.push(setInterval(() => {
            if (checking || this.#stopping) return;
            checking = true;
            this.#checkTables().then(
              () => checking = false,
              (err) => {
                checking = false;
                // A refused table or a publication no longer this id's stops the run; a lost
                // connection is the stream's to report.
                if (err instanceof SourceSetupError || err instanceof OwnershipError) finish(err);
              },
            );
          }, every));
        }
        const hb = this.options.heartbeatMs ?? 10_000;
        if (hb > 0) {
          this.#timers.push(setInterval(() => {
            if (Date.now() - this.#lastDataAt < hb || this.#stopping) return;
            this.#lastDataAt = Date.now();
            this.control.query(
              `SELECT pg_logical_emit_message(false, '${HEARTBEAT_PREFIX}', '')`,
            ).catch(() => {/* the stream reports a dead server */});
          }, Math.max(50, Math.min(hb, 1000))));
        }
      }, (err) => finish(err instanceof GapError ? err : this.#wrap(err)));
    });
  }

  #assembler(from: string | null): TransactionAssembler {
    return new TransactionAssembler({
      maxEvents: this.options.maxPartEvents ?? 2_000,
      maxBytes: this.options.maxPartBytes ?? 4 * 1024 * 1024,
    }, from);
  }

  async assertContinuity(from: string): Promise<void> {
    const needed = this.#needed(from);
    if (needed !== null) await this.#assertNoGap(needed);
  }

  /** The slot can deliver every change from `needed` (GapError otherwise); gives the slot. */
  #assertNoGap(needed: PgNeededPosition) {
    return assertPgNoGap(
      this.control,
      this.endpoint,
      this.options.slotName,
      this.options.publicationName,
      needed,
      this.options.systemIdentifier,
    );
  }

  /** Where to start: after the checkpoint, else `start-position`, else the slot's position. */
  async #begin(from: string | null): Promise<bigint> {
    try {
      await this.control.query("SELECT 1");
    } catch {
      await this.control.end().catch(() => {});
      this.control = await openPg(this.endpoint, "replicant-realtime").catch((err) => {
        throw new SourceConnectionError((err as Error).message, undefined, { cause: err });
      });
    }
    const needed = this.#needed(from);
    let slot;
    if (needed === null) slot = await readSlot(this.control, this.options.slotName);
    else {
      try {
        slot = await this.#assertNoGap(needed);
      } catch (err) {
        if (err instanceof GapError) throw err;
        // The check could not reach the server: like any connection failure, worth a retry.
        throw new SourceConnectionError((err as Error).message, undefined, { cause: err });
      }
    }
    if (!slot) {
      throw new SourceError(`Replication slot "${this.options.slotName}" does not exist`);
    }
    this.#baseline ??= needed?.from ?? slot.confirmedFlushLsn;
    const confirmed = slot.confirmedFlushLsn ?? 0n;
    if (confirmed > this.#flushed) this.#flushed = confirmed;
    // A slot still held by a session that just died frees itself within moments.
    for (let i = 0; i < 100; i++) {
      const s = await readSlot(this.control, this.options.slotName);
      if (!s?.active) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (from) return parseLsn(from) + 1n;
    if (this.options.startLsn) return parseLsn(this.options.startLsn);
    return 0n;
  }

  /**
   * The first LSN whose transactions this start must deliver: after the checkpoint; without
   * one, where this run started, the extractor's start-position, or where the id's slot
   * started. Null on a fresh run's first start (the slot's position is the start).
   */
  #needed(from: string | null): PgNeededPosition | null {
    if (from !== null) {
      return {
        from: parseLsn(from) + 1n,
        what: `LSN ${from} (commit of the last transaction written)`,
      };
    }
    if (this.#baseline !== null) {
      return {
        from: this.#baseline,
        what: `LSN ${formatLsn(this.#baseline)}, where this run began`,
      };
    }
    if (this.options.startLsn) {
      return {
        from: parseLsn(this.options.startLsn),
        what: `start-position LSN ${this.options.startLsn} (extractor realtime.start-position)`,
      };
    }
    if (this.options.slotStartLsn) {
      return {
        from: parseLsn(this.options.slotStartLsn),
        what: `LSN ${this.options.slotStartLsn}, where slot "${this.options.slotName}" began ` +
          "for this id",
      };
    }
    return null;
  }

  /** Errors of the connections are retriable; Replicant's own (decoding) errors are not. */
  #wrap(err: unknown): SourceError {
    if (err instanceof SourceError) return err;
    return new SourceConnectionError(
      `Logical replication from slot "${this.options.slotName}" on ${this.endpoint.origin} failed: ${
        (err as Error)?.message ?? err
      }`,
      undefined,
      { cause: err },
    );
  }

  #sendStatus(): void {
    if (this.#flushed > 0n && this.#connection && !this.#closed) {
      this.#connection.acknowledge(this.#flushed - 1n).catch(() => {});
    }
  }

  acknowledge(checkpoint: string): Promise<void> {
    const flush = parseLsn(checkpoint) + 1n;
    if (flush > this.#flushed) {
      this.#flushed = flush;
      this.#sendStatus();
    }
    return Promise.resolve();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#stopping = true;
    for (const t of this.#timers) clearInterval(t);
    this.#sendStatus();
    this.#closed = true;
    if (this.#connection) await this.#connection.close();
    await this.control.end().catch(() => {});
  }

  // ---------------------------------------------------------------- decoding

  /** Handles one message; a promise when it has to wait (deliveries, relations). */
  #handle(
    msg: StreamMessage,
    deliver: (tx: SourceTransactionPart) => Promise<void>,
  ): Promise<void> | undefined {
    switch (msg.tag) {
      case "walEnd": {
        if (this.#tx || msg.lsn - 1n <= this.#delivered) return;
        this.#delivered = msg.lsn - 1n;
        return deliver(this.#asm.empty(formatLsn(this.#delivered), 0));
      }
      case "begin": {
        const lsnHex = msg.finalLsn.toString(16).toUpperCase().padStart(16, "0");
        this.#tx = {
          token: formatLsn(msg.finalLsn),
          lsnDecimal: msg.finalLsn.toString(),
          lsnHex,
          xid: msg.xid,
          tsMs: msg.commitTimeMs,
        };
        this.#asm.begin(msg.commitTimeMs);
        return;
      }
      case "relation":
        return this.#relation(msg);
      case "insert":
      case "update":
      case "delete":
      case "truncate": {
        const part = this.#change(msg);
        return part === null ? undefined : deliver(part);
      }
      case "commit": {
        const tx = this.#tx;
        this.#tx = null;
        if (!tx) return;
        // Every commit is delivered, with no change too: its token moves the slot on.
        const last = this.#asm.commit(tx.token, tx.tsMs) ??
          { checkpoint: tx.token, events: [], bytes: 0, commitTsMs: tx.tsMs, ddl: [] };
        this.#delivered = parseLsn(tx.token);
        return deliver(last);
      }
      case "message":
        if (!msg.transactional && msg.prefix === HEARTBEAT_PREFIX && !this.#tx) {
          this.#delivered = msg.lsn;
          return deliver(this.#asm.empty(formatLsn(msg.lsn), 0));
        }
        if (msg.transactional && msg.prefix === PUBLICATION_MESSAGE_PREFIX && this.#tx) {
          return this.#tablesAdded(new TextDecoder().decode(msg.content));
        }
        return;
      default:
        return;
    }
  }

  async #relation(msg: Extract<RawMessage, { tag: "relation" }>): Promise<void> {
    const id: TableId = { catalog: this.endpoint.database, schema: msg.schema, table: msg.name };
    const previous = this.#relations.get(msg.relationOid);
    const same = (t: TableId) => t.schema === id.schema && t.table === id.table;
    // pgoutput also describes the partitions it routes changes through; their changes come
    // as the partitioned table's, which has a relation message of its own.
    const partitionOf = await this.#partitionRoot(msg.relationOid);
    if (
      !this.selection.table(id) || (partitionOf !== undefined && !this.selection.named?.(id))
    ) {
      this.#relations.set(msg.relationOid, {
        selected: false,
        id,
        partitionOf: partitionOf ?? undefined,
      });
      return;
    }
    const found = (await readPgTables(this.control, this.endpoint.database, {
      table: same,
      columns: (t) => this.selection.columns(t),
      named: same,
    }, this.catalog).catch((err) => {
      throw this.#wrap(err);
    }))[0];
    if (found) {
      this.selected = [...this.selected.filter((t) => !same(t.id)), found];
    }
    if (msg.columns.some((c) => !this.catalog.has(c.typeOid))) {
      this.catalog.loadRows((await this.control.query(PG_TYPE_CATALOG_SQL)).rows);
    }
    // The columns are those of the message: the table as it was when the change was
    // written, which a replay after an ALTER TABLE needs. Their other attributes come from
    // the catalog when the column still has that type, else from the schema history.
    const relIndex: number[] = [];
    const columns: TableSchema["columns"] = [];
    const typeNames = found &&
        msg.columns.every((c) =>
          found.typeOids[found.columns.findIndex((fc) => fc.name === c.name)] === c.typeOid
        )
      ? null
      : await this.#formatTypes(msg.columns);
    const written = this.selection.columns(id);
    const allowed = written && matchColumnNames(written, msg.columns.map((c) => c.name)).matched;
    msg.columns.forEach((c, i) => {
      const at = found ? found.columns.findIndex((fc) => fc.name === c.name) : -1;
      let col: TableSchema["columns"][number] | undefined;
      if (at >= 0 && found!.typeOids[at] === c.typeOid) col = found!.columns[at];
      else {
        if (allowed && !allowed.has(c.name) && (c.flags & 1) === 0) return;
        const sourceType = typeNames?.[i] ?? String(c.typeOid);
        col = this.#historicalColumn(id, c.name, sourceType) ?? {
          name: c.name,
          sourceType,
          connectType: pgConnectType(c.typeOid, this.catalog),
          nullable: (c.flags & 1) === 0,
          keyPosition: null,
          defaultValue: null,
        };
      }
      relIndex.push(i);
      columns.push(col);
    });
    let keyColumns: number[] = [];
    let hasKey = false;
    if (found && found.hasKey) {
      const names = found.keyColumns.map((ci) => found.columns[ci].name);
      keyColumns = names.map((n) => columns.findIndex((c) => c.name === n));
      hasKey = keyColumns.every((i) => i >= 0);
    }
    if (!hasKey) {
      const flagged = relIndex.map((ri, j) => (msg.columns[ri].flags & 1) ? j : -1)
        .filter((j) => j >= 0);
      hasKey = found ? false : flagged.length > 0;
      keyColumns = hasKey ? flagged : columns.map((_, i) => i);
    }
    const schema: TableSchema = { id, columns, keyColumns, hasKey };
    const decoders = relIndex.map((ri) => pgTextDecoder(msg.columns[ri].typeOid, this.catalog));
    const writers = relIndex.map((ri) => valueWriter(msg.columns[ri].typeOid, this.catalog));
    this.#relations.set(msg.relationOid, {
      selected: true,
      schema,
      relIndex,
      decoders,
      writers,
      unavailable: columns.map((c) => unavailableFragment(c.connectType)),
    });
    const oldId = previous ? (previous.selected ? previous.schema.id : previous.id) : null;
    const tx = this.#tx;
    if (oldId && tx && (oldId.schema !== id.schema || oldId.table !== id.table)) {
      // Renamed into the selection: its rows are not in the log.
      this.#copyTable(
        tx,
        found ?? schema,
        `ALTER TABLE ${quoteIdent(oldId.schema!)}.${quoteIdent(oldId.table)} RENAME TO ${
          quoteIdent(id.table)
        }`,
      );
    }
  }

  /**
   * The partitioned table a relation is a partition of (its topmost ancestor), null when it is
   * a partition whose ancestors are not selected, undefined when it is not a partition.
   */
  async #partitionRoot(oid: number): Promise<TableId | null | undefined> {
    const res = await this.control.query({
      text: `SELECT n.nspname, c.relname
               FROM pg_partition_ancestors($1::oid) WITH ORDINALITY AS a(relid, level)
               JOIN pg_class c ON c.oid = a.relid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE a.relid <> $1::oid ORDER BY a.level DESC`,
      values: [oid],
      rowMode: "array",
    }).catch((err: unknown) => {
      throw this.#wrap(err);
    });
    if (res.rows.length === 0) return undefined;
    const ancestors = (res.rows as string[][]).map(([schema, table]) => ({
      catalog: this.endpoint.database,
      schema,
      table,
    }));
    return ancestors.find((a) => this.selection.table(a)) ?? null;
  }

  /**
   * A table enters the selection with rows the log does not hold (renamed into it, or added
   * to the publication): its current rows are copied into its snapshot stream at this point
   * of the stream, then its changes follow.
   */
  #copyTable(tx: OpenTransaction, schema: TableSchema, statement: string): void {
    const seq = this.#asm.ordinal;
    this.#asm.addDdl({
      table: schema.id,
      statement,
      after: schema,
      dropped: false,
      snapshot: true,
      position: {
        tsMs: tx.tsMs,
        fields: `"lsn":${tx.lsnDecimal},"txId":${tx.xid},"sequence":${seq}`,
        sortKey: tx.lsnHex + String(seq).padStart(10, "0"),
      },
    });
  }

  /** The publication gained tables (Replicant's own message, in the transaction that did it). */
  async #tablesAdded(content: string): Promise<void> {
    const tx = this.#tx!;
    const message = parsePublicationMessage(content, this.options.publicationName);
    if (!message) return;
    for (const [schema, table] of message.added) {
      const id: TableId = { catalog: this.endpoint.database, schema, table };
      const same = (t: TableId) => t.schema === schema && t.table === table;
      const found = (await readPgTables(this.control, this.endpoint.database, {
        table: (t) => same(t) && this.selection.table(t),
        columns: (t) => this.selection.columns(t),
        named: (t) => same(t) && this.selection.named?.(t) === true,
      }, this.catalog).catch((err) => {
        throw this.#wrap(err);
      }))[0];
      // Gone or no longer selected by the time the stream reads the message: nothing to copy.
      if (found) this.#copyTable(tx, found, "");
      else this.options.log?.info(`${qualifiedName(id)} was added to the publication and is gone`);
    }
  }

  /**
   * Compares the tables the filter selects with the publication, while streaming: a table
   * created or renamed into the selection is added (its rows are copied when the stream
   * reaches that point), one that left it is removed.
   */
  async #checkTables(): Promise<void> {
    const name = this.options.publicationName;
    const db = this.endpoint.database;
    // The relations alone first (one query): columns are read only when something changed.
    const rels = await selectedPgRelations(this.control, db, this.selection);
    const state = await readPublication(this.control, name);
    // Dropped: a gap, which the stream reports when it stops on it; never made again here.
    if (state === null) return;
    const plan = planPublication(name, state, rels);
    if (plan.statements.length === 0) return;
    // Its own connection: the change is a transaction, which must not take in the stream's
    // catalog reads on the control connection.
    const client = await openPg(this.endpoint, "replicant-publication");
    try {
      const now = await readPgTables(client, db, this.selection, this.catalog);
      await preparePublication(client, name, now, this.options.log, {
        owner: this.options.owner,
        createMissing: false,
      });
    } finally {
      await client.end().catch(() => {});
    }
  }

  /**
   * A change of a partition under its own name: the publication does not publish partitions
   * as their partitioned table (a publication made before that setting). Dropping the change
   * would lose it, and it cannot be put in its table's order of keys here.
   */
  #unrouted(partition: TableId, table: TableId): SourceError {
    return new SourceError(
      `Publication "${this.options.publicationName}" sent a change of partition ${
        qualifiedName(partition)
      } under its own name instead of as ${qualifiedName(table)} (publish_via_partition_root ` +
        `is off for changes written before it was turned on): these changes cannot be ` +
        `replicated as ${qualifiedName(table)}'s. Take the table's snapshot again ` +
        `(replicant full … --overwrite).`,
      qualifiedName(table),
    );
  }

  /** The server's names of the message's column types (`character varying(20)`, …). */
  async #formatTypes(cols: { typeOid: number; typeMod: number }[]): Promise<string[]> {
    const res = await this.control.query({
      text: "SELECT format_type(t.o, t.m) FROM unnest($1::oid[], $2::int4[]) WITH ORDINALITY " +
        "AS t(o, m, n) ORDER BY t.n",
      values: [
        `{${cols.map((c) => c.typeOid).join(",")}}`,
        `{${cols.map((c) => c.typeMod).join(",")}}`,
      ],
      rowMode: "array",
    }).catch((err: unknown) => {
      throw this.#wrap(err);
    });
    return (res.rows as string[][]).map((r) => r[0]);
  }

  /** The column as the newest schema version that had it with this type knew it. */
  #historicalColumn(id: TableId, name: string, sourceType: string) {
    const versions = this.#history?.versions(id) ?? [];
    for (let v = versions.length - 1; v >= 0; v--) {
      const c = versions[v].columns.find((c) => c.name === name && c.type === sourceType);
      if (c) {
        return {
          name,
          sourceType,
          connectType: c.normalized_type,
          nullable: c.nullable,
          keyPosition: c.primary_key_position,
          defaultValue: c.default,
        };
      }
    }
    return undefined;
  }

  /**
   * Writes a tuple as the next row of the part's batch of its table; gives the row. A TOAST
   * value the new tuple left out (unchanged) comes from `fallback`, the old tuple (REPLICA
   * IDENTITY FULL) or old key (a key column stored out of line), when that holds it;
   * otherwise it is the column's unavailable-value placeholder.
   */
  #row(rel: SelectedRelation, tuple: RawTuple, fallback: RawTuple | null): number {
    const batch = this.#asm.batch(rel, rel.relIndex.length);
    const n = rel.relIndex.length;
    for (let j = 0; j < n; j++) {
      const ri = rel.relIndex[j];
      let t = tuple;
      let kind = t.kind(ri);
      if (kind === TUPLE_TOAST && fallback && fallback.kind(ri) === TUPLE_TEXT) {
        t = fallback;
        kind = TUPLE_TEXT;
      }
      if (kind === TUPLE_TEXT) rel.writers[j](t.buf, t.start(ri), t.end(ri), batch);
      else if (kind === TUPLE_NULL) batch.pushNull();
      else if (kind === TUPLE_TOAST) batch.pushFragment(rel.unavailable[j]);
      else batch.pushFragment(rel.decoders[j](t.value(ri)!));
    }
    batch.endRow();
    return batch.rows - 1;
  }

  #emit(rel: SelectedRelation, op: Op, before: number, after: number) {
    const tx = this.#tx!;
    const seq = this.#asm.nextOrdinal();
    const position: SourcePosition = {
      tsMs: tx.tsMs,
      fields: `"lsn":${tx.lsnDecimal},"txId":${tx.xid},"sequence":${seq}`,
      sortKey: tx.lsnHex + String(seq).padStart(10, "0"),
    };
    const batch = before < 0 && after < 0 ? NO_ROWS : this.#asm.existingBatch(rel)!;
    this.#asm.add(new BatchChangeEvent(rel.schema, op, { batch, before, after }, position));
  }

  /**
   * Decodes a change into the open transaction. Gives the part to deliver first when the
   * open one was full (the change starts the next part), else null.
   */
  #change(
    msg: Extract<RawMessage, { tag: "insert" | "update" | "delete" | "truncate" }>,
  ): SourceTransactionPart | null {
    const tx = this.#tx;
    if (!tx) throw new SourceError("pgoutput: change outside a transaction");
    const asm = this.#asm;
    let part: SourceTransactionPart | null = null;
    if (msg.tag === "truncate") {
      for (const oid of msg.relationOids) {
        const rel = this.#relations.get(oid);
        if (rel && !rel.selected && rel.partitionOf) throw this.#unrouted(rel.id, rel.partitionOf);
        if (!rel?.selected) continue;
        part ??= asm.takeFullPart();
        this.#emit(rel, "t", -1, -1);
        const id = rel.schema.id;
        asm.addDdl({
          table: id,
          statement: `TRUNCATE ${quoteIdent(id.schema!)}.${quoteIdent(id.table)}`,
          after: null,
          dropped: false,
          position: asm.events[asm.events.length - 1].position,
        });
      }
      asm.addBytes(200);
      return part;
    }
    const rel = this.#relations.get(msg.relationOid);
    if (!rel) throw new SourceError(`pgoutput: change of unknown relation ${msg.relationOid}`);
    if (!rel.selected) {
      if (rel.partitionOf) throw this.#unrouted(rel.id, rel.partitionOf);
      return null;
    }
    part = asm.takeFullPart();
    asm.addBytes(msg.bytes + 200);
    if (msg.tag === "insert") {
      this.#emit(rel, "c", -1, this.#row(rel, msg.new, null));
    } else if (msg.tag === "delete") {
      const old = msg.old ?? msg.key;
      this.#emit(rel, "d", old ? this.#row(rel, old, null) : -1, -1);
    } else {
      const oldTuple = msg.old ?? msg.key;
      const after = this.#row(rel, msg.new, oldTuple);
      const before = oldTuple ? this.#row(rel, oldTuple, null) : -1;
      const batch = asm.existingBatch(rel)!;
      const n = batch.columns;
      const keyChanged = before >= 0 && rel.schema.hasKey &&
        rel.schema.keyColumns.some((ci) => !batch.sameFragment(before * n + ci, after * n + ci));
      if (keyChanged) {
        this.#emit(rel, "d", before, -1);
        this.#emit(rel, "c", -1, after);
      } else this.#emit(rel, "u", before, after);
    }
    return part;
  }
}
