import { stringify } from "yaml";
import type { DumpColumn } from "./schema_dump.ts";
import type { TableId } from "../core/table_schema.ts";

/** One table of schemas.yaml: the dump entry's content, or a source table (no version). */
export interface SchemasYamlTable {
  id: TableId;
  version: number | null;
  columns: DumpColumn[];
  uniqueKeys: string[][];
}

/**
 * schemas.yaml: a `tables` list, each with catalog, schema (MySQL: none), table, version,
 * columns (name, type, normalized-type, nullable, default, primary-key-position) and
 * unique-keys, in kebab-case like Arcion's configuration files. Pure.
 */
export function renderSchemasYaml(tables: SchemasYamlTable[], origin: string): string {
  const doc = {
    tables: tables.map((t) => ({
      catalog: t.id.catalog,
      ...(t.id.schema === null ? {} : { schema: t.id.schema }),
      table: t.id.table,
      ...(t.version === null ? {} : { version: t.version }),
      columns: t.columns.map((c) => ({
        name: c.name,
        type: c.type,
        "normalized-type": c.normalized_type,
        nullable: c.nullable,
        default: c.default,
        "primary-key-position": c.primary_key_position,
      })),
      "unique-keys": t.uniqueKeys,
    })),
  };
  return `# Written by replicant fetch-schemas from ${origin}\n` +
    stringify(doc, { lineWidth: 0 });
}
