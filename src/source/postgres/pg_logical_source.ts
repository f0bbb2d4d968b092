import type { Buffer } from "node:buffer";
import type pg from "pg";
import { LogicalReplicationService, type PgoutputPlugin } from "pg-logical-replication";
import {
  BatchChangeEvent,
  type ChangeEvent,
  type Op,
  type SourcePosition,
} from "../../core/change_event.ts";
import { JsonRowBatch, NO_ROWS } from "../../core/json_row_batch.ts";
import { SourceError } from "../../core/errors.ts";
import type { TableId, TableSchema } from "../../core/table_schema.ts";
import type { SourceTransactionPart } from "../../pipeline/checkpointer.ts";
import type { TableSelection } from "../../pipeline/snapshot_source.ts";
import type {
  DdlStatement,
  SourceTransaction,
  StreamingSource,
} from "../../pipeline/streaming_source.ts";
import { openPg, type PgEndpoint, quoteIdent } from "./pg_endpoint.ts";
import {
  ensurePublication,
  ensureSlot,
  readSlot,
  replicationClientConfig,
} from "./pg_replication_slot.ts";
import { pgConnectType, type PgTable, readPgTables } from "./pg_schema_reader.ts";
import type { SchemaHistory } from "../../schema/schema_history.ts";
import { type JsonFragmentDecoder, pgTextDecoder } from "./pg_text_decoder.ts";
import { PG_TYPE_CATALOG_SQL, PgTypeCatalog } from "./pg_type_catalog.ts";
import { pgJsonRoom, pgTextByteWriter } from "./pg_text_bytes.ts";
import {
  decodePgoutput,
  type RawMessage,
  type RawTuple,
  TUPLE_NULL,
  TUPLE_TEXT,
  TUPLE_TOAST,
} from "./pgoutput_decoder.ts";
import { formatLsn, parseLsn } from "./pgoutput_position.ts";

/** JSON fragment of a TOAST value PostgreSQL did not send (SPEC §4). */
export const UNAVAILABLE_VALUE = '"__replicant_unavailable_value"';
/**
 * The connection to PostgreSQL failed (server restart, cut connection, terminated
 * walsender): the pipeline may start the source again from its last checkpoint.
 */
export class SourceConnectionError extends SourceError {
  readonly retriable = true;
}

/** Prefix of the non-transactional heartbeat messages Replicant emits. */
export const HEARTBEAT_PREFIX = "replicant_heartbeat";

export interface PgLogicalOptions {
  slotName: string;
  publicationName: string;
  /** Tables of a publication Replicant creates: all (default) or the selected ones. */
  publicationScope?: "all" | "selected";
  /** Emit a heartbeat message after this long without data (ms); 0 = never. Default 10 s. */
  heartbeatMs?: number;
  /** Standby status update interval (ms), so the server never times us out. Default 10 s. */
  statusIntervalMs?: number;
  /** `start-position` LSN used when there is no checkpoint. */
  startLsn?: string | null;
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
type Relation = SelectedRelation | { selected: false; id: TableId };

interface OpenTransaction {
  token: string;
  lsnDecimal: string;
  lsnHex: string;
  xid: number;
  tsMs: number;
  sequence: number;
  events: ChangeEvent[];
  ddl: DdlStatement[];
  bytes: number;
  partsSent: number;
  /** This part's rows, one batch per table (a batch has one column count). */
  batches: Map<SelectedRelation, JsonRowBatch>;
}

/** pgoutput output plugin that hands out raw text values (see pgoutput_decoder.ts). */
class RawPgoutputPlugin {
  constructor(readonly options: { publication: string; messages: boolean }) {}
  get name(): string {
    return "pgoutput";
  }
  parse(buffer: Buffer): RawMessage {
    return decodePgoutput(buffer);
  }
  start(client: pg.Client, slotName: string, lastLsn: string): Promise<unknown> {
    const pub = this.options.publication.replaceAll("'", "''");
    const messages = this.options.messages ? ", messages 'true'" : "";
    return client.query(
      `START_REPLICATION SLOT "${
        slotName.replaceAll('"', '""')
      }" LOGICAL ${lastLsn} (proto_version '1', publication_names '${pub}'${messages})`,
    );
  }
}

/** What the stream hands over: pgoutput messages, and the WAL end of each keepalive. */
type StreamMessage = RawMessage | { tag: "walEnd"; lsn: bigint };

/**
 * PostgreSQL streaming source: pgoutput from a logical slot through pg-logical-replication
 * with manual acknowledgement and flow control (the awaited handler is the backpressure).
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
  #service: LogicalReplicationService | null = null;
  /** What the server has been told is flushed (confirmed_flush_lsn). */
  #flushed = 0n;
  #lastDataAt = Date.now();
  #timers: ReturnType<typeof setInterval>[] = [];
  #tx: OpenTransaction | null = null;
  /** The LSN of the last token delivered (commit, heartbeat message or WAL end - 1). */
  #delivered = 0n;
  #stopping = false;
  #closed = false;
  #history: SchemaHistory | null = null;

