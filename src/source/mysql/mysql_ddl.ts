/**
 * Which tables a MySQL/MariaDB DDL statement from a binlog query event changes. Pure.
 * Enough of the grammar to name the tables (CREATE/ALTER/DROP/RENAME/TRUNCATE TABLE and
 * CREATE/DROP INDEX); the statement itself is what the DDL stream shows.
 *
 * @module
 */

export type DdlKind = "create" | "alter" | "drop" | "truncate";

export interface DdlTarget {
  kind: DdlKind;
  database: string | null;
  table: string;
  /** A create that is the new name of a rename: the table arrives with its rows. */
  renamed?: boolean;
}

const NAME = String.raw`(?:\x60(?:[^\x60]|\x60\x60)+\x60|[^\s.\x60,;()]+)`;
const QNAME = String.raw`${NAME}(?:\s*\.\s*${NAME})?`;

function splitName(
  q: string,
  defaultDb: string | null,
): { database: string | null; table: string } {
  const parts: string[] = [];
  const re = new RegExp(NAME, "g");
  for (const m of q.matchAll(re)) parts.push(unquote(m[0]));
  return parts.length > 1
    ? { database: parts[0], table: parts[1] }
    : { database: defaultDb, table: parts[0] };
}

function unquote(part: string): string {
  return part.startsWith("`") ? part.slice(1, -1).replaceAll("``", "`") : part;
}

/** Statement text without leading comments and executable-comment markers. */
function normalize(statement: string): string {
  return statement
    .replace(/\/\*(?!!)[\s\S]*?\*\//g, " ")
    .replace(/\/\*!\d*\s?/g, "")
    .replace(/\*\//g, " ")
    .trim();
}

/**
 * The tables a DDL statement creates, alters, drops or truncates, in order (a rename is a
 * drop of the old name and a create of the new one). Null when the statement is not DDL on
 * tables (e.g. CREATE VIEW, GRANT) or cannot be read.
 */
export function ddlTargets(statement: string, defaultDb: string | null): DdlTarget[] | null {
  const s = normalize(statement);
  const one = (kind: DdlKind, q: string): DdlTarget => ({ kind, ...splitName(q, defaultDb) });
  let m = new RegExp(
    String
      .raw`^CREATE\s+(?:OR\s+REPLACE\s+)?(TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(${QNAME})`,
    "i",
  ).exec(s);
  if (m) return m[1] ? [] : [one("create", m[2])];
  m = new RegExp(
    String.raw`^ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?(${QNAME})`,
    "i",
  ).exec(s);
  if (m) {
    const target = one("alter", m[1]);
    const renamed = new RegExp(
      String.raw`\bRENAME\s+(?:TO\s+|AS\s+)?(?!COLUMN\b|INDEX\b|KEY\b)(${QNAME})\s*$`,
      "i",
    )
      .exec(s.slice(m[0].length));
    if (!renamed) return [target];
    return [{ ...target, kind: "drop" }, { ...one("create", renamed[1]), renamed: true }];
  }
  m = new RegExp(String.raw`^DROP\s+(TEMPORARY\s+)?TABLES?\s+(?:IF\s+EXISTS\s+)?`, "i").exec(s);
  if (m) {
    if (m[1]) return [];
    const list = s.slice(m[0].length).replace(/\s+(?:RESTRICT|CASCADE)\s*$/i, "");
    return [...list.matchAll(new RegExp(QNAME, "g"))].map((n) => one("drop", n[0]));
  }
  m = /^RENAME\s+TABLES?\s+/i.exec(s);
  if (m) {
    const out: DdlTarget[] = [];
    const pair = new RegExp(String.raw`(${QNAME})\s+TO\s+(${QNAME})`, "gi");
    for (const p of s.slice(m[0].length).matchAll(pair)) {
      out.push(one("drop", p[1]), { ...one("create", p[2]), renamed: true });
    }
    return out.length > 0 ? out : null;
  }
  m = new RegExp(String.raw`^TRUNCATE\s+(?:TABLE\s+)?(${QNAME})`, "i").exec(s);
  if (m) return [one("truncate", m[1])];
  m = new RegExp(
    String
      .raw`^(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:UNIQUE\s+|FULLTEXT\s+|SPATIAL\s+)?INDEX|DROP\s+INDEX)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?${NAME}\s+(?:USING\s+\w+\s+)?ON\s+(${QNAME})`,
    "i",
  ).exec(s);
  if (m) return [one("alter", m[1])];
  return null;
}
