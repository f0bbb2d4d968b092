import ZongJi from "@vlasky/zongji";
import type {
  AnyBinlogEvent,
  MariadbGtidEvent,
  QueryEvent,
  RowData,
  TableMapEntry,
  UpdateRowData,
} from "@vlasky/zongji";
import { BatchChangeEvent, type ChangeEvent, type Op } from "../../core/change_event.ts";
import { JsonRowBatch, NO_ROWS } from "../../core/json_row_batch.ts";
import { GapError, markRetriable, SourceError } from "../../core/errors.ts";
import type { TableId, TableSchema } from "../../core/table_schema.ts";
import { buildSchemaDumpEntry, type SchemaDumpEntry } from "../../schema/schema_dump.ts";
import type { SchemaHistory } from "../../schema/schema_history.ts";
import { ddlTargets } from "./mysql_ddl.ts";
import type { TableSelection } from "../../ports/snapshot_source.ts";
import type {
  DdlStatement,
  ServerChange,
  SourceTransaction,
  StreamingSource,
} from "../../ports/streaming_source.ts";
import {
  type MysqlConnection,
  mysqlConnectionOptions,
  type MysqlEndpoint,
  mysqlQueryError,
  mysqlWhere,
  openMysql,
  pickServerId,
} from "./mysql_endpoint.ts";
import {
  type BinlogCoordinate,
  formatCheckpoint,
  isMysqlGtid,
  mysqlPositionFields,
  mysqlSortKey,
  parseCheckpoint,
} from "./mysql_position.ts";
import {
  type MysqlTable,
  mysqlTableFromDump,
  mysqlTableKey,
  readMysqlTables,
} from "./mysql_schema_reader.ts";
import { masterStatus } from "./mysql_snapshot_source.ts";
import { type MysqlHeartbeat, MysqlHeartbeatWriter } from "./mysql_heartbeat.ts";
import { gtidCovered, mysqlResumeVerdict, readMysqlServerView } from "./mysql_binlog_gap.ts";
import {
  type BinlogStringWriter,
  type BinlogValueDecoder,
  mysqlBinlogDecoder,
  mysqlBinlogStringWriter,
  type MysqlColumnType,
} from "./mysql_value_decoder.ts";

export interface MysqlBinlogOptions {
  selection: TableSelection;
  /**
   * The databases the selection can match, when known (no patterns): binlog events of other
   * databases are skipped before zongji looks their tables up.
   */
  databases?: string[];
  /**
   * A transaction with more changes than this is delivered in parts of this size. Every
   * part but the last carries the checkpoint of the previous transaction (resuming from
   * it replays the whole transaction; the stream-tail rule drops what already landed);
   * the last part carries the transaction's own. Default 2 000 (bounds memory).
   */
  maxEventsPerDelivery?: number;
  /**
   * Transactions with no selected change are acknowledged by delivering an empty
   * transaction (just a checkpoint) at most this often, and at the latest this long after
   * they happened. Default 1000 ms.
   */
  idleCheckpointMs?: number;
  /** Arcion's heartbeat table written every `intervalMs`, so the position moves when idle. */
  heartbeat?: MysqlHeartbeat;
  /** Identity of the server the checkpoint came from (mysqlServerIdentity); null: unknown. */
  serverIdentity?: string | null;
  /** The extractor's start-position token, to name it in messages when starting from it. */
  startPosition?: string | null;
}

interface TableEntry {
  table: MysqlTable | null;
  decoders: BinlogValueDecoder[];
  /** Per column: the writer of values zongji gives as strings (null: use the decoder). */
  strings: (BinlogStringWriter | null)[];
  generation: number;
  /** Rebuilt from the schema history, not read from the server's current catalog. */
  historical: boolean;
}

interface OpenTransaction {
  file: string;
  pos: number;
  gtid: string | undefined;
  serverId: number;
  events: ChangeEvent[];
  /** This part's rows, one batch per table. */
  batches: Map<MysqlTable, JsonRowBatch>;
  ddl: DdlStatement[];
  row: number;
  bytes: number;
  tsMs: number;
  /** `source` fields up to `"row":` and the sort key up to the row part, built once. */
  fieldsPrefix: string;
  sortKeyPrefix: string;
}

/** A transaction's identity: where it starts in the binlog, the same for all its parts. */
const transactionOf = (t: OpenTransaction) => `${t.file}:${t.pos}`;

/** zongji's error when information_schema has no columns for a table map's table. */
const ZONGJI_NO_COLUMNS = /^Insufficient permissions to access: /;

/** zongji's own fields for the labels of an ENUM or SET column (none for other kinds). */
function labelsOf(t: MysqlColumnType): Record<string, string[]> {
  if (!t.labels) return {};
  return t.kind === "enum" ? { ENUM_VALUES: t.labels } : { SET_VALUES: t.labels };
}

/**
 * zongji names events after their classes (`constructor.name`); a bundler that renames a
 * class clashing with another of the same name (bun: zongji's `Query` and mysql2's become
 * `Query2`) would hide those events. The names never end in digits otherwise.
 */
