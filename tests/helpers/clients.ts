/** Plain clients of the private test servers, for setting up data and checking results. */
import pg from "pg";
import { Redis } from "ioredis";
import { serviceEnv } from "./services.ts";

export async function pgClient(): Promise<pg.Client> {
  const env = serviceEnv().pg;
  const client = new pg.Client({
    host: env.host,
    port: env.port,
    user: env.user,
    database: env.database,
  });
  await client.connect();
  return client;
}

/**
 * A publication as Replicant makes it, of every table of `schema` (none when it has none):
 * for tests that create the slot before a run, so the changes made meanwhile are kept.
 */
export async function createSchemaPublication(
  db: pg.Client,
  name: string,
  schema: string,
): Promise<void> {
  const res = await db.query({
    text: "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = $1",
    values: [schema],
    rowMode: "array",
  });
  const tables = (res.rows as string[][]).map((r) => r[0]);
  await db.query(
    `CREATE PUBLICATION "${name}"${tables.length > 0 ? ` FOR TABLE ${tables.join(", ")}` : ""} ` +
      "WITH (publish_via_partition_root = true)",
  );
}

export function redisClient(): Redis {
  const env = serviceEnv().redis;
  return new Redis({ host: env.host, port: env.port, lazyConnect: false });
}

/** Every entry of a stream, read in pages so large streams do not need one huge reply. */
export async function readStream(redis: Redis, stream: string): Promise<[string, string[]][]> {
  const out: [string, string[]][] = [];
  let start = "-";
  while (true) {
    const page = await redis.xrange(stream, start, "+", "COUNT", 10_000);
    out.push(...page);
    if (page.length < 10_000) return out;
    start = "(" + page[page.length - 1][0];
  }
}

/** Deletes the keys matching a pattern (a test's own prefix). */
export async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== "0");
}
