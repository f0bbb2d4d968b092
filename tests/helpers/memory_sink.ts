// deno-lint-ignore-file require-await
/**
 * An in-memory StreamSink and CheckpointStore that keep the ports' promises (src/ports/
 * stream_sink.ts, checkpoint.ts), with scripted failures, so the pipelines' failure paths are
 * tested without servers:
 *
 * - `append` runs each entry of a batch on its own, in order, like a pipeline of XADDs: an
 *   entry refused by a scripted `refuse` fault fails alone and the entries after it still
 *   land; a `cut` fault lands the batch's first `landed` entries, then rejects (a lost
 *   connection runs what it received in order).
 * - `landedAfter`, `remove`, `readTail`, `appendOne` and checkpoint `write` fail on a scripted
 *   `throw` fault.
 * - Every write and checkpoint goes into `events`, with what the streams held at that moment,
 *   so a test checks the order in which things became durable.
 *
 * The tail of a stream is read with the sink's own tail rule (readStreamTail), over the
 * stored entries.
 */
import { type EntryField, entryText } from "../../src/core/entry_field.ts";
import type {
  BatchResult,
  SinkErrorClass,
  StreamLane,
  StreamSink,
  StreamTail,
  TailFormat,
} from "../../src/ports/stream_sink.ts";
import type { CheckpointStore } from "../../src/ports/checkpoint.ts";
import { readStreamTail } from "../../src/sink/redis/stream_tails.ts";
import { StreamTailGuard } from "../../src/sink/redis/stream_tail_guard.ts";
import type { RedisClient } from "../../src/sink/redis/redis_connection.ts";

/** An error the sink raises, with the class `classifyError` gives it. */
export class MemorySinkError extends Error {
  constructor(message: string, readonly kind: SinkErrorClass) {
    super(message);
  }
}

export const retriable = (message = "LOADING scripted") =>
  new MemorySinkError(message, "retriable");
export const permanent = (message = "NOPERM scripted") => new MemorySinkError(message, "permanent");
export const oom = (message = "OOM scripted") => new MemorySinkError(message, "oom");

export type Operation =
  | "append"
  | "appendOne"
  | "landedAfter"
  | "remove"
  | "readTail"
  | "newest"
  | "checkpoint";

export type Fault =
  /** append: the entries at these indexes of the batch are refused with `error`. */
  | { refuse: number[]; error: Error }
  /** append: the first `landed` entries land, then the call rejects with `error`. */
  | { cut: number; error: Error }
  /** Any operation: rejects with `error`, nothing happens. */
  | { throw: Error };

export interface FaultRule {
  op: Operation;
  /** Only calls on this stream (any when absent). */
  stream?: string;
  /** How many matching calls it applies to (default 1; Infinity: all). */
  times?: number;
  /** Matching calls to let through first (default 0). */
  after?: number;
  fault: Fault;
  /** Called when the fault fires (a test aborts the run here, for example). */
  onFire?: () => void;
}

export type SinkEvent =
  | { kind: "append"; stream: string; ids: string[] }
  | { kind: "remove"; stream: string; ids: string[] }
  | { kind: "checkpoint"; fields: Record<string, string>; streams: Map<string, string[][]> }
  | { kind: "fault"; op: Operation; stream?: string };

type Entry = [id: string, fields: string[]];

export class MemorySink implements StreamSink {
  readonly streams = new Map<string, Entry[]>();
  readonly tailGuard = new StreamTailGuard();
  readonly events: SinkEvent[] = [];
  /** Calls per operation, faults included. */
  readonly calls = new Map<Operation, number>();
  #rules: (FaultRule & { seen: number; fired: number })[] = [];
  #seq = 0;
  memoryPressures = 0;

  /** Adds a scripted fault; rules are looked at in the order added. */
  fault(rule: FaultRule): this {
    this.#rules.push({ ...rule, seen: 0, fired: 0 });
    return this;
  }

  /** Stream content as text, oldest first. */
  entries(stream: string): string[][] {
    return (this.streams.get(stream) ?? []).map(([, f]) => f);
  }

  ids(stream: string): string[] {
    return (this.streams.get(stream) ?? []).map(([id]) => id);
  }

  /** The fault that applies to this call, if any (counts the call). */
  take(op: Operation, stream?: string): Fault | null {
    this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
    for (const r of this.#rules) {
      if (r.op !== op || (r.stream !== undefined && r.stream !== stream)) continue;
      if (r.fired >= (r.times ?? 1)) continue;
      r.seen++;
      if (r.seen <= (r.after ?? 0)) continue;
      r.fired++;
      this.events.push({ kind: "fault", op, stream });
      r.onFire?.();
      return r.fault;
    }
    return null;
  }

