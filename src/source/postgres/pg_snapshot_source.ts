import type pg from "pg";
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
import { openPg, type PgEndpoint, quoteIdent } from "./pg_endpoint.ts";
import { type PgTable, readPgTables, tellGeneratedColumnsLeftOut } from "./pg_schema_reader.ts";
import { PgCopyRows } from "./pg_copy_rows.ts";
import { pgTextByteWriter } from "./pg_text_bytes.ts";
import { PG_TYPE_CATALOG_SQL, PgTypeCatalog } from "./pg_type_catalog.ts";

/** Where a snapshot source tells what the entries of a table leave out. */
export interface SnapshotSourceLog {
  warn(message: string): void;
}

/**
 * PostgreSQL snapshot source. A coordinator transaction exports a snapshot (or uses the one
 * a replication slot exported, in `full`) and stays open while readers import it with
 * `SET TRANSACTION SNAPSHOT`, so every reader sees the same instant.
 */
export class PgSnapshotSource implements SnapshotSource {
  readonly connector = "postgresql" as const;
  #readers: PgTableReader[] = [];

  private constructor(
    readonly endpoint: PgEndpoint,
    readonly snapshotId: string,
    readonly snapshotTsMs: number,
    private readonly coordinator: pg.Client | null,
    private readonly catalog: PgTypeCatalog,
    private readonly selection: TableSelection,
    private readonly log: SnapshotSourceLog | undefined,
  ) {}

  /**
   * Opens the snapshot. `exportedSnapshot` is a snapshot id held open elsewhere (the
   * replication connection that created the slot); without it one is exported here. `log`
   * (the run's) hears what the tables' entries leave out.
   */
  static async open(
    endpoint: PgEndpoint,
    selection: TableSelection,
    options: { exportedSnapshot?: string; log?: SnapshotSourceLog } = {},
  ): Promise<PgSnapshotSource> {
    const { exportedSnapshot, log } = options;
    const client = await openPg(endpoint, "replicant-snapshot");
    try {
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      if (exportedSnapshot) {
        await client.query(`SET TRANSACTION SNAPSHOT '${exportedSnapshot.replaceAll("'", "''")}'`);
      }
      const res = await client.query({
        text: exportedSnapshot
          ? "SELECT $1::text, (extract(epoch from now()) * 1000)::int8::text"
          : "SELECT pg_export_snapshot(), (extract(epoch from now()) * 1000)::int8::text",
        values: exportedSnapshot ? [exportedSnapshot] : [],
        rowMode: "array",
      });
      const [id, ts] = res.rows[0] as string[];
      const catalog = new PgTypeCatalog();
      catalog.loadRows((await client.query(PG_TYPE_CATALOG_SQL)).rows);
      return new PgSnapshotSource(endpoint, id, Number(ts), client, catalog, selection, log);
    } catch (err) {
      await client.end().catch(() => {});
      if (err instanceof SourceError) throw err;
      throw new SourceError(
        `Cannot open a consistent snapshot on ${endpoint.origin}: ${(err as Error).message}`,
        undefined,
        { cause: err },
      );
    }
  }

  async tables(): Promise<SnapshotTable[]> {
    const tables = await readPgTables(this.coordinator!, this.endpoint.database, this.selection);
    if (this.log) tellGeneratedColumnsLeftOut(tables, this.log);
    return tables.map((schema) => ({ schema, estimatedRows: schema.estimatedRows }));
  }

  async reader(): Promise<TableReader> {
    const client = await openPg(this.endpoint, "replicant-snapshot-reader");
    try {
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      await client.query(`SET TRANSACTION SNAPSHOT '${this.snapshotId}'`);
    } catch (err) {
      await client.end().catch(() => {});
      throw new SourceError(
        `Cannot import snapshot ${this.snapshotId} on ${this.endpoint.origin}: ${
          (err as Error).message
        }`,
        undefined,
        { cause: err },
      );
    }
    const reader = new PgTableReader(client, this.catalog);
    this.#readers.push(reader);
    return reader;
  }

