import { Cluster, Redis, type RedisOptions } from "ioredis";
import { SinkError } from "../../core/errors.ts";

export interface RedisTarget {
  host: string;
  port: number;
  username?: string;
  password?: string;
  /** Connections in the pool; each table writer uses one at a time. */
  poolSize: number;
  tls?: RedisOptions["tls"];
  /** Name shown in errors, usually the connection file. */
  origin: string;
  /** `cluster`: a Redis Cluster reached through the seed `nodes`; default standalone. */
  mode?: "standalone" | "cluster";
  /** Cluster seed nodes (cluster mode only). */
  nodes?: { host: string; port: number }[];
}

/** What the sink's callers get for admin commands: one server, or a whole Redis Cluster. */
export type RedisClient = Redis | Cluster;

/**
 * Opens an ioredis Cluster client on the target's seed nodes (slot map loaded, every
 * command routed to the node owning its key, MOVED/ASK followed) and checks it answers.
 */
export async function openRedisCluster(target: RedisTarget, name = "replicant"): Promise<Cluster> {
  const seeds = target.nodes?.length ? target.nodes : [{ host: target.host, port: target.port }];
  const cluster = new Cluster(seeds, {
    lazyConnect: true,
    enableOfflineQueue: true,
    enableReadyCheck: true,
    maxRedirections: 16,
    retryDelayOnMoved: 0,
    // A failover: a node's connection closed (its slots refreshed), CLUSTERDOWN while no
    // master serves a slot, TRYAGAIN during a move. Each wait counts as a redirection, so
    // about 5 s of each before the caller's own retries (max-retries) take over.
    retryDelayOnFailover: 300,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 100,
    clusterRetryStrategy: (times) => (times > 10 ? null : Math.min(100 * times, 2000)),
    redisOptions: {
      username: target.username || undefined,
      password: target.password || undefined,
      tls: target.tls,
      connectionName: name,
      maxRetriesPerRequest: 1,
      reconnectOnError: () => false,
      connectTimeout: 5000,
    },
  });
  let lastError: Error | null = null;
  cluster.on("error", (err: Error) => (lastError = err));
  try {
    await cluster.connect();
    await cluster.ping();
  } catch (err) {
    cluster.disconnect();
    const seen = lastError as Error | null;
    const reason = seen ? `${(err as Error).message} (${seen.message})` : (err as Error).message;
    const where = seeds.map((s) => `${s.host}:${s.port}`).join(", ");
    const hint = /slots cache/i.test(reason)
      ? " (unreachable, or not a Redis Cluster: for a single server set `mode: standalone`)"
      : "";
    throw new SinkError(
      `Cannot connect to Redis Cluster at ${where} (${target.origin}): ${reason}${hint}`,
      undefined,
      { cause: err },
    );
  }
  return cluster;
}

/** Opens one client and fails with a message naming the target instead of retrying forever. */
export async function openRedis(target: RedisTarget, name = "replicant"): Promise<Redis> {
  const client = new Redis({
    host: target.host,
    port: target.port,
    username: target.username || undefined,
    password: target.password || undefined,
    tls: target.tls,
    connectionName: name,
    lazyConnect: true,
    // Commands fail fast on a lost connection; the pipeline decides about retries.
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
    // Authentication errors are final: do not reconnect on them.
    reconnectOnError: () => false,
    connectTimeout: 5000,
  });
  // The failing command often only says "Connection is closed"; the event has the reason.
  let lastError: Error | null = null;
  client.on("error", (err: Error) => (lastError = err));
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    client.disconnect();
    const seen = lastError as Error | null;
    const reason = seen && /closed/i.test((err as Error).message)
      ? seen.message
      : (err as Error).message;
    const hint = /WRONGPASS|NOAUTH|invalid username-password/i.test(reason)
      ? " (authentication failed: check `username` and `password` or `password-file`)"
      : /altnames|does not match certificate/i.test(reason)
      ? " (the server certificate does not name this host: connect by a name it lists, or " +
        "set ssl.hostname-verification: false)"
      : /self.signed|unable to (verify|get local issuer)|certificate has expired/i.test(reason)
      ? " (the server certificate is not trusted: set ssl.trust-store to its CA)"
      : "";
    throw new SinkError(
      `Cannot connect to Redis at ${target.host}:${target.port} (${target.origin}): ${reason}${hint}`,
      undefined,
      { cause: err },
    );
  }
  return client;
}

/**
 * The admin client of a target, as its connection file says: one server (`openRedis`), or
 * with `mode: cluster` an ioredis Cluster on the seed nodes (`openRedisCluster`). Commands on
 * single keys work the same on both; `disconnect()`/`quit()` close either.
 */
export function openRedisAdmin(target: RedisTarget, name = "replicant"): Promise<RedisClient> {
  return target.mode === "cluster" ? openRedisCluster(target, name) : openRedis(target, name);
}

/** Polls `CLIENT LIST ID` until Redis no longer lists the connection `id`. */
export async function untilDropped(
  client: { call(...args: string[]): Promise<unknown> },
  id: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted) return false;
    try {
      const list = await client.call("CLIENT", "LIST", "ID", String(id)) as string;
      if (list.trim() === "") return true;
    } catch {
      return false;
    }
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}
