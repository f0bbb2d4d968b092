import type { RedisConnection } from "../config/mod.ts";
import { type InDoubtEntry, UsageError } from "../core/errors.ts";
import type { LogEvent } from "../observe/log_event.ts";
import { RunConsole } from "../observe/run_console.ts";
import { logFormatOf } from "../observe/run_observer.ts";
import { indoubtPath, readIndoubt, rewriteIndoubt } from "../pipeline/indoubt_log.ts";
import { openRedisAdmin } from "../sink/redis/redis_connection.ts";
import type { CommonOptions } from "./common_options.ts";
import { homeDir, readManifest } from "./manifest.ts";
import { loadConnectionFile, redisTargetOf, validateId } from "./replication_setup.ts";

/** What happened to one listed entry. */
export type CleanupStatus = "deleted" | "already absent" | "failed" | "would delete";

/**
 * `replicant cleanup-indoubt [DST_CONN] --id ID [--dry-run]`: XDELs every entry
 * listed in the id's in-doubt file, prints one line per entry, and rewrites the file
 * (atomically) with only the entries it could not delete. Exit 0 once the file is empty,
 * 4 while entries stay in doubt. With `--log-format json` the lines are `indoubt_entry`
 * events and the last one `cleanup_indoubt` (the counts and streams).
 */
export async function cleanupIndoubt(
  conn: string | undefined,
  opts: CommonOptions,
): Promise<number> {
  const format = logFormatOf(opts);
  const home = homeDir(opts.home);
  const id = validateId(opts.id ?? "default");
  const out = new RunConsole(format, id);
  const file = indoubtPath(home, id);
  const entries = readIndoubt(file);
  const counts: Record<CleanupStatus, number> = {
    "deleted": 0,
    "already absent": 0,
    "failed": 0,
    "would delete": 0,
  };
  const done = (text: string, remaining: number) =>
    out.result(cleanupEvent(file, entries, counts, remaining, opts.dryRun === true), text);
  if (entries.length === 0) {
    done(`No in-doubt entries for id ${id} (${file}).`, 0);
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
  const target = await loadConnectionFile(
    targetFile,
    "target",
    out,
    conn ? "DST_CONN" : "DST_CONN (saved by the id's last run)",
  ) as RedisConnection;
  if (target.type !== "REDIS_STREAM") {
    throw new UsageError(`${targetFile}: cleanup-indoubt needs a REDIS_STREAM connection`);
  }
  const client = await openRedisAdmin(redisTargetOf(target), "replicant-cleanup");
  const failed: InDoubtEntry[] = [];
  try {
    for (const e of entries) {
      let status: CleanupStatus;
      let error: string | undefined;
      try {
        if (opts.dryRun) {
          const found = await client.xrange(e.stream, e.id, e.id);
          status = found.length > 0 ? "would delete" : "already absent";
        } else {
          status = (await client.xdel(e.stream, e.id)) > 0 ? "deleted" : "already absent";
        }
      } catch (err) {
        status = "failed";
        error = (err as Error).message;
        failed.push(e);
      }
      counts[status]++;
      out.result(
        {
          level: status === "failed" ? "error" : "info",
          event: "indoubt_entry",
          fields: { stream: e.stream, entry_id: e.id, status: status.replace(" ", "_"), error },
        },
        `${status} ${e.stream} ${e.id}${error === undefined ? "" : `: ${error}`}`,
      );
    }
  } finally {
    await client.quit().catch(() => client.disconnect());
  }
  if (opts.dryRun) {
    done(
      `dry run: ${counts["would delete"]} to delete, ${
        counts["already absent"]
      } already absent, ${counts.failed} failed; ${file} unchanged`,
      entries.length,
    );
    return 0;
  }
  rewriteIndoubt(file, failed);
  done(
    `${counts.deleted} deleted, ${
      counts["already absent"]
    } already absent, ${failed.length} failed` +
      (failed.length === 0
        ? `; ${file} is empty: continue with --resume --id ${id}`
        : `; ${failed.length} entr${failed.length === 1 ? "y stays" : "ies stay"} in ${file}`),
    failed.length,
  );
  return failed.length === 0 ? 0 : 4;
}

/**
 * `--log-format json`: what cleanup-indoubt did, as one object: the in-doubt file, how many
 * entries it listed, the count of each outcome, the entries still listed after the run, and
 * the streams the entries belong to.
 */
function cleanupEvent(
  file: string,
  entries: readonly InDoubtEntry[],
  counts: Record<CleanupStatus, number>,
  remaining: number,
  dryRun: boolean,
): LogEvent {
  return {
    level: counts.failed > 0 ? "error" : "info",
    event: "cleanup_indoubt",
    fields: {
      file,
      dry_run: dryRun,
      entries: entries.length,
      deleted: counts.deleted,
      already_absent: counts["already absent"],
      would_delete: counts["would delete"],
      failed: counts.failed,
      remaining,
      streams: [...new Set(entries.map((e) => e.stream))],
    },
  };
}
