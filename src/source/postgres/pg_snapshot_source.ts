import type pg from "pg";
import { JsonRowBatch } from "../../core/json_row_batch.ts";
import { SourceError } from "../../core/errors.ts";
import { qualifiedName, type TableSchema } from "../../core/table_schema.ts";
import type {
  KeyValue,
  SnapshotSource,
  SnapshotTable,
  TableReader,
  TableSelection,
} from "../../pipeline/snapshot_source.ts";
import { openPg, type PgEndpoint, quoteIdent } from "./pg_endpoint.ts";
import { type PgTable, readPgTables } from "./pg_schema_reader.ts";
import { type JsonFragmentDecoder, pgTextDecoder } from "./pg_text_decoder.ts";
import { PG_TYPE_CATALOG_SQL, PgTypeCatalog } from "./pg_type_catalog.ts";

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
  ) {}

  /**
   * Opens the snapshot. `exportedSnapshot` is a snapshot id held open elsewhere (the
   * replication connection that created the slot); without it one is exported here.
   */
  static async open(
    endpoint: PgEndpoint,
    selection: TableSelection,
    exportedSnapshot?: string,
  ): Promise<PgSnapshotSource> {
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
      return new PgSnapshotSource(endpoint, id, Number(ts), client, catalog, selection);
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
  constructor(private readonly client: pg.Client, private readonly catalog: PgTypeCatalog) {}

  async *read(
    schema: TableSchema,
    after: KeyValue[] | null,
    chunkRows: number,
  ): AsyncIterable<JsonRowBatch> {
    const table = schema as PgTable;
    const decoders = table.typeOids.map((oid) => pgTextDecoder(oid, this.catalog));
    const columns = table.columns.map((c) => quoteIdent(c.name)).join(", ");
    const from = `${quoteIdent(table.id.schema!)}.${quoteIdent(table.id.table)}`;
    const what = qualifiedName(table.id);
    if (!table.hasKey) {
      yield* this.#readWhole(`SELECT ${columns} FROM ${from}`, decoders, chunkRows, what);
      return;
    }
    const keyList = table.keyColumns.map((i) => quoteIdent(table.columns[i].name)).join(", ");
    const params = table.keyColumns.map((_, i) => `$${i + 1}`).join(", ");
    const first = `SELECT ${columns} FROM ${from} ORDER BY ${keyList} LIMIT ${chunkRows}`;
    const next =
      `SELECT ${columns} FROM ${from} WHERE (${keyList}) > (${params}) ORDER BY ${keyList} LIMIT ${chunkRows}`;
    const query = (key: (string | null)[] | null) =>
      this.client.query({
        text: key ? next : first,
        values: key ?? [],
        rowMode: "array",
      }).catch((err: unknown) => {
        throw new SourceError(`Cannot read ${what}: ${(err as Error).message}`, what, {
          cause: err,
        });
      });
    let pending: Promise<pg.QueryResult> | null = query(after ? after.map(keyText) : null);
    while (pending) {
      const rows = (await pending).rows as (string | null)[][];
      // Ask for the next chunk before decoding this one, so reading overlaps writing.
      pending = rows.length === chunkRows
        ? query(table.keyColumns.map((i) => rows[rows.length - 1][i]))
        : null;
      yield decodeRows(rows, decoders);
    }
  }

  async *#readWhole(
    select: string,
    decoders: JsonFragmentDecoder[],
    chunkRows: number,
    what: string,
  ): AsyncIterable<JsonRowBatch> {
    try {
      await this.client.query(`DECLARE replicant_whole NO SCROLL CURSOR FOR ${select}`);
      while (true) {
        const res = await this.client.query({
          text: `FETCH ${chunkRows} FROM replicant_whole`,
          rowMode: "array",
        });
        if (res.rows.length > 0) yield decodeRows(res.rows, decoders);
        if (res.rows.length < chunkRows) break;
      }
      await this.client.query("CLOSE replicant_whole");
    } catch (err) {
      if (err instanceof SourceError) throw err;
      throw new SourceError(`Cannot read ${what}: ${(err as Error).message}`, what, { cause: err });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.client.query("COMMIT").catch(() => {});
    await this.client.end().catch(() => {});
  }
}

function decodeRows(rows: (string | null)[][], decoders: JsonFragmentDecoder[]): JsonRowBatch {
  const n = decoders.length;
  const batch = new JsonRowBatch(n, 64 * 1024, rows.length * n);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    for (let i = 0; i < n; i++) batch.pushFragment(decoders[i](row[i]));
    batch.endRow();
  }
  return batch;
}

/** A key value read back from a stream, as PostgreSQL input text. */
function keyText(v: KeyValue): string | null {
  if (v === null) return null;
  if (typeof v === "boolean") return v ? "t" : "f";
  return String(v);
}