  private constructor(
    readonly endpoint: PgEndpoint,
    private readonly selection: TableSelection,
    private readonly options: PgLogicalOptions,
    private control: pg.Client,
    private readonly catalog: PgTypeCatalog,
    private selected: PgTable[],
    private readonly serverVersion: number,
  ) {}

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
      const selected = await readPgTables(control, endpoint.database, selection);
      await ensurePublication(
        control,
        options.publicationName,
        options.publicationScope === "selected" ? selected.map((t) => t.id) : "all",
      );
      await ensureSlot(control, options.slotName);
      return new PgLogicalSource(endpoint, selection, options, control, catalog, selected, version);
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
    onTransaction: (tx: SourceTransaction) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    // A source may be started again after a connection failure: reset the stream state.
    this.#stopping = false;
    this.#tx = null;
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
        const service = this.#service;
        if (err !== undefined && service) {
          // A failed stream is abandoned: the caller starts again from its checkpoint.
          this.#service = null;
          shutDown(service);
        }
        // Let the handler in progress finish before reporting: the caller drains after us.
        busy.then(() => err === undefined ? resolve() : reject(err));
      };
      if (signal.aborted) return finish();
      signal.addEventListener("abort", () => finish(), { once: true });
      this.#begin(from).then((startLsn) => {
        // Flow control is ours: the library's awaits every message (several promises each),
        // which cost more than decoding it; here a message is handled synchronously unless
        // it has to wait (a delivery, a relation's types).
        const service = new LogicalReplicationService(
          replicationClientConfig(this.endpoint, "replicant-realtime-stream"),
          { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
        );
        this.#service = service;
        service.on("error", (err: Error) => finish(this.#wrap(err)));
        service.on("heartbeat", (lsn: string, _ts: number, reply: boolean) => {
          // After the messages before it: the WAL end is confirmable once they are handled.
          enqueue({ tag: "walEnd", lsn: parseLsn(lsn) });
          if (reply) this.#sendStatus();
        });
        // deno-lint-ignore no-explicit-any
        const socket = () => (service as any)._connection?.stream;
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
            if (!this.#stopping) socket()?.resume?.();
          }
        };
        const enqueue = (msg: StreamMessage) => {
          if (this.#stopping) return;
          queue.push(msg);
          if (!draining) {
            // Messages point into the protocol parser's buffer, which the next chunk may
            // overwrite: no chunk is read until every queued message was handled. The drain
            // starts after the chunk's last message (a microtask): one pause per chunk.
            socket()?.pause?.();
            draining = true;
            this.#lastDataAt = Date.now();
            busy = Promise.resolve().then(drain);
          }
        };
        service.on("data", (_lsn: string, msg: RawMessage) => enqueue(msg));
        const plugin = new RawPgoutputPlugin({
          publication: this.options.publicationName,
          messages: this.serverVersion >= 140000,
        });
        service.subscribe(
          plugin as unknown as PgoutputPlugin,
          this.options.slotName,
          formatLsn(startLsn),
        ).then(
          () =>
            finish(
              this.#stopping ? undefined : new SourceConnectionError("replication stream ended"),
            ),
          (err) => finish(this.#wrap(err)),
        );
        this.#timers.push(
          setInterval(() => this.#sendStatus(), this.options.statusIntervalMs ?? 10_000),
        );
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
      }, (err) => finish(this.#wrap(err)));
    });
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
    const slot = await readSlot(this.control, this.options.slotName);
    if (!slot) {
      throw new SourceError(`Replication slot "${this.options.slotName}" does not exist`);
    }
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
    if (this.#flushed > 0n && this.#service && !this.#closed) {
      this.#service.acknowledge(formatLsn(this.#flushed - 1n)).catch(() => {});
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
    if (this.#service) await shutDown(this.#service);
    await this.control.end().catch(() => {});
  }

  // ---------------------------------------------------------------- decoding

  /** Handles one message; a promise when it has to wait (deliveries, relations). */
  #handle(
    msg: StreamMessage,
    deliver: (tx: SourceTransaction) => Promise<void>,
  ): Promise<void> | undefined {
    switch (msg.tag) {
      case "walEnd": {
        if (this.#tx || msg.lsn - 1n <= this.#delivered) return;
        this.#delivered = msg.lsn - 1n;
        return deliver({
          checkpoint: formatLsn(this.#delivered),
          events: [],
          bytes: 0,
          commitTsMs: 0,
        });
      }
      case "begin": {
        const lsnHex = msg.finalLsn.toString(16).toUpperCase().padStart(16, "0");
        this.#tx = {
          token: formatLsn(msg.finalLsn),
          lsnDecimal: msg.finalLsn.toString(),
          lsnHex,
          xid: msg.xid,
          tsMs: msg.commitTimeMs,
          sequence: 0,
          events: [],
          ddl: [],
          bytes: 0,
          partsSent: 0,
          batches: new Map(),
        };
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
        const part: SourceTransactionPart = {
          checkpoint: tx.token,
          events: tx.events,
          bytes: tx.bytes,
          commitTsMs: tx.tsMs,
          ddl: tx.ddl,
        };
        this.#delivered = parseLsn(tx.token);
        return deliver(part);
      }
      case "message":
        if (!msg.transactional && msg.prefix === HEARTBEAT_PREFIX && !this.#tx) {
          this.#delivered = msg.lsn;
          return deliver({ checkpoint: formatLsn(msg.lsn), events: [], bytes: 0, commitTsMs: 0 });
        }
        return;
      default:
        return;
    }
  }

  async #relation(msg: Extract<RawMessage, { tag: "relation" }>): Promise<void> {
    const id: TableId = { catalog: this.endpoint.database, schema: msg.schema, table: msg.name };
    const previous = this.#relations.get(msg.relationOid);
    if (!this.selection.table(id)) {
      this.#relations.set(msg.relationOid, { selected: false, id });
      return;
    }
    const same = (t: TableId) => t.schema === id.schema && t.table === id.table;
    const found = (await readPgTables(this.control, this.endpoint.database, {
      table: same,
      columns: (t) => this.selection.columns(t),
    }).catch((err) => {
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
    const allowed = this.selection.columns(id);
    msg.columns.forEach((c, i) => {
      const at = found ? found.columns.findIndex((fc) => fc.name === c.name) : -1;
      let col: TableSchema["columns"][number] | undefined;
      if (at >= 0 && found!.typeOids[at] === c.typeOid) col = found!.columns[at];
      else {
        if (allowed && !allowed.includes(c.name) && (c.flags & 1) === 0) return;
        const sourceType = typeNames?.[i] ?? String(c.typeOid);
        col = this.#historicalColumn(id, c.name, sourceType) ?? {
          name: c.name,
          sourceType,
          connectType: pgConnectType(c.typeOid),
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
    });
    const oldId = previous ? (previous.selected ? previous.schema.id : previous.id) : null;
    const tx = this.#tx;
    if (oldId && tx && (oldId.schema !== id.schema || oldId.table !== id.table)) {
      // Renamed into the selection: its rows are not in the log.
      const seq = tx.sequence;
      tx.ddl.push({
        table: id,
        statement: `ALTER TABLE ${quoteIdent(oldId.schema!)}.${quoteIdent(oldId.table)} RENAME TO ${
          quoteIdent(id.table)
        }`,
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

  /** Writes a tuple as the next row of the part's batch of its table; gives the row. */
  #row(rel: SelectedRelation, tuple: RawTuple, fallback: RawTuple | null): number {
    const batches = this.#tx!.batches;
    let batch = batches.get(rel);
    if (!batch) {
      batch = new JsonRowBatch(rel.relIndex.length, 16 * 1024, 64 * rel.relIndex.length);
      batches.set(rel, batch);
    }
    const n = rel.relIndex.length;
    for (let j = 0; j < n; j++) {
      const ri = rel.relIndex[j];
      let t = tuple;
      let kind = t.kind(ri);
      if (kind === TUPLE_TOAST && fallback) {
        t = fallback;
        kind = t.kind(ri);
      }
      if (kind === TUPLE_TEXT) rel.writers[j](t.buf, t.start(ri), t.end(ri), batch);
      else if (kind === TUPLE_NULL) batch.pushNull();
      else if (kind === TUPLE_TOAST) batch.pushFragment(UNAVAILABLE_VALUE);
      else batch.pushFragment(rel.decoders[j](t.value(ri)!));
    }
    batch.endRow();
    return batch.rows - 1;
  }

  #emit(rel: SelectedRelation, op: Op, before: number, after: number) {
    const tx = this.#tx!;
    const seq = tx.sequence++;
    const position: SourcePosition = {
      tsMs: tx.tsMs,
      fields: `"lsn":${tx.lsnDecimal},"txId":${tx.xid},"sequence":${seq}`,
      sortKey: tx.lsnHex + String(seq).padStart(10, "0"),
    };
    const batch = before < 0 && after < 0 ? NO_ROWS : tx.batches.get(rel)!;
    tx.events.push(new BatchChangeEvent(rel.schema, op, { batch, before, after }, position));
  }

  /** Decodes a change into the open transaction; gives a part to deliver when it is full. */
  #change(
    msg: Extract<RawMessage, { tag: "insert" | "update" | "delete" | "truncate" }>,
  ): SourceTransactionPart | null {
    const tx = this.#tx;
    if (!tx) throw new SourceError("pgoutput: change outside a transaction");
    if (msg.tag === "truncate") {
      for (const oid of msg.relationOids) {
        const rel = this.#relations.get(oid);
        if (!rel?.selected) continue;
        this.#emit(rel, "t", -1, -1);
        const id = rel.schema.id;
        tx.ddl.push({
          table: id,
          statement: `TRUNCATE ${quoteIdent(id.schema!)}.${quoteIdent(id.table)}`,
          after: null,
          dropped: false,
          position: tx.events[tx.events.length - 1].position,
        });
      }
      tx.bytes += 200;
    } else {
      const rel = this.#relations.get(msg.relationOid);
      if (!rel) throw new SourceError(`pgoutput: change of unknown relation ${msg.relationOid}`);
      if (!rel.selected) return null;
      const size = msg.bytes + 200;
      tx.bytes += size;
      if (msg.tag === "insert") {
        this.#emit(rel, "c", -1, this.#row(rel, msg.new, null));
      } else if (msg.tag === "delete") {
        const old = msg.old ?? msg.key;
        this.#emit(rel, "d", old ? this.#row(rel, old, null) : -1, -1);
      } else {
        const oldTuple = msg.old ?? msg.key;
        const after = this.#row(rel, msg.new, msg.old);
        const before = oldTuple ? this.#row(rel, oldTuple, null) : -1;
        const batch = this.#tx!.batches.get(rel)!;
        const n = batch.columns;
        const keyChanged = before >= 0 && rel.schema.hasKey &&
          rel.schema.keyColumns.some((ci) => !batch.sameFragment(before * n + ci, after * n + ci));
        if (keyChanged) {
          this.#emit(rel, "d", before, -1);
          this.#emit(rel, "c", -1, after);
        } else this.#emit(rel, "u", before, after);
      }
    }
    if (
      tx.events.length >= (this.options.maxPartEvents ?? 2_000) ||
      tx.bytes >= (this.options.maxPartBytes ?? 4 * 1024 * 1024)
    ) {
      const part: SourceTransactionPart = {
        checkpoint: tx.token,
        events: tx.events,
        bytes: tx.bytes,
        commitTsMs: tx.tsMs,
        more: true,
        ddl: tx.ddl,
      };
      tx.events = [];
      tx.ddl = [];
      tx.bytes = 0;
      tx.batches = new Map();
      tx.partsSent++;
      return part;
    }
    return null;
  }
}

/**
 * Ends a replication stream without hanging: flow control may have paused the socket, and
 * a paused socket never reports its end, so resume it, and give up on a polite close after
 * two seconds by destroying the socket.
 */
async function shutDown(service: LogicalReplicationService): Promise<void> {
  // deno-lint-ignore no-explicit-any
  const stream = (service as any)._connection?.stream;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const polite = service.destroy().catch(() => {});
  stream?.resume?.();
  await Promise.race([
    polite,
    new Promise<void>((r) => timer = setTimeout(r, 2000)),
  ]);
  clearTimeout(timer);
  stream?.destroy?.();
}
