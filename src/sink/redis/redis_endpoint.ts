/**
 * Everything about reaching a Redis server of a target, for both connection stacks of the
 * sink: the ioredis clients (admin commands, reads, a Cluster's slot map) and RespPipeline
 * (the raw XADD hot path). The socket and TLS options, the credentials, the connection name,
 * the connect timeout and the reconnect backoff are made here once, and one function turns a
 * failed connect into the SinkError with its hint, so the same fault reads the same whichever
 * stack met it.
 */
import net from "node:net";
import tls from "node:tls";
import type { ClusterOptions, RedisOptions } from "ioredis";
import { SinkError } from "../../core/errors.ts";
import { tlsErrorHint } from "../../core/tls_error_hint.ts";

export interface RedisTarget {
  host: string;
  port: number;
  username?: string;
  password?: string;
  /** Connections in the pool; each table writer uses one at a time. */
  poolSize: number;
  /** Node TLS options of the connection file's `ssl` section; undefined without TLS. */
  tls?: tls.ConnectionOptions;
  /** Name shown in errors, usually the connection file. */
  origin: string;
  /** `cluster`: a Redis Cluster reached through the seed `nodes`; default standalone. */
  mode?: "standalone" | "cluster";
  /** Cluster seed nodes (cluster mode only). */
  nodes?: { host: string; port: number }[];
}

/** One server as a connection reaches it: a standalone target, or one node of a Cluster. */
export interface RedisEndpoint {
  host: string;
  port: number;
  username?: string;
  password?: string;
  /** TLS options; when given the connection uses TLS. */
  tls?: tls.ConnectionOptions;
  /** Name shown in errors, usually the connection file. */
  origin: string;
  /** CLIENT SETNAME value; default `replicant-writer`. */
  name?: string;
  /** Give up connecting (TCP, TLS and AUTH) after this long; default CONNECT_TIMEOUT_MS. */
  connectTimeoutMs?: number;
}

/** How long a connect (TCP, TLS and AUTH) may take before it fails, on either stack. */
export const CONNECT_TIMEOUT_MS = 5000;

/** The endpoint of a target's server, or with `node` of that node of its Cluster. */
export function endpointOf(
  target: RedisTarget,
  name: string,
  node?: { host: string; port: number },
): RedisEndpoint {
  return {
    host: node?.host ?? target.host,
    port: node?.port ?? target.port,
    username: target.username || undefined,
    password: target.password || undefined,
    tls: target.tls,
    origin: target.origin,
    name,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
  };
}

/** The Cluster's seed nodes: `nodes`, else the target's host and port. */
export function seedsOf(target: RedisTarget): { host: string; port: number }[] {
  return target.nodes?.length ? target.nodes : [{ host: target.host, port: target.port }];
}

/**
 * The TLS options of a connection to `endpoint` (undefined without TLS): SNI names the host
 * unless it is an address (SNI takes names only) or the options name one already (a Cluster's
 * nodes are checked against the seed's name).
 */
export function tlsOf(endpoint: RedisEndpoint): tls.ConnectionOptions | undefined {
  if (!endpoint.tls) return undefined;
  return { servername: net.isIP(endpoint.host) ? undefined : endpoint.host, ...endpoint.tls };
}

/** Opens the raw socket of a connection to `endpoint`: TCP, or TLS with `tlsOf`'s options. */
export function connectSocket(endpoint: RedisEndpoint): net.Socket {
  const { host, port } = endpoint;
  const secure = tlsOf(endpoint);
  return secure ? tls.connect({ ...secure, host, port }) : net.connect({ host, port });
}

/**
 * The commands that open a raw connection, sent together: AUTH with the credentials (a user
 * name only with a password, as ioredis does), then CLIENT SETNAME.
 */
export function handshakeOf(endpoint: RedisEndpoint): string[][] {
  const steps: string[][] = [];
  if (endpoint.password) {
    steps.push(
      endpoint.username
        ? ["AUTH", endpoint.username, endpoint.password]
        : ["AUTH", endpoint.password],
    );
  }
  steps.push(["CLIENT", "SETNAME", endpoint.name ?? "replicant-writer"]);
  return steps;
}

/**
 * Reconnect backoff of a standalone ioredis client: it keeps reconnecting while its commands
 * fail fast, and the caller's retries (max-retries) decide when to give up. Raw writers do
 * not reconnect by themselves: the next batch opens a new connection, paced by those retries.
 */
export function reconnectDelayMs(times: number): number {
  return Math.min(50 * 2 ** times, 2000);
}

/**
 * Reconnect backoff of a Cluster client once every node is lost: about 5 s of tries, then it
 * gives up and its commands fail (a failover within that keeps the client).
 */
export function clusterReconnectDelayMs(times: number): number | null {
  return times > 10 ? null : Math.min(100 * times, 2000);
}

/**
 * What every ioredis connection to the target shares: credentials, TLS, name, connect
 * timeout; commands fail fast on a lost connection (the pipeline decides about retries) and
 * an error reply (a rejected AUTH) is final, no reconnect.
 */
