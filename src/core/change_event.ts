import type { JsonRowBatch } from "./json_row_batch.ts";
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
  /** The rows as bytes, when the source wrote them so (the encoder then copies bytes). */
  rows?: EventRows;
}

/** Rows of an event in a batch of its table's rows; -1 for none. */
export interface EventRows {
  readonly batch: JsonRowBatch;
  readonly before: number;
  readonly after: number;
}

/**
 * A change whose rows are UTF-8 JSON in a JsonRowBatch. The text fragments are made only
 * when asked for (tests, string-only paths); the encoder copies the bytes.
 */
export class BatchChangeEvent implements ChangeEvent {
  #before: RowFragments | null | undefined;
  #after: RowFragments | null | undefined;
  constructor(
    readonly table: TableSchema,
    readonly op: Op,
    readonly rows: EventRows,
    readonly position: SourcePosition,
  ) {}
  get before(): RowFragments | null {
    return this.#before ??= this.rows.before < 0 ? null : this.rows.batch.row(this.rows.before);
  }
  get after(): RowFragments | null {
    return this.#after ??= this.rows.after < 0 ? null : this.rows.batch.row(this.rows.after);
  }
}
