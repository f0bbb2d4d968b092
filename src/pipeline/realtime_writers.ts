import type { ArenaBlock } from "../core/byte_arena.ts";
import type { ChangeEvent } from "../core/change_event.ts";
import type { EntryField } from "../core/entry_field.ts";
import type { EntryOptions } from "../core/entry_encoder.ts";
import { type InDoubtEntry, InDoubtError } from "../core/errors.ts";
import type { StreamNaming } from "../core/stream_naming.ts";
import type { TableSchema } from "../core/table_schema.ts";
import type { ReplicantMetrics } from "../observe/replicant_metrics.ts";
import type { SortKeyOfSource } from "../ports/position.ts";
import type { StreamLane } from "../ports/stream_sink.ts";
import {
  type RetryContext,
  StoppedWhileRetrying,
  TableFailure,
  undoAndRetryBatch,
  waitToRetry,
} from "./batch_retry.ts";
import type { InFlightTransaction } from "./checkpointer.ts";
import { appendIndoubt, cleanupCommand } from "./indoubt_log.ts";
import type { RealtimeRunState } from "./realtime_run_state.ts";
import { backoffMs } from "./retry_policy.ts";
import { entryIdAfter } from "./server_change.ts";

/** Entries of one change (or DDL statement) queued on its stream's writer. */
export interface Queued {
  entries: EntryField[][];
  tx: InFlightTransaction;
  bytes: number;
  sortKey: string | undefined;
  /** For the metrics: counted per batch when the sink accepts it (not for DDL entries). */
  op?: ChangeEvent["op"];
  table?: TableSchema;
  tsMs: number;
  /** The arena block the entries point into, released when the sink accepted them. */
  block?: ArenaBlock | null;
}

/** One stream's queue and how far its writes got. */
export class StreamWriter {
  queue: Queued[] = [];
  head = 0;
  running = false;
  skipped = false;
  /** Stopped by SIGINT/SIGTERM while waiting to retry: writes nothing more. */
  stopped = false;
  ready = false;
  lastId: string | null = null;
  tailKey: string | null = null;
  /** Sort key of the last change this run wrote. */
  lastKey: string | null = null;
  changes = 0;
  duplicates = 0;
  error?: string;
  /** The batch being written: taken from the queue, not yet accepted. */
  current: Queued[] = [];
  constructor(
    readonly name: string,
    readonly stream: string,
    /** The sink connection this stream's batches, tail reads and undo go through (order). */
    readonly lane: StreamLane,
    /** The DDL stream's entries are always in the `fields` layout, without tombstones. */
    readonly ddl = false,
  ) {}
  get pending(): number {
    return this.queue.length - this.head;
  }
}