  async close(): Promise<void> {
    await Promise.all(this.#readers.map((r) => r.close()));
    if (this.coordinator) {
      await this.coordinator.query("COMMIT").catch(() => {});
      await this.coordinator.end().catch(() => {});
    }
  }
}

class PgTableReader implements TableReader {
  #closed = false;
  /** A COPY given up half-way, still being read to its end. */
  #draining: Promise<void> | null = null;

  constructor(private readonly client: pg.Client, private readonly catalog: PgTypeCatalog) {}

  /**
   * One `COPY (SELECT … ORDER BY key LIMIT n) TO STDOUT` per chunk, after the last key of
   * the one before (as literals: COPY takes no parameters); tables without a key in one
   * COPY, cut into chunks as the rows stream. The next chunk's COPY runs while the consumer
   * works on this one.
   */
  async *read(
    schema: TableSchema,
    after: KeyValue[] | null,
    chunkRows: number,
  ): AsyncIterable<JsonRowBatch> {
    if (this.#draining) await this.#draining;
    this.#draining = null;
    const table = schema as PgTable;
    const writers = table.typeOids.map((oid) => pgTextByteWriter(oid, this.catalog));
    const columns = table.columns.map((c) => quoteIdent(c.name)).join(", ");
    const from = `${quoteIdent(table.id.schema!)}.${quoteIdent(table.id.table)}`;
    const what = qualifiedName(table.id);
    const keyList = table.keyColumns.map((i) => quoteIdent(table.columns[i].name)).join(", ");
    const keyTypes = table.keyColumns.map((i) => table.columns[i].sourceType);
    const pool: JsonRowBatch[] = [];
    const copy = (key: (string | null)[] | null) => {
      const where = key === null
        ? ""
        : ` WHERE (${keyList}) > (${key.map((v, i) => keyLiteral(v, keyTypes[i])).join(", ")})`;
      const sql = table.hasKey
        ? `COPY (SELECT ${columns} FROM ${from}${where} ORDER BY ${keyList} LIMIT ${chunkRows}) TO STDOUT`
        : `COPY (SELECT ${columns} FROM ${from}) TO STDOUT`;
      const rows = new PgCopyRows(
        sql,
        writers,
        table.hasKey ? table.keyColumns : [],
        chunkRows,
        pool,
      );
      this.client.query(rows);
      return rows;
    };
    let current: PgCopyRows | null = copy(after ? after.map(keyText) : null);
    try {
      while (current !== null) {
        const running: PgCopyRows = current;
        const batch = await running.next();
        if (batch === null) {
          await running.finished;
          break;
        }
        if (table.hasKey) {
          // A keyset chunk is one COPY: once it is over, start the next one before handing
          // this one out, so reading overlaps the consumer's work.
          await running.finished;
          current = batch.rows === chunkRows ? copy(running.lastKey) : null;
        }
        yield batch;
        running.release(batch);
      }
    } catch (err) {
      if (err instanceof SourceError) throw err;
      throw new SourceError(`Cannot read ${what}: ${(err as Error).message}`, what, { cause: err });
    } finally {
      // Given up early (the consumer stopped, or failed): the connection is busy until the
      // rest of that COPY has been read. A COPY that is over may still hold a batch nobody
      // took, and with it the paused socket: discarding resumes it.
      if (current !== null) {
        const rest = current.discard();
        if (!current.done) this.#draining = rest;
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#draining) {
      // Reading the rest of a whole table could take long; the transaction only read.
      await this.client.end().catch(() => {});
      return;
    }
    await this.client.query("COMMIT").catch(() => {});
    await this.client.end().catch(() => {});
  }
}

/** A key value of the last chunk as an SQL literal of the key column's type. */
function keyLiteral(v: string | null, type: string): string {
  if (v === null) return "NULL";
  return `E'${v.replaceAll("\\", "\\\\").replaceAll("'", "''")}'::${type}`;
}

/** A key value read back from a stream, as PostgreSQL input text. */
function keyText(v: KeyValue): string | null {
  if (v === null) return null;
  if (typeof v === "boolean") return v ? "t" : "f";
  return String(v);
}
