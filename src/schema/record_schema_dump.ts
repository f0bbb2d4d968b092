import { qualifiedName, type TableSchema } from "../core/table_schema.ts";
import type { StreamNaming } from "../core/stream_naming.ts";
import { type SchemaDumpStore, SchemaHistory } from "./schema_history.ts";

/**
 * At the start of a run: reads the selected tables from the source, adds the schema
 * versions the dump stream does not hold yet, and returns the history for the run.
 */
export async function recordSchemaDump(
  /** Reads the selected tables from the source. */
  readTables: () => Promise<TableSchema[]>,
  store: SchemaDumpStore,
  naming: StreamNaming,
  log?: { info(message: string): void },
  /** The selected tables when already read. */
  read?: TableSchema[],
): Promise<SchemaHistory> {
  const tables = read ?? await readTables();
  const history = await SchemaHistory.load(store, naming.schemaDumpStream());
  const written = await history.recordAll(tables);
  if (written.length > 0) {
    log?.info(
      `schema dump ${naming.schemaDumpStream()}: ${
        written.map((e) => `${qualifiedName(e.id)} v${e.version}`).join(", ")
      }`,
    );
  }
  return history;
}
