import { ConfigError, type ConfigProblem } from "../config/mod.ts";
import { unknownFilterColumns } from "../config/table_selected.ts";
import { replicationSelectionOf, type ReplicationSetup } from "./replication_setup.ts";
import { connectorOf } from "../source/connectors.ts";

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
  const found = await connectorOf(setup.source, setup).inspect(replicationSelectionOf(setup), mode);
  const problems: ConfigProblem[] = found.problems.map((p) => ({
    file: setup.source.file ?? setup.files.source,
    ...p,
  }));
  if (setup.filter) problems.push(...unknownFilterColumns(setup.filter, found.tables));
  if (problems.length > 0) throw new ConfigError(problems);
  return { warnings: found.warnings, serverVersion: found.serverVersion };
}
