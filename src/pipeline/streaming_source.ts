import type { ChangeEvent } from "../core/change_event.ts";
import type { Connector } from "../core/entry_encoder.ts";
import type { TableSchema } from "../core/table_schema.ts";

/**
 * One committed source transaction, decoded whole. A transaction never splits across
 * checkpoints: the checkpointer acknowledges only whole transactions.
 */
export interface SourceTransaction {
  /**
   * Opaque resume token of the position right after this transaction (PostgreSQL: commit
   * end LSN; MySQL: GTID set or file:pos). Saved in the checkpoint and given back to
   * `StreamingSource.start` and `acknowledge`.
   */
  checkpoint: string;
  /** Events in source order; each carries its own SourcePosition (`sortKey` set). */
  events: ChangeEvent[];
  /** Approximate decoded size, for the byte-bounded queue. */
  bytes: number;
  /** Commit time at the source, ms. */
  commitTsMs: number;
}

/**
 * Streaming side of a source (Debezium's "streaming source"). `start` calls `onTransaction`
 * for each committed transaction in commit order and awaits it before reading further, so a
 * slow sink holds the backlog in the source's log, not in memory.
 */
export interface StreamingSource {
  readonly connector: Connector;
  /** Tables currently selected, with their schemas (for encoders and schema dumps). */
  tables(): TableSchema[];
  start(
    from: string | null,
    onTransaction: (tx: SourceTransaction) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void>;
  /** Tells the source that everything up to and including `checkpoint` is safely stored. */
  acknowledge(checkpoint: string): Promise<void>;
  close(): Promise<void>;
}
