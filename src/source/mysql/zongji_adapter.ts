/**
 * Everything Replicant knows of `@vlasky/zongji`'s internals, in one place: how it is built
 * and stopped, the private hooks it is patched through (`_fetchTableInfo`, `_skipSchema`),
 * the table map columns it decodes lossily, the ENUM/SET labels it is given, and when its
 * binlog connection may be resumed. The binlog source sees only this adapter.
 */
import ZongJi from "@vlasky/zongji";
import type { AnyBinlogEvent, TableMapEntry } from "@vlasky/zongji";
import { mysqlConnectionOptions, type MysqlEndpoint } from "./mysql_endpoint.ts";
import { type MysqlTable, mysqlTableKey } from "./mysql_schema_reader.ts";
import type { MysqlColumnType } from "./mysql_value_decoder.ts";

/** zongji's error when information_schema has no columns for a table map's table. */
export const ZONGJI_NO_COLUMNS = /^Insufficient permissions to access: /;

/**
 * zongji names events after their classes (`constructor.name`); a bundler that renames a
 * class clashing with another of the same name (bun: zongji's `Query` and mysql2's become
 * `Query2`) would hide those events. The names never end in digits otherwise.
 */
export function eventName(e: { getEventName(): string }): string {
  return e.getEventName().replace(/\d+$/, "");
}

const TEXT_KINDS = new Set(["text", "enum", "set", "json"]);
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

/** zongji's own fields for the labels of an ENUM or SET column (none for other kinds). */
function labelsOf(t: MysqlColumnType): Record<string, string[]> {
  if (!t.labels) return {};
  return t.kind === "enum" ? { ENUM_VALUES: t.labels } : { SET_VALUES: t.labels };
}

/** What the adapter asks the binlog source about tables (its schema cache). */
export interface ZongjiSchemas {
  /** The schema the source decodes the table with, when it is a historical one. */
  historical(database: string, table: string): MysqlTable | null | undefined;
  /** The table's schema when known and current (null: not replicated). */
  known(database: string, table: string): { table: MysqlTable | null } | undefined;
  /** The table's schema, read when not known. */
  lookup(database: string, table: string): Promise<{ table: MysqlTable | null }>;
  /** Whether the table's rows are used at all (the selection, the heartbeat table). */
  wanted(database: string, table: string): boolean;
}

export interface ZongjiAdapterOptions {
  /** The only databases whose tables zongji looks up (none: all). */
  databases?: string[];
}

/** A table map event as zongji hands it to `_fetchTableInfo`. */
interface TableMapEvent {
  tableId: number;
  schemaName: string;
  tableName: string;
  columnCount: number;
}

/** One binlog connection through zongji. */
export class ZongjiAdapter {
  readonly #zongji: ZongJi;
  // deno-lint-ignore no-explicit-any
  readonly #z: any;
  /** A table's columns being read for a table map event (zongji paused the connection). */
  #fetching: { ev: TableMapEvent; next: () => void } | null = null;

  /** Without `schemas`, zongji as it is: for reading events' headers, not their rows. */
  constructor(
    endpoint: MysqlEndpoint,
    private readonly schemas?: ZongjiSchemas,
    private readonly options: ZongjiAdapterOptions = {},
  ) {
    this.#zongji = new ZongJi({ ...mysqlConnectionOptions(endpoint), database: undefined });
    this.#z = this.#zongji;
    if (schemas) {
      this.#patchFetchTableInfo(schemas);
      this.#patchSkipSchema(schemas);
    }
  }

  /** Every binlog event, in order. */
  onEvent(handler: (e: AnyBinlogEvent) => void): void {
    this.#zongji.on("binlog", handler);
  }

