import { GapError, markRetriable, SourceError } from "../../core/errors.ts";
import type { TableId, TableSchema } from "../../core/table_schema.ts";
import { buildSchemaDumpEntry, type SchemaDumpEntry } from "../../schema/schema_dump.ts";
import type { SchemaHistory } from "../../schema/schema_history.ts";
import type { TableSelection } from "../../ports/snapshot_source.ts";
import type {
  ServerChange,
  SourceTransactionPart,
  StreamingSource,
} from "../../ports/streaming_source.ts";
import {
  type MysqlConnection,
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
import { mysqlBinlogDecoder, mysqlBinlogStringWriter } from "./mysql_value_decoder.ts";
import { BinlogRun, type BinlogSchemas, type BinlogTableEntry } from "./mysql_binlog_run.ts";
import { ZongjiAdapter, type ZongjiSchemas } from "./zongji_adapter.ts";

export interface MysqlBinlogOptions {
  selection: TableSelection;
  /**
   * The databases the selection can match, when known (no patterns): binlog events of other
   * databases are skipped before zongji looks their tables up.
   */
  databases?: string[];
  /**
   * A transaction with more changes than this is delivered in parts of this size, as the
   * streaming contract says (SourceTransactionPart): every part but the last has `more`
   * and the checkpoint of the previous transaction (resuming from it replays the whole
   * transaction; the stream-tail rule drops what already landed); the last part carries
   * the transaction's own. Default 2 000 (bounds memory).
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

/**
 * MySQL/MariaDB binlog source over `@vlasky/zongji`, which only zongji_adapter.ts knows.
 * This class holds what outlives one `start` (the schema cache, the start position and its
 * continuity checks, the heartbeat); each `start` is a BinlogRun (mysql_binlog_run.ts).
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
 * `{"file","pos","gtid"}` pointing right after it, a large one in parts (the streaming
 * contract, SourceTransactionPart). The binlog connection is paused while the handler
 * runs, so the backlog stays in the server's binlog.
 */
export class MysqlBinlogSource implements StreamingSource {
  readonly connector = "mysql" as const;
  #tables = new Map<string, BinlogTableEntry>();
  #generation = 0;
  #history: SchemaHistory | null = null;
  #binlog: ZongjiAdapter | null = null;
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
    return this.#binlog?.threadId ?? null;
  }

  /** The last checkpoint given to `acknowledge` (MySQL keeps no server-side state for it). */
  acknowledged(): string | null {
    return this.#acknowledged;
  }

  acknowledge(checkpoint: string): Promise<void> {
    this.#acknowledged = checkpoint;
    return Promise.resolve();
  }

  #remember(key: string, table: MysqlTable | null, historical = false): BinlogTableEntry {
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
    const entry: BinlogTableEntry = {
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
  #known(database: string, table: string): BinlogTableEntry | undefined {
    const known = this.#tables.get(mysqlTableKey(database, table));
    return known && (known.historical || known.generation === this.#generation) ? known : undefined;
  }

  async #lookup(database: string, table: string): Promise<BinlogTableEntry> {
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

  async assertContinuity(from: string): Promise<void> {
    await this.#reviveCtrl();
    await this.#verdict(from, parseCheckpoint(from));
  }

  /** What the server says of streaming from `from`; a gap throws. */
  async #verdict(from: string, at: BinlogCoordinate) {
    const view = await readMysqlServerView(this.ctrl, this.isMariadb, at, this.#serverIdentity);
    const what = from === this.options.startPosition
      ? "the extractor's realtime.start-position"
      : "after the last transaction written";
    const verdict = mysqlResumeVerdict(at, what, this.#serverIdentity, view);
    if (verdict.kind === "gap") throw new GapError(verdict.gap);
    return verdict;
  }

  /**
   * Before streaming from `from`: the server must still hold every transaction after it
   * and be its server, or one that continues it (GapError otherwise).
   */
  async #checkContinuity(from: string, at: BinlogCoordinate): Promise<void> {
    const verdict = await this.#verdict(from, at);
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
    onTransaction: (tx: SourceTransactionPart) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const binlog = new ZongjiAdapter(this.endpoint, this.#zongjiSchemas(), {
        databases: this.#includedDatabases(),
      });
      this.#binlog = binlog;
      const run = new BinlogRun(
        binlog,
        this.#binlogSchemas(),
        {
          from,
          maxEvents: Math.max(1, this.options.maxEventsPerDelivery ?? 2_000),
          idleMs: this.options.idleCheckpointMs ?? 1000,
          serverOwnId: this.serverOwnId,
        },
        onTransaction,
        signal,
        (err) => {
          this.#stopHeartbeat();
          this.#binlog = null;
          if (err === undefined) resolve();
          else reject(this.#streamFailure(err));
        },
      );
      this.#startOptions(from).then(({ opts, at }) => {
        if (run.finished) return;
        run.startAt(at.file, from === null ? formatCheckpoint(at) : null);
        binlog.start(this.clientServerId, opts);
        this.#startHeartbeat();
        run.started();
      }, (err) =>
        run.finish(
          err instanceof GapError
            ? err
            : mysqlQueryError(this.endpoint, "Locating the binlog start", err),
        ));
    });
  }

  /** A failure of the stream as the pipeline sees it: typed, retriable when the connection was lost. */
  #streamFailure(err: unknown): Error {
    const failure = err instanceof SourceError || err instanceof GapError ? err : new SourceError(
      `Binlog stream from ${mysqlWhere(this.endpoint)} failed: ${
        (err as Error)?.message ?? String(err)
      }`,
      undefined,
      { cause: err },
    );
    // A lost connection or a restarting server is worth another try from the checkpoint
    // (the pipeline retries with backoff); decoding errors are not.
    if (isMysqlConnectionLoss(err)) markRetriable(failure);
    return failure;
  }

  /** What the zongji adapter asks of the schema cache. */
  #zongjiSchemas(): ZongjiSchemas {
    const hb = this.options.heartbeat;
    return {
      historical: (database, table) => {
        const known = this.#tables.get(mysqlTableKey(database, table));
        return known?.historical ? known.table : undefined;
      },
      known: (database, table) => this.#known(database, table),
      lookup: (database, table) => this.#lookup(database, table),
      wanted: (database, table) =>
        (hb !== undefined && database === hb.database && table === hb.table) ||
        this.#selected({ catalog: database, schema: null, table }),
    };
  }

  /** What a binlog run asks of the schema cache. */
  #binlogSchemas(): BinlogSchemas {
    return {
      known: (database, table) => this.#known(database, table),
      lookup: (database, table) => this.#lookup(database, table),
      afterDdl: (id, sortKey) => this.#afterDdl(id, sortKey),
      dropped: (id) => void this.#remember(mysqlTableKey(id.catalog, id.table), null),
      catalogChanged: () => void this.#generation++,
      selected: (id) => this.#selected(id),
    };
  }

  /** The table is in the endpoint's database (when it names one) and the selection. */
  #selected(id: TableId): boolean {
    return !(this.endpoint.database && id.catalog !== this.endpoint.database) &&
      this.options.selection.table(id);
  }

  /**
   * zongji looks up the columns of every table in the binlog; a table of another database
   * that was dropped since fails that lookup for good. Limit it to the databases replicated
   * (and the heartbeat table's), when they are known.
   */
  #includedDatabases(): string[] | undefined {
    const dbs = this.options.databases;
    if (!dbs || dbs.length === 0) return undefined;
    const hb = this.options.heartbeat;
    return hb ? [...dbs, hb.database] : dbs;
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
    this.#binlog?.stop();
    this.#binlog = null;
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
