import { matchColumnNames } from "../../config/table_selected.ts";
import type { ColumnSchema, TableId, TableSchema } from "../../core/table_schema.ts";
import type { TableSelection } from "../../ports/snapshot_source.ts";
import type { MysqlConnection } from "./mysql_endpoint.ts";
import type { SchemaDumpEntry } from "../../schema/schema_dump.ts";
import { type MysqlColumnType, mysqlColumnType, mysqlConnectType } from "./mysql_value_decoder.ts";
import { formatEnumSetType, readEnumSetLabels, relabelDefault } from "./mysql_enum_labels.ts";

/** A MySQL/MariaDB table: the neutral schema plus what readers need to decode it. */
export interface MysqlTable extends TableSchema {
  /** Per selected column, its 0-based position among all the table's columns (row images). */
  ordinals: number[];
  /** Per selected column, how its values decode. */
  types: MysqlColumnType[];
  /** Number of columns of the whole table, selected or not. */
  totalColumns: number;
  /** information_schema.TABLES.TABLE_ROWS (an estimate for InnoDB). */
  estimatedRows: number;
}

/** Databases that are never replicated. */
export const SYSTEM_DATABASES = ["mysql", "information_schema", "performance_schema", "sys"];

type Row = unknown[];

async function rowsOf(conn: MysqlConnection, sql: string, values: unknown[] = []): Promise<Row[]> {
  const [rows] = await conn.query({ sql, values, rowsAsArray: true }) as unknown as [Row[]];
  return rows;
}

const str = (v: unknown): string =>
  v === null || v === undefined
    ? ""
    : typeof v === "string"
    ? v
    : v instanceof Uint8Array
    ? new TextDecoder().decode(v)
    : String(v);

/**
 * Every database but the server's own, with the names of its base tables, selected or not:
 * what a user can choose from, for messages.
 */
export async function listMysqlDatabases(
  conn: MysqlConnection,
): Promise<{ database: string; tables: string[] }[]> {
  const rows = await rowsOf(
    conn,
    `SELECT s.SCHEMA_NAME, t.TABLE_NAME
       FROM information_schema.SCHEMATA s
       LEFT JOIN information_schema.TABLES t
         ON t.TABLE_SCHEMA = s.SCHEMA_NAME AND t.TABLE_TYPE = 'BASE TABLE'
      WHERE s.SCHEMA_NAME NOT IN (${SYSTEM_DATABASES.map(() => "?").join(", ")})
      ORDER BY s.SCHEMA_NAME, t.TABLE_NAME`,
    SYSTEM_DATABASES,
  );
  const groups = new Map<string, string[]>();
  for (const [db, table] of rows) {
    const names = groups.get(str(db)) ?? [];
    if (table !== null) names.push(str(table));
    groups.set(str(db), names);
  }
  return [...groups].map(([database, tables]) => ({ database, tables }));
}

/**
 * Reads the selected base tables with columns and keys. `database` limits the search to one
 * database; without it every non-system database is searched. `only` (database, table)
 * pairs narrow it further (the binlog source refreshing one table).
 */
