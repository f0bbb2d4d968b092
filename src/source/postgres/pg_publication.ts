/**
 * What the publication of a replication contains, and what it does to the source
 * application. pgoutput streams only the changes of tables in the publication, and
 * PostgreSQL makes every UPDATE and DELETE fail on a published table that has no replica
 * identity; so the publication holds exactly the selected tables (never `FOR ALL TABLES`),
 * a selected table without a replica identity is refused before anything is created, and the
 * content is brought in step with the filter whenever a run starts and while it streams.
 *
 * Partitioned tables are published with `publish_via_partition_root = true`: PostgreSQL then
 * sends the changes of every partition as changes of the partitioned table, a row moved to
 * another partition included. In that mode it does not send a TRUNCATE of a single
 * partition; PostgreSQL never logs rows that enter or leave with ATTACH, DETACH or DROP of a
 * partition (see docs/postgresql.md).
 *
 * Tables added to an existing publication are announced in the same transaction with a
 * transactional logical message (prefix {@link PUBLICATION_MESSAGE_PREFIX}), so the stream
 * says exactly where their changes start, and their current rows can be copied there.
 *
 * @module
 */

import type pg from "pg";
import { OwnershipError, SourceError, SourceSetupError } from "../../core/errors.ts";
import { qualifiedName, type TableId } from "../../core/table_schema.ts";
import { quoteIdent } from "./pg_endpoint.ts";
import {
  type PgRelation,
  type PgTable,
  pgTableName,
  tellGeneratedColumnsLeftOut,
} from "./pg_schema_reader.ts";
import {
  assertOwnPublication,
  ownerCommentStatement,
  type ReplicationOwner,
} from "./pg_source_ownership.ts";

/** Prefix of the logical message that announces tables added to a publication. */
export const PUBLICATION_MESSAGE_PREFIX = "replicant_publication";

/** Content of a publication message: which publication gained which tables. */
export interface PublicationMessage {
  publication: string;
  added: [string, string][];
}

/** A publication as the catalog describes it. */
export interface PublicationState {
  owner: string;
  /** Its comment: `replicant <group>/<id>` names the replication that owns it. */
  comment: string | null;
  allTables: boolean;
  viaRoot: boolean;
  actions: { insert: boolean; update: boolean; delete: boolean; truncate: boolean };
  /** Relations listed in the publication: oid → `schema.table`, and quoted for SQL. */
  tables: Map<number, { name: string; sql: string }>;
  /** Schemas published whole (`FOR TABLES IN SCHEMA`, PostgreSQL 15+). */
  schemas: string[];
  /** Listed relations with a row filter or a column list (PostgreSQL 15+). */
  filtered: string[];
}

export async function readPublication(
  client: pg.Client,
  name: string,
): Promise<PublicationState | null> {
  const version = Number(
    (await client.query({ text: "SHOW server_version_num", rowMode: "array" })).rows[0][0],
  );
  const res = await client.query({
    text: `SELECT p.oid::int8::text, pg_get_userbyid(p.pubowner), p.puballtables::text,
                  ${version >= 130000 ? "p.pubviaroot::text" : "'false'"}, p.pubinsert::text,
                  p.pubupdate::text, p.pubdelete::text, p.pubtruncate::text,
                  obj_description(p.oid, 'pg_publication')
             FROM pg_publication p WHERE p.pubname = $1`,
    values: [name],
    rowMode: "array",
  });
  if (res.rows.length === 0) return null;
  const [oid, owner, all, viaRoot, ins, upd, del, trunc] = res.rows[0] as string[];
  const comment = (res.rows[0] as (string | null)[])[8];
  const rels = await client.query({
    text: `SELECT r.prrelid::int8::text, n.nspname, c.relname,
                  ${version >= 150000 ? "(r.prqual IS NOT NULL OR r.prattrs IS NOT NULL)" : "false"}
                  ::text
             FROM pg_publication_rel r JOIN pg_class c ON c.oid = r.prrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE r.prpubid = $1::oid ORDER BY n.nspname, c.relname`,
    values: [oid],
    rowMode: "array",
  });
  const schemas = version >= 150000
    ? (await client.query({
      text: `SELECT n.nspname FROM pg_publication_namespace s
               JOIN pg_namespace n ON n.oid = s.pnnspid WHERE s.pnpubid = $1::oid`,
      values: [oid],
      rowMode: "array",
    })).rows.map((r: string[]) => r[0])
    : [];
  const tables = new Map<number, { name: string; sql: string }>();
  const filtered: string[] = [];
  for (const [relid, schema, table, hasFilter] of rels.rows as string[][]) {
    tables.set(Number(relid), {
      name: `${schema}.${table}`,
      sql: `${quoteIdent(schema)}.${quoteIdent(table)}`,
    });
    if (hasFilter === "true") filtered.push(`${schema}.${table}`);
  }
  return {
    owner,
    comment: comment ?? null,
    allTables: all === "true",
    viaRoot: viaRoot === "true",
    actions: {
      insert: ins === "true",
      update: upd === "true",
      delete: del === "true",
      truncate: trunc === "true",
    },
    tables,
    schemas,
    filtered,
  };
}

