import { Buffer } from "node:buffer";
import type { JsonRowBatch } from "../../core/json_row_batch.ts";
import { SourceError } from "../../core/errors.ts";
import { qualifiedName, type TableSchema } from "../../core/table_schema.ts";
import type {
  KeyValue,
  SnapshotSource,
  SnapshotTable,
  TableReader,
  TableSelection,
} from "../../ports/snapshot_source.ts";
import {
  type MysqlConnection,
  type MysqlEndpoint,
  mysqlQueryError,
  openMysql,
  quoteIdent,
} from "./mysql_endpoint.ts";
import {
  type BinlogCoordinate,
  compareCoordinates,
  parseMasterStatus,
  snapshotSkipThrough,
} from "./mysql_position.ts";
import { type MysqlTable, mysqlTableKey, readMysqlTables } from "./mysql_schema_reader.ts";
import { type MysqlColumnType, snapshotSelectExpr } from "./mysql_value_decoder.ts";
import { coreConnection, type MysqlTextQuery, MysqlTextRows } from "./mysql_text_rows.ts";

/** Where the snapshot that read a table stands in the binlog. */
export interface SnapshotTablePosition extends BinlogCoordinate {
  /** Changes of this table with `sortKey` ≤ this are already in the snapshot. */
  skipThrough: string;
}

/**
 * MySQL/MariaDB snapshot source. Each reader runs on its own connection in
 * `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY` (REPEATABLE READ) and records the
 * binlog position its snapshot corresponds to: on MariaDB `binlog_snapshot_file` /
 * `binlog_snapshot_position` (no lock at all), on MySQL `SHOW MASTER STATUS` read under a
 * brief `FLUSH TABLES WITH READ LOCK` held by the coordinator connection only while the
 * reader opens its transaction. Readers opened at different times may see different
 * instants; each table records the position of the reader that read it
 * (`tablePositions()`), so realtime starts at `lowestPosition()` and skips, per table,
 * changes at or before that table's own position (a skip-through mark in the checkpoint).
 */
export class MysqlSnapshotSource implements SnapshotSource {
  readonly connector = "mysql" as const;
  #readers: MysqlTableReader[] = [];
  #tablePositions = new Map<string, SnapshotTablePosition>();
  #tables: MysqlTable[] | null = null;

  private constructor(
    readonly endpoint: MysqlEndpoint,
    readonly snapshotTsMs: number,
    readonly isMariadb: boolean,
    private readonly coordinator: MysqlConnection,
    private readonly selection: TableSelection,
  ) {}

  static async open(
    endpoint: MysqlEndpoint,
    selection: TableSelection,
  ): Promise<MysqlSnapshotSource> {
    const conn = await openMysql(endpoint);
    try {
      const [rows] = await conn.query({
        sql: "SELECT VERSION(), CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)",
        rowsAsArray: true,
      }) as unknown as [unknown[][]];
      const isMariadb = /mariadb/i.test(String(rows[0][0]));
      return new MysqlSnapshotSource(endpoint, Number(rows[0][1]), isMariadb, conn, selection);
    } catch (err) {
      conn.destroy();
      throw mysqlQueryError(endpoint, "Opening the snapshot", err);
    }
  }