export async function readMysqlTables(
  conn: MysqlConnection,
  selection: TableSelection,
  database?: string,
  only?: { database: string; table: string }[],
): Promise<MysqlTable[]> {
  const where: string[] = ["TABLE_TYPE = 'BASE TABLE'"];
  const values: unknown[] = [];
  if (database) {
    where.push("TABLE_SCHEMA = ?");
    values.push(database);
  } else {
    where.push(`TABLE_SCHEMA NOT IN (${SYSTEM_DATABASES.map(() => "?").join(", ")})`);
    values.push(...SYSTEM_DATABASES);
  }
  if (only && only.length > 0) {
    where.push(`(${only.map(() => "(TABLE_SCHEMA = ? AND TABLE_NAME = ?)").join(" OR ")})`);
    for (const o of only) values.push(o.database, o.table);
  }
  const tableRows = await rowsOf(
    conn,
    `SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES
      WHERE ${where.join(" AND ")} ORDER BY TABLE_SCHEMA, TABLE_NAME`,
    values,
  );
  const picked = tableRows
    .map(([db, table, est]) => ({
      id: { catalog: str(db), schema: null, table: str(table) } as TableId,
      est: Number(est),
    }))
    .filter((t) => selection.table(t.id));
  if (picked.length === 0) return [];
  const dbs = [...new Set(picked.map((p) => p.id.catalog))];
  const inDbs = `TABLE_SCHEMA IN (${dbs.map(() => "?").join(", ")})`;
  const colRows = await rowsOf(
    conn,
    `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, DATA_TYPE, COLUMN_TYPE,
            IS_NULLABLE, COLUMN_DEFAULT, DATETIME_PRECISION
       FROM information_schema.COLUMNS WHERE ${inDbs}
      ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION`,
    dbs,
  );
  const keyRows = await rowsOf(
    conn,
    `SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, COLUMN_NAME
       FROM information_schema.STATISTICS WHERE ${inDbs} AND NON_UNIQUE = 0
      ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX`,
    dbs,
  );
  // MariaDB's JSON is LONGTEXT with a CHECK (json_valid(`col`)); MySQL has a real JSON type.
  const jsonCols = new Set<string>();
  try {
    const checks = await rowsOf(
      conn,
      `SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
        WHERE CONSTRAINT_SCHEMA IN (${dbs.map(() => "?").join(", ")})`,
      dbs,
    );
    for (const [db, table, clause] of checks) {
      const m = /^json_valid\(`((?:[^`]|``)+)`\)$/i.exec(str(clause).trim());
      if (m) jsonCols.add(`${str(db)}\u0000${str(table)}\u0000${m[1].replaceAll("``", "`")}`);
    }
  } catch {
    // MySQL before 8.0.16 has no CHECK_CONSTRAINTS (nor MariaDB-style JSON columns).
  }

  const key = (db: unknown, table: unknown) => `${str(db)}\u0000${str(table)}`;
  interface Col {
    col: ColumnSchema;
    type: MysqlColumnType;
    ordinal: number;
  }
  const colsByTable = new Map<string, Col[]>();
  for (const [db, table, name, ordinal, dataType, columnType, nullable, def, dtp] of colRows) {
    const k = key(db, table);
    const list = colsByTable.get(k) ?? [];
    const isJson = jsonCols.has(`${k}\u0000${str(name)}`);
    const type = mysqlColumnType(
      str(dataType),
      str(columnType),
      isJson,
      dtp === null || dtp === undefined ? null : Number(dtp),
    );
    list.push({
      col: {
        name: str(name),
        sourceType: isJson ? "json" : str(columnType),
        connectType: mysqlConnectType(type),
        nullable: str(nullable) === "YES",
        keyPosition: null,
        defaultValue: def === null || def === undefined ? null : str(def),
      },
      type,
      ordinal: Number(ordinal) - 1,
    });
    colsByTable.set(k, list);
  }
  await readLabels(conn, colsByTable);
  const keysByTable = new Map<string, { primary: boolean; columns: string[] }[]>();
  for (const [db, table, index, column] of keyRows) {
    const k = key(db, table);
    const list = keysByTable.get(k) ?? [];
    let last = list[list.length - 1];
    if (!last || (last as { name?: string }).name !== str(index)) {
      last = { primary: str(index) === "PRIMARY", columns: [] };
      (last as { name?: string }).name = str(index);
      list.push(last);
    }
    last.columns.push(str(column));
    keysByTable.set(k, list);
  }

  return picked.map((p) => {
    const k = key(p.id.catalog, p.id.table);
    const everything = colsByTable.get(k) ?? [];
    let all = everything;
    const candidates = keysByTable.get(k) ?? [];
    // The primary key, else the first unique key whose columns are all NOT NULL.
    const chosen = candidates.find((c) =>
      c.primary ||
      c.columns.every((n) => all.some((col) => col.col.name === n && !col.col.nullable))
    );
    const allowed = selection.columns(p.id);
    if (allowed) {
      const names = all.map((c) => c.col.name);
      const keep = new Set([
        ...matchColumnNames(allowed, names).matched,
        ...(chosen ? chosen.columns : []),
      ]);
      all = all.filter((c) => keep.has(c.col.name));
    }
    const columns = all.map((c) => ({ ...c.col }));
    let keyColumns: number[];
    if (chosen) {
      keyColumns = chosen.columns.map((n) => all.findIndex((c) => c.col.name === n));
      if (chosen.primary) keyColumns.forEach((ci, pos) => columns[ci].keyPosition = pos + 1);
    } else keyColumns = columns.map((_, i) => i);
    return {
      id: p.id,
      columns,
      keyColumns,
      hasKey: chosen !== undefined,
      ordinals: all.map((c) => c.ordinal),
      types: all.map((c) => c.type),
      totalColumns: everything.length,
      estimatedRows: p.est,
    };
  });
}

/**
 * ENUM/SET labels information_schema printed with a `?` (maybe a character it cannot show)
 * are read back from the server (mysql_enum_labels.ts); the column's type then names the
 * real labels. When they cannot be read, the type keeps the printed labels and
 * `labelsProblem` says why.
 */
async function readLabels(
  conn: MysqlConnection,
  colsByTable: Map<string, { col: ColumnSchema; type: MysqlColumnType }[]>,
): Promise<void> {
  for (const [k, cols] of colsByTable) {
    const doubtful = cols.filter((c) => c.type.labels?.some((l) => l.includes("?")));
    if (doubtful.length === 0) continue;
    const [database, table] = k.split("\u0000");
    const found = await readEnumSetLabels(
      conn,
      database,
      table,
      doubtful.map((c) => ({
        name: c.col.name,
        kind: c.type.kind as "enum" | "set",
        count: c.type.labels!.length,
      })),
    );
    for (const c of doubtful) {
      if (!(found instanceof Map)) {
        c.type.labelsProblem = found.problem;
        continue;
      }
      const labels = found.get(c.col.name)!;
      const kind = c.type.kind as "enum" | "set";
      c.col.defaultValue = relabelDefault(c.col.defaultValue, kind, c.type.labels!, labels);
      c.type.labels = labels;
      c.col.sourceType = formatEnumSetType(kind, labels);
      c.type.columnType = c.col.sourceType.toLowerCase();
    }
  }
}

/**
 * A table rebuilt from a schema dump version, to decode row images written
 * before a later DDL. Null when the version has no source ordinals (written by an older
 * Replicant).
 */
export function mysqlTableFromDump(e: SchemaDumpEntry): MysqlTable | null {
  if (!e.sourceOrdinals || e.sourceColumns === undefined) return null;
  const columns: ColumnSchema[] = e.columns.map((c) => ({
    name: c.name,
    sourceType: c.type,
    connectType: c.normalized_type,
    nullable: c.nullable,
    keyPosition: c.primary_key_position,
    defaultValue: c.default,
  }));
  const pk = columns
    .map((c, i) => [c.keyPosition, i] as const)
    .filter(([p]) => p !== null)
    .sort(([a], [b]) => a! - b!)
    .map(([, i]) => i);
  const unique = e.uniqueKeys[0]?.map((n) => columns.findIndex((c) => c.name === n)) ?? [];
  const keyColumns = pk.length > 0 ? pk : unique.length > 0 ? unique : columns.map((_, i) => i);
  return {
    id: { ...e.id },
    columns,
    keyColumns,
    hasKey: pk.length > 0 || unique.length > 0,
    ordinals: e.sourceOrdinals,
    types: columns.map((c) => {
      const t = c.sourceType.toLowerCase();
      const dataType = /^[a-z]+(?: precision)?/.exec(t)?.[0] ?? t;
      return mysqlColumnType(dataType, c.sourceType, t === "json");
    }),
    totalColumns: e.sourceColumns,
    estimatedRows: 0,
  };
}

/** `<database>.<table>` key of a table, as used by the binlog source and positions. */
export function mysqlTableKey(database: string, table: string): string {
  return `${database}.${table}`;
}
