/** Shared pieces of the MySQL source tests (real MariaDB from `scripts/services`). */
import mysql from "mysql2/promise";
import type { TableId } from "../../../src/core/table_schema.ts";
import type { TableSelection } from "../../../src/pipeline/snapshot_source.ts";
import type { SourceTransaction } from "../../../src/pipeline/streaming_source.ts";
import type { MysqlEndpoint } from "../../../src/source/mysql/mysql_endpoint.ts";
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
