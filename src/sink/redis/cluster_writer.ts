import type { Cluster } from "ioredis";
import type { EntryField } from "../../core/entry_field.ts";
import { keySlot, SLOT_COUNT } from "./key_slot.ts";
import { type RedisTarget, untilDropped } from "./redis_connection.ts";
import { RedisConnectionError, RespPipeline } from "./resp_pipeline.ts";
import { type AppendOptions, sendBatch, waitForReplicas } from "./xadd_batch.ts";

/** Redirection hops followed for one batch before its entries are reported as failed. */
const MAX_HOPS = 16;

const REDIRECT = /^(MOVED|ASK) (\d+) (\S+)$/;

interface Redirect {
  kind: "MOVED" | "ASK";
  slot: number;
  node: string;
}

function redirectOf(reply: string | Error): Redirect | null {
  if (typeof reply === "string") return null;
  const m = REDIRECT.exec(reply.message);
  return m ? { kind: m[1] as "MOVED" | "ASK", slot: Number(m[2]), node: m[3] } : null;
}

function splitNode(node: string): { host: string; port: number } {
  const at = node.lastIndexOf(":");
  return { host: node.slice(0, at), port: Number(node.slice(at + 1)) };
}

/**
 * The raw RESP XADD writers of a Redis Cluster target: per writer slot one RespPipeline per
 * node, a batch sent to the node owning its stream's hash slot. MOVED updates the slot map
 * (and reloads it) and re-sends the redirected entries to the new owner; ASK re-sends them
 * there, each after ASKING. A stream's batches are written one after the other (each waits
 * for the previous one and its re-sends), so its entries keep their order across a move.
 */
export class ClusterWriter {
  /** "host:port" of the master owning each slot (undefined until known). */
  readonly #owners: (string | undefined)[] = new Array(SLOT_COUNT);
  #loading: Promise<void> | null = null;
  #loaded = false;
  /** Connections by `writerSlot|host:port`, opened on first use, reopened after loss. */
  readonly #conns = new Map<string, Promise<RespPipeline>>();
  readonly #ids = new Map<string, number | null>();
  /** Last batch of each stream (its order across redirections). */
  readonly #chains = new Map<string, Promise<unknown>>();

  constructor(
    private readonly cluster: Cluster,
    private readonly target: RedisTarget,
    private readonly options: AppendOptions,
  ) {}

