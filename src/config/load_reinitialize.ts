import { ConfigError, type ConfigProblem } from "./config_error.ts";
import { formatKeyPath } from "./key_path.ts";
import { isPlainMapping, readYaml } from "./read_yaml.ts";
import type { TableId } from "../core/table_schema.ts";

/**
 * A reinitialize file (`--reinitialize FILE` with `--resume`), Arcion's format: the tables of
 * one catalog (and schema) that join the id, leave it, or have their snapshot taken again,
 * while every other table keeps streaming from the checkpoint.
 *
 * ```yaml
 * catalog: pagila        # PostgreSQL: the database; MySQL/MariaDB: the database
 * schema: public         # PostgreSQL only
 * add-tables: [payment, inventory]
 * remove-tables: [rental]
 * reinit-tables: [customer]
 * refresh-schema-tables: [film]
 * ```
 */
export interface ReinitializeConfig {
  file: string;
  catalog: string;
  schema: string | null;
  add: string[];
  remove: string[];
  reinit: string[];
  /** Accepted: every run reads the tables' schemas at its start anyway. */
  refreshSchema: string[];
}

const LIST_KEYS = {
  "add-tables": "add",
  "remove-tables": "remove",
  "reinit-tables": "reinit",
  "refresh-schema-tables": "refreshSchema",
} as const;

/** Reads and checks a reinitialize file; every problem names the file and the key. */
export function loadReinitialize(file: string): ReinitializeConfig {
  const doc = readYaml(file);
  const problems: ConfigProblem[] = doc.problems.map((p) => ({
    file,
    key: formatKeyPath(p.path),
    message: p.message,
  }));
  const data = doc.data;
  if (data === null || !isPlainMapping(data)) {
    throw new ConfigError([...problems, {
      file,
      key: "",
      message: "expected a mapping with `catalog` and `add-tables`, `remove-tables` or " +
        "`reinit-tables`",
    }]);
  }
  const out: ReinitializeConfig = {
    file,
    catalog: "",
    schema: null,
    add: [],
    remove: [],
    reinit: [],
    refreshSchema: [],
  };
  const text = (key: string): string | null => {
    const v = data[key];
    if (v === undefined || v === null) return null;
    if (typeof v === "string" && v.trim() !== "") return v.trim();
    if (typeof v === "number") return String(v);
    problems.push({ file, key, message: `must be a name, got ${JSON.stringify(v)}` });
    return null;
  };
  const catalog = text("catalog");
  if (catalog === null && data.catalog === undefined) {
    problems.push({ file, key: "catalog", message: "is required: the tables' database" });
  }
  out.catalog = catalog ?? "";
  out.schema = text("schema");
  for (const key of Object.keys(data)) {
    if (key === "catalog" || key === "schema") continue;
    if (!(key in LIST_KEYS)) {
      problems.push({
        file,
        key,
        message: `unknown key; expected catalog, schema, ${Object.keys(LIST_KEYS).join(", ")}`,
      });
      continue;
    }
    const value = data[key];
    if (value === null || value === undefined) continue;
    // A list of names, or Arcion's filter-like mapping of names (their settings are not used).
    const names = Array.isArray(value)
      ? value
      : isPlainMapping(value)
      ? Object.keys(value)
      : [value];
    const list: string[] = [];
    names.forEach((n, i) => {
      if ((typeof n !== "string" || n.trim() === "") && typeof n !== "number") {
        problems.push({
          file,
          key: Array.isArray(value) ? `${key}.${i}` : key,
          message: `must be a table name, got ${JSON.stringify(n)}`,
        });
        return;
      }
      const name = String(n).trim();
      if (!list.includes(name)) list.push(name);
    });
    out[LIST_KEYS[key as keyof typeof LIST_KEYS]] = list;
  }
  const seen = new Map<string, string>();
  for (const key of ["add-tables", "remove-tables", "reinit-tables"] as const) {
    for (const name of out[LIST_KEYS[key]]) {
      const other = seen.get(name.toLowerCase());
      if (other !== undefined) {
        problems.push({ file, key, message: `table ${name} is listed under ${other} too` });
      } else seen.set(name.toLowerCase(), key);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}

/**
 * Tables named in a reinitialize file, as ids of the source they are for: PostgreSQL tables
 * live in the file's `schema` (default `public`); MySQL/MariaDB databases have no schema.
 */
export function reinitializeTableIds(
  file: ReinitializeConfig,
  names: string[],
  sourceType: string,
): TableId[] {
  const schema = sourceType === "POSTGRESQL" ? file.schema ?? "public" : null;
  return names.map((table) => ({ catalog: file.catalog, schema, table }));
}
