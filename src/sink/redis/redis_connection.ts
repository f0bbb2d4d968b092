import { Cluster, Redis } from "ioredis";
import {
  clusterOptionsOf,
  connectError,
  endpointOf,
  isVague,
  redisOptionsOf,
  type RedisTarget,
  seedsOf,
  whereOf,
} from "./redis_endpoint.ts";
import { RespPipeline } from "./resp_pipeline.ts";

/** What the sink's callers get for admin commands: one server, or a whole Redis Cluster. */
export type RedisClient = Redis | Cluster;

/**
 * Connects a new client and checks it answers; on failure it is dropped (no retrying
 * forever) and the error is the endpoint's connect error naming `where`. When nothing the
 * client saw says why, `probe` (a raw connection's handshake) is asked.
 */
async function connected<C extends RedisClient>(
  client: C,
  where: string,
  origin: string,
  probe?: () => Promise<RespPipeline>,
): Promise<C> {
  // The failing command often only says "Connection is closed"; the events have the reason
  // (a Cluster client's "node error" each node's: a rejected AUTH, a certificate).
  const seen: Error[] = [];
  client.on("error", (err: Error) => seen.push(err));
  client.on("node error", (err: Error) => seen.push(err));
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    client.disconnect();
    if (probe && [err as Error, ...seen].every(isVague)) {
      const refused = await probe().then((c) => c.close().then(() => null), (e: Error) => e);
      if (refused) seen.push((refused.cause as Error | undefined) ?? refused);
    }
    throw connectError(where, origin, err, seen);
  }
  return client;
}

/**
 * Opens an ioredis Cluster client on the target's seed nodes (slot map loaded, every
 * command routed to the node owning its key, MOVED/ASK followed) and checks it answers.
 */
export function openRedisCluster(target: RedisTarget, name = "replicant"): Promise<Cluster> {
  const seeds = seedsOf(target);
  const cluster = new Cluster(seeds, clusterOptionsOf(target, name));
  // ioredis loads the slot map over connections of its own and reports only "Connection is
  // closed" when they fail (a certificate, say): the raw handshake with the first seed tells.
  return connected(
    cluster,
    whereOf(seeds),
    target.origin,
    () => RespPipeline.open(endpointOf(target, name, seeds[0])),
  );
}

/** Opens one client and fails with a message naming the target instead of retrying forever. */
export function openRedis(target: RedisTarget, name = "replicant"): Promise<Redis> {
  const endpoint = endpointOf(target, name);
  return connected(new Redis(redisOptionsOf(endpoint)), whereOf(endpoint), target.origin);
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
