import { isRetriable } from "../../core/errors.ts";
import type { SinkErrorClass } from "../../ports/stream_sink.ts";

/**
 * Classifies Redis errors once: retriable ones are retried with backoff, permanent ones go
 * straight to the skip / in-doubt rules.
 */
export type RedisErrorClass = SinkErrorClass;

const RETRIABLE_PREFIXES = ["LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY"];
const CONNECTION_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
]);

export function classifyRedisError(err: unknown): RedisErrorClass {
  const e = err as { message?: string; code?: string; name?: string };
  const message = String(e?.message ?? err);
  // Errors raised by Replicant itself that say so (a WAIT with too few replicas).
  if (isRetriable(err)) return "retriable";
  if (message.startsWith("OOM")) return "oom";
  if (RETRIABLE_PREFIXES.some((p) => message.startsWith(p))) return "retriable";
  if (e?.code && CONNECTION_CODES.has(e.code)) return "retriable";
  if (
    /Connection is closed|Stream isn't writeable|connect ETIMEDOUT|Command timed out|MaxRetriesPerRequestError|Reached the max retries|Too many Cluster redirections|Failed to refresh slots cache|ClusterAllFailedError/i
      .test(message)
  ) return "retriable";
  return "permanent";
}

/** The reply of a command that needs an existing key (`XINFO STREAM`) on a missing one. */
export function isNoSuchKey(err: unknown): boolean {
  return /^ERR no such key/i.test(String((err as Error)?.message ?? err));
}
