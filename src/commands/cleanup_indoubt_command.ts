import process from "node:process";
import type { RedisConnection } from "../config/mod.ts";
import { UsageError } from "../core/errors.ts";
import {
  type InDoubtEntry,
  indoubtPath,
  readIndoubt,
  rewriteIndoubt,
} from "../sink/redis/indoubt_log.ts";
import { openRedisAdmin } from "../sink/redis/redis_connection.ts";
import type { CommonOptions } from "./common_options.ts";
import { homeDir, readManifest } from "./manifest.ts";
import { loadConnectionFile, redisTargetOf, validateId } from "./replication_setup.ts";

/** What happened to one listed entry. */
export type CleanupStatus = "deleted" | "already absent" | "failed" | "would delete";

/**
 * `replicant cleanup-indoubt [DST_CONN] --id ID [--dry-run]` (SPEC §1, §5): XDELs every entry
 * listed in the id's in-doubt file, prints one line per entry, and rewrites the file
 * (atomically) with only the entries it could not delete. Exit 0 once the file is empty,
 * 4 while entries stay in doubt.
 */
export async function cleanupIndoubt(
  conn: string | undefined,
  opts: CommonOptions,
): Promise<number> {
  const home = homeDir(opts.home);
  const id = validateId(opts.id ?? "default");
  const file = indoubtPath(home, id);
  const entries = readIndoubt(file);
  if (entries.length === 0) {
    process.stdout.write(`No in-doubt entries for id ${id} (${file}).\n`);
    return 0;
  }
  const targetFile = conn ?? readManifest(home, id)?.target ?? null;
  if (!targetFile) {
    throw new UsageError(
      `cleanup-indoubt: no DST_CONN given and no manifest for id ${
        JSON.stringify(id)
      } under ${home}/data names the Redis connection: give DST_CONN (or --home)`,
    );
  }
  const target = await loadConnectionFile(targetFile, "target") as RedisConnection;
  if (target.type !== "REDIS_STREAM") {
    throw new UsageError(`${targetFile}: cleanup-indoubt needs a REDIS_STREAM connection`);
  }
  const client = await openRedisAdmin(redisTargetOf(target), "replicant-cleanup");
  const failed: InDoubtEntry[] = [];
  const counts: Record<CleanupStatus, number> = {
    "deleted": 0,
    "already absent": 0,
    "failed": 0,
    "would delete": 0,
  };
  try {
    for (const e of entries) {
      let status: CleanupStatus;
      let detail = "";
      try {
        if (opts.dryRun) {
          const found = await client.xrange(e.stream, e.id, e.id);
          status = found.length > 0 ? "would delete" : "already absent";
        } else {
          status = (await client.xdel(e.stream, e.id)) > 0 ? "deleted" : "already absent";
        }
      } catch (err) {
        status = "failed";
        detail = `: ${(err as Error).message}`;
        failed.push(e);
      }
      counts[status]++;
      process.stdout.write(`${status} ${e.stream} ${e.id}${detail}\n`);
    }
  } finally {
    await client.quit().catch(() => client.disconnect());
  }
  if (opts.dryRun) {
    process.stdout.write(
      `dry run: ${counts["would delete"]} to delete, ${
        counts["already absent"]
      } already absent, ${counts.failed} failed; ${file} unchanged\n`,
    );
    return 0;
  }
  rewriteIndoubt(file, failed);
  process.stdout.write(
    `${counts.deleted} deleted, ${
      counts["already absent"]
    } already absent, ${failed.length} failed` +
      (failed.length === 0
        ? `; ${file} is empty: continue with --resume --id ${id}\n`
        : `; ${failed.length} entr${failed.length === 1 ? "y stays" : "ies stay"} in ${file}\n`),
  );
  return failed.length === 0 ? 0 : 4;
}