  async tables(): Promise<SnapshotTable[]> {
    try {
      this.#tables ??= await readMysqlTables(
        this.coordinator,
        this.selection,
        this.endpoint.database,
      );
    } catch (err) {
      throw mysqlQueryError(this.endpoint, "Reading the table list", err);
    }
    return this.#tables.map((schema) => ({ schema, estimatedRows: schema.estimatedRows }));
  }

  /** A reader opened ahead of the pipeline (openFirstReader), handed out by the next reader(). */
  #ready: MysqlTableReader | null = null;

  /**
   * Opens the first reader now and gives the binlog position of its snapshot (a table that
   * joins a streaming id needs its point before realtime starts); reader() hands it out.
   */
  async openFirstReader(): Promise<BinlogCoordinate> {
    this.#ready ??= await this.#open();
    return this.#ready.coordinate;
  }

  async reader(): Promise<MysqlTableReader> {
    const ready = this.#ready;
    if (ready !== null) {
      this.#ready = null;
      return ready;
    }
    return await this.#open();
  }

  async #open(): Promise<MysqlTableReader> {
    const conn = await openMysql(this.endpoint);
    let locked = false;
    try {
      await conn.query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ");
      let coordinate: BinlogCoordinate;
      if (this.isMariadb) {
        await conn.query("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY");
        coordinate = await mariadbSnapshotPosition(conn);
      } else {
        await this.coordinator.query("FLUSH TABLES WITH READ LOCK");
        locked = true;
        await conn.query("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY");
        coordinate = await masterStatus(this.coordinator, false);
        await this.coordinator.query("UNLOCK TABLES");
        locked = false;
      }
      const reader = new MysqlTableReader(conn, this.endpoint, coordinate, (table) => {
        this.#tablePositions.set(mysqlTableKey(table.id.catalog, table.id.table), {
          ...coordinate,
          skipThrough: snapshotSkipThrough(coordinate),
        });
      });
      this.#readers.push(reader);
      return reader;
    } catch (err) {
      if (locked) await this.coordinator.query("UNLOCK TABLES").catch(() => {});
      conn.destroy();
      throw mysqlQueryError(this.endpoint, "Opening a consistent snapshot", err);
    }
  }

  /** Per table (`<database>.<table>`), the binlog position of the snapshot that read it. */
  tablePositions(): Map<string, SnapshotTablePosition> {
    return new Map(this.#tablePositions);
  }

  /** The lowest position of all readers so far: where realtime must start. */
  lowestPosition(): BinlogCoordinate | null {
    let low: BinlogCoordinate | null = null;
    for (const r of this.#readers) {
      if (low === null || compareCoordinates(r.coordinate, low) < 0) low = r.coordinate;
    }
    return low;
  }

  async close(): Promise<void> {
    await Promise.all(this.#readers.map((r) => r.close()));
    await this.coordinator.end().catch(() => this.coordinator.destroy());
  }
}

/** MariaDB: the binlog position (and GTID position) matching this transaction's snapshot. */
async function mariadbSnapshotPosition(conn: MysqlConnection): Promise<BinlogCoordinate> {
  const [rows] = await conn.query({
    sql: "SHOW STATUS LIKE 'binlog_snapshot_%'",
    rowsAsArray: true,
  }) as unknown as [unknown[][]];
  const status = new Map(rows.map(([k, v]) => [String(k).toLowerCase(), String(v)]));
  const file = status.get("binlog_snapshot_file") ?? "";
  const pos = Number(status.get("binlog_snapshot_position") ?? "0");
  if (file === "") {
    throw new SourceError(
      "The server reports no binlog_snapshot_file: is the binary log on (`log-bin`)?",
    );
  }
  const [g] = await conn.query({
    sql: "SELECT BINLOG_GTID_POS(?, ?)",
    values: [file, pos],
    rowsAsArray: true,
  }) as unknown as [unknown[][]];
  const gtid = g[0][0] === null ? "" : String(g[0][0]);
  return { file, pos, ...(gtid !== "" ? { gtid } : {}) };
}

/** `SHOW MASTER STATUS` (`SHOW BINARY LOG STATUS` on MySQL 8.4+) as a coordinate. */
export async function masterStatus(
  conn: MysqlConnection,
  isMariadb: boolean,
): Promise<BinlogCoordinate> {
  let rows: Record<string, unknown>[];
  try {
    [rows] = await conn.query("SHOW MASTER STATUS") as unknown as [Record<string, unknown>[]];
  } catch {
    [rows] = await conn.query("SHOW BINARY LOG STATUS") as unknown as [
      Record<string, unknown>[],
    ];
  }
  if (rows.length === 0) {
    throw new SourceError(
      "SHOW MASTER STATUS returned nothing: is the binary log on (`log-bin`)?",
    );
  }
  let mariadbGtid: string | undefined;
  if (isMariadb) {
    const [g] = await conn.query({
      sql: "SELECT @@GLOBAL.gtid_binlog_pos",
      rowsAsArray: true,
    }) as unknown as [
      unknown[][],
    ];
    mariadbGtid = String(g[0][0] ?? "");
  }
  return parseMasterStatus(rows[0], mariadbGtid);
}

/** Converts a key value read back from a stream into a query parameter of its column. */
export function keyParam(type: MysqlColumnType, v: KeyValue): unknown {
  if (v === null) return null;
  switch (type.kind) {
    case "binary":
    case "geometry":
      return Buffer.from(String(v), "base64");
    case "datetime":
      return String(v).replace("T", " ");
    case "timestamp":
      return String(v).replace("T", " ").replace(/Z$/, "");
    case "json":
      return String(v);
    default:
      return typeof v === "boolean" ? (v ? 1 : 0) : v;
  }
}

/** A key column's raw snapshot bytes → the query parameter that compares like the column. */
function rawKeyParam(type: MysqlColumnType, raw: Buffer | null): unknown {
  if (raw === null) return null;
  switch (type.kind) {
    case "binary":
    case "geometry":
      return raw;
    case "bit": {
      let v = 0n;
      for (const b of raw) v = (v << 8n) | BigInt(b);
      return v.toString();
    }
    default:
      return raw.toString("utf8");
  }
}

export class MysqlTableReader implements TableReader {
  #closed = false;
  constructor(
    private readonly conn: MysqlConnection,
    private readonly endpoint: MysqlEndpoint,
    /** The binlog position this reader's snapshot corresponds to. */
    readonly coordinate: BinlogCoordinate,
    private readonly onTable: (table: TableSchema) => void,
  ) {}

  async *read(
    schema: TableSchema,
    after: KeyValue[] | null,
    chunkRows: number,
  ): AsyncIterable<JsonRowBatch> {
    const table = schema as MysqlTable;
    if (!table.types) {
      throw new SourceError(`${qualifiedName(schema.id)} was not read by the MySQL schema reader`);
    }
    this.onTable(table);
    const columns = table.columns.map((c, i) =>
      snapshotSelectExpr(table.types[i], quoteIdent(c.name))
    )
      .join(", ");
    const from = `${quoteIdent(table.id.catalog)}.${quoteIdent(table.id.table)}`;
    const what = qualifiedName(table.id);
    const core = coreConnection(this.conn);
    if (!table.hasKey) {
      yield* this.#readWhole(
        new MysqlTextRows(core, table.types),
        `SELECT ${columns} FROM ${from}`,
        chunkRows,
        what,
      );
      return;
    }
    const keyNames = table.keyColumns.map((i) => quoteIdent(table.columns[i].name));
    const keyTypes = table.keyColumns.map((i) => table.types[i]);
    const order = keyNames.join(", ");
    // (k1, k2) > (?, ?) spelled out, which every MySQL/MariaDB version turns into ranges.
    const disjuncts: string[] = [];
    for (let i = 0; i < keyNames.length; i++) {
      disjuncts.push(
        "(" + [...keyNames.slice(0, i).map((k) => `${k} = ?`), `${keyNames[i]} > ?`].join(" AND ") +
          ")",
      );
    }
    const first = `SELECT ${columns} FROM ${from} ORDER BY ${order} LIMIT ${chunkRows}`;
    const next = `SELECT ${columns} FROM ${from} WHERE ${
      disjuncts.join(" OR ")
    } ORDER BY ${order} LIMIT ${chunkRows}`;
    const expand = (key: unknown[]) => {
      const values: unknown[] = [];
      for (let i = 0; i < key.length; i++) values.push(...key.slice(0, i + 1));
      return values;
    };
    const rows = new MysqlTextRows(core, table.types, table.keyColumns);
    const query = (key: unknown[] | null): MysqlTextQuery =>
      rows.query(key ? next : first, key ? expand(key) : [], chunkRows);
    let current: MysqlTextQuery | null = query(
      after ? after.map((v, i) => keyParam(keyTypes[i], v)) : null,
    );
    try {
      while (current) {
        let batch: JsonRowBatch | null;
        try {
          batch = await current.next();
        } catch (err) {
          throw mysqlQueryError(this.endpoint, `Reading ${what}`, err, what);
        }
        // A full chunk: ask for the next one before handing this one over, so reading
        // overlaps writing (into the other batch).
        const following: MysqlTextQuery | null = batch?.rows === chunkRows
          ? query(current.lastKey()!.map((raw, i) => rawKeyParam(keyTypes[i], raw)))
          : null;
        if (batch) yield batch;
        current = following;
      }
    } finally {
      rows.abandon(); // when the consumer stopped early; a no-op after the last chunk
    }
  }

  async *#readWhole(
    rows: MysqlTextRows,
    select: string,
    chunkRows: number,
    what: string,
  ): AsyncIterable<JsonRowBatch> {
    const query = rows.query(select, [], chunkRows);
    let done = false;
    try {
      for (;;) {
        const batch = await query.next();
        if (!batch) break;
        yield batch;
      }
      done = true;
    } catch (err) {
      throw mysqlQueryError(this.endpoint, `Reading ${what}`, err, what);
    } finally {
      if (!done) {
        // Abandoned mid-result: the connection still carries the rest of the table, too much
        // to drain; it is unusable.
        query.abandon();
        this.#closed = true;
        this.conn.destroy();
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.conn.query("COMMIT").catch(() => {});
    await this.conn.end().catch(() => this.conn.destroy());
  }
}
