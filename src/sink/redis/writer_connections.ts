import type { RedisEndpoint } from "./redis_endpoint.ts";
import { RespPipeline } from "./resp_pipeline.ts";

/** Redis's CLIENT ID of each open writer connection (null when CLIENT is denied). */
const clientIds = new WeakMap<RespPipeline, number | null>();

/** The CLIENT ID of a writer connection, for waiting until Redis has dropped it once lost. */
export function clientIdOf(conn: RespPipeline): number | null {
  return clientIds.get(conn) ?? null;
}

/**
 * The raw RESP writer connections of a sink by key (a writer slot; in a Cluster a writer slot
 * and a node), each opened on first use with the endpoint `endpointFor` gives, and opened
 * again after its loss. Concurrent callers share one opening, so all batches of a key go
 * through one connection in the order they were sent.
 */
export class WriterConnections<K> {
  readonly #conns = new Map<K, Promise<RespPipeline>>();

  constructor(private readonly endpointFor: (key: K) => RedisEndpoint) {}

  async get(key: K): Promise<RespPipeline> {
    const current = this.#conns.get(key);
    if (current) {
      const conn = await current.catch(() => null);
      if (conn?.connected) return conn;
      if (this.#conns.get(key) !== current) return await this.get(key);
    }
    const opening = RespPipeline.open(this.endpointFor(key)).then(async (conn) => {
      clientIds.set(conn, null);
      try {
        clientIds.set(conn, Number(await conn.command("CLIENT", "ID")));
      } catch {
        // CLIENT denied by ACL: a lost batch is then looked at without waiting (settleLost).
      }
      return conn;
    });
    this.#conns.set(key, opening);
    return await opening;
  }

  /** Closes every connection (QUIT after what is in flight). */
  async close(): Promise<void> {
    await Promise.all(
      [...this.#conns.values()].map((c) => c.then((w) => w.close()).catch(() => {})),
    );
  }
}
