import type { ApplierConfig } from "../config/mod.ts";
import type { StreamNaming } from "../core/stream_naming.ts";
import type { ReplicantMetrics } from "../observe/replicant_metrics.ts";
import type { SchemaHistory } from "../schema/schema_history.ts";
import type { RedisStreamSink } from "../sink/redis/redis_stream_sink.ts";
import type { RedisClient } from "../sink/redis/redis_connection.ts";
import type { RedisTarget } from "../sink/redis/redis_endpoint.ts";
import { permissionError } from "../sink/redis/redis_permission_error.ts";
import { type CheckpointStore, retentionField, retentionValue } from "../ports/checkpoint.ts";
import { RetentionLoop, StreamRetention } from "../sink/redis/stream_retention.ts";

/** Where retention reports: trace.log lines, and warnings on the console too. */
export interface RetentionLog {
  info(message: string): void;
  warn(message: string): void;
}

/**
 * The streams of a replication that retention trims: per table its change stream (EVENTUAL)
 * and, unless `snapshot-streams: false`, its snapshot stream; the GLOBAL stream; the DDL
 * stream. Never the schema dump stream (a run and fetch-schemas read it whole). Tables come
 * from the schema history, asked anew each pass, so tables that join later are included.
 */
export function retentionStreams(
  applier: ApplierConfig,
  naming: StreamNaming,
  schemas: SchemaHistory,
  ddl: boolean,
): () => string[] {
  return () => {
    const out = new Set<string>();
    const global = applier.realtime.replayConsistency === "GLOBAL";
    for (const table of schemas.newest()) {
      if (applier.retention?.snapshotStreams !== false) out.add(naming.snapshotStream(table.id));
      if (!global) out.add(naming.cdcStream(table.id));
    }
    if (global) out.add(naming.globalCdcStream());
    if (ddl) out.add(naming.schemaChangeStream());
    return [...out];
  };
}

/**
 * Starts retention for a run when the applier has a `retention` section: passes every
 * `interval-ms` and on memory pressure; each trim recorded in the checkpoint hash before it
 * happens. Returns the loop (stop it before closing the sink), or null without retention.
 */
export function startRetention(
  applier: ApplierConfig,
  sink: RedisStreamSink<RedisClient>,
  checkpoints: CheckpointStore,
  streams: () => string[],
  log: RetentionLog,
  target: Pick<RedisTarget, "origin" | "username">,
  /** The run's metrics, which count what retention trims. */
  metrics: ReplicantMetrics,
): RetentionLoop | null {
  const settings = applier.retention;
  if (!settings) return null;
  const retention = new StreamRetention(sink.client, settings, sink.tailGuard, {
    record: (stream, through) =>
      checkpoints.write({ [retentionField(stream)]: retentionValue(through) }),
    trimmed: (t) => {
      metrics.retention(t.stream, t.removed, t.unread);
      log.info(`retention: trimmed ${t.removed} entries of ${t.stream} (below ${t.through})`);
    },
    warn: (message) => log.warn(message),
  });
  const loop = new RetentionLoop(
    retention,
    streams,
    settings.intervalMs,
    (err) => {
      // A missing ACL right is named (file, user, rights to add) instead of a bare NOPERM.
      const message = ((permissionError(err, target) ?? err) as Error).message;
      log.warn(`retention pass failed: ${message}; trying again later`);
    },
  );
  sink.memory.onPressure = () => loop.trigger();
  loop.start();
  return loop;
}
