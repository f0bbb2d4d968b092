import type pg from "pg";
import type { ColumnSchema, TableId, TableSchema } from "../../core/table_schema.ts";
import type { TableSelection } from "../../pipeline/snapshot_source.ts";

/** A PostgreSQL table: the neutral schema plus what the reader needs to decode it. */
export interface PgTable extends TableSchema {
  relOid: number;
  typeOids: number[];
  estimatedRows: number;
}

const CONNECT_TYPES: Record<number, ColumnSchema["connectType"]> = {
  16: "boolean",
  17: "bytes",
  20: "int64",
  21: "int16",
  23: "int32",
  26: "int64",
  700: "float",
  701: "double",
};

/** Kafka-Connect-style type of a PostgreSQL type (by OID) for the entries' `schema` half. */
export function pgConnectType(typeOid: number): ColumnSchema["connectType"] {
  return CONNECT_TYPES[typeOid] ?? "string";
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

/** Reads the selected tables with columns and keys, in one round trip per catalog query. */
export async function readPgTables(
  client: pg.Client,
  database: string,
  selection: TableSelection,
): Promise<PgTable[]> {
  const rels = await client.query({
    text: `SELECT c.oid::int8::text, n.nspname, c.relname, greatest(c.reltuples, 0)::int8::text
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
            ORDER BY n.nspname, c.relname`,
    rowMode: "array",
  });
  const picked = (rels.rows as string[][])
    .map(([oid, schema, table, est]) => ({
      oid: Number(oid),
      id: { catalog: database, schema, table } as TableId,
      est: Number(est),
    }))
    .filter((r) => selection.table(r.id));
  if (picked.length === 0) return [];
  const oids = picked.map((p) => p.oid);
  const cols = await client.query({
    text: `SELECT a.attrelid::int8::text, a.attname, a.atttypid::int8::text,
                  format_type(a.atttypid, a.atttypmod), (NOT a.attnotnull)::text,
                  pg_get_expr(d.adbin, d.adrelid), a.attnum::text
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
  for (const [rel, name, typOid, typName, nullable, def, attnum] of cols.rows as string[][]) {
    const list = colsByRel.get(Number(rel)) ?? [];
    list.push({
      col: {
        name,
        sourceType: typName,
        connectType: pgConnectType(Number(typOid)),
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
    let all = colsByRel.get(p.oid) ?? [];
    const allowed = selection.columns(p.id);
    const candidates = keysByRel.get(p.oid) ?? [];
    // The primary key, else the first unique key whose columns are all NOT NULL.
    const key = candidates.find((k) =>
      k.primary ||
      k.attnums.every((n) => all.some((c) => c.attnum === n && !c.col.nullable))
    );
    if (allowed) {
      const keep = new Set([
        ...allowed,
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
      relOid: p.oid,
      typeOids: all.map((c) => c.oid),
      estimatedRows: p.est,
    };
  });
}
