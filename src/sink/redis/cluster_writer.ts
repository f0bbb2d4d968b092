import type { Cluster } from "ioredis";
import type { EntryField } from "../../core/entry_field.ts";
import { keySlot } from "./key_slot.ts";
import { untilDropped } from "./redis_connection.ts";
import { endpointOf, type RedisTarget } from "./redis_endpoint.ts";
import { RedisConnectionError, type RespPipeline } from "./resp_pipeline.ts";
import { clientIdOf, WriterConnections } from "./writer_connections.ts";
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
 * node, a batch sent to the node owning its stream's hash slot. The slot map is the Cluster
 * admin client's (ioredis loads it from CLUSTER SLOTS, and again after a MOVED or a lost
 * node, on its commands or on the writers' request), so both stacks route by one view. MOVED
 * re-sends the redirected entries to the new owner (which serves that slot from then on,
 * until the next load of the map); ASK re-sends them there, each after ASKING. A stream's
 * batches are written one after the other (each waits for the previous one and its
 * re-sends), so its entries keep their order across a move.
 */
export class ClusterWriter {
  /** Owners named by MOVED since the slot map was last loaded ("host:port" by slot). */
  readonly #moved = new Map<number, string>();
  /** Connections by `writerSlot|host:port`, opened on first use, reopened after loss. */
  readonly #conns: WriterConnections<string>;
  /** Last batch of each stream (its order across redirections). */
  readonly #chains = new Map<string, Promise<unknown>>();

  constructor(
    private readonly cluster: Cluster,
    target: RedisTarget,
    private readonly options: AppendOptions,
  ) {
    this.#conns = new WriterConnections((key) => {
      const bar = key.indexOf("|");
      return endpointOf(
        target,
        `replicant-writer-${key.slice(0, bar)}`,
        splitNode(key.slice(bar + 1)),
      );
    });
  }

  /** Loads the Cluster client's slot map again (concurrent callers share one load). */
  refreshSlots(): Promise<void> {
    return new Promise((resolve, reject) =>
      this.cluster.refreshSlotsCache((err) => {
        this.#moved.clear();
        if (err) reject(err);
        else resolve();
      })
    );
  }

  /** The master owning `slot`: a MOVED's answer, else the Cluster client's slot map. */
  async #ownerOf(slot: number): Promise<string> {
    let owner = this.#moved.get(slot) ?? this.cluster.slots[slot]?.[0];
    if (owner === undefined) {
      await this.refreshSlots();
      owner = this.cluster.slots[slot]?.[0];
    }
    if (owner === undefined) throw new Error(`Redis Cluster: no node serves hash slot ${slot}`);
    return owner;
  }

  #conn(writer: number, node: string): Promise<RespPipeline> {
    return this.#conns.get(`${writer}|${node}`);
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
        Object.assign(err, { lostClientId: clientIdOf(conn), lostNode: node });
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
        this.#moved.set(slot, target);
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

  close(): Promise<void> {
    return this.#conns.close();
  }
}