  /** zongji's errors, but those a historical schema recovers from (see `_fetchTableInfo`). */
  onError(handler: (err: Error) => void): void {
    this.#zongji.on("error", (err: Error) => {
      if (!this.#recovered(err)) handler(err);
    });
  }

  /** Starts reading at `from` (`{gtidSet}` or `{filename, position}`). */
  start(serverId: number, from: Record<string, unknown>): void {
    this.#zongji.start({ serverId, ...from, ...this.#includeSchema() });
  }

  /** Stops reading; events and errors after this are ignored. */
  stop(): void {
    this.#zongji.removeAllListeners("binlog");
    this.#zongji.on("error", () => {});
    this.#zongji.stop();
  }

  /** Holds the events in the server (the connection stops reading). */
  pause(): void {
    this.#zongji.connection?.pause();
  }

  /**
   * Reads on, unless zongji is reading a table's columns: it paused the connection for that
   * and resumes it itself once they are known, and row events read before then would be
   * dropped by zongji as if the table were filtered out.
   */
  resume(): void {
    if (this.#fetching === null) this.#zongji.connection?.resume();
  }

  /** Server thread id of the binlog connection (diagnostics, tests). */
  get threadId(): number | null {
    return this.#zongji.connection?.threadId ?? null;
  }

  /** The GTID set executed up to the last event read. */
  get gtidSet(): string | undefined {
    return this.#zongji.gtidSet;
  }

  /** Binlog position where event `e` starts (its header before `nextPosition - size`). */
  eventStart(e: { nextPosition: number; size: number }): number {
    return e.nextPosition - e.size - (this.#zongji.useChecksum ? 23 : 19);
  }

  /** The table a row event's table id maps to. */
  table(tableId: number): { parentSchema: string; tableName: string } | undefined {
    return this.#zongji.tableMap[tableId];
  }

  /** After a table map event: its columns, patched (patchZongjiColumns). */
  tableMapped(tableId: number): void {
    patchZongjiColumns(this.#zongji.tableMap[tableId]);
  }

  /** Gives zongji the columns of `t` for a table map event; false when they do not fit. */
  #serve(ev: TableMapEvent, t: MysqlTable | null | undefined): boolean {
    if (!t || t.totalColumns !== ev.columnCount || t.ordinals.length !== t.totalColumns) {
      return false;
    }
    this.#z.tableMap[ev.tableId] = {
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
  }

  /**
   * zongji names ENUM/SET values from the labels information_schema prints (characters
   * beyond the BMP as `?`, split at every comma): give it the labels the schema reader read.
   */
  #label(ev: TableMapEvent, t: MysqlTable | null | undefined): void {
    const schemas = this.#z.tableMap[ev.tableId]?.columnSchemas as
      | Record<string, unknown>[]
      | undefined;
    if (!t || !schemas) return;
    for (const cs of schemas) {
      const i = t.columns.findIndex((c) => c.name === cs.COLUMN_NAME);
      if (i >= 0) Object.assign(cs, labelsOf(t.types[i]));
    }
  }

  /**
   * How zongji learns the columns of a table map event.
   *
   * - zongji names the columns of a row image from information_schema as it is now, and
   *   fails when an old image has more columns than the table has today (a replay from
   *   before DROP COLUMN). Tables decoded with a historical schema get that schema.
   * - A selected table dropped or renamed since (the stream is behind the server) is
   *   served from the schema known at this point of the binlog, when there is one
   *   (`#recovered`, on zongji's error).
   */
  #patchFetchTableInfo(schemas: ZongjiSchemas): void {
    const fetchInfo = this.#z._fetchTableInfo.bind(this.#zongji);
    this.#z._fetchTableInfo = (ev: TableMapEvent, next: () => void) => {
      if (this.#serve(ev, schemas.historical(ev.schemaName, ev.tableName))) return next();
      this.#fetching = { ev, next };
      // The lookup counts as running until zongji is told to go on: until then the binlog
      // connection must stay paused (see `resume`), also while our own lookup runs.
      const done = () => {
        this.#fetching = null;
        next();
      };
      fetchInfo(ev, () => {
        const current = schemas.known(ev.schemaName, ev.tableName);
        if (current) {
          this.#label(ev, current.table);
          return done();
        }
        schemas.lookup(ev.schemaName, ev.tableName).then((entry) => {
          this.#label(ev, entry.table);
          done();
        }, (err) => {
          this.#fetching = null;
          this.#zongji.emit("error", err);
        });
      });
    };
  }

  /**
   * Tables outside the selection are skipped before any lookup: their rows are never used,
   * and a table dropped or renamed since its rows were written (information_schema no
   * longer has it) would stop the stream.
   */
  #patchSkipSchema(schemas: ZongjiSchemas): void {
    const selected = new Map<string, boolean>();
    const skipSchema = this.#z._skipSchema.bind(this.#zongji);
    this.#z._skipSchema = (database: string, table: string): boolean => {
      if (skipSchema(database, table)) return true;
      const key = mysqlTableKey(database, table);
      let keep = selected.get(key);
      if (keep === undefined) {
        keep = schemas.wanted(database, table);
        selected.set(key, keep);
      }
      return !keep;
    };
  }

  /** zongji found no columns for a table it was reading: serve the known schema if any. */
  #recovered(err: Error): boolean {
    const f = this.#fetching;
    if (!f || !ZONGJI_NO_COLUMNS.test(err.message)) return false;
    this.#fetching = null;
    if (!this.#serve(f.ev, this.schemas?.known(f.ev.schemaName, f.ev.tableName)?.table)) {
      return false;
    }
    f.next();
    return true;
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
    return { includeSchema: include };
  }
}
