/**
 * What a MySQL/MariaDB source needs for each mode, checked the way a run uses it
 * (test-connection): binary log settings and a usable client server id for realtime; the
 * privileges each mode needs at the scope it needs them: SELECT on each table the run would
 * read (tried on the table itself), REPLICATION SLAVE and REPLICATION CLIENT (MariaDB: BINLOG
 * MONITOR) for realtime, RELOAD for MySQL's snapshot lock, INSERT and UPDATE (and CREATE) on
 * the heartbeat table, CREATE TEMPORARY TABLES where ENUM/SET labels must be read back; and
 * foreign keys whose cascades the binlog does not carry.
 *
 * @module
 */

import { failed, passed, type PrerequisiteCheck, warning } from "../../core/prerequisite_check.ts";
import type { TableId } from "../../core/table_schema.ts";
import type { TableSelection } from "../../ports/snapshot_source.ts";
import {
  type MysqlConnection,
  type MysqlEndpoint,
  pickServerId,
  quoteIdent,
} from "./mysql_endpoint.ts";
import { SYSTEM_DATABASES } from "./mysql_schema_reader.ts";
import { cascadingForeignKeys, type CascadingKey } from "./mysql_preflight.ts";

export type SourceMode = "SNAPSHOT" | "REALTIME" | "FULL";

export interface MysqlCheckOptions {
  mode: SourceMode;
  selection: TableSelection;
  /** The heartbeat table of realtime, when enabled. */
  heartbeat: { database: string; table: string } | null;
}

/** One `GRANT … ON … TO …` line: its privileges and their scope (`*` for any). */
interface Grant {
  privileges: Set<string>;
  database: string;
  table: string;
}

function unquote(name: string): string {
  return name.startsWith("`") ? name.slice(1, -1).replaceAll("``", "`") : name;
}

