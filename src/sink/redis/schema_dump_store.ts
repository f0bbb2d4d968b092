import type { RedisClient } from "./redis_connection.ts";
import {
  parseSchemaDumpFields,
  type SchemaDumpEntry,
  schemaDumpFields,
} from "../../schema/schema_dump.ts";
import type { SchemaDumpStore } from "../../schema/schema_history.ts";

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

/** Appends entries to the dump stream in one MULTI. */
export async function writeSchemaDumpEntries(
  client: RedisClient,
  stream: string,
  entries: SchemaDumpEntry[],
): Promise<void> {
  if (entries.length === 0) return;
  const tx = client.multi();
  for (const e of entries) tx.xadd(stream, "*", ...schemaDumpFields(e));
  const res = await tx.exec();
  for (const [err] of res ?? []) if (err) throw err;
}

/** The schema dump streams of a Redis target. */
export function redisSchemaDumpStore(client: RedisClient): SchemaDumpStore {
  return {
    read: (stream) => readSchemaDump(client, stream),
    append: (stream, entries) => writeSchemaDumpEntries(client, stream, entries),
  };
}
