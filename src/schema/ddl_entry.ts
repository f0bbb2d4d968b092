/**
 * Entries of the DDL stream `replicate_io_schema_change_log_<group>_<id>` (docs/entry-format.md).
 * Pure. Whatever the data streams' message format, a DDL entry is a flat list of fields:
 *
 * - `op`: `ddl`
 * - `table`: qualified name (`db.schema.table`, MySQL `db.table`)
 * - `statement`: the DDL text when the source has it (MySQL/MariaDB query events, and
 *   `TRUNCATE …` for PostgreSQL), else empty
 * - `before`, `after`: `{"version":N,"columns":[…]}` of the schema in effect before and
 *   after the change (columns as in the schema dump), or `null` (a new or dropped table)
 * - `source`: the change's position, the same block as data entries carry, so the stream
 *   tail tells on resume what is already there
 * - `ts_ms`: when Replicant wrote it
 *
 * @module
 */

import type { SourcePosition } from "../core/change_event.ts";
import { type EntryOptions, sourceOpen, sourceTableFields } from "../core/entry_encoder.ts";
import { qualifiedName, type TableId } from "../core/table_schema.ts";
import type { DumpColumn } from "./schema_dump.ts";

/** A schema version as DDL entries show it. */
export interface DdlSchemaSide {
  version: number;
  columns: DumpColumn[];
}

/** One schema change, in source order with the data changes around it. */
export interface DdlChange {
  table: TableId;
  statement: string;
  before: DdlSchemaSide | null;
  after: DdlSchemaSide | null;
  position: SourcePosition;
}

/** Field/value list of a DDL entry. */
export function encodeDdlEntry(
  change: DdlChange,
  options: Pick<EntryOptions, "connector" | "replicationId" | "version">,
  nowMs: number,
): string[] {
  const id = change.table;
  const position = change.position;
  const source = sourceOpen(options) + position.tsMs + `,"snapshot":"false",` +
    sourceTableFields(id) + (position.fields === "" ? "}" : "," + position.fields + "}");
  return [
    "op",
    "ddl",
    "table",
    qualifiedName(id),
    "statement",
    change.statement,
    "before",
    JSON.stringify(change.before),
    "after",
    JSON.stringify(change.after),
    "source",
    source,
    "ts_ms",
    String(nowMs),
  ];
}
