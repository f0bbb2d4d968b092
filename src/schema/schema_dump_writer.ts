import type { RedisClient } from "../sink/redis/redis_connection.ts";
import type { TableSchema } from "../core/table_schema.ts";
import {
  parseSchemaDumpFields,
  plannedDumpEntries,
  type SchemaDumpEntry,
  schemaDumpFields,
} from "./schema_dump.ts";

/** Every entry of a schema dump stream, oldest first; empty when the stream does not exist. */
export async function readSchemaDump(
  client: RedisClient,
  stream: string,
): Promise<SchemaDumpEntry[]> {
  const out: SchemaDumpEntry[] = [];
  let start = "-";
  for (;;) {
    const page = await client.xrange(stream, start, "+", "COUNT", 1000) as [string, string[]][];
    for (const [, fields] of page) {
      const e = parseSchemaDumpFields(fields);
      if (e) out.push(e);
    }
    if (page.length < 1000) return out;
    start = "(" + page[page.length - 1][0];
  }
}

/**
 * Adds one entry per table whose schema is not yet in the dump as its newest version (new
 * tables version 1, changed ones the next version) in one MULTI; returns what was written.
 */
export async function writeSchemaDump(
  client: RedisClient,
  stream: string,
  tables: TableSchema[],
  tsMs = Date.now(),
): Promise<SchemaDumpEntry[]> {
  const planned = plannedDumpEntries(tables, await readSchemaDump(client, stream), tsMs);
  if (planned.length === 0) return [];
  const tx = client.multi();
  for (const e of planned) tx.xadd(stream, "*", ...schemaDumpFields(e));
  const res = await tx.exec();
  for (const [err] of res ?? []) if (err) throw err;
  return planned;
}