/** `SHOW GRANTS` lines → grants; column-level privileges (`SELECT (a)`) are left out. */
export function parseGrants(lines: readonly string[]): Grant[] {
  const out: Grant[] = [];
  for (const line of lines) {
    const m =
      /^GRANT\s+(.+?)\s+ON\s+(?:TABLE\s+)?((?:`(?:[^`]|``)*`|[^\s.`]+|\*)\.(?:`(?:[^`]|``)*`|[^\s`]+|\*))\s+TO\s/i
        .exec(line.trim());
    if (!m) continue;
    const privileges = new Set<string>();
    let depth = 0, part = "";
    for (const ch of m[1] + ",") {
      if (ch === "(") depth++;
      if (ch === ")") depth--;
      if (ch === "," && depth === 0) {
        const p = part.trim().toUpperCase().replace(/\s+/g, " ");
        if (!p.includes("(")) privileges.add(p === "ALL" ? "ALL PRIVILEGES" : p);
        part = "";
      } else part += ch;
    }
    const [, db, table] = /^((?:`(?:[^`]|``)*`|[^.]+))\.(.+)$/.exec(m[2])!;
    out.push({ privileges, database: unquote(db), table: unquote(table) });
  }
  return out;
}

/** A grant's database name, which may hold the `%` and `_` wildcards (`\_` a literal `_`). */
function databaseMatches(pattern: string, name: string): boolean {
  if (pattern === "*") return true;
  const re = pattern.replace(
    /\\_|\\%|[%_]|[.*+?^${}()|[\]\\]/g,
    (c) => c === "%" ? ".*" : c === "_" ? "." : c.length === 2 ? c[1] : "\\" + c,
  );
  return new RegExp(`^${re}$`).test(name);
}

/**
 * Whether the grants give `privilege` on `database`.`table` (or at global scope when
 * `database` is null). MariaDB 10.5+'s BINLOG MONITOR counts as REPLICATION CLIENT.
 */
export function granted(
  grants: readonly Grant[],
  privilege: string,
  database: string | null = null,
  table: string | null = null,
): boolean {
  const names = privilege === "REPLICATION CLIENT"
    ? ["REPLICATION CLIENT", "BINLOG MONITOR", "SUPER"]
    : [privilege];
  return grants.some((g) => {
    if (!g.privileges.has("ALL PRIVILEGES") && !names.some((n) => g.privileges.has(n))) {
      return false;
    }
    if (g.database === "*") return true;
    if (database === null || !databaseMatches(g.database, database)) return false;
    return g.table === "*" || (table !== null && g.table === table);
  });
}

const DENIED = /denied|privilege/i;

/** Whether the user may read the binlog position (MySQL 8.4 renamed the statement). */
async function mayShowMasterStatus(conn: MysqlConnection): Promise<boolean> {
  for (const sql of ["SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"]) {
    try {
      await conn.query(sql);
      return true;
    } catch (err) {
      if (DENIED.test((err as Error).message)) return false;
    }
  }
  return true;
}

/** The tables a run would select (all the user can see, the selection's), without reading them. */
async function selectedTables(
  conn: MysqlConnection,
  selection: TableSelection,
  database?: string,
): Promise<TableId[]> {
  const [rows] = await conn.query({
    sql: `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
           WHERE TABLE_TYPE = 'BASE TABLE' AND ${
      database ? "TABLE_SCHEMA = ?" : `TABLE_SCHEMA NOT IN (${SYSTEM_DATABASES.map(() => "?")})`
    } ORDER BY TABLE_SCHEMA, TABLE_NAME`,
    values: database ? [database] : SYSTEM_DATABASES,
    rowsAsArray: true,
  }) as unknown as [unknown[][]];
  return rows.map(([db, t]) => ({ catalog: String(db), schema: null, table: String(t) }))
    .filter((id) => selection.table(id));
}

const name = (id: { catalog: string; table: string }) =>
  `${quoteIdent(id.catalog)}.${quoteIdent(id.table)}`;

/** The checks of a MySQL/MariaDB source for `mode`, each with what to change. */
export async function checkMysqlSource(
  conn: MysqlConnection,
  endpoint: MysqlEndpoint,
  o: MysqlCheckOptions,
): Promise<PrerequisiteCheck[]> {
  const checks: PrerequisiteCheck[] = [];
  const realtime = o.mode !== "SNAPSHOT";
  const snapshot = o.mode !== "REALTIME";
  const [vars] = await conn.query(
    "SELECT @@GLOBAL.log_bin AS log_bin, @@GLOBAL.binlog_format AS binlog_format, " +
      "@@GLOBAL.binlog_row_image AS binlog_row_image, @@GLOBAL.server_id AS server_id, " +
      "VERSION() AS version",
  ) as unknown as [Record<string, unknown>[]];
  const v = vars[0];
  const isMariadb = /mariadb/i.test(String(v.version));
  const user = JSON.stringify(endpoint.user);
  const grantTo = `${user}@'%'`;

  if (realtime) {
    const on = String(v.log_bin) === "1" || String(v.log_bin).toUpperCase() === "ON";
    checks.push(
      on ? passed("log_bin", "ON") : failed(
        "log_bin",
        "the binary log is off: start the server with `log-bin` (e.g. `log-bin=binlog` in " +
          "my.cnf [mysqld]) and restart it",
        "start the server with `log-bin` (e.g. `log-bin=binlog` in my.cnf [mysqld]) and restart it",
      ),
    );
    for (const [key, want] of [["binlog_format", "ROW"], ["binlog_row_image", "FULL"]]) {
      const hint =
        `run SET GLOBAL ${key} = '${want}' (and \`${key}=${want}\` in my.cnf to keep it)`;
      checks.push(
        String(v[key]).toUpperCase() === want
          ? passed(key, want)
          : failed(key, `${key} is ${v[key]}: ${hint}`, hint),
      );
    }
    const own = Number(v.server_id);
    try {
      const id = pickServerId(endpoint.serverIds, own);
      const clash = endpoint.serverIds.includes(own);
      checks.push(
        clash
          ? warning(
            "slave-server-ids",
            `slave-server-ids lists ${own}, the server's own server_id; Replicant uses ${id}: ` +
              `remove ${own} from ${endpoint.origin}`,
            `remove ${own} from ${endpoint.origin}`,
          )
          : passed("slave-server-ids", `binlog client id ${id} (the server's is ${own})`),
      );
    } catch (err) {
      const hint = `choose another id in ${endpoint.origin}`;
      checks.push(failed("slave-server-ids", `${(err as Error).message}: ${hint}`, hint));
    }
  }

  let grants: Grant[] = [];
  try {
    const [rows] = await conn.query({ sql: "SHOW GRANTS", rowsAsArray: true }) as unknown as [
      unknown[][],
    ];
    grants = parseGrants(rows.map((r) => String(r[0])));
  } catch (err) {
    checks.push(
      failed("grants", `cannot read the grants (SHOW GRANTS): ${(err as Error).message}`),
    );
  }

  // Global privileges: REPLICATION SLAVE reads the binlog; SHOW MASTER STATUS (REPLICATION
  // CLIENT / BINLOG MONITOR) gives realtime's start, and MySQL's snapshot position.
  const globalNeeds: string[] = [];
  if (realtime && !granted(grants, "REPLICATION SLAVE")) globalNeeds.push("REPLICATION SLAVE");
  if ((realtime || (snapshot && !isMariadb)) && !(await mayShowMasterStatus(conn))) {
    globalNeeds.push(isMariadb ? "BINLOG MONITOR" : "REPLICATION CLIENT");
  }
  if (snapshot && !isMariadb && !granted(grants, "RELOAD")) globalNeeds.push("RELOAD");
  if (realtime || (snapshot && !isMariadb)) {
    const what = [
      ...(realtime ? ["reading the binlog"] : []),
      ...(snapshot && !isMariadb ? ["the snapshot's brief FLUSH TABLES WITH READ LOCK"] : []),
    ].join(" and ");
    const may = what.replace("reading", "read").replace("the snapshot's", "take the snapshot's");
    const hint = `run GRANT ${globalNeeds.join(", ")} ON *.* TO ${grantTo}`;
    checks.push(
      globalNeeds.length === 0 ? passed("replication privileges", `the user may ${may}`) : failed(
        "replication privileges",
        `user ${user} lacks ${globalNeeds.join(", ")} (needed for ${what}): ${hint}`,
        hint,
      ),
    );
  }

  // SELECT on every table the run would read: tried on each.
  const tables = await selectedTables(conn, o.selection, endpoint.database);
  if (tables.length === 0) {
    // MySQL hides the tables a user may not read, so "none visible" is either an empty
    // selection or missing SELECT rights; a run stops on an empty selection by itself.
    checks.push(
      warning(
        "table privileges",
        `user ${user} sees no table the filter selects (yet): check the filter's database and ` +
          "table names, or grant SELECT on the tables to replicate",
        "check the filter's names, or grant SELECT on the tables to replicate",
      ),
    );
  } else {
    const denied: TableId[] = [];
    for (const t of tables) {
      try {
        await conn.query(`SELECT 1 FROM ${name(t)} LIMIT 0`);
      } catch (err) {
        if (DENIED.test((err as Error).message)) denied.push(t);
        else throw err;
      }
    }
    const hint = denied.slice(0, 5).map((t) => `GRANT SELECT ON ${name(t)} TO ${grantTo}`)
      .join("; ") + (denied.length > 5 ? `; … (${denied.length} tables)` : "");
    checks.push(
      denied.length === 0
        ? passed("table privileges", `SELECT on the ${tables.length} selected table(s)`)
        : failed(
          "table privileges",
          `user ${user} may not read ${denied.length} of the ${tables.length} selected ` +
            `table(s): ${hint}`,
          hint,
        ),
    );
  }

  if (realtime && o.heartbeat) {
    const hb = o.heartbeat;
    const [found] = await conn.query({
      sql: "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
      values: [hb.database, hb.table],
      rowsAsArray: true,
    }) as unknown as [unknown[][]];
    const needs = ["INSERT", "UPDATE", ...(found.length === 0 ? ["CREATE"] : [])]
      .filter((p) => !granted(grants, p, hb.database, hb.table));
    const target = found.length === 0 ? `${quoteIdent(hb.database)}.*` : name(
      { catalog: hb.database, table: hb.table },
    );
    const hint = `run GRANT ${needs.join(", ")} ON ${target} TO ${grantTo}`;
    checks.push(
      needs.length === 0
        ? passed(
          "heartbeat privileges",
          `${name({ catalog: hb.database, table: hb.table })} ${
            found.length === 0 ? "can be created and " : ""
          }written`,
        )
        // A run goes on without its heartbeat (and says so): a warning, as in the run.
        : warning(
          "heartbeat privileges",
          `user ${user} lacks ${needs.join(", ")} for the heartbeat table ${
            name({ catalog: hb.database, table: hb.table })
          }${
            found.length === 0 ? " (missing: Replicant creates it)" : ""
          }; without it the checkpoint moves only with other writes: ${hint}`,
          hint,
        ),
    );
  }

  if (realtime) {
    checks.push(...await labelChecks(conn, tables, grants, user, grantTo));
    const cascades = await cascadingForeignKeys(conn, tables);
    if (cascades.length > 0) checks.push(cascadeWarning(cascades));
  }
  return checks;
}