class Semaphore {
  #free: number;
  #waiting: (() => void)[] = [];
  constructor(n: number) {
    this.#free = Math.max(1, n);
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((r) => this.#waiting.push(r));
  }
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

export interface WriterOptions {
  /** GLOBAL: one writer, one batch in flight; what cannot be undone stops the run (exit 4). */
  global: boolean;
  threads: number;
  batchRows: number;
  /** Bound of encoded entries waiting for the sink. */
  maxQueueBytes: number;
  entry: EntryOptions;
  sortKeyOf: SortKeyOfSource;
  resume: boolean;
  skipTablesOnFailures: boolean;
  indoubtFile?: string;
  naming: StreamNaming;
  /** Per stream: what the table's snapshot covers (MySQL `full`); cleared at a server move. */
  skipThrough: ReadonlyMap<string, string>;
  /** Per stream: its newest entry when the source moved to another server. */
  positionsFrom: ReadonlyMap<string, string>;
}

/** What the pool tells the pipeline. */
export interface WriterEvents {
  /** Entries of `tx` were accepted by the sink, or dropped on purpose. */
  accepted(tx: InFlightTransaction): void;
  /** Something was accepted: the checkpoint may move. */
  progressed(): void;
  /** The arena block of accepted entries is free again. */
  release(block: ArenaBlock): void;
}

/**
 * The writers, one per stream, at most `threads` batches in flight (GLOBAL: one), and the
 * byte budget of what is queued for them: the source waits while the queue is over it.
 */
export class WriterPool {
  readonly writers = new Map<string, StreamWriter>();
  readonly #sem: Semaphore;
  #bytes = 0;

  constructor(
    private readonly ctx: RetryContext,
    private readonly run: RealtimeRunState,
    private readonly o: WriterOptions,
    private readonly events: WriterEvents,
    private readonly metrics: ReplicantMetrics,
  ) {
    this.#sem = new Semaphore(o.global ? 1 : o.threads);
  }

  /**
   * A batch takes at most a quarter of the queue's budget, so the source keeps decoding while
   * a batch is in flight (a queue the size of one batch makes the two take turns).
   */
  get #maxBatchBytes(): number {
    return Math.max(64 * 1024, Math.floor(this.o.maxQueueBytes / 4));
  }

  /** The queue is over its budget: the source waits. */
  get full(): boolean {
    return this.#bytes > this.o.maxQueueBytes;
  }

  /** The writer of `stream`, made at its first entry. */
  writer(stream: string, name: string, ddl = false): StreamWriter {
    let w = this.writers.get(stream);
    if (!w) {
      w = new StreamWriter(name, stream, this.ctx.sink.lane(), ddl);
      this.writers.set(stream, w);
    }
    return w;
  }

  enqueue(w: StreamWriter, q: Queued): void {
    w.queue.push(q);
    this.#bytes += q.bytes;
  }

  /** Some writer still has work (or is at it). */
  busy(): boolean {
    for (const w of this.writers.values()) {
      if (w.running || (w.pending > 0 && !w.skipped && !w.stopped)) return true;
    }
    return false;
  }

  /** For the metrics (read at scrape): commit time of the oldest change not yet in the sink. */
  oldestPendingMs(): number | null {
    let oldest: number | null = null;
    for (const w of this.writers.values()) {
      if (w.skipped) continue;
      const q = w.current.length > 0 ? w.current[0] : w.pending > 0 ? w.queue[w.head] : null;
      if (q && (oldest === null || q.tsMs < oldest)) oldest = q.tsMs;
    }
    return oldest;
  }

  kick(w: StreamWriter): void {
    if (w.running || w.skipped || w.stopped || w.pending === 0) return;
    w.running = true;
    this.#runWriter(w).finally(() => {
      w.running = false;
      this.run.notify();
      if (w.pending > 0 && !w.skipped && !this.run.failed) this.kick(w);
    });
  }

  #accept(q: Queued): void {
    this.events.accepted(q.tx);
    this.#bytes -= q.bytes;
    if (q.block) this.events.release(q.block);
  }

  async #runWriter(w: StreamWriter): Promise<void> {
    try {
      if (!w.ready) await this.#prepare(w);
      while (w.pending > 0 && !w.skipped && !this.run.failed) {
        const batch: Queued[] = w.current = [];
        await this.#sem.acquire();
        try {
          let n = 0;
          let bytes = 0;
          while (w.head < w.queue.length && n < this.o.batchRows && bytes < this.#maxBatchBytes) {
            const q = w.queue[w.head++];
            if (w.tailKey !== null && q.sortKey !== undefined && q.sortKey <= w.tailKey) {
              w.duplicates++;
              this.#accept(q);
              continue;
            }
            batch.push(q);
            n += q.entries.length;
            bytes += q.bytes;
          }
          if (batch.length > 0) {
            const entries: EntryField[][] = [];
            for (const q of batch) for (const e of q.entries) entries.push(e);
            await undoAndRetryBatch(this.ctx, w, {
              entries,
              at: batch[0].sortKey,
              roundTrip: (ms) => this.metrics.realtimeRoundTrip(ms),
              inDoubt: (ids, where, reason) => this.#inDoubt(w, ids, where, reason),
            });
          }
        } finally {
          this.#sem.release();
        }
        for (const q of batch) {
          if (!w.ddl) q.tx.wrote = true;
          this.#accept(q);
        }
        this.metrics.realtimeBatch(batch);
        w.current = [];
        w.changes += batch.length;
        if (batch.length > 0) w.lastKey = batch[batch.length - 1].sortKey ?? w.lastKey;
        if (w.head > 4096 && w.head * 2 > w.queue.length) {
          w.queue = w.queue.slice(w.head);
          w.head = 0;
        }
        this.events.progressed();
        this.run.notify();
      }
    } catch (err) {
      this.#failed(w, err);
    }
  }

  /** A writer's error: it stops (at a stop of the run), its table is skipped, or the run ends. */
  #failed(w: StreamWriter, err: unknown): void {
    const message = (err as Error).message;
    if (err instanceof StoppedWhileRetrying) {
      // Nothing is accepted or dropped: the checkpoint stays below this stream's batch.
      w.stopped = true;
      this.ctx.log.warn(`realtime of ${w.name} into ${w.stream} stopped: ${message}`);
    } else if (err instanceof TableFailure && this.o.skipTablesOnFailures && !this.o.global) {
      w.skipped = true;
      w.error = message;
      this.metrics.skippedTable("realtime");
      // The failed batch and everything queued after it are dropped on purpose.
      for (const q of w.current) this.#accept(q);
      w.current = [];
      while (w.head < w.queue.length) this.#accept(w.queue[w.head++]);
      w.queue = [];
      w.head = 0;
      this.ctx.log.fail(`realtime of ${w.name} into ${w.stream} skipped: ${message}`);
      this.events.progressed();
    } else {
      this.ctx.log.fail(`realtime of ${w.name} into ${w.stream} failed: ${message}`);
      this.run.fail(err);
      this.run.stop();
    }
  }

  /** Reads the stream's tail once: where undo starts, and (resume) what to skip. */
  async #prepare(w: StreamWriter): Promise<void> {
    const { retry } = this.ctx;
    for (let attempt = 0;; attempt++) {
      try {
        const tail = await this.ctx.bound.call(w.lane.readTail(w.stream, {
          format: w.ddl ? "fields" : this.o.entry.format,
          tombstones: w.ddl ? false : this.o.entry.tombstones,
          sortKeyOf: this.o.sortKeyOf,
        }));
        w.lastId = tail.lastId;
        const floor = this.o.global || w.ddl ? null : this.o.skipThrough.get(w.stream) ?? null;
        w.tailKey = floor;
        // After a move to another server, a tail from before it compares with nothing new.
        const since = this.o.positionsFrom.get(w.stream);
        const comparable = since === undefined ||
          (tail.lastId !== null && entryIdAfter(tail.lastId, since));
        if (this.o.resume) {
          if (comparable && tail.sortKey !== null && (floor === null || tail.sortKey > floor)) {
            w.tailKey = tail.sortKey;
          }
          if (tail.missingTombstone) {
            w.lastId = await this.ctx.bound.call(
              w.lane.appendOne(w.stream, tail.missingTombstone),
            );
            this.ctx.log.info(`appended the missing tombstone of the last delete in ${w.stream}`);
          }
        }
        w.ready = true;
        return;
      } catch (err) {
        const reason = `cannot read the tail of "${w.stream}": ${(err as Error).message}`;
        if (this.ctx.sink.classifyError(err) === "permanent" || attempt >= retry.maxRetries) {
          throw new TableFailure(reason);
        }
        await waitToRetry(this.ctx, backoffMs(attempt + 1, retry.waitMs), reason);
      }
    }
  }

  /**
   * The undo of a failed batch did not finish: `ids` landed and are still there (null: they
   * could not even be listed). GLOBAL records them in the in-doubt file and stops (exit 4);
   * EVENTUAL skips the table.
   */
  #inDoubt(w: StreamWriter, ids: string[] | null, where: string, reason: string): never {
    if (ids === null) {
      throw new TableFailure(
        `cannot undo a failed batch in ${where}: the entries after ${
          w.lastId ?? "the start"
        } could not be listed (${reason}); --resume continues after the last one that landed`,
      );
    }
    const entries: InDoubtEntry[] = ids.map((id) => ({ stream: w.stream, id }));
    if (!this.o.global) {
      throw new TableFailure(
        `cannot undo a failed batch in ${where} (${reason}): entries ${ids.join(" ")} are in doubt`,
      );
    }
    const file = this.o.indoubtFile ?? null;
    if (file) appendIndoubt(file, entries);
    this.metrics.inDoubt(ids.length);
    const { replicationId, group } = this.o.naming;
    const message =
      `GLOBAL replication stopped: a batch into ${where} failed (${reason}) and ${ids.length} of its entries that landed could not be deleted; ${
        file ? `they are listed in ${file}` : `in doubt: ${ids.join(" ")}`
      }. Run \`${
        cleanupCommand(replicationId, group)
      }\` to delete them, then continue with --resume.`;
    this.ctx.log.fail(message);
    throw new InDoubtError(message, file, entries);
  }

  /** After a restart of the source: each stream skips what this run already wrote to it. */
  skipWritten(): void {
    for (const w of this.writers.values()) {
      if (w.lastKey !== null && (w.tailKey === null || w.lastKey > w.tailKey)) {
        w.tailKey = w.lastKey;
      }
    }
  }

  /** After a move to another server: positions written so far compare with nothing new. */
  forgetPositions(): void {
    for (const w of this.writers.values()) {
      w.tailKey = null;
      w.lastKey = null;
    }
  }
}
