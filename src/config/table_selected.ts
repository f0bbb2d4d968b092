import type { ConfigProblem } from "./config_error.ts";
import type { FilterConfig, FilterEntry, TableRule } from "./load_filter.ts";

/** A source table: MySQL/MariaDB have a catalog (database) and no schema. */
export interface TableRef {
  catalog?: string | null;
  schema?: string | null;
  table: string;
}

type Filter = Pick<FilterConfig, "entries"> | null | undefined;

// How well a filter name matches a source name. Arcion's samples spell names upper-case
// (CUSTOMERS) for tables PostgreSQL folds to lower-case, so case is ignored, but when two rules
// fit, the exact spelling wins over the case-folded one, which wins over a pattern.
const EXACT = 3;
const FOLDED = 2;
const PATTERN = 1;
const NONE = 0;

function matchRank(pattern: string, name: string | null | undefined): number {
  if (name === null || name === undefined) return NONE;
  if (pattern === name) return EXACT;
  if (/[*?]/.test(pattern)) return globRegExp(pattern).test(name) ? PATTERN : NONE;
  return pattern.toLowerCase() === name.toLowerCase() ? FOLDED : NONE;
}

/**
 * Process-wide by nature: a pattern compiles to the same RegExp for every run (both are
 * immutable), and there are as many as configured patterns.
 */
const globCache = new Map<string, RegExp>();

function globRegExp(pattern: string): RegExp {
  let re = globCache.get(pattern);
  if (!re) {
    const body = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*").replaceAll(
      "?",
      ".",
    );
    re = new RegExp(`^${body}$`, "i");
    globCache.set(pattern, re);
  }
  return re;
}

function entryCovers(entry: FilterEntry, ref: TableRef): boolean {
  if (!entry.types.includes("TABLE")) return false;
  if (entry.catalog !== undefined && matchRank(entry.catalog, ref.catalog) === NONE) return false;
  if (entry.schema !== undefined && matchRank(entry.schema, ref.schema) === NONE) return false;
  return true;
}

/** The rules of an entry that best match the table: none when the entry lists it not. */
function bestRules(entry: FilterEntry, table: string): TableRule[] | "all" {
  if (entry.tables === undefined) return "all";
  let best = NONE;
  let rules: TableRule[] = [];
  for (const rule of entry.tables) {
    const rank = matchRank(rule.name, table);
    if (rank === NONE || rank < best) continue;
    if (rank > best) {
      best = rank;
      rules = [];
    }
    rules.push(rule);
  }
  return rules;
}

/** Whether the filter selects the table; no filter selects every table. */
export function tableSelected(filter: Filter, ref: TableRef): boolean {
  if (!filter) return true;
  return filter.entries.some((entry) => {
    if (!entryCovers(entry, ref)) return false;
    const rules = bestRules(entry, ref.table);
    return rules === "all" || rules.length > 0;
  });
}

/**
 * The columns the filter selects in a table, as written in the filter, or null for all of
 * them (also when there is no filter). An unselected table has none: [].
 */
export function selectedColumns(filter: Filter, ref: TableRef): string[] | null {
  if (!filter) return null;
  const columns: string[] = [];
  let selected = false;
  for (const entry of filter.entries) {
    if (!entryCovers(entry, ref)) continue;
    const rules = bestRules(entry, ref.table);
    if (rules === "all") return null;
    for (const rule of rules) {
      if (rule.columns === undefined) return null;
      selected = true;
      for (const column of rule.columns) if (!columns.includes(column)) columns.push(column);
    }
  }
  return selected ? columns : [];
}

/** Whether a column of a table is replicated; column names compare ignoring case. */
export function columnSelected(filter: Filter, ref: TableRef, column: string): boolean {
  const columns = selectedColumns(filter, ref);
  if (columns === null) return true;
  return columns.some((c) => c === column || c.toLowerCase() === column.toLowerCase());
}

/**
 * The table's own column names that a filter's column list names, as table names are
 * matched: a name written with the column's exact spelling picks that column; otherwise it
 * picks the columns equal to it ignoring case (Arcion's samples write `FIRST_NAME` for
 * `first_name`). `unknown` lists the written names that match no column.
 */
export function matchColumnNames(
  written: readonly string[],
  names: readonly string[],
): { matched: Set<string>; unknown: string[] } {
  const matched = new Set<string>();
  const unknown: string[] = [];
  for (const w of written) {
    if (names.includes(w)) {
      matched.add(w);
      continue;
    }
    const folded = w.toLowerCase();
    const found = names.filter((n) => n.toLowerCase() === folded);
    if (found.length === 0) unknown.push(w);
    for (const n of found) matched.add(n);
  }
  return { matched, unknown };
}

/** A source table and all its column names, for checking a filter against the source. */
export interface TableColumns {
  id: TableRef;
  columns: readonly string[];
}

function tableName(ref: TableRef): string {
  return [ref.catalog, ref.schema, ref.table].filter((p) => p !== null && p !== undefined)
    .join(".");
}

/**
 * The filter's column names that name no column of the tables their rule selects, one
 * problem each (file, key of the column list, column, the tables and their columns). A rule
 * with a pattern (`audit_*`) may select tables that lack a column; a name is unknown when
 * none of them has it. Rules that select no existing table are not checked here.
 */
export function unknownFilterColumns(
  filter: Pick<FilterConfig, "entries" | "file">,
  tables: readonly TableColumns[],
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const entry of filter.entries) {
    for (const rule of entry.tables ?? []) {
      if (rule.columns === undefined) continue;
      const selected = tables.filter((t) => {
        if (!entryCovers(entry, t.id)) return false;
        const rules = bestRules(entry, t.id.table);
        return rules !== "all" && rules.includes(rule);
      });
      if (selected.length === 0) continue;
      for (const column of rule.columns) {
        if (selected.some((t) => matchColumnNames([column], t.columns).unknown.length === 0)) {
          continue;
        }
        const listed = selected.slice(0, 5).map((t) =>
          `${tableName(t.id)} (${t.columns.join(", ")})`
        ).join("; ") + (selected.length > 5 ? `; … ${selected.length - 5} more` : "");
        problems.push({
          file: filter.file ?? "filter",
          key: rule.columnsKey ?? "",
          message: selected.length === 1
            ? `column ${JSON.stringify(column)} is not a column of table ${listed}: ` +
              "correct or remove it"
            : `column ${JSON.stringify(column)} is in none of the ${selected.length} tables ` +
              `that ${JSON.stringify(rule.name)} selects: ${listed}; correct or remove it`,
        });
      }
    }
  }
  return problems;
}

/**
 * Whether the filter names the table itself (its exact or case-folded name in a table list),
 * rather than selecting it through a pattern or a whole schema.
 */
export function tableNamed(filter: Filter, ref: TableRef): boolean {
  if (!filter) return false;
  return filter.entries.some((entry) =>
    entryCovers(entry, ref) &&
    (entry.tables ?? []).some((rule) => matchRank(rule.name, ref.table) >= FOLDED)
  );
}