/** ENUM/SET labels information_schema prints with a `?` are read back (CREATE TEMPORARY TABLES). */
async function labelChecks(
  conn: MysqlConnection,
  tables: TableId[],
  grants: Grant[],
  user: string,
  grantTo: string,
): Promise<PrerequisiteCheck[]> {
  if (tables.length === 0) return [];
  const dbs = [...new Set(tables.map((t) => t.catalog))];
  const [rows] = await conn.query({
    sql: `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS
           WHERE TABLE_SCHEMA IN (${dbs.map(() => "?")}) AND DATA_TYPE IN ('enum', 'set')
             AND COLUMN_TYPE LIKE '%?%'`,
    values: dbs,
    rowsAsArray: true,
  }) as unknown as [unknown[][]];
  const cols = rows.filter(([db, t]) => tables.some((x) => x.catalog === db && x.table === t));
  if (cols.length === 0) return [];
  const missing = [...new Set(cols.map(([db]) => String(db)))]
    .filter((db) => !granted(grants, "CREATE TEMPORARY TABLES", db));
  const listed = cols.slice(0, 5).map(([db, t, c]) => `${db}.${t}.${c}`).join(", ");
  const hint = missing.map((db) =>
    `GRANT CREATE TEMPORARY TABLES ON ${quoteIdent(db)}.* TO ${grantTo}`
  )
    .join("; ");
  return [
    missing.length === 0
      ? passed(
        "ENUM/SET label privileges",
        `labels of ${listed} are read back through a temporary table`,
      )
      : failed(
        "ENUM/SET label privileges",
        `information_schema prints labels of ${listed} with '?' (characters it cannot show); ` +
          `user ${user} may not read them back: run ${hint}`,
        `run ${hint}`,
      ),
  ];
}

/** The warning about foreign keys whose cascades never reach the binlog. */
export function cascadeWarning(cascades: readonly CascadingKey[]): PrerequisiteCheck {
  return warning("foreign-key cascades", cascadeMessage(cascades));
}

/** What a run and test-connection say about cascading foreign keys of selected tables. */
export function cascadeMessage(cascades: readonly CascadingKey[]): string {
  const listed =
    cascades.slice(0, 5).map((c) =>
      `${c.child.catalog}.${c.child.table} (${c.constraint}: ON ${
        c.rules.join(", ON ")
      } from ${c.parent.catalog}.${c.parent.table})`
    ).join("; ") + (cascades.length > 5 ? `; … ${cascades.length - 5} more` : "");
  return `foreign keys that change child rows by cascade: ${listed}. The server applies ` +
    "cascades inside the storage engine without writing them to the binlog: those child " +
    "row changes never reach their streams (the parent's change does)";
}
