import type pg from "pg";
import { matchColumnNames } from "../../config/table_selected.ts";
import { SourceSetupError } from "../../core/errors.ts";
import {
  type ColumnSchema,
  qualifiedName,
  type TableId,
  type TableSchema,
} from "../../core/table_schema.ts";
import type { TableSelection } from "../../ports/snapshot_source.ts";
import { quoteIdent } from "./pg_endpoint.ts";
import { pgConnectType } from "./pg_text_decoder.ts";
import { PG_TYPE_CATALOG_SQL, PgTypeCatalog } from "./pg_type_catalog.ts";

/** A PostgreSQL table: the neutral schema plus what the reader needs to decode it. */
export interface PgTable extends TableSchema {
  relOid: number;
  typeOids: number[];
  estimatedRows: number;
  /** `p`: a partitioned table, replicated as one table with the rows of all its partitions. */
  relkind: "r" | "p";
  /**
   * Stored generated columns, left out: PostgreSQL's logical replication does not send them
   * (before version 18), so neither snapshot nor realtime entries carry them.
   */
  generatedColumns: string[];
}

/**
 * What each run has told of generated columns, by the log it tells through: keyed by the
 * run's log, so runs keep apart, and a finished run's entry goes with its log.
 */
const toldGeneratedColumns = new WeakMap<object, Set<string>>();

/**
 * Says, once per table and run (`log` is the run's), which stored generated columns its
 * entries leave out: whichever step meets the table first (a snapshot, the publication's set-up
 * for a snapshot and again for realtime, a publication change) tells it, the others do not.
 */
export function tellGeneratedColumnsLeftOut(
  tables: readonly PgTable[],
  log: { warn(message: string): void },
): void {
  let told = toldGeneratedColumns.get(log);
  if (!told) toldGeneratedColumns.set(log, told = new Set());
  for (const t of tables) {
    if (t.generatedColumns.length === 0) continue;
    const message = `${qualifiedName(t.id)}: stored generated column(s) ` +
      `${t.generatedColumns.join(", ")} are not replicated: PostgreSQL's logical replication ` +
      "does not send them, so neither snapshot nor realtime entries carry them";
    if (told.has(message)) continue;
    told.add(message);
    log.warn(message);
  }
}

/** `schema.table`, quoted for SQL. */
export function pgTableName(id: TableId): string {
  return `${quoteIdent(id.schema!)}.${quoteIdent(id.table)}`;
}

/**
 * Every user schema of the database with the names of its tables (partitions left out),
 * selected or not: what a user can choose from, for messages.
 */
export async function listPgSchemas(
  client: pg.Client,
): Promise<{ schema: string; tables: string[] }[]> {
  const rows = await client.query({
    text: `SELECT n.nspname, c.relname
             FROM pg_namespace n
             LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p')
                  AND NOT c.relispartition
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
            ORDER BY n.nspname, c.relname`,
    rowMode: "array",
  });
  const groups = new Map<string, string[]>();
  for (const [schema, table] of rows.rows as (string | null)[][]) {
    const names = groups.get(schema!) ?? [];
    if (table !== null) names.push(table);
    groups.set(schema!, names);
  }
  return [...groups].map(([schema, tables]) => ({ schema, tables }));
}

/**
 * Whether a table is selected. A partition replicates as part of its partitioned table; it
 * is a table of its own only when the filter names it, and then no ancestor may be selected
 * too (PostgreSQL publishes each change once, as the topmost published ancestor's).
 */
function pgTableSelected(
  selection: TableSelection,
  id: TableId,
  isPartition: boolean,
): boolean {
  return selection.table(id) && (!isPartition || selection.named?.(id) === true);
}

/** A selected relation, before its columns are read. */
export type PgRelation = Pick<PgTable, "id" | "relOid" | "relkind" | "estimatedRows">;

/**
 * The relations the selection picks (one catalog query); a partition named together with a
 * selected ancestor is refused.
 */
export async function selectedPgRelations(
  client: pg.Client,
  database: string,
  selection: TableSelection,
): Promise<PgRelation[]> {
  const rels = await client.query({
    text: `SELECT c.oid::int8::text, n.nspname, c.relname, c.relkind::text,
                  c.relispartition::text,
                  CASE WHEN c.relkind = 'p' THEN
                    (SELECT coalesce(sum(greatest(l.reltuples, 0)), 0)::int8::text
                       FROM pg_partition_tree(c.oid) t JOIN pg_class l ON l.oid = t.relid
                      WHERE t.isleaf)
                  ELSE greatest(c.reltuples, 0)::int8::text END,
                  CASE WHEN c.relispartition THEN
                    (SELECT string_agg(a.relid::int8::text, ',')
                       FROM pg_partition_ancestors(c.oid) a WHERE a.relid <> c.oid)
                  END
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
            ORDER BY n.nspname, c.relname`,
    rowMode: "array",
  });
  const all = (rels.rows as string[][]).map(([oid, schema, table, kind, part, est, anc]) => ({
    oid: Number(oid),
    id: { catalog: database, schema, table } as TableId,
    relkind: kind as "r" | "p",
    isPartition: part === "true",
    ancestors: anc ? anc.split(",").map(Number) : [],
    est: Number(est),
  }));
  const byOid = new Map(all.map((r) => [r.oid, r]));
  const selected = (r: (typeof all)[number]) => pgTableSelected(selection, r.id, r.isPartition);
  const picked = all.filter(selected);
  for (const p of picked) {
    const ancestor = p.ancestors.map((o) => byOid.get(o)).find((a) => a && selected(a));
    if (ancestor) {
      throw new SourceSetupError(
        `${qualifiedName(p.id)} is a partition of ${
          qualifiedName(ancestor.id)
        }, which is selected too: PostgreSQL publishes each change of a partition once, as its ` +
          `partitioned table's. Select either the partitioned table (its stream gets the rows ` +
          `of every partition) or the partition alone, not both.`,
        qualifiedName(p.id),
      );
    }
  }
  return picked.map((p) => ({
    id: p.id,
    relOid: p.oid,
    relkind: p.relkind,
    estimatedRows: p.est,
  }));
}

