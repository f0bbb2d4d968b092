import { ConfigError } from "../config/mod.ts";
import type { SourceTables } from "../ports/connector.ts";
import { connectorOf } from "../source/connectors.ts";
import type { ReplicationSetup } from "./replication_setup.ts";
import { tableSelectionOf } from "../ports/snapshot_source.ts";

/** Lines and names shown of what a source has, so a big catalog stays one readable message. */
const MAX_GROUPS = 20;
const MAX_TABLES = 12;

/**
 * A replication that selects no table of its source is a mistake (a filter naming another
 * schema or database, a source pointed at an empty database), never a success with nothing
 * in it: refuse it before anything is created (exit 2), naming the filter file and the
 * option that gave it, and listing the schemas or databases and tables the source has.
 */
export async function requireSelectedTables(setup: ReplicationSetup): Promise<void> {
  const found = await connectorOf(setup.source, setup).listTables();
  const selection = tableSelectionOf(setup.filter);
  if (found.groups.some((g) => g.tables.some((id) => selection.table(id)))) return;
  const has = describeTables(found);
  if (setup.filter) {
    throw new ConfigError([{
      file: setup.filter.file ?? setup.files.filter ?? "",
      key: "allow",
      option: setup.options.filter,
      message: `selects no table of ${found.source}, which has:\n${has}\n` +
        `Name one of these in \`allow\` (catalog: the database${
          found.groupKind === "schema" ? ", schema: the schema" : ""
        }, then table names or patterns).`,
    }]);
  }
  throw new ConfigError([{
    file: setup.source.file ?? setup.files.source,
    key: "",
    option: setup.options.source,
    message: `${found.source} has no table to replicate${
      found.groups.length > 0 ? `:\n${has}\n` : ". "
    }Create the tables first, or point the connection at the database that has them.`,
  }]);
}

/** `  schema shop: customers, orders` per schema or database, shortened when long. */
function describeTables(found: SourceTables): string {
  const lines = found.groups.slice(0, MAX_GROUPS).map(({ name, tables }) => {
    const names = tables.slice(0, MAX_TABLES).map((t) => t.table);
    const more = tables.length > MAX_TABLES ? `, … (${tables.length - MAX_TABLES} more)` : "";
    return `  ${found.groupKind} ${name}: ${
      names.length > 0 ? names.join(", ") + more : "no tables"
    }`;
  });
  if (found.groups.length > MAX_GROUPS) {
    lines.push(`  … (${found.groups.length - MAX_GROUPS} more ${found.groupKind}s)`);
  }
  if (lines.length === 0) lines.push(`  no ${found.groupKind} at all`);
  return lines.join("\n");
}
