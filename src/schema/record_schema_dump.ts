import type { RedisClient } from "../sink/redis/redis_connection.ts";
import type { ReplicationSetup } from "../commands/replication_setup.ts";
import { tableSelectionOf } from "../commands/replication_setup.ts";
import { qualifiedName } from "../core/table_schema.ts";
import type { StreamNaming } from "../core/stream_naming.ts";
import { readSourceSchemas } from "./source_schemas.ts";
import { writeSchemaDump } from "./schema_dump_writer.ts";

/**
 * At the start of a run: reads the selected tables from the source and adds the schema
 * versions the dump stream does not hold yet. Returns the number of entries written.
 */
export async function recordSchemaDump(
  setup: ReplicationSetup,
  client: RedisClient,
  naming: StreamNaming,
  log?: { info(message: string): void },
): Promise<number> {
  const tables = await readSourceSchemas(setup.source, tableSelectionOf(setup.filter));
  const written = await writeSchemaDump(client, naming.schemaDumpStream(), tables);
  if (written.length > 0) {
    log?.info(
      `schema dump ${naming.schemaDumpStream()}: ${
        written.map((e) => `${qualifiedName(e.id)} v${e.version}`).join(", ")
      }`,
    );
  }
  return written.length;
}