/**
 * Reads the selected tables with columns and keys, in one round trip per catalog query.
 * `catalog` resolves the declared type of user types (domains, arrays of enums…); without
 * one the user types are loaded here.
 */
export async function readPgTables(
  client: pg.Client,
  database: string,
  selection: TableSelection,
  catalog?: PgTypeCatalog,
): Promise<PgTable[]> {
  const picked = await selectedPgRelations(client, database, selection);
  if (picked.length === 0) return [];
  if (!catalog) {
    catalog = new PgTypeCatalog();
    catalog.loadRows((await client.query(PG_TYPE_CATALOG_SQL)).rows);
  }
  const oids = picked.map((p) => p.relOid);
  const cols = await client.query({
    text: `SELECT a.attrelid::int8::text, a.attname, a.atttypid::int8::text,
                  format_type(a.atttypid, a.atttypmod), (NOT a.attnotnull)::text,
                  CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
                  a.attnum::text, a.attndims::text, (a.attgenerated <> '')::text
             FROM pg_attribute a
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attrelid, a.attnum`,
    values: [`{${oids.join(",")}}`],
    rowMode: "array",
  });
  const keys = await client.query({
    text:
      `SELECT i.indrelid::int8::text, i.indisprimary::text, array_to_string(i.indkey::int2[], ',')
             FROM pg_index i
            WHERE i.indrelid = ANY($1::oid[]) AND (i.indisprimary OR i.indisunique)
              AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid
            ORDER BY i.indrelid, i.indisprimary DESC, i.indexrelid`,
    values: [`{${oids.join(",")}}`],
    rowMode: "array",
  });
  const colsByRel = new Map<number, { col: ColumnSchema; oid: number; attnum: number }[]>();
  const generatedByRel = new Map<number, string[]>();
  for (
    const [rel, name, typOid, typName, nullable, def, attnum, dims, generated] of cols
      .rows as string[][]
  ) {
    if (generated === "true") {
      generatedByRel.set(Number(rel), [...generatedByRel.get(Number(rel)) ?? [], name]);
      continue;
    }
    const list = colsByRel.get(Number(rel)) ?? [];
    list.push({
      col: {
        name,
        sourceType: typName,
        connectType: pgConnectType(Number(typOid), catalog, Number(dims)),
        nullable: nullable === "true",
        keyPosition: null,
        defaultValue: def,
      },
      oid: Number(typOid),
      attnum: Number(attnum),
    });
    colsByRel.set(Number(rel), list);
  }
  const keysByRel = new Map<number, { primary: boolean; attnums: number[] }[]>();
  for (const [rel, primary, indkey] of keys.rows as string[][]) {
    const list = keysByRel.get(Number(rel)) ?? [];
    list.push({ primary: primary === "true", attnums: indkey.split(",").map(Number) });
    keysByRel.set(Number(rel), list);
  }
  return picked.map((p) => {
    let all = colsByRel.get(p.relOid) ?? [];
    const allowed = selection.columns(p.id);
    // A key over a generated column cannot identify rows in changes that lack the column.
    const candidates = (keysByRel.get(p.relOid) ?? [])
      .filter((k) => k.attnums.every((n) => all.some((c) => c.attnum === n)));
    // The primary key, else the first unique key whose columns are all NOT NULL.
    const key = candidates.find((k) =>
      k.primary ||
      k.attnums.every((n) => all.some((c) => c.attnum === n && !c.col.nullable))
    );
    if (allowed) {
      const keep = new Set([
        ...matchColumnNames(allowed, all.map((c) => c.col.name)).matched,
        ...(key ? key.attnums.map((n) => all.find((c) => c.attnum === n)!.col.name) : []),
      ]);
      all = all.filter((c) => keep.has(c.col.name));
    }
    const columns = all.map((c) => c.col);
    let keyColumns: number[];
    if (key) {
      keyColumns = key.attnums.map((n) => all.findIndex((c) => c.attnum === n));
      keyColumns.forEach((ci, pos) => {
        if (key.primary) columns[ci].keyPosition = pos + 1;
      });
    } else keyColumns = columns.map((_, i) => i);
    return {
      id: p.id,
      columns,
      keyColumns,
      hasKey: key !== undefined,
      relOid: p.relOid,
      typeOids: all.map((c) => c.oid),
      estimatedRows: p.estimatedRows,
      relkind: p.relkind,
      generatedColumns: generatedByRel.get(p.relOid) ?? [],
    };
  });
}
