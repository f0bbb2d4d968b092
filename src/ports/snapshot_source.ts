import type { JsonRowBatch } from "../core/json_row_batch.ts";
import type { Connector } from "../core/entry_encoder.ts";
import type { TableId, TableSchema } from "../core/table_schema.ts";
import type { FilterConfig } from "../config/load_filter.ts";
import { selectedColumns, tableNamed, tableSelected } from "../config/table_selected.ts";

/** A key value as read back from a stream's tail entry (JSON), to resume a table after it. */
export type KeyValue = string | number | boolean | null;

export interface SnapshotTable {
  schema: TableSchema;
  /** Planner's estimate, for progress and ETA only. */
  estimatedRows: number;
}

/** Which tables and columns the user selected (the filter file). */
export interface TableSelection {
  table(id: TableId): boolean;
  /** Allowed column names, or null for all. */
  columns(id: TableId): string[] | null;
  /**
   * Whether the filter names this table itself, not only through a pattern or a whole
   * schema (PostgreSQL partitions replicate on their own only then). Absent: never.
   */
  named?(id: TableId): boolean;
}

/** The selection of a filter file (null: every table, every column). */
export function tableSelectionOf(filter: FilterConfig | null): TableSelection {
  if (!filter) return { table: () => true, columns: () => null };
  return {
    table: (id) => tableSelected(filter, id),
    columns: (id) => selectedColumns(filter, id),
    named: (id) => tableNamed(filter, id),
  };
}

/** The selection without one table (the heartbeat table; null: none). */
export function selectionWithout(selection: TableSelection, left: TableId | null): TableSelection {
  if (left === null) return selection;
  const isLeft = (id: TableId) =>
    id.catalog.toLowerCase() === left.catalog.toLowerCase() &&
    id.table.toLowerCase() === left.table.toLowerCase();
  return {
    table: (id) => !isLeft(id) && selection.table(id),
    columns: (id) => selection.columns(id),
  };
}

/**
 * Snapshot side of a source (Debezium's "snapshot source"): every reader it hands out sees
 * the same consistent snapshot, so rows written meanwhile appear neither twice nor torn.
 */
export interface SnapshotSource {
  readonly connector: Connector;
  /** Source time of the snapshot, in ms; goes into each entry's `source.ts_ms`. */
  readonly snapshotTsMs: number;
  tables(): Promise<SnapshotTable[]>;
  /** A reader on its own connection, inside the shared snapshot. */
  reader(): Promise<TableReader>;
  close(): Promise<void>;
}

export interface TableReader {
  /**
   * Rows of a table in key order, in chunks of at most `chunkRows`, after `after` (the key
   * of the last row already written) when given. Never holds more than one chunk ahead.
   * A batch may be reused for a later chunk once the consumer asks for the next one.
   */
  read(
    table: TableSchema,
    after: KeyValue[] | null,
    chunkRows: number,
  ): AsyncIterable<JsonRowBatch>;
  close(): Promise<void>;
}
