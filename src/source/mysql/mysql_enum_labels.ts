/**
 * ENUM and SET labels of MySQL/MariaDB columns.
 *
 * information_schema (and SHOW CREATE TABLE) print a column's type in the server's system
 * character set, utf8mb3: a label character outside the Basic Multilingual Plane (an emoji)
 * comes out as `?`. The binlog carries only the label's number, so its text must come from
 * the definition: where a label printed by information_schema holds a `?`, the real labels
 * are read back through a temporary table of the column's exact type (`CREATE TEMPORARY
 * TABLE … AS SELECT col FROM t LIMIT 0`, one row per label, read over the utf8mb4
 * connection). A temporary table is private to the session and, with binlog_format=ROW, not
 * written to the binlog; it needs the CREATE TEMPORARY TABLES privilege.
 *
 * Labels are printed as `'…'` with `''` for a quote and `\\`, `\n`, `\r`, `\0`, `\Z` escapes,
 * and may contain commas.
 *
 * @module
 */

import process from "node:process";
import { type MysqlConnection, quoteIdent } from "./mysql_endpoint.ts";

const UNESCAPE: Record<string, string> = {
  n: "\n",
  r: "\r",
  "0": "\0",
  Z: "\x1a",
  t: "\t",
  b: "\b",
};

/** The labels of an `enum('…',…)` / `set('…',…)` type, or null for another type. */
export function parseEnumSetLabels(columnType: string): string[] | null {
  const m = /^\s*(enum|set)\s*\(/i.exec(columnType);
  if (!m) return null;
  const labels: string[] = [];
  let i = m[0].length;
  const s = columnType;
  while (i < s.length) {
    while (s[i] === " " || s[i] === ",") i++;
    if (s[i] === ")") return labels;
    if (s[i] !== "'") return null;
    i++;
    let label = "";
    for (;;) {
      if (i >= s.length) return null;
      const c = s[i];
      if (c === "'" && s[i + 1] === "'") {
        label += "'";
        i += 2;
      } else if (c === "'") {
        i++;
        break;
      } else if (c === "\\" && i + 1 < s.length) {
        label += UNESCAPE[s[i + 1]] ?? s[i + 1];
        i += 2;
      } else {
        label += c;
        i++;
      }
    }
    labels.push(label);
  }
  return null;
}

const ESCAPE: Record<string, string> = {
  "'": "''",
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\0": "\\0",
  "\x1a": "\\Z",
};

/** The type as information_schema prints it, with these labels: `enum('a','b''c')`. */
export function formatEnumSetType(kind: "enum" | "set", labels: readonly string[]): string {
  return `${kind}(${
    labels.map((l) => `'${[...l].map((c) => ESCAPE[c] ?? c).join("")}'`).join(",")
  })`;
}

/** A column whose labels are to be read back: its name, kind and number of labels. */
export interface LabelledColumn {
  name: string;
  kind: "enum" | "set";
  count: number;
}

/**
 * Process-wide by nature: the temporary tables are named by pid and this counter, so runs
 * in one process (on one server) never pick the same name.
 */
let probeCounter = 0;

/**
 * Reads the labels of a table's ENUM/SET columns from the server through a temporary table.
 * Returns the labels per column name, or the server's refusal as a message (the user lacks
 * CREATE TEMPORARY TABLES, typically).
 */
export async function readEnumSetLabels(
  conn: MysqlConnection,
  database: string,
  table: string,
  columns: readonly LabelledColumn[],
): Promise<Map<string, string[]> | { problem: string }> {
  // In the table's database: the session may have none selected.
  const probe = `${quoteIdent(database)}.${
    quoteIdent(`replicant_labels_${process.pid}_${++probeCounter}`)
  }`;
  const cols = columns.map((c) => quoteIdent(c.name));
  const rows = Math.max(...columns.map((c) => c.count));
  try {
    await conn.query(
      `CREATE TEMPORARY TABLE ${probe} AS SELECT ${cols.join(", ")} FROM ${quoteIdent(database)}.${
        quoteIdent(table)
      } LIMIT 0`,
    );
  } catch (err) {
    return { problem: (err as Error).message };
  }
  try {
    for (let from = 1; from <= rows; from += 1000) {
      const values: string[] = [];
      for (let k = from; k <= Math.min(rows, from + 999); k++) {
        values.push(
          `(${
            columns.map((c) =>
              c.kind === "enum"
                ? String(Math.min(k, c.count))
                : k <= c.count
                ? (1n << BigInt(k - 1)).toString()
                : "0"
            ).join(", ")
          })`,
        );
      }
      await conn.query(
        `INSERT INTO ${probe} (${cols.join(", ")}) VALUES ${values.join(", ")}`,
      );
    }
    const [found] = await conn.query({
      sql: `SELECT ${cols.map((c) => `CAST(${c} + 0 AS CHAR), ${c}`).join(", ")} FROM ${probe}`,
      rowsAsArray: true,
    }) as unknown as [unknown[][]];
    const out = new Map<string, string[]>();
    columns.forEach((c, ci) => {
      const labels: string[] = new Array(c.count);
      for (const row of found) {
        const n = BigInt(String(row[2 * ci]));
        if (n === 0n) continue;
        // ENUM: the number is the label's; SET: one bit per label here.
        const k = c.kind === "enum" ? Number(n) : n.toString(2).length;
        labels[k - 1] = text(row[2 * ci + 1]);
      }
      out.set(c.name, labels);
    });
    return out;
  } catch (err) {
    return { problem: (err as Error).message };
  } finally {
    await conn.query(`DROP TEMPORARY TABLE IF EXISTS ${probe}`).catch(() => {});
  }
}

function text(v: unknown): string {
  if (v instanceof Uint8Array) return new TextDecoder().decode(v);
  return v === null || v === undefined ? "" : String(v);
}

/**
 * An ENUM/SET column's default as information_schema prints it (MariaDB: `'? grin'` quoted,
 * MySQL: unquoted), with the printed labels replaced by the real ones.
 */
export function relabelDefault(
  printedDefault: string | null,
  kind: "enum" | "set",
  printed: readonly string[],
  real: readonly string[],
): string | null {
  if (printedDefault === null) return null;
  const quoted = printedDefault.length >= 2 && printedDefault.startsWith("'") &&
    printedDefault.endsWith("'");
  const value = quoted ? printedDefault.slice(1, -1).replaceAll("''", "'") : printedDefault;
  const map = (label: string) => {
    const i = printed.indexOf(label);
    return i >= 0 ? real[i] : label;
  };
  const out = kind === "enum" ? map(value) : value.split(",").map(map).join(",");
  return quoted ? `'${out.replaceAll("'", "''")}'` : out;
}