/** What has to change for a publication to hold exactly the selected tables. */
export interface PublicationPlan {
  name: string;
  /** Statements to run, in one transaction (empty: the publication is right as it is). */
  statements: string[];
  /**
   * Why the statements are needed, one reason each. `required` reasons make the publication
   * unusable as it is (tables missing, actions not published, a row filter…); the others only
   * tidy it (extra tables, the partition mode).
   */
  required: string[];
  tidy: string[];
  /** Selected tables the publication gains (their rows must be copied). */
  added: PgRelation[];
  /** The publication to create, as a DBA would run it. */
  createStatement: string;
  /**
   * The statement that records the replication owning the publication, run in the same
   * transaction as its creation (null when no owner is given).
   */
  ownerStatement: string | null;
}

function tableList(tables: PgRelation[]): string {
  return tables.map((t) => pgTableName(t.id)).join(", ");
}

/**
 * The plan that makes publication `name` (now `state`, null: missing) hold `tables`. A
 * publication it creates records `owner` (when given) in the same transaction.
 */
export function planPublication(
  name: string,
  state: PublicationState | null,
  tables: PgRelation[],
  owner?: ReplicationOwner,
): PublicationPlan {
  const pub = quoteIdent(name);
  const what = tables.length > 0 ? ` FOR TABLE ${tableList(tables)}` : "";
  const createStatement =
    `CREATE PUBLICATION ${pub}${what} WITH (publish_via_partition_root = true)`;
  const ownerStatement = owner ? ownerCommentStatement(name, owner) : null;
  const creation = ownerStatement ? [createStatement, ownerStatement] : [createStatement];
  const plan: PublicationPlan = {
    name,
    statements: [],
    required: [],
    tidy: [],
    added: [],
    createStatement,
    ownerStatement,
  };
  if (state === null) {
    plan.statements.push(...creation);
    plan.required.push(`publication "${name}" does not exist`);
    return plan;
  }
  const a = state.actions;
  const off = Object.entries(a).filter(([, on]) => !on).map(([k]) => k.toUpperCase());
  const partitioned = tables.filter((t) => t.relkind === "p").map((t) => qualifiedName(t.id));
  const viaRoot = `publication "${name}" publishes the changes of partitions under their own ` +
    "names (publish_via_partition_root is off)";
  if (state.allTables) {
    // FOR ALL TABLES cannot become a list of tables in place; the new one is created in the
    // same transaction, so no change is ever decoded without a publication of this name.
    plan.statements.push(`DROP PUBLICATION ${pub}`, ...creation);
    plan.tidy.push(
      `publication "${name}" is FOR ALL TABLES: every table without a replica identity ` +
        "then refuses UPDATE and DELETE",
    );
    if (off.length > 0) {
      plan.required.push(`publication "${name}" does not publish ${off.join(", ")}`);
    }
    if (!state.viaRoot && partitioned.length > 0) {
      plan.required.push(`${viaRoot}; selected: ${partitioned.join(", ")}`);
    }
    return plan;
  }
  const selected = new Set(tables.map((t) => t.relOid));
  // Tables of a schema published whole are published, listed or not.
  const missing = tables.filter((t) =>
    !state.tables.has(t.relOid) && !state.schemas.includes(t.id.schema!)
  );
  const extra = [...state.tables].filter(([oid]) => !selected.has(oid)).map(([, t]) => t.name);
  if (missing.length > 0) {
    plan.required.push(
      `publication "${name}" lacks ${
        missing.map((t) => `${t.id.schema}.${t.id.table}`).join(", ")
      }`,
    );
    plan.added = missing;
  }
  if (state.filtered.length > 0) {
    plan.required.push(
      `publication "${name}" filters the rows or columns of ${state.filtered.join(", ")}`,
    );
  }
  if (state.schemas.length > 0) {
    plan.tidy.push(`publication "${name}" publishes whole schemas: ${state.schemas.join(", ")}`);
  }
  if (extra.length > 0) plan.tidy.push(`publication "${name}" also holds ${extra.join(", ")}`);
  if (
    missing.length > 0 || extra.length > 0 || state.filtered.length > 0 ||
    state.schemas.length > 0
  ) {
    if (tables.length > 0) {
      plan.statements.push(`ALTER PUBLICATION ${pub} SET TABLE ${tableList(tables)}`);
    } else {
      // No table: a publication cannot be emptied by SET, only by dropping what it has.
      if (state.tables.size > 0) {
        const list = [...state.tables.values()].map((t) => t.sql).join(", ");
        plan.statements.push(`ALTER PUBLICATION ${pub} DROP TABLE ${list}`);
      }
      if (state.schemas.length > 0) {
        const list = state.schemas.map(quoteIdent).join(", ");
        plan.statements.push(`ALTER PUBLICATION ${pub} DROP TABLES IN SCHEMA ${list}`);
      }
    }
  }
  if (off.length > 0) {
    plan.required.push(`publication "${name}" does not publish ${off.join(", ")}`);
    plan.statements.push(
      `ALTER PUBLICATION ${pub} SET (publish = 'insert, update, delete, truncate')`,
    );
  }
  if (!state.viaRoot) {
    if (partitioned.length > 0) {
      plan.required.push(`${viaRoot}; selected: ${partitioned.join(", ")}`);
    } else plan.tidy.push(viaRoot);
    plan.statements.push(`ALTER PUBLICATION ${pub} SET (publish_via_partition_root = true)`);
  }
  return plan;
}

