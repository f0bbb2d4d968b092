import { startNotServable } from "../core/errors.ts";
import type { SchemaDumpEntry } from "../schema/schema_dump.ts";
import type { SchemaHistory } from "../schema/schema_history.ts";
import type {
  ServerChange,
  SourceTransaction,
  SourceTransactionPart,
  StreamingSource,
} from "../ports/streaming_source.ts";

/**
 * `start-position.start-timestamp` (and MySQL's `rewind-realtime-start-position-m`): realtime
 * begins with the first transaction committed at or after `startMs`. The wrapped source reads
 * from a point at or before that time; every transaction before the first one at or after it
 * is passed on without its changes (its checkpoint still moves), and from that first one on
 * everything is passed on unchanged, so no later transaction is ever dropped whatever its
 * timestamp (commit times are not strictly ordered in the log).
 *
 * `startsAtOrBefore` says the wrapped source is known to read from at or before `startMs`.
 * When it is not known, a transaction committed before `startMs` must be seen first: the
 * first one at or after it would otherwise be refused (startNotServable), since changes
 * between `startMs` and where the log begins may be missing.
 *
 * A transaction delivered in parts is passed on or left out whole, by the time of its
 * first part (MySQL/MariaDB know only when a transaction began until its commit).
 *
 * The gate applies to a fresh start only: on `--resume` the checkpoint is the start.
 */
export class StartTimeGate implements StreamingSource {
  #open = false;
  #seenEarlier: boolean;
  /** The parts that follow belong to a transaction left out. */
  #leavingOut = false;

  constructor(
    private readonly inner: StreamingSource,
    private readonly startMs: number,
    startsAtOrBefore: boolean,
    private readonly onOpen?: (tx: SourceTransaction) => void,
  ) {
    this.#seenEarlier = startsAtOrBefore;
  }

  get connector() {
    return this.inner.connector;
  }

  tables() {
    return this.inner.tables();
  }

  useSchemaHistory(history: SchemaHistory, inEffect: SchemaDumpEntry[]): void {
    this.inner.useSchemaHistory?.(history, inEffect);
  }

  /** The wrapped source's: a move to another server is the source's to report. */
  get onServerChange(): ((change: ServerChange) => Promise<void>) | null | undefined {
    return this.inner.onServerChange;
  }

  set onServerChange(handler: ((change: ServerChange) => Promise<void>) | null | undefined) {
    if (this.inner.onServerChange !== undefined) this.inner.onServerChange = handler ?? null;
  }

  start(
    from: string | null,
    onTransaction: (tx: SourceTransactionPart) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    // A start again (after a failure) delivers from a transaction's beginning.
    this.#leavingOut = false;
    return this.inner.start(from, (tx) => {
      if (this.#open) return onTransaction(tx);
      // A transaction is passed on or left out whole: its first part decides for the rest.
      const before = this.#leavingOut || tx.commitTsMs < this.startMs;
      this.#leavingOut = before && tx.more === true;
      if (before) {
        this.#seenEarlier = true;
        // Its checkpoint and schema changes still count; its rows are before the start.
        return onTransaction({ ...tx, events: [], bytes: 0 });
      }
      if (!this.#seenEarlier) {
        startNotServable(
          `start-timestamp ${new Date(this.startMs).toISOString()}`,
          `changes from the first transaction the source still has, committed at ${
            new Date(tx.commitTsMs).toISOString()
          }`,
          "That transaction was committed after the start, and nothing older is left to show " +
            "that no change in between is missing.",
        );
      }
      this.#open = true;
      this.onOpen?.(tx);
      return onTransaction(tx);
    }, signal);
  }

  acknowledge(checkpoint: string): Promise<void> {
    return this.inner.acknowledge(checkpoint);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
