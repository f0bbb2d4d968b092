import type { Redis } from "ioredis";
import type { EntryField } from "../../core/entry_field.ts";
import type {
  BatchResult,
  SinkErrorClass,
  StreamLane,
  StreamReads,
  StreamSink,
  StreamTail,
  TailFormat,
} from "../../ports/stream_sink.ts";
import { ClusterWriter } from "./cluster_writer.ts";
import { openRedis, openRedisCluster, type RedisClient, untilDropped } from "./redis_connection.ts";
import { endpointOf, type RedisTarget } from "./redis_endpoint.ts";
import { RedisConnectionError } from "./resp_pipeline.ts";
import { clientIdOf, WriterConnections } from "./writer_connections.ts";
import { MemoryGate } from "./memory_gate.ts";
import { StreamTailGuard } from "./stream_tail_guard.ts";
import { classifyRedisError } from "./redis_error_class.ts";
import { readStreamTail } from "./stream_tails.ts";
import { type AppendOptions, sendBatch, waitForReplicas } from "./xadd_batch.ts";
import { ReplicaWaitError } from "../../core/errors.ts";

export type { AppendOptions } from "./xadd_batch.ts";
export type { BatchResult } from "../../ports/stream_sink.ts";

/**
 * Writes entries to Redis Streams through a pool of connections with pipelined XADD.
 * Knows nothing of SQL: it receives stream names and field/value lists.
 */
export class RedisStreamSink<C extends RedisClient = Redis> implements StreamSink {
  readonly #pool: C[];
  /** Cluster mode: the XADD writers routed by hash slot (null on a standalone target). */
  readonly #cluster: ClusterWriter | null;
  #next = 0;
  /** Hot-path writers (raw RESP, one write per batch) by writer slot (standalone target). */
  readonly #writers: WriterConnections<number>;
  readonly #writerSlots: number;
  #nextWriter = 0;
  /** Writers call `memory.wait()` before each batch (applier `pause-above-memory-percent`). */
  readonly memory: MemoryGate;
  /** What writers need kept at the end of their streams while retention trims them. */
  readonly tailGuard = new StreamTailGuard();

  private constructor(
    pool: C[],
    private readonly target: RedisTarget,
    readonly options: AppendOptions,
    cluster: ClusterWriter | null = null,
  ) {
    this.#pool = pool;
    this.#cluster = cluster;
    this.#writerSlots = Math.max(1, target.poolSize);
    this.#writers = new WriterConnections((slot) => endpointOf(target, `replicant-writer-${slot}`));
    this.memory = new MemoryGate(options.pauseAboveMemoryPercent, async () => {
      const admin = pool[0] as RedisClient;
      const servers = "nodes" in admin ? admin.nodes("master") : [admin];
      return await Promise.all(servers.map((s) => s.info("memory")));
    });
  }

  /**
   * Opens the sink; with `mode: cluster` its `client` is an ioredis Cluster (so callers that
   * take any target use `RedisStreamSink<RedisClient>`) and batches go to each slot's owner.
   */
  static open(
    target: RedisTarget & { mode?: "standalone" },
    options: AppendOptions,
  ): Promise<RedisStreamSink<Redis>>;
  static open(target: RedisTarget, options: AppendOptions): Promise<RedisStreamSink<RedisClient>>;
  static async open(
    target: RedisTarget,
    options: AppendOptions,
  ): Promise<RedisStreamSink<RedisClient>> {
    if (target.mode === "cluster") {
      // One Cluster client (it keeps a connection per node) for admin commands and tails.
      // Its slot map (loaded before it is ready) routes the raw writers too.
      const cluster = await openRedisCluster(target, "replicant-0");
      const writer = new ClusterWriter(cluster, target, options);
      return new RedisStreamSink<RedisClient>([cluster], target, options, writer);
    }
    const pool = await Promise.all(
      Array.from(
        { length: Math.max(1, Math.min(target.poolSize, 4)) },
        (_, i) => openRedis(target, `replicant-${i}`),
      ),
    );
    return new RedisStreamSink<RedisClient>(pool, target, options);
  }

  /** A writer slot for one table writer; its batches stay in order on one connection. */
  writerSlot(): number {
    return this.#nextWriter++ % this.#writerSlots;
  }

