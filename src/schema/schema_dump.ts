/**
 * Entries of the schema dump stream `replicate_io_replication_schema_<group>_<id>`
 * (docs/entry-format.md): one per table and schema version. Pure: building, reading back and comparing entries.
 *
 * An entry is a flat list of Redis fields: `catalog`, `schema` (empty for MySQL), `table`,
 * `version`, `columns` (JSON: name, source type, normalised type, nullable, default,
 * primary-key position), `unique_keys` (JSON: lists of column names), `fingerprint`,
 * `ts_ms`, and, for versions made by a DDL in realtime, `since` (the DDL's source position,
 * as a sort key). MySQL tables also carry `source_ordinals` (each column's 0-based position
 * among all the table's columns, as row images list them) and `source_columns` (their
 * count), so a replay can decode old row images without the server's current catalog.
 *
 * @module
 */

import type { ColumnSchema, TableId, TableSchema } from "../core/table_schema.ts";

export interface DumpColumn {
  name: string;
  /** The source's own type, e.g. `varchar(20)`, `int8`. */
  type: string;
  /** The normalised (Kafka Connect) type of the entries' `schema` half. */
  normalized_type: ColumnSchema["connectType"];
  nullable: boolean;
  default: string | null;
  /** 1-based position in the primary key, or null. */
  primary_key_position: number | null;
}

export interface SchemaDumpEntry {
  id: TableId;
  version: number;
  columns: DumpColumn[];
  /** Unique keys other than the primary key (column names), as far as the reader knows them. */
  uniqueKeys: string[][];
  /** Stable text of columns and keys; equal fingerprints mean the same schema version. */
  fingerprint: string;
  tsMs: number;
  /** Source position (sort key) of the DDL that made this version; null at a run's start. */
  sinceKey: string | null;
  /** MySQL: positions of the columns in row images, and the table's column count. */
  sourceOrdinals?: number[];
  sourceColumns?: number;
}

export function dumpColumnsOf(schema: TableSchema): DumpColumn[] {
  return schema.columns.map((c) => ({
    name: c.name,
    type: c.sourceType,
    normalized_type: c.connectType,
    nullable: c.nullable,
    default: c.defaultValue,
    primary_key_position: c.keyPosition,
  }));
}

/** The unique key used for entry keys when the table has no primary key. */
export function uniqueKeysOf(schema: TableSchema): string[][] {
  const hasPk = schema.columns.some((c) => c.keyPosition !== null);
  if (hasPk || !schema.hasKey) return [];
  return [schema.keyColumns.map((i) => schema.columns[i].name)];
}

export function schemaFingerprint(columns: DumpColumn[], uniqueKeys: string[][]): string {
  return JSON.stringify({ columns, uniqueKeys });
}

/** The entry of one table at one version. */
export function buildSchemaDumpEntry(
  schema: TableSchema & { ordinals?: number[]; totalColumns?: number },
  version: number,
  tsMs: number,
  sinceKey: string | null = null,
): SchemaDumpEntry {
  const columns = dumpColumnsOf(schema);
  const uniqueKeys = uniqueKeysOf(schema);
  const entry: SchemaDumpEntry = {
    id: { ...schema.id },
    version,
    columns,
    uniqueKeys,
    fingerprint: schemaFingerprint(columns, uniqueKeys),
    tsMs,
    sinceKey,
  };
  if (schema.ordinals && schema.totalColumns !== undefined) {
    entry.sourceOrdinals = schema.ordinals;
    entry.sourceColumns = schema.totalColumns;
  }
  return entry;
}

/** Field/value pairs for XADD. */
export function schemaDumpFields(entry: SchemaDumpEntry): string[] {
  return [
    "catalog",
    entry.id.catalog,
    "schema",
    entry.id.schema ?? "",
    "table",
    entry.id.table,
    "version",
    String(entry.version),
    "columns",
    JSON.stringify(entry.columns),
    "unique_keys",
    JSON.stringify(entry.uniqueKeys),
    "fingerprint",
    entry.fingerprint,
    "ts_ms",
    String(entry.tsMs),
    ...(entry.sinceKey === null ? [] : ["since", entry.sinceKey]),
    ...(entry.sourceOrdinals === undefined ? [] : [
      "source_ordinals",
      JSON.stringify(entry.sourceOrdinals),
      "source_columns",
      String(entry.sourceColumns),
    ]),
  ];
}

/** Reads an entry back from its XRANGE fields; null when it is not a schema dump entry. */
export function parseSchemaDumpFields(fields: string[]): SchemaDumpEntry | null {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i], fields[i + 1]);
  const catalog = f.get("catalog");
  const table = f.get("table");
  const version = Number(f.get("version"));
  if (catalog === undefined || table === undefined || !Number.isInteger(version)) return null;
  let columns: DumpColumn[];
  let uniqueKeys: string[][];
  try {
    columns = JSON.parse(f.get("columns") ?? "[]");
    uniqueKeys = JSON.parse(f.get("unique_keys") ?? "[]");
  } catch {
    return null;
  }
  const schema = f.get("schema") ?? "";
  const entry: SchemaDumpEntry = {
    id: { catalog, schema: schema === "" ? null : schema, table },
    version,
    columns,
    uniqueKeys,
    fingerprint: f.get("fingerprint") ?? schemaFingerprint(columns, uniqueKeys),
    tsMs: Number(f.get("ts_ms") ?? 0),
    sinceKey: f.get("since") ?? null,
  };
  const ordinals = f.get("source_ordinals");
  if (ordinals !== undefined) {
    try {
      entry.sourceOrdinals = JSON.parse(ordinals);
      entry.sourceColumns = Number(f.get("source_columns"));
    } catch {
      // An entry without usable ordinals is still a schema version.
    }
  }
  return entry;
}

export function tableKeyOf(id: TableId): string {
  return JSON.stringify([id.catalog, id.schema, id.table]);
}

/** The newest version of each table, in the order tables first appear. */
export function newestPerTable(entries: SchemaDumpEntry[]): SchemaDumpEntry[] {
  const newest = new Map<string, SchemaDumpEntry>();
  for (const e of entries) {
    const k = tableKeyOf(e.id);
    const seen = newest.get(k);
    if (!seen || e.version >= seen.version) newest.set(k, e);
  }
  return [...newest.values()];
}
