import { failLoad, finishLoad, type Loaded, type LoadOptions } from "./load_config.ts";
import { formatKeyPath, type KeyPath } from "./key_path.ts";
import { isPlainMapping, readYaml } from "./read_yaml.ts";
import {
  check,
  Checker,
  custom,
  describeValue,
  INVALID,
  type Invalid,
  listOf,
  obj,
  oneOf,
  str,
} from "./schema.ts";

export type FilterObjectType = "TABLE" | "VIEW" | "QUERY";

export interface TableRule {
  /** Table name as written; `*` and `?` make it a pattern. */
  name: string;
  /** Columns to replicate, as written (ignoring case); absent means all. */
  columns?: string[];
  /** Where `columns` is written in the file (`allow[0].allow.ORDERS.allow`), for messages. */
  columnsKey?: string;
}

/** One `allow` entry: a catalog (database) and/or schema, and which of its tables. */
export interface FilterEntry {
  /** Absent matches any. `*` and `?` make it a pattern. */
  catalog?: string;
  schema?: string;
  types: FilterObjectType[];
  /** Absent means every table of the catalog/schema. */
  tables?: TableRule[];
}

export interface FilterConfig extends Loaded {
  entries: FilterEntry[];
}

// ---------------------------------------------------------------------------------------

const ROW_PREDICATE_IGNORED =
  "Replicant does not filter rows: every row of the table is replicated";

// Arcion's samples write `allow: ["FB, IG"]` for two columns; splitting on commas keeps them working.
const columnsSchema = custom<string[]>((value, path, c) => {
  const items = Array.isArray(value) ? value : [value];
  const columns: string[] = [];
  let failed = false;
  items.forEach((item, i) => {
    const at = Array.isArray(value) ? [...path, i] : path;
    if (typeof item !== "string" && typeof item !== "number") {
      c.problem(at, `must be a column name, got ${describeValue(item)}`);
      failed = true;
      return;
    }
    const text = typeof item === "number" ? c.raw(at) ?? String(item) : item;
    for (const part of text.split(",")) {
      const name = part.trim();
      if (name !== "" && !columns.includes(name)) columns.push(name);
    }
  });
  if (failed) return INVALID;
  if (columns.length === 0) {
    return c.problem(path, "lists no columns; leave `allow` out to replicate every column");
  }
  return columns;
});

const tableRuleSchema = obj({
  allow: columnsSchema,
}, {
  ignored: {
    conditions: ROW_PREDICATE_IGNORED,
    "src-conditions": ROW_PREDICATE_IGNORED,
    "dst-conditions": ROW_PREDICATE_IGNORED,
    "allow-update-any": "Replicant publishes every update",
    "allow-update-all": "Replicant publishes every update",
  },
});

/** `allow:` under an entry: `name: {allow: [columns]}` per table, or a plain list of names. */
const tablesSchema = custom<TableRule[]>((value, path, c) => {
  const rules: TableRule[] = [];
  let failed = false;
  const add = (name: string, config: unknown, at: KeyPath) => {
    if (name.trim() === "") {
      c.problem(at, "empty table name");
      failed = true;
      return;
    }
    const rule = check(tableRuleSchema, config, at, c);
    if (rule === INVALID) {
      failed = true;
      return;
    }
    rules.push(
      rule.allow
        ? { name, columns: rule.allow, columnsKey: formatKeyPath([...at, "allow"]) }
        : { name },
    );
  };
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      if (typeof item === "string") add(item, null, [...path, i]);
      else {
        c.problem([...path, i], `must be a table name, got ${describeValue(item)}`);
        failed = true;
      }
    });
  } else if (isPlainMapping(value)) {
    for (const [name, config] of Object.entries(value)) add(name, config, [...path, name]);
  } else {
    return c.problem(path, `must map table names to their settings, got ${describeValue(value)}`);
  }
  return failed ? INVALID : rules;
});

const entrySchema = obj({
  catalog: str({ nonEmpty: true }),
  schema: str({ nonEmpty: true }),
  types: listOf(oneOf(["TABLE", "VIEW", "QUERY"], { required: true }), {
    single: true,
    default: ["TABLE"],
  }),
  allow: tablesSchema,
}, {
  required: true,
  check(out, path, c) {
    const other = out.types.filter((t) => t !== "TABLE");
    if (other.length > 0) {
      c.warn(
        [...path, "types"],
        `${other.join(", ")} ignored: Replicant replicates tables only`,
      );
    }
  },
});

const entriesSchema = custom<FilterEntry[]>((value, path, c): FilterEntry[] | Invalid => {
  // Arcion's samples write `allow:` both as one entry and as a list of entries.
  const list = Array.isArray(value) ? value : [value];
  const entries: FilterEntry[] = [];
  let failed = false;
  list.forEach((item, i) => {
    const entry = check(entrySchema, item, Array.isArray(value) ? [...path, i] : path, c);
    if (entry === INVALID) failed = true;
    else {
      const { allow, ...rest } = entry;
      entries.push(allow ? { ...rest, tables: allow } : rest);
    }
  });
  return failed ? INVALID : entries;
}, { required: true });

const filterSchema = obj({ allow: entriesSchema });

/** Reads a filter file (conf/filter/*.yaml). */
export function loadFilter(path: string, options: LoadOptions = {}): FilterConfig {
  const doc = readYaml(path, options.env);
  const checker = new Checker(doc.rawScalars);
  const out = check(filterSchema, doc.data, [], checker);
  if (out === INVALID) failLoad(path, doc.problems, checker);
  return finishLoad(path, doc.problems, checker, { entries: out.allow });
}
