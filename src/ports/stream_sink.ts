import type { MessageFormat } from "../core/entry_encoder.ts";
import type { EntryField } from "../core/entry_field.ts";
import type { SortKeyOfSource } from "./position.ts";

/**
 * What the pipelines need of the target that keeps the streams: append batches and learn
 * per entry what landed, read a stream's tail (where a resume continues), undo what landed
 * of a failed batch, wait for replicas, classify an error. The Redis implementation is
 * src/sink/redis/redis_stream_sink.ts; nothing above this port names a Redis command.
 */

/** Outcome of one batch: per entry either the id the sink gave it or the error. */
export interface BatchResult {
  ids: (string | null)[];
  errors: (Error | null)[];
  failed: number;
}

/**
 * How a sink error is handled: `retriable` is retried with backoff, `oom` is backpressure
 * (the sink is full: wait for it to free memory), `permanent` goes straight to the skip /
 * in-doubt rules.
 */
export type SinkErrorClass = "retriable" | "oom" | "permanent";

export interface StreamTail {
  /** Id of the newest entry, or null when the stream is empty or missing. */
  lastId: string | null;
  /** Sort key of the newest entry that carries a realtime position, or null. */
  sortKey: string | null;
  /** That entry's decoded `source` block, or null. */
  source: Record<string, unknown> | null;
  /**
   * When the newest entry is a delete whose tombstone never landed (a crash between the
   * two), the tombstone's fields, to append before anything else.
   */
  missingTombstone: string[] | null;
}

/** How a stream's tail entries are read back (the entry layout the streams are written in). */
export interface TailFormat {
  format: MessageFormat;
  tombstones: boolean;
  sortKeyOf: SortKeyOfSource;
}

/** Reads of a stream that any connection of the sink can serve. */
export interface StreamReads {
  /**
   * How far a stream got: the newest of its last `scan` entries that carries a position
   * (tombstones and snapshot rows carry none). Changes at or below its sort key are already
   * in the stream.
   */
  readTail(stream: string, how: TailFormat, scan?: number): Promise<StreamTail>;
  /** The newest `count` entries, newest first, as [id, fields]. */
  newest(stream: string, count: number): Promise<[string, string[]][]>;
  /** Number of entries (0 for a missing stream). */
  length(stream: string): Promise<number>;
  /** Removes the stream. */
  drop(stream: string): Promise<void>;
}

/** Whole-stream reads, for verify: every entry oldest first, in pages. */
export interface StreamScan {
  length(stream: string): Promise<number>;
  /** Every entry of the stream as [id, fields], oldest first; a missing stream has none. */
  pages(stream: string): AsyncIterable<[string, string[]][]>;
}

/**
 * A writer's own connection: its batches go in order, so what landed of a batch cut off by a
 * lost connection is its first entries, found after the stream's last known id.
 */
export interface StreamLane extends StreamReads {
  /** Appends a batch; with `ids` false the id of each entry that landed is `""`. */
  append(stream: string, entries: EntryField[][], ids?: boolean): Promise<BatchResult>;
  /** Appends one entry, returns its id. */
  appendOne(stream: string, fields: string[]): Promise<string>;
  /** With `wait-for-replicas`: waits until the replicas have what this lane wrote. */
  waitForReplicas(stream: string): Promise<void>;
  /** Ids of at most `count` entries after `afterId` (null: from the start). */
  landedAfter(stream: string, afterId: string | null, count: number): Promise<string[]>;
  /** Undo: deletes these entries. */
  remove(stream: string, ids: string[]): Promise<void>;
}

/** What writers need kept at the end of their streams while retention trims them. */
export interface TailGuard {
  batchStarted(stream: string, lastId: string | null): void;
  batchSettled(stream: string): void;
  /** Keeps the newest `entries` of the stream until the returned release is called. */
  keepNewest(stream: string, entries: number): () => void;
}

export interface StreamSink extends StreamReads {
  /** A connection for one writer, kept for all its batches. */
  lane(): StreamLane;
  readonly tailGuard: TailGuard;
  /** Before a batch: waits while the sink's memory is above the configured mark. */
  awaitMemory(
    signal: AbortSignal | undefined,
    log: { info(message: string): void; warn(message: string): void },
  ): Promise<void>;
  /** The sink refused a write for lack of memory: the memory gate looks again sooner. */
  memoryPressure(): void;
  /**
   * After `append` rejected (connection lost): waits, up to `timeoutMs` or until `signal`
   * aborts, until the sink has dropped that connection, so every command it had received
   * has run before the caller looks at what landed. False when it could not tell.
   */
  settleLost(err: unknown, timeoutMs?: number, signal?: AbortSignal): Promise<boolean>;
  classifyError(err: unknown): SinkErrorClass;
  /** The entries landed but fewer replicas than asked have them (wait-for-replicas). */
  isReplicaWait(err: unknown): boolean;
  /** Streams (or other keys) among `names` that exist now. */
  existing(names: string[]): Promise<string[]>;
  deleteKeys(names: string[]): Promise<void>;
  /** Empties streams but keeps them (and their consumer groups). */
  truncateStreams(names: string[]): Promise<void>;
}
