import { Redis, type RedisOptions } from "ioredis";
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
      ? " (check username/password)"
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