  /** Reloads the slot map from CLUSTER SLOTS (concurrent callers share one load). */
  refreshSlots(): Promise<void> {
    if (this.#loading) return this.#loading;
    this.#loading = (async () => {
      const ranges = await this.cluster.call("CLUSTER", "SLOTS") as [
        number,
        number,
        [string, number, ...unknown[]],
        ...unknown[],
      ][];
      for (const [start, end, master] of ranges) {
        const host = master[0] || this.target.host;
        for (let s = start; s <= end; s++) this.#owners[s] = `${host}:${master[1]}`;
      }
      this.#loaded = true;
    })().finally(() => (this.#loading = null));
    return this.#loading;
  }

  async #ownerOf(slot: number): Promise<string> {
    if (!this.#loaded || this.#owners[slot] === undefined) await this.refreshSlots();
    const owner = this.#owners[slot];
    if (owner === undefined) throw new Error(`Redis Cluster: no node serves hash slot ${slot}`);
    return owner;
  }

  async #conn(writer: number, node: string): Promise<RespPipeline> {
    const key = `${writer}|${node}`;
    const current = this.#conns.get(key);
    if (current) {
      const conn = await current.catch(() => null);
      if (conn?.connected) return conn;
      if (this.#conns.get(key) !== current) return await this.#conn(writer, node);
    }
    const { host, port } = splitNode(node);
    const opening = RespPipeline.open({
      host,
      port,
      username: this.target.username || undefined,
      password: this.target.password || undefined,
      tls: this.target.tls,
      origin: this.target.origin,
      name: `replicant-writer-${writer}`,
    }).then(async (conn) => {
      this.#ids.set(key, null);
      try {
        this.#ids.set(key, Number(await conn.command("CLIENT", "ID")));
      } catch {
        // CLIENT denied by ACL: a lost batch is then looked at without waiting.
      }
      return conn;
    });
    this.#conns.set(key, opening);
    return await opening;
  }

  /**
   * Sends through `node`; a lost connection rejects with the node and its client id. When the
   * node cannot be reached or its connection is lost, the slot map is loaded again, so the
   * next try goes to the replica promoted in its place (a master that died gives no MOVED).
   */
  async #send(
    writer: number,
    node: string,
    stream: string,
    entries: EntryField[][],
    asking: boolean,
    ids: boolean,
  ): Promise<(string | Error)[]> {
    let conn: RespPipeline;
    try {
      conn = await this.#conn(writer, node);
    } catch (err) {
      this.refreshSlots().catch(() => {});
      throw err;
    }
    try {
      return await sendBatch(conn, stream, entries, this.options, node, asking, ids);
    } catch (err) {
      if (err instanceof RedisConnectionError) {
        this.refreshSlots().catch(() => {});
        Object.assign(err, { lostClientId: this.#ids.get(`${writer}|${node}`), lostNode: node });
      }
      throw err;
    }
  }

  /** `WAIT` on the writer's connection to the stream's master (see RedisStreamSink). */
  async waitForReplicas(writer: number, stream: string): Promise<void> {
    const node = await this.#ownerOf(keySlot(stream));
    await waitForReplicas(await this.#conn(writer, node), stream, this.options, node);
  }

  /**
   * XADDs a batch to the node owning the stream; one reply per entry (id, `""` without
   * `ids`, or Error).
   */
  append(
    writer: number,
    stream: string,
    entries: EntryField[][],
    ids = true,
  ): Promise<(string | Error)[]> {
    const previous = this.#chains.get(stream);
    const run = (previous ?? Promise.resolve()).then(() =>
      this.#append(writer, stream, entries, ids)
    );
    const settled = run.catch(() => {});
    this.#chains.set(stream, settled);
    settled.then(() => {
      if (this.#chains.get(stream) === settled) this.#chains.delete(stream);
    });
    return run;
  }

  async #append(writer: number, stream: string, entries: EntryField[][], ids: boolean) {
    const slot = keySlot(stream);
    let node = await this.#ownerOf(slot);
    const replies = await this.#send(writer, node, stream, entries, false, ids);
    let asking = false;
    for (let hop = 0; hop < MAX_HOPS; hop++) {
      const redirected: number[] = [];
      let to: Redirect | null = null;
      replies.forEach((r, i) => {
        const redirect = redirectOf(r);
        if (redirect) {
          redirected.push(i);
          to ??= redirect;
        }
      });
      if (to === null) break;
      const { kind, node: target } = to as Redirect;
      if (kind === "MOVED") {
        this.#owners[slot] = target;
        // The whole map likely changed too (resharding, failover); reload it in the background.
        this.refreshSlots().catch(() => {});
        if (target === node) await new Promise((r) => setTimeout(r, 50 * (hop + 1)));
      }
      node = target;
      asking = kind === "ASK";
      // Redirected entries did not land: re-send them, in order, to the node named.
      const again = await this.#send(
        writer,
        node,
        stream,
        redirected.map((i) => entries[i]),
        asking,
        ids,
      );
      redirected.forEach((i, j) => (replies[i] = again[j]));
    }
    return replies;
  }

  /** Waits until the lost connection's node has dropped it (see RedisStreamSink.settleLost). */
  async settleLost(err: unknown, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const { lostClientId: id, lostNode: node } = (err ?? {}) as {
      lostClientId?: number | null;
      lostNode?: string;
    };
    if (typeof id !== "number" || !Number.isFinite(id) || !node) return false;
    const { host, port } = splitNode(node);
    const client = this.cluster.nodes("all").find((n) =>
      n.options.host === host && n.options.port === port
    );
    if (!client) return false;
    return await untilDropped(client, id, timeoutMs, signal);
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.#conns.values()].map((c) => c.then((w) => w.close()).catch(() => {})),
    );
  }
}
