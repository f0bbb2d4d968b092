import type { Redis } from "ioredis";
import { openRedis, type RedisTarget } from "./redis_connection.ts";
import { RespPipeline } from "./resp_pipeline.ts";

/** Outcome of one pipelined batch: per entry either the id Redis gave it or the error. */
export interface BatchResult {
  ids: (string | null)[];
  errors: (Error | null)[];
  failed: number;
}

export interface AppendOptions {
  /** Approximate MAXLEN (`MAXLEN ~ n`); 0 = unlimited. */
  maxStreamLength: number;
}

/**
 * Writes entries to Redis Streams through a pool of connections with pipelined XADD.
 * Knows nothing of SQL: it receives stream names and field/value lists.
 */
export class RedisStreamSink {
  readonly #pool: Redis[];
  #next = 0;
  /** Hot-path writers (raw RESP, one write per batch), opened on first use, reopened after loss. */
  readonly #writers: (Promise<RespPipeline> | null)[];
  /** Redis's CLIENT ID of each writer's connection (null when unknown). */
  readonly #writerIds: (number | null)[];
  #nextWriter = 0;

  private constructor(
    pool: Redis[],
    private readonly target: RedisTarget,
    readonly options: AppendOptions,
  ) {
    this.#pool = pool;
    this.#writers = new Array(Math.max(1, target.poolSize)).fill(null);
    this.#writerIds = new Array(this.#writers.length).fill(null);
  }

  static async open(target: RedisTarget, options: AppendOptions): Promise<RedisStreamSink> {
    const pool = await Promise.all(
      Array.from(
        { length: Math.max(1, Math.min(target.poolSize, 4)) },
        (_, i) => openRedis(target, `replicant-${i}`),
      ),
    );
    return new RedisStreamSink(pool, target, options);
  }

  /** A writer slot for one table writer; its batches stay in order on one connection. */
  writerSlot(): number {
    return this.#nextWriter++ % this.#writers.length;
  }

  /**
   * The slot's connection. Concurrent callers share one opening, so all batches of a slot
   * go through one connection in the order they were sent.
   */
  async #writer(slot: number): Promise<RespPipeline> {
    const current = this.#writers[slot];
    if (current) {
      const writer = await current.catch(() => null);
      if (writer?.connected) return writer;
      if (this.#writers[slot] !== current) return await this.#writer(slot);
    }
    const opening = RespPipeline.open({
      host: this.target.host,
      port: this.target.port,
      username: this.target.username || undefined,
      password: this.target.password || undefined,
      tls: this.target.tls,
      origin: this.target.origin,
      name: `replicant-writer-${slot}`,
    }).then(async (writer) => {
      this.#writerIds[slot] = null;
      try {
        this.#writerIds[slot] = Number(await writer.command("CLIENT", "ID"));
      } catch {
        // CLIENT denied by ACL: a lost batch is then looked at without waiting (settleLost).
      }
      return writer;
    });
    this.#writers[slot] = opening;
    return await opening;
  }

  /**
   * XADD a batch through the slot's raw RESP connection: one write for the whole batch and
   * every reply checked on its own. A lost connection rejects (retriable); the next call
   * reconnects.
   */
  async appendVia(slot: number, stream: string, entries: string[][]): Promise<BatchResult> {
    const writer = await this.#writer(slot);
    const clientId = this.#writerIds[slot];
    let replies: (string | Error)[];
    try {
      replies = await writer.xaddBatch(stream, entries, this.options.maxStreamLength);
    } catch (err) {
      if (err && typeof err === "object") Object.assign(err, { lostClientId: clientId });
      throw err;
    }
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

  /**
   * After `appendVia` rejected (connection lost): waits, up to `timeoutMs`, until Redis has
   * dropped that connection, so every command it had received has run before the caller
   * looks at what landed (undo). False when it could not tell.
   */
  async settleLost(err: unknown, timeoutMs = 5000): Promise<boolean> {
    const id = (err as { lostClientId?: number | null } | null)?.lostClientId;
    if (typeof id !== "number" || !Number.isFinite(id)) return false;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const list = await this.client.call("CLIENT", "LIST", "ID", String(id)) as string;
        if (list.trim() === "") return true;
      } catch {
        return false;
      }
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** A connection for one writer; writers keep theirs so a stream's batches stay ordered. */
  lease(): Redis {
    const c = this.#pool[this.#next % this.#pool.length];
    this.#next++;
    return c;
  }

  get client(): Redis {
    return this.#pool[0];
  }

  /** XADD every entry in one pipeline and checks every reply on its own. */
  async append(client: Redis, stream: string, entries: string[][]): Promise<BatchResult> {
    const pipe = client.pipeline();
    const max = this.options.maxStreamLength;
    for (const fields of entries) {
      if (max > 0) pipe.xadd(stream, "MAXLEN", "~", max, "*", ...fields);
      else pipe.xadd(stream, "*", ...fields);
    }
    const replies = (await pipe.exec()) as [Error | null, unknown][] | null;
    const ids: (string | null)[] = new Array(entries.length).fill(null);
    const errors: (Error | null)[] = new Array(entries.length).fill(null);
    let failed = 0;
    for (let i = 0; i < entries.length; i++) {
      const reply = replies?.[i];
      if (!reply) {
        errors[i] = new Error("no reply from Redis");
        failed++;
      } else if (reply[0]) {
        errors[i] = reply[0];
        failed++;
      } else ids[i] = reply[1] as string;
    }
    return { ids, errors, failed };
  }

  /** Streams (or other keys) among `names` that exist now. */
  async existing(names: string[]): Promise<string[]> {
    const found: string[] = [];
    const client = this.client;
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
    if (names.length > 0) await this.client.del(...names);
  }

  /** Empties streams but keeps them (and their consumer groups). */
  async truncateStreams(names: string[]): Promise<void> {
    for (const n of names) await this.client.xtrim(n, "MAXLEN", 0);
  }

  async streamLength(name: string): Promise<number> {
    return await this.client.xlen(name);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.#writers.map((w) => w?.then((c) => c.close()).catch(() => {})),
    );
    await Promise.all(this.#pool.map((c) => c.quit().catch(() => c.disconnect())));
  }
}