function clientOptions(endpoint: RedisEndpoint): RedisOptions {
  return {
    username: endpoint.username,
    password: endpoint.password,
    connectionName: endpoint.name,
    connectTimeout: endpoint.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    reconnectOnError: () => false,
  };
}

/** ioredis options of a standalone client of `endpoint` (connected by its `connect()`). */
export function redisOptionsOf(endpoint: RedisEndpoint): RedisOptions {
  return {
    ...clientOptions(endpoint),
    host: endpoint.host,
    port: endpoint.port,
    tls: tlsOf(endpoint),
    lazyConnect: true,
    enableOfflineQueue: true,
    retryStrategy: reconnectDelayMs,
  };
}

/**
 * ioredis Cluster options of a target: every node connection with the endpoint's settings
 * (its TLS options as the connection file gives them, for every node), MOVED/ASK followed.
 */
export function clusterOptionsOf(target: RedisTarget, name: string): ClusterOptions {
  const endpoint = endpointOf(target, name);
  return {
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
    clusterRetryStrategy: clusterReconnectDelayMs,
    redisOptions: { ...clientOptions(endpoint), tls: endpoint.tls },
  };
}

/** "Redis at host:port" of one server, "Redis Cluster at a:1, b:2" of a Cluster's seeds. */
export function whereOf(endpoint: { host: string; port: number }): string;
export function whereOf(seeds: { host: string; port: number }[]): string;
export function whereOf(
  at: { host: string; port: number } | { host: string; port: number }[],
): string {
  return Array.isArray(at)
    ? `Redis Cluster at ${at.map((s) => `${s.host}:${s.port}`).join(", ")}`
    : `Redis at ${at.host}:${at.port}`;
}

/** Error messages that say only that the connection went, with the reason elsewhere. */
const ONLY_CLOSED = /^(Connection is closed\.?|Redis connection to .* (lost|is closed))$/i;
/** A Cluster client's failure that says no node answered, each node's reason elsewhere. */
const ALL_NODES_FAILED = /slots cache|ClusterAllFailed|None of startup nodes/i;

/** Whether an error says no more than that the connection closed or no node answered. */
export function isVague(err: Error): boolean {
  return ONLY_CLOSED.test(err.message) || ALL_NODES_FAILED.test(err.message);
}

/**
 * What to change for a failed connect, from its reason (the error and what the connection's
 * error event saw): wrong credentials, the TLS certificate, the address, or a single server
 * where a Cluster was expected. Empty when there is nothing more to say than the reason.
 */
export function connectHint(reason: string, code?: string): string {
  if (/WRONGPASS|NOAUTH|invalid username-password|AUTH failed/i.test(reason)) {
    return "authentication failed: check `username` and `password` or `password-file`";
  }
  const tlsHint = tlsErrorHint(reason);
  if (tlsHint) return tlsHint;
  if (code === "ECONNREFUSED" || /ECONNREFUSED/.test(reason)) {
    return "connection refused: is the server running, and are `host` and `port` right?";
  }
  if (code === "ENOTFOUND" || /ENOTFOUND/.test(reason)) return "unknown host: check `host`";
  if (code === "ETIMEDOUT" || /ETIMEDOUT/.test(reason)) {
    return "connection timed out: check `host`, `port` and firewalls";
  }
  if (/cluster support disabled/i.test(reason)) {
    return "not a Redis Cluster: for a single server set `mode: standalone`";
  }
  if (ALL_NODES_FAILED.test(reason)) {
    return "unreachable, or not a Redis Cluster: for a single server set `mode: standalone`";
  }
  return "";
}

/**
 * The SinkError of a failed connect, the same on every path: `Cannot connect to <where>
 * (<origin>): <reason> (<hint>)`. `seen` is what the connection's error events reported, in
 * order: when the failing call says only that the connection closed, or that no Cluster node
 * answered, the last of them that says more is the reason. The error keeps the socket's
 * `code` (ECONNREFUSED, ETIMEDOUT …), which makes it retriable for the sink's error classes,
 * and the cause.
 */
export function connectError(
  where: string,
  origin: string,
  err: unknown,
  seen: Error[] = [],
): SinkError {
  const failed = err as Error & { code?: string };
  const message = failed?.message ?? String(err);
  const telling = seen.findLast((e) => !isVague(e)) ?? seen.at(-1);
  const reason = !telling || telling.message === message || !isVague(failed)
    ? message
    : ONLY_CLOSED.test(message)
    ? telling.message
    : `${message} (${telling.message})`;
  const code = failed?.code ?? (telling as { code?: string } | undefined)?.code;
  const hint = connectHint(reason, code);
  const error = new SinkError(
    `Cannot connect to ${where} (${origin}): ${reason}${hint ? ` (${hint})` : ""}`,
    undefined,
    { cause: err },
  );
  if (code) Object.assign(error, { code });
  return error;
}