  /** Before a batch: waits while Redis memory is above `pause-above-memory-percent`. */
  awaitMemory(
    signal: AbortSignal | undefined,
    log: { info(message: string): void; warn(message: string): void },
  ): Promise<void> {
    return this.memory.wait(
      signal,
      (percent) =>
        log.warn(
          `Redis uses ${
            percent.toFixed(0)
          }% of its maxmemory (applier pause-above-memory-percent: ${this.options.pauseAboveMemoryPercent}): writes paused until it falls`,
        ),
      (ms) =>
        log.info(
          `Redis memory is below the mark: writes resumed after ${(ms / 1000).toFixed(1)} s`,
        ),
    );
  }

  /**
   * XADD a batch through the slot's raw RESP connection: one write for the whole batch and
   * every reply checked on its own. A lost connection rejects (retriable); the next call
   * reconnects. With `ids` false, the id of each entry that landed is `""`.
   */
  async appendVia(
    slot: number,
    stream: string,
    entries: EntryField[][],
    ids = true,
  ): Promise<BatchResult> {
    if (this.#cluster) return resultOf(await this.#cluster.append(slot, stream, entries, ids));
    const writer = await this.#writers.get(slot);
    let replies: (string | Error)[];
    try {
      replies = await sendBatch(writer, stream, entries, this.options, this.#where, false, ids);
    } catch (err) {
      if (err instanceof RedisConnectionError) {
        Object.assign(err, { lostClientId: clientIdOf(writer) });
      }
      throw err;
    }
    return resultOf(replies);
  }

  /**
   * With `wait-for-replicas`: WAIT on the slot's connection for the writes it sent (after a
   * ReplicaWaitError, once the entries are known to have landed). Rejects like `appendVia`.
   */
  async waitForReplicas(slot: number, stream: string): Promise<void> {
    if (this.#cluster) return await this.#cluster.waitForReplicas(slot, stream);
    await waitForReplicas(await this.#writers.get(slot), stream, this.options, this.#where);
  }

  /**
   * After `appendVia` rejected (connection lost): waits, up to `timeoutMs` or until `signal`
   * aborts, until Redis has dropped that connection, so every command it had received has
   * run before the caller looks at what landed (undo). False when it could not tell.
   */
  async settleLost(err: unknown, timeoutMs = 5000, signal?: AbortSignal): Promise<boolean> {
    if (this.#cluster) return await this.#cluster.settleLost(err, timeoutMs, signal);
    const id = (err as { lostClientId?: number | null } | null)?.lostClientId;
    if (typeof id !== "number" || !Number.isFinite(id)) return false;
    return await untilDropped(this.client, id, timeoutMs, signal);
  }

  /** A connection for one writer; writers keep theirs so a stream's batches stay ordered. */
  lease(): C {
    const c = this.#pool[this.#next % this.#pool.length];
    this.#next++;
    return c;
  }

  /** The server, in messages. */
  get #where(): string {
    return `${this.target.host}:${this.target.port}`;
  }

  get client(): C {
    return this.#pool[0];
  }

  /** Streams (or other keys) among `names` that exist now. */
  async existing(names: string[]): Promise<string[]> {
    const found: string[] = [];
    const client = this.client;
    if (this.#cluster) {
      // A pipeline of a Cluster must stay in one slot: one EXISTS per key instead.
      for (let i = 0; i < names.length; i += 500) {
        const part = names.slice(i, i + 500);
        const counts = await Promise.all(part.map((n) => client.exists(n)));
        counts.forEach((n, j) => n > 0 && found.push(part[j]));
      }
      return found;
    }
    for (let i = 0; i < names.length; i += 500) {
      const part = names.slice(i, i + 500);
      const pipe = client.pipeline();
      for (const n of part) pipe.exists(n);
      const replies = (await pipe.exec()) as [Error | null, number][];
      replies.forEach(([err, n], j) => {
        if (err) throw err;
        if (n > 0) found.push(part[j]);
      });
    }
    return found;
  }

  async deleteKeys(names: string[]): Promise<void> {
    if (names.length === 0) return;
    // On a Cluster a multi-key DEL must stay in one slot: one DEL per key instead.
    if (this.#cluster) await Promise.all(names.map((n) => this.client.del(n)));
    else await this.client.del(...names);
  }

  /** Empties streams but keeps them (and their consumer groups). */
  async truncateStreams(names: string[]): Promise<void> {
    for (const n of names) await this.client.xtrim(n, "MAXLEN", 0);
  }

  /** A writer's own connection and raw RESP writer, kept for all its batches. */
  lane(): StreamLane {
    return new RedisStreamLane(this, this.lease(), this.writerSlot());
  }

  /** Reads on the first connection of the pool (writers read on their lane's). */
  get #reads(): StreamReads {
    return new RedisStreamReads(this.client);
  }
  readTail(stream: string, how: TailFormat, scan?: number): Promise<StreamTail> {
    return this.#reads.readTail(stream, how, scan);
  }
  newest(stream: string, count: number): Promise<[string, string[]][]> {
    return this.#reads.newest(stream, count);
  }
  length(stream: string): Promise<number> {
    return this.#reads.length(stream);
  }
  drop(stream: string): Promise<void> {
    return this.#reads.drop(stream);
  }

  memoryPressure(): void {
    this.memory.pressure();
  }

  classifyError(err: unknown): SinkErrorClass {
    return classifyRedisError(err);
  }

  isReplicaWait(err: unknown): boolean {
    return err instanceof ReplicaWaitError;
  }

  async close(): Promise<void> {
    await this.#cluster?.close();
    await this.#writers.close();
    // A client that lost its server would wait for a reconnection to send QUIT: drop it.
    await Promise.all(
      this.#pool.map((c) =>
        c.status === "ready" ? c.quit().catch(() => c.disconnect()) : c.disconnect()
      ),
    );
  }
}

function resultOf(replies: (string | Error)[]): BatchResult {
  const ids: (string | null)[] = new Array(replies.length);
  const errors: (Error | null)[] = new Array(replies.length);
  let failed = 0;
  for (let i = 0; i < replies.length; i++) {
    const r = replies[i];
    if (typeof r === "string") {
      ids[i] = r;
      errors[i] = null;
    } else {
      ids[i] = null;
      errors[i] = r;
      failed++;
    }
  }
  return { ids, errors, failed };
}

/** Stream reads on one connection. */
class RedisStreamReads implements StreamReads {
  constructor(protected readonly client: RedisClient) {}

  readTail(stream: string, how: TailFormat, scan?: number): Promise<StreamTail> {
    return readStreamTail(this.client, stream, how.format, how.tombstones, how.sortKeyOf, scan);
  }

  async newest(stream: string, count: number): Promise<[string, string[]][]> {
    return await this.client.xrevrange(stream, "+", "-", "COUNT", count) as [string, string[]][];
  }

  async length(stream: string): Promise<number> {
    return await this.client.xlen(stream);
  }

  async drop(stream: string): Promise<void> {
    await this.client.del(stream);
  }
}

/**
 * One writer's lane: reads and undo on the connection it leased, batches on its raw RESP
 * writer (`slot`), so a stream's batches stay in order.
 */
class RedisStreamLane extends RedisStreamReads implements StreamLane {
  constructor(
    private readonly sink: RedisStreamSink<RedisClient>,
    client: RedisClient,
    private readonly slot: number,
  ) {
    super(client);
  }

  append(stream: string, entries: EntryField[][], ids = true): Promise<BatchResult> {
    return this.sink.appendVia(this.slot, stream, entries, ids);
  }

  async appendOne(stream: string, fields: string[]): Promise<string> {
    return (await this.client.xadd(stream, "*", ...fields))!;
  }

  waitForReplicas(stream: string): Promise<void> {
    return this.sink.waitForReplicas(this.slot, stream);
  }

  async landedAfter(stream: string, afterId: string | null, count: number): Promise<string[]> {
    const found = await this.client.xrange(
      stream,
      afterId === null ? "-" : `(${afterId}`,
      "+",
      "COUNT",
      count,
    ) as [string, string[]][];
    return found.map(([id]) => id);
  }

  async remove(stream: string, ids: string[]): Promise<void> {
    await this.client.xdel(stream, ...ids);
  }
}