export function eventName(e: { getEventName(): string }): string {
  return e.getEventName().replace(/\d+$/, "");
}

const TEXT_KINDS = new Set(["text", "enum", "set", "json"]);
const TX_MARKERS = new Set(["BEGIN", "COMMIT", "ROLLBACK", "XA START", "XA END"]);
const TIME2 = 19, BIT = 16, GEOMETRY = 255, BLOB = 252;

/**
 * Makes zongji hand over raw bytes where its own decoding is lossy: TIME(n) columns (its
 * TIME2 decoding is wrong for negative values such as `-00:01:00`) are read as BIT of the
 * same width, GEOMETRY as a BLOB (raw internal value). Idempotent; call on every TableMap.
 */
export function patchZongjiColumns(entry: TableMapEntry | undefined): void {
  if (!entry?.columns) return;
  for (const col of entry.columns as (TableMapEntry["columns"] & object)[number][]) {
    const c = col as { type: number; metadata: Record<string, unknown>; charset: unknown };
    if (c.type === TIME2) {
      const decimals = Number((c.metadata ?? {}).decimals ?? 0);
      c.type = BIT;
      c.metadata = { ...c.metadata, bits: (3 + ((decimals + 1) >> 1)) * 8 };
    } else if (c.type === GEOMETRY) {
      c.type = BLOB;
      c.charset = null;
    }
  }
}

/**
 * MySQL/MariaDB binlog source over `@vlasky/zongji`.
 *
 * Positions: each change carries `"server_id","gtid" (when the server has GTIDs),"file",
 * "pos" (start of its transaction's first event: the GTID/BEGIN event),"row"` and a 40-digit
 * sort key (file sequence 10, pos 20, row 10). A checkpoint token is JSON
 * `{"file","pos","gtid"}` naming the position right after the commit event and the GTID
 * set/position executed up to it; `start` resumes from the GTID when the server can
 * (MariaDB always, MySQL with gtid_mode=ON), else from file+pos, and with no token from the
 * current end of the binlog (`SHOW MASTER STATUS`).
 *
 * Schemas: column names and types come from information_schema (the schema reader) and are
 * mapped onto row images by ordinal position; after any DDL in the binlog every table is
 * re-read on next use. Like zongji, this reads the schema as it is now, not as it was
 * when an old event was written: replaying events from before an ALTER TABLE decodes them
 * with the new column list (columns missing from the image are null).
 *
 * Not supported: XA transactions that touch selected tables (start() fails with a
 * SourceError naming the XA PREPARE position); binlog_row_image other than FULL and
 * non-ROW formats (see checkMysqlPrerequisites); MySQL compressed transaction payloads
 * (zongji reports them as errors).
 * Decodes row events into ChangeEvents
 * (`c`/`u`/`d`; a key change is `d` then `c`), TRUNCATE statements into `t`, and delivers
 * each committed transaction (XID, or COMMIT / DDL query) with a checkpoint token
 * `{"file","pos","gtid"}` pointing right after it. The binlog connection is paused while
 * the handler runs, so the backlog stays in the server's binlog.
 */
export class MysqlBinlogSource implements StreamingSource {
  readonly connector = "mysql" as const;
  #tables = new Map<string, TableEntry>();
  #generation = 0;
  #history: SchemaHistory | null = null;
  #zongji: ZongJi | null = null;
  #acknowledged: string | null = null;
  #heartbeat: MysqlHeartbeatWriter | null = null;
  /** Where a start without a checkpoint began: a later start without one begins there too. */
  #origin: string | null = null;
  /** Identity of the server the positions belong to (changes after a failover). */
  #serverIdentity: string | null;
  /**
   * Called before streaming from another server than the checkpoint's that continues it
   * (a failover); without it, such a start is refused as a gap.
   */
  onServerChange: ((change: ServerChange) => Promise<void>) | null = null;

  private constructor(
    readonly endpoint: MysqlEndpoint,
    private ctrl: MysqlConnection,
    readonly isMariadb: boolean,
    /** The source server's own @@server_id. */
    readonly serverOwnId: number,
    /** The id this client uses on the replication connection. */
    readonly clientServerId: number,
    private readonly options: MysqlBinlogOptions,
  ) {
    this.#serverIdentity = options.serverIdentity ?? null;
  }

  static async open(
    endpoint: MysqlEndpoint,
    options: MysqlBinlogOptions,
  ): Promise<MysqlBinlogSource> {
    const ctrl = await openMysql(endpoint);
    try {
      const [rows] = await ctrl.query({
        sql: "SELECT VERSION(), @@GLOBAL.server_id",
        rowsAsArray: true,
      }) as unknown as [unknown[][]];
      const isMariadb = /mariadb/i.test(String(rows[0][0]));
      const ownId = Number(rows[0][1]);
      const clientId = pickServerId(endpoint.serverIds, ownId);
      const source = new MysqlBinlogSource(endpoint, ctrl, isMariadb, ownId, clientId, options);
      const tables = await readMysqlTables(ctrl, options.selection, endpoint.database);
      for (const t of tables) source.#remember(mysqlTableKey(t.id.catalog, t.id.table), t);
      return source;
    } catch (err) {
      ctrl.destroy();
      throw mysqlQueryError(endpoint, "Opening the binlog source", err);
    }
  }

