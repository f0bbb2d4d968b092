import type { TableSchema } from "./table_schema.ts";

/**
 * A row as JSON fragments, one per column of its TableSchema, in column order. Each
 * fragment is valid JSON text (`123`, `"abc"`, `{"a":1}`, `null`); sources produce them so
 * values stay lossless and the encoder only concatenates.
 */
export type RowFragments = string[];

export type Op = "r" | "c" | "u" | "d" | "t";

/** Position of a change in its source; JSON fragments of the `source` block. */
export interface SourcePosition {
  /** Source commit time in ms since the epoch. */
  tsMs: number;
  /** Extra `source` fields already JSON-encoded, e.g. `"lsn":123,"txId":7,"sequence":0`. */
  fields: string;
  /**
   * Realtime only: the change's place in its source as a string that sorts like the
   * position (fixed-width fields), so the tail of a stream can be compared with incoming
   * changes without knowing the source. Built by the connector's `positionSortKey`.
   */
  sortKey?: string;
}

export interface ChangeEvent {
  table: TableSchema;
  op: Op;
  before: RowFragments | null;
  after: RowFragments | null;
  position: SourcePosition;
}