  #thrown(op: Operation, stream?: string): void {
    const f = this.take(op, stream);
    if (f === null) return;
    if ("throw" in f) throw f.throw;
    throw new Error(`fault ${JSON.stringify(Object.keys(f))} does not apply to ${op}`);
  }

  #add(stream: string, fields: string[]): string {
    let s = this.streams.get(stream);
    if (!s) this.streams.set(stream, s = []);
    const id = `1-${++this.#seq}`;
    s.push([id, fields]);
    return id;
  }

  /** What the streams hold now (for checkpoint events). */
  snapshot(): Map<string, string[][]> {
    const out = new Map<string, string[][]>();
    for (const [name, s] of this.streams) out.set(name, s.map(([, f]) => f));
    return out;
  }

  async append(stream: string, entries: EntryField[][], ids = true): Promise<BatchResult> {
    const f = this.take("append", stream);
    if (f !== null && "throw" in f) throw f.throw;
    const out: BatchResult = { ids: [], errors: [], failed: 0 };
    const landed: string[] = [];
    const last = f !== null && "cut" in f ? f.cut : entries.length;
    for (let i = 0; i < last; i++) {
      if (f !== null && "refuse" in f && f.refuse.includes(i)) {
        out.ids.push(null);
        out.errors.push(f.error);
        out.failed++;
        continue;
      }
      const id = this.#add(stream, entryText(entries[i]));
      landed.push(id);
      out.ids.push(ids ? id : "");
      out.errors.push(null);
    }
    if (landed.length > 0) this.events.push({ kind: "append", stream, ids: landed });
    if (f !== null && "cut" in f) throw f.error;
    return out;
  }

  async appendOne(stream: string, fields: string[]): Promise<string> {
    this.#thrown("appendOne", stream);
    const id = this.#add(stream, fields);
    this.events.push({ kind: "append", stream, ids: [id] });
    return id;
  }

  async waitForReplicas(_stream: string): Promise<void> {}

  async landedAfter(stream: string, afterId: string | null, count: number): Promise<string[]> {
    this.#thrown("landedAfter", stream);
    const s = this.streams.get(stream) ?? [];
    const from = afterId === null ? 0 : s.findIndex(([id]) => id === afterId) + 1;
    return s.slice(from, from + count).map(([id]) => id);
  }

  async remove(stream: string, ids: string[]): Promise<void> {
    this.#thrown("remove", stream);
    const gone = new Set(ids);
    const s = this.streams.get(stream);
    if (!s) return;
    this.streams.set(stream, s.filter(([id]) => !gone.has(id)));
    this.events.push({ kind: "remove", stream, ids });
  }

  readTail(stream: string, how: TailFormat, scan?: number): Promise<StreamTail> {
    this.#thrown("readTail", stream);
    return readStreamTail(this.#client(), stream, how.format, how.tombstones, how.sortKeyOf, scan);
  }

  /** What readStreamTail asks of a Redis client (XREVRANGE), over the stored entries. */
  #client(): RedisClient {
    const xrevrange = (stream: string, _a: string, _b: string, _c: string, n: number) =>
      Promise.resolve(this.#newest(stream, n));
    return { xrevrange } as unknown as RedisClient;
  }

  #newest(stream: string, count: number): Entry[] {
    return [...(this.streams.get(stream) ?? [])].reverse().slice(0, count);
  }

  async newest(stream: string, count: number): Promise<[string, string[]][]> {
    this.#thrown("newest", stream);
    return this.#newest(stream, count);
  }

  async length(stream: string): Promise<number> {
    return this.streams.get(stream)?.length ?? 0;
  }

  async drop(stream: string): Promise<void> {
    this.streams.delete(stream);
  }

  lane(): StreamLane {
    return this;
  }

  async awaitMemory(): Promise<void> {}

  memoryPressure(): void {
    this.memoryPressures++;
  }

  async settleLost(): Promise<boolean> {
    return true;
  }

  classifyError(err: unknown): SinkErrorClass {
    return err instanceof MemorySinkError ? err.kind : "permanent";
  }

  isReplicaWait(): boolean {
    return false;
  }

  async existing(names: string[]): Promise<string[]> {
    return names.filter((n) => (this.streams.get(n)?.length ?? 0) > 0);
  }

  async deleteKeys(names: string[]): Promise<void> {
    for (const n of names) this.streams.delete(n);
  }

  async truncateStreams(names: string[]): Promise<void> {
    for (const n of names) if (this.streams.has(n)) this.streams.set(n, []);
  }
}

/** The checkpoint hash, in memory; each write is an event of `sink` with what it held. */
export class MemoryCheckpointStore implements CheckpointStore {
  readonly key = "memory-checkpoint";
  readonly fields = new Map<string, string>();
  constructor(private readonly sink: MemorySink) {}

  async exists(): Promise<boolean> {
    return this.fields.size > 0;
  }
  async read(): Promise<Record<string, string>> {
    return Object.fromEntries(this.fields);
  }
  async get(field: string): Promise<string | null> {
    return this.fields.get(field) ?? null;
  }
  async write(fields: Record<string, string>): Promise<void> {
    const f = this.sink.take("checkpoint");
    if (f !== null && "throw" in f) throw f.throw;
    for (const [k, v] of Object.entries(fields)) this.fields.set(k, v);
    this.sink.events.push({ kind: "checkpoint", fields, streams: this.sink.snapshot() });
  }
  async forget(fields: string[]): Promise<void> {
    for (const f of fields) this.fields.delete(f);
  }
  async clear(): Promise<void> {
    this.fields.clear();
  }
}
