import type { ChangeEvent, SourcePosition } from "../core/change_event.ts";
import type { Connector } from "../core/entry_encoder.ts";
import type { TableId, TableSchema } from "../core/table_schema.ts";
import type { SchemaDumpEntry } from "../schema/schema_dump.ts";
import type { SchemaHistory } from "../schema/schema_history.ts";

/**
 * A DDL statement the source saw on a selected table (MySQL/MariaDB query events,
 * PostgreSQL truncate). Column changes the pipeline also finds by itself, from the schema
 * each change carries; this adds the statement, and tables created or dropped.
 */
export interface DdlStatement {
  table: TableId;
  statement: string;
  /** The table's schema after the statement; null when dropped or unchanged (truncate). */
  after: TableSchema | null;
  dropped: boolean;
  /**
   * The table came into the selection with rows the log will not bring (a rename from an
   * unselected name): its current rows are copied into its snapshot stream first.
   */
  snapshot?: boolean;
  /** Unique within the stream: sorts after the changes before it, before those after. */
  position: SourcePosition;
}

/**
 * One committed source transaction, or the last part of one (see SourceTransactionPart).
 * A transaction never splits across checkpoints: the checkpointer acknowledges only whole
 * transactions.
 */
export interface SourceTransaction {
  /**
   * Opaque resume token of the position right after this transaction (PostgreSQL: commit
   * end LSN; MySQL: GTID set or file:pos). Saved in the checkpoint and given back to
   * `StreamingSource.start` and `acknowledge`. On a part with `more: true`: see
   * SourceTransactionPart.
   */
  checkpoint: string;
  /** Events in source order; each carries its own SourcePosition (`sortKey` set). */
  events: ChangeEvent[];
  /** Approximate decoded size, for the byte-bounded queue. */
  bytes: number;
  /**
   * Commit time at the source, ms. On a part with `more: true`, the time known so far
   * (MySQL/MariaDB: when the transaction began; PostgreSQL: its commit time).
   */
  commitTsMs: number;
  /** DDL statements, in order; they come before this transaction's events. */
  ddl?: DdlStatement[];
}

/**
 * The streaming contract for large transactions, the same for every source (both share
 * `source/transaction_assembler.ts`). A source may deliver a very large transaction in
 * several parts, so memory stays bounded:
 *
 * - the parts of one transaction are delivered one after the other, nothing in between;
 * - every part but the last has `more: true`; the last has none and is never empty;
 * - a part with `more: true` carries as `checkpoint` the last checkpoint delivered before
 *   its transaction (empty when there is none yet), never a token of its own transaction:
 *   a source may not know that token before the commit (MySQL/MariaDB);
 * - the last part carries the transaction's own token; the checkpoint advances to it only
 *   once the entries of the last part, and of every part before it, are accepted;
 * - a source stops in the middle of a transaction only by ending `start` (a stop or a
 *   failure): the parts delivered are then forgotten, and a start from the checkpoint
 *   delivers the whole transaction again.
 *
 * So a transaction is one transaction for the pipeline (one checkpoint, counted once)
 * whatever the number of its parts.
 */
export interface SourceTransactionPart extends SourceTransaction {
  more?: boolean;
}

/**
 * The source continues the checkpoint from another server than the one its positions came
 * from (a MySQL/MariaDB failover to a server that has the checkpoint's GTIDs): positions of
 * entries written before and after are not comparable.
 */
export interface ServerChange {
  /** The checkpoint continued. */
  checkpoint: string;
  from: string | null;
  to: string;
  /** Whether an entry, by its decoded `source` block, is at or before the checkpoint. */
  covers(source: Record<string, unknown>): boolean;
  /** Sort key of the first change after the checkpoint on the earlier server. */
  sortKey: string;
}

/**
 * Streaming side of a source (Debezium's "streaming source"). `start` calls `onTransaction`
 * for each committed transaction in commit order (a large one in parts:
 * SourceTransactionPart) and awaits it before reading further, so a slow sink holds the
 * backlog in the source's log, not in memory.
 */
export interface StreamingSource {
  readonly connector: Connector;
  /** Tables currently selected, with their schemas (for encoders and schema dumps). */
  tables(): TableSchema[];
  start(
    from: string | null,
    onTransaction: (tx: SourceTransactionPart) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void>;
  /**
   * Before `start`: the schema history and the versions in effect at the checkpoint, for a
   * source whose change events do not describe themselves (MySQL row images), so a replay
   * decodes changes from before a DDL with the schema they were written under.
   */
  useSchemaHistory?(history: SchemaHistory, inEffect: SchemaDumpEntry[]): void;
  /**
   * Set by the pipeline when the source may move to another server that continues the
   * checkpoint; the source calls it before streaming from there. Throwing refuses the move.
   */
  onServerChange?: ((change: ServerChange) => Promise<void>) | null;
  /**
   * Before `start`: throws a GapError when the source can no longer deliver every change
   * after `from` (start checks it again), so a run that is about to change streams finds a
   * gap first. Another server that continues the checkpoint is not a gap here.
   */
  assertContinuity?(from: string): Promise<void>;
  /** Tells the source that everything up to and including `checkpoint` is safely stored. */
  acknowledge(checkpoint: string): Promise<void>;
  close(): Promise<void>;
}
