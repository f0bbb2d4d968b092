import type { ChangeEvent } from "../core/change_event.ts";
import { JsonRowBatch } from "../core/json_row_batch.ts";
import type {
  DdlStatement,
  SourceTransaction,
  SourceTransactionPart,
} from "../ports/streaming_source.ts";

/** How large a part may grow before it is handed over (when another change follows). */
export interface PartLimits {
  /** Changes per part (at least 1). */
  maxEvents: number;
  /** Decoded bytes per part; default: no bound. */
  maxBytes?: number;
}

/**
 * Assembles the decoded changes of one source's log into the deliveries of the streaming
 * contract (`ports/streaming_source.ts`): committed transactions, and very large ones in
 * parts. Pure: it is told what the source decoded and gives back what to deliver; it never
 * reads a server nor awaits a handler, so both sources share one part-size rule and one
 * checkpoint rule.
 *
 * - A part is handed over only when it is full and another change of its transaction
 *   follows (`takeFullPart`, asked before adding a change), so the last part always goes
 *   with the commit and is never empty.
 * - A part with `more: true` carries the last checkpoint delivered before its transaction
 *   (empty when there is none yet): resuming from it replays the whole transaction. The
 *   last part carries the transaction's own token, given by `commit`.
 * - Positions (the transaction's ordinal counter) continue across parts; the rows of a
 *   part are in that part's own batches, so a delivered part is never written to again.
 */
export class TransactionAssembler {
  readonly #maxEvents: number;
  readonly #maxBytes: number;
  #checkpoint: string;
  #open = false;
  #tsMs = 0;
  #events: ChangeEvent[] = [];
  #ddl: DdlStatement[] = [];
  #bytes = 0;
  #batches = new Map<unknown, JsonRowBatch>();
  #ordinal = 0;
  #partsSent = 0;

  /** `checkpoint`: where the stream starts (the token before the first transaction). */
  constructor(limits: PartLimits, checkpoint: string | null) {
    this.#maxEvents = Math.max(1, limits.maxEvents);
    this.#maxBytes = limits.maxBytes ?? Infinity;
    this.#checkpoint = checkpoint ?? "";
  }

  /** The last checkpoint delivered (or the start's): what a `more` part carries. */
  get checkpoint(): string {
    return this.#checkpoint;
  }

  /** The stream's position is known only once it started (no checkpoint given). */
  set checkpoint(token: string) {
    this.#checkpoint = token;
  }

  /** A transaction is open (begun and neither committed nor dropped). */
  get open(): boolean {
    return this.#open;
  }

  /** The open transaction handed over parts or holds changes or DDL. */
  get touched(): boolean {
    return this.#open && (this.#partsSent > 0 || this.#events.length > 0 || this.#ddl.length > 0);
  }

  /** Changes of the current part, in order (not yet handed over). */
  get events(): readonly ChangeEvent[] {
    return this.#events;
  }

  /** DDL statements of the current part, in order. */
  get ddl(): readonly DdlStatement[] {
    return this.#ddl;
  }

  /** Commit time of the open transaction as known at its start (ms). */
  get tsMs(): number {
    return this.#tsMs;
  }

  /** Opens a transaction (one still open is dropped: see `drop`). */
  begin(tsMs: number): void {
    this.drop();
    this.#open = true;
    this.#tsMs = tsMs;
  }

  /** The ordinal the next change of the open transaction takes (not taken yet). */
  get ordinal(): number {
    return this.#ordinal;
  }

  /** The next ordinal of the open transaction: a change's or DDL's place in it. */
  nextOrdinal(): number {
    return this.#ordinal++;
  }

  /** This part's row batch of `key` (a table), made on first use. */
  batch(key: unknown, columns: number): JsonRowBatch {
    let b = this.#batches.get(key);
    if (!b) {
      b = new JsonRowBatch(columns, 16 * 1024, 64 * columns);
      this.#batches.set(key, b);
    }
    return b;
  }

  /** This part's row batch of `key` when one was made. */
  existingBatch(key: unknown): JsonRowBatch | undefined {
    return this.#batches.get(key);
  }

  add(event: ChangeEvent): void {
    this.#events.push(event);
  }

  addDdl(statement: DdlStatement): void {
    this.#ddl.push(statement);
  }

  /** Decoded bytes of the current part, for the byte bound. */
  addBytes(n: number): void {
    this.#bytes += n;
  }

  /** Whether the current part is full: the next change goes into a new part. */
  full(): boolean {
    return this.#events.length >= this.#maxEvents || this.#bytes >= this.#maxBytes;
  }

  /**
   * Before adding a change: the current part, to hand over, when it is full (else null).
   * The changes after it go into a fresh part.
   */
  takeFullPart(): SourceTransactionPart | null {
    if (!this.#open || !this.full()) return null;
    const part: SourceTransactionPart = {
      checkpoint: this.#checkpoint,
      events: this.#events,
      bytes: this.#bytes,
      commitTsMs: this.#tsMs,
      ddl: this.#ddl,
      more: true,
    };
    this.#reset();
    this.#partsSent++;
    return part;
  }

  /**
   * The transaction committed; `checkpoint` is the token right after it. Gives its last part
   * (or the whole transaction), or null when it brought nothing selected in any part.
   * Either way the checkpoint is the new `checkpoint`.
   */
  commit(checkpoint: string, commitTsMs: number): SourceTransactionPart | null {
    const touched = this.touched;
    const last: SourceTransactionPart = {
      checkpoint,
      events: this.#events,
      bytes: this.#bytes,
      commitTsMs,
      ddl: this.#ddl,
    };
    this.#checkpoint = checkpoint;
    this.#close();
    return touched ? last : null;
  }

  /**
   * An empty delivery outside any transaction (heartbeat, idle position): just a checkpoint,
   * which becomes the new `checkpoint`.
   */
  empty(checkpoint: string, commitTsMs: number): SourceTransaction {
    this.#checkpoint = checkpoint;
    return { checkpoint, events: [], bytes: 0, commitTsMs };
  }

  /** Forgets the open transaction (rolled back, prepared, or the stream starts over). */
  drop(): void {
    this.#close();
  }

  #reset(): void {
    this.#events = [];
    this.#ddl = [];
    this.#bytes = 0;
    this.#batches = new Map();
  }

  #close(): void {
    this.#reset();
    this.#open = false;
    this.#ordinal = 0;
    this.#partsSent = 0;
  }
}
