import { ConfigError, type ConfigProblem, type TableColumns } from "../config/mod.ts";
import { unknownFilterColumns } from "../config/table_selected.ts";
import { openPg } from "../source/postgres/pg_endpoint.ts";
import { readPgTables } from "../source/postgres/pg_schema_reader.ts";
import { mysqlPreflight } from "../source/mysql/mysql_preflight.ts";
import {
  mysqlEndpointOf,
  pgEndpointOf,
  replicationSelectionOf,
  type ReplicationSetup,
} from "./replication_setup.ts";

/**
 * Checks of a replication run against the source's catalog, made before anything is written
 * (no state, no stream, no slot): the filter names only columns the selected tables have,
 * and (MySQL/MariaDB, realtime and full) `slave-server-ids` holds an id the binlog client
 * may use. Problems are configuration errors naming the file and key (exit 2).
 */
export async function preflightSource(
  setup: ReplicationSetup,
  mode: "snapshot" | "realtime" | "full",
): Promise<void> {
  const problems: ConfigProblem[] = [];
  const selection = replicationSelectionOf(setup);
  let tables: TableColumns[];
  if (setup.source.type === "POSTGRESQL") {
    const client = await openPg(pgEndpointOf(setup.source), "replicant-preflight");
    try {
      const all = await readPgTables(client, setup.source.database, {
        table: (id) => selection.table(id),
        columns: () => null,
      });
      tables = all.map((t) => ({ id: t.id, columns: t.columns.map((c) => c.name) }));
    } finally {
      await client.end().catch(() => {});
    }
  } else {
    const found = await mysqlPreflight(mysqlEndpointOf(setup.source), selection);
    tables = found.tables;
    if (mode !== "snapshot" && found.serverIdProblem !== null) {
      problems.push({
        file: setup.source.file ?? setup.files.source,
        key: "slave-server-ids",
        message: found.serverIdProblem,
      });
    }
  }
  if (setup.filter) problems.push(...unknownFilterColumns(setup.filter, tables));
  if (problems.length > 0) throw new ConfigError(problems);
}