/** The message announcing `added` tables to the streams of publication `name`. */
function addedMessage(name: string, added: PgRelation[]): string {
  const content: PublicationMessage = {
    publication: name,
    added: added.map((t) => [t.id.schema!, t.id.table]),
  };
  return `SELECT pg_logical_emit_message(true, '${PUBLICATION_MESSAGE_PREFIX}', ${
    literal(JSON.stringify(content))
  })`;
}

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** Reads a publication message; null when it is not one of `publication`'s. */
export function parsePublicationMessage(
  content: string,
  publication: string,
): PublicationMessage | null {
  try {
    const m = JSON.parse(content) as PublicationMessage;
    return m.publication === publication && Array.isArray(m.added) ? m : null;
  } catch {
    return null;
  }
}

export interface PublicationOutcome {
  plan: PublicationPlan;
  /** True when the statements ran (or, in a dry run, would run without an error). */
  applied: boolean;
  /** Set when the statements were refused but the publication is usable as it is. */
  warning?: string;
  /** The publication does not exist and was left so (`createMissing: false`). */
  missing?: boolean;
}

export interface PublicationOptions {
  /** Run the statements and roll them back (test-connection). */
  dryRun?: boolean;
  /**
   * The replication the publication belongs to: recorded on one that is created, and an
   * existing one is changed (or used) only when its comment names it (OwnershipError).
   */
  owner?: ReplicationOwner;
  /**
   * Create the publication when it does not exist (default true). False once the id has a
   * position: a publication dropped since cannot decode the changes in between, so the
   * stream's gap check reports it instead of a new one hiding it.
   */
  createMissing?: boolean;
}

/**
 * Brings publication `name` in step with `tables`: creates it, or changes it in one
 * transaction that also announces the tables it gains. `dryRun` runs the same statements
 * and rolls them back (test-connection). A publication Replicant may not change is used as
 * it is when it holds every selected table; otherwise the error says what it lacks, what
 * would let Replicant fix it, and what a database owner can run instead.
 */