  tables(): TableSchema[] {
    return [...this.#tables.values()].flatMap((e) => (e.table ? [e.table] : []));
  }

  /** The current end of the binlog as a checkpoint token (where a start with no token begins). */
  async currentPosition(): Promise<string> {
    return formatCheckpoint(await masterStatus(this.ctrl, this.isMariadb));
  }

  /** Server thread id of the binlog dump connection while streaming (diagnostics, tests). */
  binlogThreadId(): number | null {
    return this.#zongji?.connection?.threadId ?? null;
  }

  /** The last checkpoint given to `acknowledge` (MySQL keeps no server-side state for it). */
  acknowledged(): string | null {
    return this.#acknowledged;
  }

  acknowledge(checkpoint: string): Promise<void> {
    this.#acknowledged = checkpoint;
    return Promise.resolve();
  }

  #remember(key: string, table: MysqlTable | null, historical = false): TableEntry {
    const doubtful = table?.types.findIndex((t) => t.labelsProblem !== undefined) ?? -1;
    if (table && doubtful >= 0) {
      const col = table.columns[doubtful];
      throw new SourceError(
        `Cannot decode ${table.id.catalog}.${table.id.table}.${col.name}: information_schema ` +
          `prints its labels as ${col.sourceType}, where a '?' may stand for a character it ` +
          `cannot show, and reading the real labels failed (${
            table.types[doubtful].labelsProblem
          }). Grant the user CREATE TEMPORARY TABLES ON ${table.id.catalog}.* (Replicant reads ` +
          "the labels through a temporary table, which the binlog does not record)",
        table.id.table,
      );
    }
    const entry: TableEntry = {
      table,
      decoders: table ? table.types.map(mysqlBinlogDecoder) : [],
      strings: table ? table.types.map(mysqlBinlogStringWriter) : [],
      generation: this.#generation,
      historical,
    };
    this.#tables.set(key, entry);
    return entry;
  }

  /**
   * Where a replay starts before a DDL, the tables in effect at the checkpoint differ from
   * the server's current catalog: decode with the versions the history kept.
   */
  useSchemaHistory(history: SchemaHistory, inEffect: SchemaDumpEntry[]): void {
    this.#history = history;
    for (const e of inEffect) {
      const key = mysqlTableKey(e.id.catalog, e.id.table);
      const current = this.#tables.get(key)?.table;
      if (current && buildSchemaDumpEntry(current, 0, 0).fingerprint === e.fingerprint) continue;
      const table = mysqlTableFromDump(e);
      if (table) this.#remember(key, table, true);
    }
  }

