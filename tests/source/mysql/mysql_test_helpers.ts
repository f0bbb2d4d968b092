/** Shared pieces of the MySQL source tests (real MariaDB from `scripts/services`). */
import mysql from "mysql2/promise";
import type { TableId } from "../../../src/core/table_schema.ts";
import type { TableSelection } from "../../../src/ports/snapshot_source.ts";
import type { SourceTransaction } from "../../../src/ports/streaming_source.ts";
import {
  type MysqlEndpoint,
  openMysql,
  quoteIdent,
} from "../../../src/source/mysql/mysql_endpoint.ts";
import type { MysqlTable } from "../../../src/source/mysql/mysql_schema_reader.ts";
import {
  mysqlSnapshotDecoder,
  snapshotSelectExpr,
} from "../../../src/source/mysql/mysql_value_decoder.ts";
import type { MysqlBinlogSource } from "../../../src/source/mysql/mysql_binlog_source.ts";
import { serviceEnv, waitFor } from "../../helpers/services.ts";

export const env = serviceEnv().mysql;

export function endpoint(extra: Partial<MysqlEndpoint> = {}): MysqlEndpoint {
  return {
    host: env.host,
    port: env.port,
    user: env.user,
    password: env.password,
    database: env.database,
    serverIds: [4242],
    origin: "test mysql.yaml",
    ...extra,
  };
}

/** A plain admin connection for test setup (strings for everything). */
export function admin(): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: env.host,
    port: env.port,
    user: env.user,
    password: env.password,
    database: env.database,
    charset: "utf8mb4_general_ci",
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    timezone: "Z",
  });
}

let counter = 0;
/** A table name unique to this test run. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${(counter++).toString(36)}_${
    Math.floor(Math.random() * 1e6).toString(36)
  }`;
}

export function selectTables(...names: string[]): TableSelection {
  return {
    table: (id: TableId) => id.catalog === env.database && names.includes(id.table),
    columns: () => null,
  };
}

/** Runs a binlog source from `from`, collecting transactions until `stop()`. */
export function collect(
  source: MysqlBinlogSource,
  from: string | null,
  onTx?: (tx: SourceTransaction) => Promise<void> | void,
) {
  const txs: SourceTransaction[] = [];
  const ac = new AbortController();
  const done = source.start(from, async (tx) => {
    txs.push(tx);
    if (onTx) await onTx(tx);
  }, ac.signal);
  let failure: unknown = undefined;
  done.catch((err) => failure = err);
  return {
    txs,
    done,
    /** Transactions that carry changes. */
    nonEmpty: () => txs.filter((t) => t.events.length > 0),
    events: () => txs.flatMap((t) => t.events),
    async waitEvents(n: number, timeoutMs = 15_000) {
      await waitFor(() => {
        if (failure) throw failure;
        return txs.reduce((s, t) => s + t.events.length, 0) >= n;
      }, { timeoutMs, what: `${n} change events` });
    },
    async stop() {
      ac.abort();
      await done;
    },
  };
}

/**
 * The rows of `table` (in key order, or sorted when it has no key) through the string path:
 * mysql2 hands each value's text-protocol bytes and `mysqlSnapshotDecoder` makes the JSON, on
 * a connection set up like the snapshot reader's. The reader's byte path must give the same.
 */
export async function stringPathRows(table: MysqlTable): Promise<string[][]> {
  const conn = await openMysql(endpoint());
  try {
    const cols = table.columns.map((c, i) => snapshotSelectExpr(table.types[i], quoteIdent(c.name)))
      .join(", ");
    const from = `${quoteIdent(table.id.catalog)}.${quoteIdent(table.id.table)}`;
    const order = table.keyColumns.map((i) => quoteIdent(table.columns[i].name)).join(", ");
    const [rows] = await conn.query({
      sql: `SELECT ${cols} FROM ${from}${table.hasKey ? ` ORDER BY ${order}` : ""}`,
      rowsAsArray: true,
      typeCast: ((field: { buffer(): Uint8Array | null }) => field.buffer()) as never,
    }) as unknown as [(Uint8Array | null)[][]];
    const decoders = table.types.map(mysqlSnapshotDecoder);
    const out = rows.map((r) => r.map((v, i) => decoders[i](v)));
    return table.hasKey ? out : sortRows(out);
  } finally {
    await conn.end();
  }
}

/** Rows in a fixed order, to compare reads without an ORDER BY. */
export function sortRows(rows: string[][]): string[][] {
  return [...rows].sort((a, b) => {
    const x = JSON.stringify(a), y = JSON.stringify(b);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}