export async function syncPublication(
  client: pg.Client,
  name: string,
  user: string,
  database: string,
  tables: PgTable[],
  options: PublicationOptions = {},
): Promise<PublicationOutcome> {
  const state = await readPublication(client, name);
  const plan = planPublication(name, state, tables, options.owner);
  if (state === null && options.createMissing === false) {
    return { plan, applied: false, missing: true };
  }
  if (state !== null && options.owner) assertOwnPublication(name, state.comment, options.owner);
  if (plan.statements.length === 0) return { plan, applied: true };
  try {
    await client.query("BEGIN");
    for (const s of plan.statements) await client.query(s);
    if (plan.added.length > 0) await client.query(addedMessage(name, plan.added));
    await client.query(options.dryRun ? "ROLLBACK" : "COMMIT");
    return { plan, applied: true };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    const reason = (err as Error).message;
    if (plan.required.length === 0) {
      return {
        plan,
        applied: false,
        warning: `${plan.tidy.join("; ")}; Replicant may not change it (${reason}) and uses it ` +
          "as it is",
      };
    }
    throw new SourceSetupError(
      publicationAdvice(plan, reason, user, database, tables),
      undefined,
      { cause: err },
    );
  }
}

/** The error of a publication Replicant needs and may not create or change. */
function publicationAdvice(
  plan: PublicationPlan,
  reason: string,
  user: string,
  database: string,
  tables: PgTable[],
): string {
  const role = quoteIdent(user);
  const owners = tables.length === 0 ? "" : ` and make ${role} the owner of each selected table ` +
    `(ALTER TABLE … OWNER TO ${role}; PostgreSQL lets only a table's owner publish it)`;
  const creates = plan.statements.some((s) => s.startsWith("CREATE"));
  // A publication made by someone else records its owner as Replicant's own would.
  const dba = creates
    ? [plan.createStatement, ...(plan.ownerStatement ? [plan.ownerStatement] : [])].join("; ") +
      ";"
    : `${plan.statements.join("; ")};`;
  const verb = creates ? "create" : "change";
  return `Replication needs publication "${plan.name}" with exactly the ${tables.length} ` +
    `selected table(s), but ${plan.required.join("; ")}, and Replicant may not ${verb} it: ` +
    `${reason}.\n` +
    `Either let user ${role} maintain it: GRANT CREATE ON DATABASE ${
      quoteIdent(database)
    } TO ${role}${owners}; ` +
    `or have the database owner or a superuser run, then start again:\n  ${dba}\n` +
    "Replicant uses an existing publication as it is when it holds every selected table.";
}

/** A selected table (or a partition of one) on which a publication breaks the application. */
export interface ReplicaIdentityProblem {
  /** The selected table. */
  table: TableId;
  /** The table the application writes (the partition, for a partitioned table). */
  relation: string;
  identity: "default" | "nothing" | "index";
}

/**
 * Selected tables whose UPDATEs and DELETEs would fail once published: no replica identity
 * (REPLICA IDENTITY DEFAULT without a primary key, NOTHING, or USING INDEX whose index is
 * gone). A partitioned table's partitions are checked, since rows are written there and
 * each partition has its own replica identity.
 */
export async function replicaIdentityProblems(
  client: pg.Client,
  tables: PgTable[],
): Promise<ReplicaIdentityProblem[]> {
  if (tables.length === 0) return [];
  const res = await client.query({
    text: `WITH sel(oid) AS (SELECT unnest($1::oid[]))
           SELECT sel.oid::int8::text, n.nspname, c.relname, c.relreplident::text
             FROM sel
             CROSS JOIN LATERAL (
               -- A partitioned table's leaves; a plain table has no partition tree.
               SELECT t.relid FROM pg_partition_tree(sel.oid) t WHERE t.isleaf
               UNION SELECT sel.oid
             ) leaf
             JOIN pg_class c ON c.oid = leaf.relid
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND (
              c.relreplident = 'n'
              OR (c.relreplident = 'd' AND NOT EXISTS (
                SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
              OR (c.relreplident = 'i' AND NOT EXISTS (
                SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))
            ORDER BY n.nspname, c.relname`,
    values: [`{${tables.map((t) => t.relOid).join(",")}}`],
    rowMode: "array",
  });
  const byOid = new Map(tables.map((t) => [t.relOid, t]));
  return (res.rows as string[][]).map(([oid, schema, rel, ident]) => ({
    table: byOid.get(Number(oid))!.id,
    relation: `${schema}.${rel}`,
    identity: ident === "n" ? "nothing" : ident === "i" ? "index" : "default",
  }));
}