  /**
   * A DDL statement at position `sortKey` on a selected table: its schema afterwards, from
   * the history when a first pass recorded it there, else from the server (null: dropped).
   */
  async #afterDdl(id: TableId, sortKey: string): Promise<MysqlTable | null> {
    const key = mysqlTableKey(id.catalog, id.table);
    const recorded = this.#history?.atPosition(id, sortKey);
    const historical = recorded ? mysqlTableFromDump(recorded) : null;
    if (historical) return this.#remember(key, historical, true).table;
    const found = await readMysqlTables(this.ctrl, this.options.selection, id.catalog, [
      { database: id.catalog, table: id.table },
    ]);
    return this.#remember(key, found[0] ?? null).table;
  }

  /**
   * The table's entry when known and current: read after the last DDL that may have changed
   * it, or taken from the schema history. A historical entry is the table as it was at the
   * binlog position being read, while the catalog may already be ahead of it, so only a DDL
   * that names the table replaces it; a DDL Replicant cannot attribute (CREATE DATABASE, a
   * procedure) does not.
   */
  #known(database: string, table: string): TableEntry | undefined {
    const known = this.#tables.get(mysqlTableKey(database, table));
    return known && (known.historical || known.generation === this.#generation) ? known : undefined;
  }

  async #lookup(database: string, table: string): Promise<TableEntry> {
    const key = mysqlTableKey(database, table);
    const known = this.#known(database, table);
    if (known) return known;
    if (this.endpoint.database && database !== this.endpoint.database) {
      return this.#remember(key, null);
    }
    if (!this.options.selection.table({ catalog: database, schema: null, table })) {
      return this.#remember(key, null);
    }
    const found = await readMysqlTables(this.ctrl, this.options.selection, database, [
      { database, table },
    ]);
    return this.#remember(key, found[0] ?? null);
  }

  /** The control connection dies with a server restart; reopen it before it is needed. */
  async #reviveCtrl(): Promise<void> {
    try {
      await this.ctrl.query("SELECT 1");
    } catch {
      this.ctrl.destroy();
      this.ctrl = await openMysql(this.endpoint);
    }
  }

  async #startOptions(
    requested: string | null,
  ): Promise<{ opts: Record<string, unknown>; at: BinlogCoordinate }> {
    await this.#reviveCtrl();
    const from = requested ?? this.#origin;
    const at = from === null
      ? await masterStatus(this.ctrl, this.isMariadb)
      : parseCheckpoint(from);
    if (from === null) this.#origin = formatCheckpoint(at);
    else await this.#checkContinuity(from, at);
    const gtidUsable = at.gtid !== undefined && isMysqlGtid(at.gtid) !== this.isMariadb;
    if (gtidUsable && this.isMariadb) return { opts: { gtidSet: at.gtid }, at };
    if (gtidUsable && !this.isMariadb) {
      // COM_BINLOG_DUMP_GTID needs gtid_mode=ON; otherwise fall back to file+pos.
      const [rows] = await this.ctrl.query({ sql: "SELECT @@GLOBAL.gtid_mode", rowsAsArray: true })
        .catch(() => [[["OFF"]]]) as unknown as [unknown[][]];
      if (String(rows[0][0]).toUpperCase() === "ON") return { opts: { gtidSet: at.gtid }, at };
    }
    return { opts: { filename: at.file, position: at.pos }, at };
  }

  /**
   * Before streaming from `from`: the server must still hold every transaction after it
   * and be its server, or one that continues it (GapError otherwise).
   */
  async #checkContinuity(from: string, at: BinlogCoordinate): Promise<void> {
    const view = await readMysqlServerView(this.ctrl, this.isMariadb, at, this.#serverIdentity);
    const what = from === this.options.startPosition
      ? "the extractor's realtime.start-position"
      : "after the last transaction written";
    const verdict = mysqlResumeVerdict(at, what, this.#serverIdentity, view);
    if (verdict.kind === "gap") throw new GapError(verdict.gap);
    if (verdict.kind === "failover") {
      const change: ServerChange = {
        checkpoint: from,
        from: verdict.from,
        to: verdict.to,
        covers: (source) => typeof source.gtid === "string" && gtidCovered(at.gtid!, source.gtid),
        sortKey: mysqlSortKey(at.file, at.pos, 0),
      };
      if (!this.onServerChange) {
        throw new GapError({
          checkpoint: `checkpoint ${from} on server ${verdict.from ?? "(unknown)"}`,
          available: `server ${verdict.to}, which has the checkpoint's GTIDs`,
          reason: "The source is another server than the checkpoint's, and this run cannot " +
            "carry the stream positions over to it.",
        });
      }
      await this.onServerChange(change);
      this.#serverIdentity = verdict.to;
    }
  }

  start(
    from: string | null,
    onTransaction: (tx: SourceTransaction) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let finished = false;
      let inFlight = false;
      let file = "";
      let lastCheckpoint = from ?? "";
      let lastDeliveryMs = Date.now();
      let pendingEmpty: { checkpoint: string; tsMs: number } | null = null;
      let idleTimer: ReturnType<typeof setTimeout> | null = null;
      let tx: OpenTransaction | null = null;
      const maxEvents = Math.max(1, this.options.maxEventsPerDelivery ?? 2_000);
      const idleMs = this.options.idleCheckpointMs ?? 1000;
      const opts = mysqlConnectionOptions(this.endpoint);
      const zongji = new ZongJi({ ...opts, database: undefined });
      this.#zongji = zongji;
      const columns = this.#serveColumns(zongji);

      const finish = (err?: unknown) => {
        if (finished) return;
        finished = true;
        if (idleTimer) clearTimeout(idleTimer);
        this.#stopHeartbeat();
        signal.removeEventListener("abort", onAbort);
        zongji.removeAllListeners("binlog");
        zongji.on("error", () => {});
        zongji.stop();
        this.#zongji = null;
        if (err === undefined) resolve();
        else {
          const failure = err instanceof SourceError || err instanceof GapError
            ? err
            : new SourceError(
              `Binlog stream from ${mysqlWhere(this.endpoint)} failed: ${
                (err as Error)?.message ?? String(err)
              }`,
              undefined,
              { cause: err },
            );
          // A lost connection or a restarting server is worth another try from the
          // checkpoint (the pipeline retries with backoff); decoding errors are not.
          if (isMysqlConnectionLoss(err)) markRetriable(failure);
          reject(failure);
        }
      };
      const onAbort = () => {
        // Let a delivery in flight finish; nothing new is read meanwhile (paused).
        if (!inFlight) finish();
      };
      signal.addEventListener("abort", onAbort);

      const jobs: (() => Promise<void>)[] = [];
      /**
       * Queues async work (decoding that needs a schema, deliveries) and pauses the binlog
       * connection until all queued work is done, so events wait in the server, in order.
       *
       * zongji pauses the same connection while it reads a table's columns for a table map
       * event, and resumes it itself once they are known. The connection is resumed here
       * only when no such lookup is running: row events read before their table's columns
       * are known are dropped by zongji as if the table were filtered out. (A delivery that
       * no binlog event started, the idle checkpoint, can end in the middle of a lookup.)
       */
      const schedule = (job: () => Promise<void>) => {
        jobs.push(job);
        zongji.connection?.pause();
        if (inFlight) return;
        inFlight = true;
        (async () => {
          while (jobs.length > 0 && !finished) await jobs.shift()!();
        })().then(() => {
          inFlight = false;
          if (signal.aborted) return finish();
          if (!finished && !columns.lookingUp()) zongji.connection?.resume();
        }, (err) => {
          inFlight = false;
          finish(err);
        });
      };
      const deliver = async (t: SourceTransaction) => {
        pendingEmpty = null;
        if (idleTimer) {
          clearTimeout(idleTimer);
          idleTimer = null;
        }
        lastDeliveryMs = Date.now();
        await onTransaction(t);
      };
      const flushEmpty = () => {
        if (idleTimer) clearTimeout(idleTimer);
        idleTimer = null;
        if (finished) return;
        schedule(async () => {
          const p = pendingEmpty;
          if (p) {
            await deliver({ checkpoint: p.checkpoint, events: [], bytes: 0, commitTsMs: p.tsMs });
          }
        });
      };

      const eventStart = (e: { nextPosition: number; size: number }) =>
        e.nextPosition - e.size - (zongji.useChecksum ? 23 : 19);
      const beginTx = (pos: number, gtid: string | undefined, serverId: number, tsMs: number) => {
        // A group that ended without a commit marker (not expected) ends where this begins.
        if (tx !== null && tx.events.length > 0) commit({ nextPosition: pos, timestamp: tsMs });
        const fields = mysqlPositionFields(serverId, gtid, file, pos, 0);
        tx = {
          file,
          pos,
          gtid,
          serverId,
          events: [],
          batches: new Map(),
          ddl: [],
          row: 0,
          bytes: 0,
          tsMs,
          fieldsPrefix: fields.substring(0, fields.length - 1),
          sortKeyPrefix: mysqlSortKey(file, pos, 0).substring(0, 30),
        };
      };
      const ensureTx = (e: AnyBinlogEvent) => {
        if (tx === null) beginTx(eventStart(e), e.gtid, this.serverOwnId, e.timestamp);
        return tx!;
      };
      const addEvent = (
        t: OpenTransaction,
        table: MysqlTable,
        op: Op,
        batch: JsonRowBatch,
        before: number,
        after: number,
      ) => {
        const row = t.row++;
        t.events.push(
          new BatchChangeEvent(table, op, { batch, before, after }, {
            tsMs: t.tsMs,
            fields: t.fieldsPrefix + row,
            sortKey: t.sortKeyPrefix +
              (row < 10 ? "000000000" + row : String(row).padStart(10, "0")),
          }),
        );
      };
      /** Hands over the changes gathered so far of a still-open transaction. */
      const deliverPart = async (t: OpenTransaction) => {
        const events = t.events;
        t.events = [];
        t.batches = new Map();
        const bytes = t.bytes;
        t.bytes = 0;
        await deliver({
          checkpoint: lastCheckpoint,
          events,
          bytes,
          commitTsMs: t.tsMs,
          transaction: transactionOf(t),
        });
      };
      const commit = (e: { nextPosition: number; timestamp: number }) => {
        const t: OpenTransaction | null = tx;
        tx = null;
        const checkpoint = formatCheckpoint({ file, pos: e.nextPosition, gtid: zongji.gtidSet });
        lastCheckpoint = checkpoint;
        if (t !== null && (t.events.length > 0 || t.ddl.length > 0)) {
          for (const ev of t.events) ev.position.tsMs = e.timestamp;
          for (const d of t.ddl) d.position.tsMs = e.timestamp;
          const delivery: SourceTransaction = {
            checkpoint,
            events: t.events,
            bytes: t.bytes,
            commitTsMs: e.timestamp,
            ddl: t.ddl,
            transaction: transactionOf(t),
          };
          schedule(() => deliver(delivery));
          return;
        }
        pendingEmpty = { checkpoint, tsMs: e.timestamp };
        const due = lastDeliveryMs + idleMs - Date.now();
        if (due <= 0) flushEmpty();
        else if (idleTimer === null) idleTimer = setTimeout(flushEmpty, due);
      };

      /** This part's rows of a table (a batch has one column count). */
      const batchOf = (t: OpenTransaction, table: MysqlTable): JsonRowBatch => {
        let batch = t.batches.get(table);
        if (!batch) {
          const n = table.ordinals.length;
          batch = new JsonRowBatch(n, 16 * 1024, 64 * n);
          t.batches.set(table, batch);
        }
        return batch;
      };
      /** Writes a row image as the next row of the batch; gives the row. */
      const decodeRow = (
        t: OpenTransaction,
        entry: TableEntry,
        batch: JsonRowBatch,
        row: RowData,
      ): number => {
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
        t.bytes += 64 + batch.length - from;
        return batch.rows - 1;
      };

      type RowsEvent = AnyBinlogEvent & { tableId: number; rows: unknown[] };
      const addRows = (
        e: RowsEvent,
        entry: TableEntry,
        t: OpenTransaction,
        from: number,
        to: number,
      ) => {
        const table = entry.table!;
        const batch = batchOf(t, table);
        const n = batch.columns;
        const name = eventName(e);
        for (let i = from; i < to; i++) {
          const r = e.rows[i];
          if (name === "writerows") {
            addEvent(t, table, "c", batch, -1, decodeRow(t, entry, batch, r as RowData));
          } else if (name === "deleterows") {
            addEvent(t, table, "d", batch, decodeRow(t, entry, batch, r as RowData), -1);
          } else {
            const u = r as UpdateRowData;
            const before = decodeRow(t, entry, batch, u.before);
            const after = decodeRow(t, entry, batch, u.after);
            if (
              table.hasKey &&
              !table.keyColumns.every((c) => batch.sameFragment(before * n + c, after * n + c))
            ) {
              addEvent(t, table, "d", batch, before, -1);
              addEvent(t, table, "c", batch, -1, after);
            } else addEvent(t, table, "u", batch, before, after);
          }
        }
      };
      /** Slow path: the table's schema must be read, or a part must be handed over. */
      const onRows = async (e: RowsEvent) => {
        const map = zongji.tableMap[e.tableId];
        if (!map) return;
        const entry = await this.#lookup(map.parentSchema, map.tableName);
        if (!entry.table) return;
        const t = ensureTx(e);
        checkWidth(e, entry.table, t);
        for (let i = 0; i < e.rows.length; i++) {
          // Hand over a full part only when more changes follow, so the last part always
          // goes with the commit (and its checkpoint).
          if (t.events.length >= maxEvents) await deliverPart(t);
          addRows(e, entry, t, i, i + 1);
        }
      };
      /** Fast path, synchronous: known table, no part boundary inside this event. */
      const onRowsNow = (e: RowsEvent) => {
        const map = zongji.tableMap[e.tableId];
        if (!map) return;
        const entry = this.#known(map.parentSchema, map.tableName);
        if (entry === undefined) return schedule(() => onRows(e));
        if (!entry.table) return;
        const t = ensureTx(e);
        if (t.events.length + 2 * e.rows.length > maxEvents) return schedule(() => onRows(e));
        checkWidth(e, entry.table, t);
        addRows(e, entry, t, 0, e.rows.length);
      };
      /**
       * A row image must have the width of the schema it is decoded with; it does not when
       * several DDLs changed the table while Replicant was not reading (the catalog is
       * ahead of the binlog). Stop rather than decode columns under wrong names.
       */
      const checkWidth = (e: RowsEvent, table: MysqlTable, t: OpenTransaction) => {
        const width = (e as unknown as { numberOfColumns?: number }).numberOfColumns;
        if (width === undefined || width === table.totalColumns) return;
        throw new SourceError(
          `Row image of ${table.id.catalog}.${table.id.table} at ${t.file}:${t.pos} has ${width} ` +
            `columns, but the table's schema at that point is not known (it has ` +
            `${table.totalColumns} now): it was changed more than once while Replicant was not ` +
            `reading. Take a new snapshot of it (replicant full --overwrite)`,
          table.id.table,
        );
      };

      const onQuery = async (e: QueryEvent) => {
        const q = e.query.trim();
        const upper = q.substring(0, 13).toUpperCase();
        if (upper === "BEGIN" || upper.startsWith("XA START") || upper.startsWith("XA END")) {
          ensureTx(e);
          return;
        }
        if (upper === "COMMIT" || upper === "ROLLBACK" || upper.startsWith("XA COMMIT")) {
          commit(e);
          return;
        }
        if (
          TX_MARKERS.has(upper) || upper.startsWith("SAVEPOINT") ||
          upper.startsWith("ROLLBACK TO") ||
          upper.startsWith("RELEASE SAVEP")
        ) return;
        // DDL (its own transaction). Tables it names are re-read now, in binlog order;
        // anything else that may change tables is re-read on next use.
        const t = ensureTx(e);
        const targets = ddlTargets(q, e.schema || null);
        if (targets === null) {
          if (/^\s*(?:\/\*[\s\S]*?\*\/\s*)*(?:ALTER|CREATE|DROP|RENAME)\b/i.test(q)) {
            this.#generation++;
          }
        }
        for (const target of targets ?? []) {
          if (target.database === null) continue;
          const id: TableId = { catalog: target.database, schema: null, table: target.table };
          if (
            (this.endpoint.database && id.catalog !== this.endpoint.database) ||
            !this.options.selection.table(id)
          ) continue;
          const row = t.row++;
          const position = {
            tsMs: e.timestamp,
            fields: t.fieldsPrefix + row,
            sortKey: t.sortKeyPrefix + String(row).padStart(10, "0"),
          };
          if (target.kind === "truncate") {
            const entry = await this.#lookup(id.catalog, id.table);
            if (entry.table) addEvent(t, entry.table, "t", NO_ROWS, -1, -1);
            t.ddl.push({ table: id, statement: q, after: null, dropped: false, position });
            continue;
          }
          const key = mysqlTableKey(id.catalog, id.table);
          if (target.kind === "drop") {
            this.#remember(key, null);
            t.ddl.push({ table: id, statement: q, after: null, dropped: true, position });
            continue;
          }
          const after = await this.#afterDdl(id, position.sortKey);
          t.ddl.push({
            table: id,
            statement: q,
            after,
            dropped: after === null,
            snapshot: target.renamed === true && after !== null,
            position,
          });
        }
        commit(e);
      };

      const onEvent = (e: AnyBinlogEvent) => {
        if (finished) return;
        // Events that arrive while queued work runs (only possible when zongji itself
        // resumed the connection) wait behind it, in order.
        if (inFlight) return schedule(() => Promise.resolve(handle(e)));
        handle(e);
      };
      const handle = (e: AnyBinlogEvent) => {
        if (finished) return;
        try {
          switch (eventName(e)) {
            case "rotate":
              file = (e as { binlogName: string }).binlogName;
              return;
            case "mariadbgtid": {
              const g = e as MariadbGtidEvent;
              beginTx(eventStart(g), g.gtid, g.serverId, g.timestamp);
              return;
            }
            case "gtid":
            case "anonymousgtid":
              beginTx(
                eventStart(e),
                eventName(e) === "gtid" ? e.gtid : undefined,
                this.serverOwnId,
                e.timestamp,
              );
              return;
            case "tablemap":
              patchZongjiColumns(zongji.tableMap[(e as { tableId: number }).tableId]);
              return;
            case "writerows":
            case "updaterows":
            case "deleterows":
              onRowsNow(e as RowsEvent);
              return;
            case "query":
              schedule(() => onQuery(e as QueryEvent));
              return;
            case "xid":
              commit(e);
              return;
            case "xaprepare":
              if (tx !== null && tx.events.length > 0) {
                throw new SourceError(
                  "XA transactions on replicated tables are not supported (XA PREPARE at " +
                    `${file}:${eventStart(e)})`,
                );
              }
              tx = null;
              return;
          }
        } catch (err) {
          finish(err);
        }
      };

      zongji.on("binlog", onEvent);
      zongji.on("error", (err: Error) => {
        if (columns.recovered(err)) return;
        if (ZONGJI_NO_COLUMNS.test(err.message)) {
          const table = err.message.replace(ZONGJI_NO_COLUMNS, "");
          return finish(
            new SourceError(
              `Cannot decode rows of ${table} near ${file}: the server no longer has this ` +
                `table (or the user cannot read its columns in information_schema) and its ` +
                `columns at that point of the binlog are not known. If it was dropped, take ` +
                `a new snapshot (replicant full --overwrite); else grant SELECT on it`,
              table,
            ),
          );
        }
        finish(err);
      });
      this.#startOptions(from).then(({ opts: startOpts, at }) => {
        if (finished) return;
        file = at.file;
        if (from === null) lastCheckpoint = formatCheckpoint(at);
        zongji.start({
          serverId: this.clientServerId,
          ...startOpts,
          ...this.#includeSchema(),
        });
        this.#startHeartbeat();
        if (signal.aborted) onAbort();
      }, (err) =>
        finish(
          err instanceof GapError
            ? err
            : mysqlQueryError(this.endpoint, "Locating the binlog start", err),
        ));
    });
  }

  /**
   * How zongji learns the columns of a table map event, and which tables it skips.
   *
   * - zongji names the columns of a row image from information_schema as it is now, and
   *   fails when an old image has more columns than the table has today (a replay from
   *   before DROP COLUMN). Tables decoded with a historical schema get that schema.
   * - Tables outside the selection are skipped before any lookup: their rows are never
   *   used, and a table dropped or renamed since its rows were written (information_schema
   *   no longer has it) would stop the stream.
   * - A selected table dropped or renamed since (the stream is behind the server) is
   *   served from the schema known at this point of the binlog, when there is one.
   *
   * Returns the handler of zongji's errors that recovers the last case, and whether zongji
   * is reading a table's columns now (it has paused the binlog connection meanwhile).
   */
  #serveColumns(
    zongji: ZongJi,
  ): { recovered: (err: Error) => boolean; lookingUp: () => boolean } {
    type TableMapEvent = {
      tableId: number;
      schemaName: string;
      tableName: string;
      columnCount: number;
    };
    // deno-lint-ignore no-explicit-any
    const z = zongji as any;
    const serve = (ev: TableMapEvent, t: MysqlTable | null | undefined): boolean => {
      if (!t || t.totalColumns !== ev.columnCount || t.ordinals.length !== t.totalColumns) {
        return false;
      }
      z.tableMap[ev.tableId] = {
        columnSchemas: t.columns.map((c, i) => ({
          COLUMN_NAME: c.name,
          COLLATION_NAME: null,
          CHARACTER_SET_NAME: TEXT_KINDS.has(t.types[i].kind) ? "utf8mb4" : null,
          COLUMN_COMMENT: "",
          COLUMN_TYPE: c.sourceType,
          ...labelsOf(t.types[i]),
        })),
        parentSchema: ev.schemaName,
        tableName: ev.tableName,
      };
      return true;
    };
    /**
     * zongji names ENUM/SET values from the labels information_schema prints (characters
     * beyond the BMP as `?`, split at every comma): give it the labels the schema reader read.
     */
    const label = (ev: TableMapEvent, t: MysqlTable | null | undefined) => {
      const schemas = z.tableMap[ev.tableId]?.columnSchemas as
        | Record<string, unknown>[]
        | undefined;
      if (!t || !schemas) return;
      for (const cs of schemas) {
        const i = t.columns.findIndex((c) => c.name === cs.COLUMN_NAME);
        if (i >= 0) Object.assign(cs, labelsOf(t.types[i]));
      }
    };
    let fetching: { ev: TableMapEvent; next: () => void } | null = null;
    const fetchInfo = z._fetchTableInfo.bind(zongji);
    z._fetchTableInfo = (ev: TableMapEvent, next: () => void) => {
      const known = this.#tables.get(mysqlTableKey(ev.schemaName, ev.tableName));
      if (known?.historical && serve(ev, known.table)) return next();
      fetching = { ev, next };
      // The lookup counts as running until zongji is told to go on: until then the binlog
      // connection must stay paused (see `lookingUp`), also while our own lookup runs.
      const done = () => {
        fetching = null;
        next();
      };
      fetchInfo(ev, () => {
        const current = this.#known(ev.schemaName, ev.tableName);
        if (current) {
          label(ev, current.table);
          return done();
        }
        this.#lookup(ev.schemaName, ev.tableName).then((entry) => {
          label(ev, entry.table);
          done();
        }, (err) => {
          fetching = null;
          zongji.emit("error", err);
        });
      });
    };
    const selected = new Map<string, boolean>();
    const hb = this.options.heartbeat;
    const skipSchema = z._skipSchema.bind(zongji);
    z._skipSchema = (database: string, table: string): boolean => {
      if (skipSchema(database, table)) return true;
      const key = mysqlTableKey(database, table);
      let keep = selected.get(key);
      if (keep === undefined) {
        keep = (hb !== undefined && database === hb.database && table === hb.table) ||
          (!(this.endpoint.database && database !== this.endpoint.database) &&
            this.options.selection.table({ catalog: database, schema: null, table }));
        selected.set(key, keep);
      }
      return !keep;
    };
    const recovered = (err: Error) => {
      const f = fetching;
      if (!f || !ZONGJI_NO_COLUMNS.test(err.message)) return false;
      fetching = null;
      if (!serve(f.ev, this.#known(f.ev.schemaName, f.ev.tableName)?.table)) return false;
      f.next();
      return true;
    };
    return { recovered, lookingUp: () => fetching !== null };
  }

  /**
   * zongji looks up the columns of every table in the binlog; a table of another database
   * that was dropped since fails that lookup for good. Limit it to the databases replicated.
   */
  #includeSchema(): { includeSchema?: Record<string, true> } {
    const dbs = this.options.databases;
    if (!dbs || dbs.length === 0) return {};
    const include: Record<string, true> = {};
    for (const db of dbs) include[db] = true;
    if (this.options.heartbeat) include[this.options.heartbeat.database] = true;
    return { includeSchema: include };
  }

  #startHeartbeat(): void {
    const hb = this.options.heartbeat;
    if (!hb) return;
    this.#heartbeat ??= new MysqlHeartbeatWriter(hb, () => this.ctrl);
    this.#heartbeat.start();
  }

  #stopHeartbeat(): void {
    this.#heartbeat?.stop();
  }

  async close(): Promise<void> {
    this.#stopHeartbeat();
    if (this.#zongji) {
      this.#zongji.removeAllListeners("binlog");
      this.#zongji.on("error", () => {});
      this.#zongji.stop();
      this.#zongji = null;
    }
    await this.ctrl.end().catch(() => this.ctrl.destroy());
  }
}

const CONNECTION_LOSS_CODES = new Set([
  "PROTOCOL_CONNECTION_LOST",
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ER_SERVER_SHUTDOWN",
  "ER_CONNECTION_KILLED",
]);
const CONNECTION_LOSS_ERRNOS = new Set([1053, 1927, 2002, 2003, 2006, 2013]);

/** True for failures of the connection or server (retriable), not of the data. */
export function isMysqlConnectionLoss(err: unknown): boolean {
  for (
    let e = err as { code?: unknown; errno?: unknown; cause?: unknown } | undefined, i = 0;
    e && i < 5;
    i++
  ) {
    if (typeof e.code === "string" && CONNECTION_LOSS_CODES.has(e.code)) return true;
    if (typeof e.errno === "number" && CONNECTION_LOSS_ERRNOS.has(e.errno)) return true;
    e = e.cause as typeof e;
  }
  return /Connection lost|server closed the connection|ECONNREFUSED|ECONNRESET/i.test(
    String((err as Error)?.message ?? err),
  );
}
