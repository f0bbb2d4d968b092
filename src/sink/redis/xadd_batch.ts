import { ReplicaWaitError } from "../../core/errors.ts";
import type { EntryField } from "../../core/entry_field.ts";
import { RedisConnectionError, type RespPipeline } from "./resp_pipeline.ts";

export interface AppendOptions {
  /** Approximate MAXLEN (`MAXLEN ~ n`); 0 = unlimited. */
  maxStreamLength: number;
  /** After each batch, `WAIT` for this many replicas (applier `wait-for-replicas`); 0 = no. */
  waitForReplicas?: number;
  /** Timeout of that WAIT (applier `wait-for-replicas-timeout-ms`, default 1000). */
  waitForReplicasTimeoutMs?: number;
  /** Pause writers while Redis uses more than this % of maxmemory (MemoryGate). */
  pauseAboveMemoryPercent?: number;
}

/**
 * Sends one batch of XADDs on `conn` (with `asking`, each after ASKING: a Cluster slot being
 * imported) and, with `wait-for-replicas: N`, `WAIT N timeout` right behind it on the same
 * connection, so the batch and its WAIT cost one round trip. Resolves with one reply per
 * entry (id or Error); rejects with a RedisConnectionError when the connection is lost, or a
 * ReplicaWaitError when some entries landed but fewer than N replicas have them.
 */
export function sendBatch(
  conn: RespPipeline,
  stream: string,
  entries: EntryField[][],
  options: AppendOptions,
  where: string,
  asking = false,
  ids = true,
): Promise<(string | Error)[]> {
  const max = options.maxStreamLength;
  let sent: Promise<(string | Error)[]>;
  if (!asking) sent = conn.xaddBatch(stream, entries, max, ids);
  else {
    // ASKING holds for the next command only: one ASKING before each XADD, all in one go.
    const each = entries.map((fields) => {
      conn.command("ASKING").catch(() => {});
      return conn.xaddBatch(stream, [fields], max, ids);
    });
    sent = Promise.all(each).then((r) => r.map((x) => x[0]));
  }
  if (!(options.waitForReplicas ?? 0) || entries.length === 0) return sent;
  const waited = sendWait(conn, options);
  waited.catch(() => {}); // looked at below, unless the batch itself fails
  return sent.then(async (replies) => {
    // Nothing landed (every entry redirected or refused): nothing to wait for.
    if (replies.some((r) => typeof r === "string")) {
      await checkWait(waited, stream, options, where);
    }
    return replies;
  });
}

/**
 * `WAIT N timeout` alone on `conn`: every write sent on it so far (a batch whose WAIT failed,
 * looked at again) must be on N replicas. Rejects like `sendBatch`; no-op without
 * `wait-for-replicas`.
 */
export async function waitForReplicas(
  conn: RespPipeline,
  stream: string,
  options: AppendOptions,
  where: string,
): Promise<void> {
  if (options.waitForReplicas ?? 0) {
    await checkWait(sendWait(conn, options), stream, options, where);
  }
}

function sendWait(conn: RespPipeline, options: AppendOptions): Promise<unknown> {
  const timeoutMs = options.waitForReplicasTimeoutMs ?? 1000;
  return conn.command("WAIT", String(options.waitForReplicas), String(timeoutMs));
}

async function checkWait(
  waited: Promise<unknown>,
  stream: string,
  options: AppendOptions,
  where: string,
): Promise<void> {
  const wanted = options.waitForReplicas ?? 0;
  const timeoutMs = options.waitForReplicasTimeoutMs ?? 1000;
  let acked: number;
  try {
    acked = Number(await waited);
  } catch (err) {
    if (err instanceof RedisConnectionError) throw err;
    throw new ReplicaWaitError(
      stream,
      0,
      wanted,
      timeoutMs,
      `${where} (${(err as Error).message})`,
    );
  }
  if (acked < wanted) throw new ReplicaWaitError(stream, acked, wanted, timeoutMs, where);
}