/** The refusal of selected tables without a replica identity: what breaks and the fixes. */
export function replicaIdentityError(problems: ReplicaIdentityProblem[]): SourceSetupError {
  const found = problems.map((p) => {
    const what = p.identity === "nothing"
      ? "REPLICA IDENTITY NOTHING"
      : p.identity === "index"
      ? "REPLICA IDENTITY USING INDEX of an index that no longer exists"
      : "no primary key and REPLICA IDENTITY DEFAULT";
    const of = p.relation === `${p.table.schema}.${p.table.table}`
      ? ""
      : ` (a partition of ${p.table.schema}.${p.table.table})`;
    return `${p.relation}${of}: ${what}`;
  });
  const fixes = problems.map((p) =>
    `ALTER TABLE ${p.relation.split(".").map(quoteIdent).join(".")} REPLICA IDENTITY FULL;`
  );
  return new SourceSetupError(
    `${problems.length} selected table(s) have no replica identity: ${found.join("; ")}. ` +
      "Once a table is in the publication, PostgreSQL refuses every UPDATE and DELETE on it " +
      "(cannot update table … because it does not have a replica identity and publishes " +
      "updates), so Replicant stops before creating or changing anything. " +
      `Fix each table: ${fixes.join(" ")} (or give it a primary key, or REPLICA IDENTITY ` +
      "USING INDEX on a unique index of NOT NULL columns), or leave the table out of the filter.",
    qualifiedName(problems[0].table),
  );
}

/** Refuses (before anything is created) tables a publication would break; see above. */
async function refuseTablesWithoutIdentity(
  client: pg.Client,
  tables: PgTable[],
): Promise<void> {
  const problems = await replicaIdentityProblems(client, tables);
  if (problems.length > 0) throw replicaIdentityError(problems);
}

/** The current user and database, for the messages above. */
export async function whoAmI(client: pg.Client): Promise<{ user: string; database: string }> {
  const res = await client.query({
    text: "SELECT current_user::text, current_database()::text",
    rowMode: "array",
  });
  const [user, database] = res.rows[0] as string[];
  return { user, database };
}

/**
 * What preparePublication would refuse, found before a run changes anything: a selected
 * table without a replica identity, a publication of another owner, one the user may not
 * create or change (its statements are run and rolled back).
 */
export async function checkPublication(
  client: pg.Client,
  name: string,
  tables: PgTable[],
  options: Omit<PublicationOptions, "dryRun"> = {},
): Promise<void> {
  await refuseTablesWithoutIdentity(client, tables);
  const { user, database } = await whoAmI(client);
  await syncPublication(client, name, user, database, tables, { ...options, dryRun: true });
}

/** Where preparePublication tells what it changed. */
export interface PublicationLog {
  info(message: string): void;
  warn(message: string): void;
}

/**
 * Everything a replication needs of its publication, before anything is created: no
 * selected table without a replica identity, then the publication in step. Tells what
 * changed; throws SourceSetupError when the run must not start.
 */
export async function preparePublication(
  client: pg.Client,
  name: string,
  tables: PgTable[],
  log?: PublicationLog,
  options: Omit<PublicationOptions, "dryRun"> = {},
): Promise<PublicationOutcome> {
  await refuseTablesWithoutIdentity(client, tables);
  if (log) tellGeneratedColumnsLeftOut(tables, log);
  const { user, database } = await whoAmI(client);
  let outcome: PublicationOutcome;
  try {
    outcome = await syncPublication(client, name, user, database, tables, options);
  } catch (err) {
    if (err instanceof SourceError || err instanceof OwnershipError) throw err;
    throw new SourceError(
      `Cannot prepare publication "${name}": ${(err as Error).message}`,
      undefined,
      { cause: err },
    );
  }
  const { plan } = outcome;
  if (outcome.missing) return outcome;
  if (outcome.warning) log?.warn(outcome.warning);
  else if (plan.statements.length > 0) {
    log?.info(`publication "${name}": ${plan.statements.join("; ")}`);
  }
  for (const t of plan.added) {
    log?.info(`${qualifiedName(t.id)} joined publication "${name}": its rows will be copied`);
  }
  return outcome;
}
