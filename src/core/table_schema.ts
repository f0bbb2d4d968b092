/** Where a table lives. PostgreSQL: catalog = database, schema = namespace. MySQL: schema is null. */
export interface TableId {
  catalog: string;
  schema: string | null;
  table: string;
}

export interface ColumnSchema {
  name: string;
  /** The source's own type name, e.g. `int8`, `varchar(20)`, `bigint unsigned`. */
  sourceType: string;
  /** Kafka-Connect-style type used in the entry's `schema` half. */
  connectType: "int16" | "int32" | "int64" | "float" | "double" | "boolean" | "string" | "bytes";
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

export function qualifiedName(id: TableId): string {
  return id.schema === null
    ? `${id.catalog}.${id.table}`
    : `${id.catalog}.${id.schema}.${id.table}`;
}
