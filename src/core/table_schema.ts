/** Where a table lives. PostgreSQL: catalog = database, schema = namespace. MySQL: schema is null. */
export interface TableId {
  catalog: string;
  schema: string | null;
  table: string;
}

/** A Kafka Connect primitive type, as the entries' `schema` half names it. */
export type ConnectPrimitive =
  | "int16"
  | "int32"
  | "int64"
  | "float"
  | "double"
  | "boolean"
  | "string"
  | "bytes";

/**
 * The declared type of a column's values: a primitive, an array of a declared type (elements
 * may be null), or a primitive with a logical name that says how to read it (Debezium's
 * `io.debezium.data.Json`: a string holding JSON text).
 */
export type ConnectType =
  | ConnectPrimitive
  | { type: "array"; items: ConnectType }
  | { type: ConnectPrimitive; name: string };

/** The declared type of JSON column values: a string of JSON text, named as Debezium does. */
export const JSON_TEXT_TYPE: ConnectType = { type: "string", name: "io.debezium.data.Json" };

export interface ColumnSchema {
  name: string;
  /** The source's own type name, e.g. `int8`, `varchar(20)`, `bigint unsigned`. */
  sourceType: string;
  /** Kafka-Connect-style type used in the entry's `schema` half: what the payload holds. */
  connectType: ConnectType;
  nullable: boolean;
  /** Position in the primary key (1-based) or null. */
  keyPosition: number | null;
  defaultValue: string | null;
}

export interface TableSchema {
  id: TableId;
  columns: ColumnSchema[];
  /** Indexes into `columns` of the key used for entry keys and keyset reads (PK, else unique key). */
  keyColumns: number[];
  /** True when keyColumns come from a primary key or a unique key over NOT NULL columns. */
  hasKey: boolean;
  /** Version in the schema dump stream; entries name it as `source.schema_version`. */
  version?: number;
}

/** The same table: every part of the name equal, as the source spells it. */
export function sameTableId(a: TableId, b: TableId): boolean {
  return a.catalog === b.catalog && a.schema === b.schema && a.table === b.table;
}

export function qualifiedName(id: TableId): string {
  return id.schema === null
    ? `${id.catalog}.${id.table}`
    : `${id.catalog}.${id.schema}.${id.table}`;
}

/** The Kafka Connect schema of a field of this declared type (`field` omitted for items). */
export function connectSchema(
  type: ConnectType,
  optional: boolean,
  field?: string,
): Record<string, unknown> {
  const named = typeof type === "string"
    ? { type }
    : type.type === "array"
    ? { type: "array", items: connectSchema(type.items, true) }
    : { type: type.type, name: type.name };
  return field === undefined ? { ...named, optional } : { ...named, optional, field };
}
