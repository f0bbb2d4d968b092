import type { TableSchema } from "../core/table_schema.ts";
import type { SortKeyOfSource } from "./position.ts";
import type { SnapshotSource, TableReader } from "./snapshot_source.ts";

/**
 * A consistent read of the source at a position P that the replication's streams can be cut
 * at: the source as of P, and the rule telling which changes are at or before P.
 */
export interface VerifyPoint {
  readonly source: SnapshotSource;
  /** A reader inside the snapshot of P. */
  readonly reader: TableReader;
  /** P for people, e.g. `PostgreSQL LSN 0/1A2B3C0`. */
  readonly description: string;
  readonly sortKeyOf: SortKeyOfSource;
  /** Whether the change with this sort key is part of the source as read at P. */
  includes(sortKey: string): boolean;
  /** Whether the replication checkpoint `token` is at or past P (every change ≤ P landed). */
  reached(token: string): boolean;
  /**
   * When the checkpoint is before P: whether the source's log holds no change of `tables`
   * between the checkpoint and P (a replication stopped while the source stayed idle, or
   * wrote only other tables), so the streams are complete at P all the same.
   */
  caughtUp?(token: string | null, tables: TableSchema[]): Promise<boolean>;
  close(): Promise<void>;
}
