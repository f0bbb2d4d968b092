import { ConfigError, type ConfigProblem, type TableColumns } from "../config/mod.ts";
import { unknownFilterColumns } from "../config/table_selected.ts";
import { openPg, pgEndpointOf } from "../source/postgres/pg_endpoint.ts";
import { readPgTables } from "../source/postgres/pg_schema_reader.ts";
import { mysqlPreflight } from "../source/mysql/mysql_preflight.ts";
import { cascadeMessage } from "../source/mysql/mysql_prerequisites.ts";
import { replicationSelectionOf, type ReplicationSetup } from "./replication_setup.ts";
import { mysqlEndpointOf } from "../source/mysql/mysql_endpoint.ts";

/**
 * Checks of a replication run against the source's catalog, made before anything is written
 * (no state, no stream, no slot): the filter names only columns the selected tables have,
 * and (MySQL/MariaDB, realtime and full) `slave-server-ids` holds an id the binlog client
 * may use. Problems are configuration errors naming the file and key (exit 2). Returns what
 * the user should know but does not stop the run: (MySQL/MariaDB, realtime and full)
 * selected tables whose rows foreign keys change by cascade, which the binlog does not carry;
 * and the source server's version.
 */
export async function preflightSource(
  setup: ReplicationSetup,
  mode: "snapshot" | "realtime" | "full",
): Promise<{ warnings: string[]; serverVersion: string }> {
  const warnings: string[] = [];
  let serverVersion: string;
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
      const version = await client.query({ text: "SHOW server_version", rowMode: "array" });
      serverVersion = String((version.rows[0] as string[])[0]);
    } finally {
      await client.end().catch(() => {});
    }
  } else {
    const found = await mysqlPreflight(mysqlEndpointOf(setup.source), selection);
    tables = found.tables;
    serverVersion = found.serverVersion;
    if (mode !== "snapshot" && found.cascades.length > 0) {
      warnings.push(cascadeMessage(found.cascades));
    }
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
  return { warnings, serverVersion };
}
