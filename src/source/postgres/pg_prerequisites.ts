/**
 * What logical decoding needs from a PostgreSQL source, checked on an open connection:
 * wal_level, a free replication slot and WAL sender, the REPLICATION attribute; and what the
 * selected tables need: SELECT on each (every mode), a replica identity and the publication
 * (realtime and full), checked by the code a run uses, so the verdict is the run's. Each
 * check names the setting or statement that fixes it.
 *
 * @module
 */

import type pg from "pg";
import { OwnershipError, SourceSetupError } from "../../core/errors.ts";
import { failed, passed, type PrerequisiteCheck, warning } from "../../core/prerequisite_check.ts";
import { qualifiedName } from "../../core/table_schema.ts";
import { quoteIdent } from "./pg_endpoint.ts";
import {
  replicaIdentityError,
  replicaIdentityProblems,
  syncPublication,
  whoAmI,
} from "./pg_publication.ts";
import type { PgTable } from "./pg_schema_reader.ts";
import type { ReplicationOwner } from "./pg_source_ownership.ts";

export interface PgPrerequisiteOptions {
  /** The slot Replicant will use: when it exists already, no free slot is needed. */
  slotName?: string;
}

export async function checkPgPrerequisites(
  client: pg.Client,
  options: PgPrerequisiteOptions = {},
): Promise<PrerequisiteCheck[]> {
  const checks: PrerequisiteCheck[] = [];
  const one = async (sql: string, values: unknown[] = []) =>
    (await client.query({ text: sql, values, rowMode: "array" })).rows[0] as string[];

  const [walLevel] = await one("SELECT current_setting('wal_level')");
  const walFix = "run ALTER SYSTEM SET wal_level = logical (or set it in postgresql.conf) and " +
    "restart the server";
  checks.push(
    walLevel === "logical" ? passed("wal_level", "logical") : failed(
      "wal_level",
      `wal_level is ${walLevel}: logical decoding needs wal_level = logical; ${walFix}`,
      walFix,
    ),
  );

  const [maxSlots, usedSlots, ourSlot] = await one(
    `SELECT current_setting('max_replication_slots'), (SELECT count(*) FROM pg_replication_slots),
            (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1)`,
    [options.slotName ?? ""],
  );
  const freeSlots = Number(maxSlots) - Number(usedSlots);
  const slotFix = "drop an unused slot (pg_drop_replication_slot) or raise " +
    "max_replication_slots and restart";
  checks.push(
    Number(ourSlot) > 0
      ? passed("replication slots", `slot ${options.slotName} exists (${usedSlots}/${maxSlots})`)
      : freeSlots > 0
      ? passed("replication slots", `${freeSlots} of ${maxSlots} free`)
      : failed(
        "replication slots",
        `no free replication slot (${usedSlots} of max_replication_slots = ${maxSlots} in use): ` +
          slotFix,
        slotFix,
      ),
  );

  const [maxSenders, usedSenders] = await one(
    `SELECT current_setting('max_wal_senders'), (SELECT count(*) FROM pg_stat_replication)`,
  );
  const freeSenders = Number(maxSenders) - Number(usedSenders);
  const senderFix = "raise max_wal_senders and restart, or stop another replication client";
  checks.push(
    freeSenders > 0 ? passed("wal senders", `${freeSenders} of ${maxSenders} free`) : failed(
      "wal senders",
      `no free WAL sender (${usedSenders} of max_wal_senders = ${maxSenders} in use): ${senderFix}`,
      senderFix,
    ),
  );

  const [user, isSuper, canReplicate] = await one(
    `SELECT current_user::text, r.rolsuper::text, r.rolreplication::text
       FROM pg_roles r WHERE r.rolname = current_user`,
  );
  const replicationFix = `run ALTER ROLE "${user}" WITH REPLICATION`;
  checks.push(
    isSuper === "true" || canReplicate === "true"
      ? passed("replication privilege", isSuper === "true" ? "superuser" : "REPLICATION")
      : failed(
        "replication privilege",
        `user "${user}" may not stream changes: ${replicationFix}`,
        replicationFix,
      ),
  );
  return checks;
}

/**
 * The checks of the selected tables for a mode; `tables` as `readPgTables` gives them. With
 * `owner`, an existing publication must be that replication's, as a run requires.
 */
export async function checkPgTables(
  client: pg.Client,
  tables: PgTable[],
  options: { publicationName: string; streaming: boolean; owner?: ReplicationOwner },
): Promise<PrerequisiteCheck[]> {
  const checks: PrerequisiteCheck[] = [];
  const names = tables.map((t) => qualifiedName(t.id));
  checks.push(
    tables.length > 0
      ? passed("selected tables", `${tables.length}: ${shortList(names)}`)
      : warning(
        "selected tables",
        "no table is selected (yet): check the filter's catalog, schema and table names",
        "check the filter's catalog, schema and table names",
      ),
  );
  if (tables.length === 0) return checks;
  const { user, database } = await whoAmI(client);
  const unreadable = await client.query({
    text: `SELECT n.nspname || '.' || c.relname, has_schema_privilege(n.oid, 'USAGE')::text
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = ANY($1::oid[]) AND NOT (has_schema_privilege(n.oid, 'USAGE')
              AND has_table_privilege(c.oid, 'SELECT'))
            ORDER BY 1`,
    values: [`{${tables.map((t) => t.relOid).join(",")}}`],
    rowMode: "array",
  });
  const denied = (unreadable.rows as string[][]).map((r) => r[0]);
  const schemas = [
    ...new Set(
      (unreadable.rows as string[][]).filter((r) => r[1] !== "true").map((r) => r[0].split(".")[0]),
    ),
  ];
  const selectFix = [
    ...schemas.map((s) => `GRANT USAGE ON SCHEMA ${quoteIdent(s)} TO ${quoteIdent(user)}`),
    `GRANT SELECT ON ${denied.map((d) => d.split(".").map(quoteIdent).join(".")).join(", ")} TO ${
      quoteIdent(user)
    }`,
  ].join("; ");
  checks.push(
    denied.length === 0
      ? passed("select privilege", `user "${user}" may read every selected table`)
      : failed(
        "select privilege",
        `user "${user}" may not read ${shortList(denied)}: run ${selectFix}`,
        `run ${selectFix}`,
      ),
  );
  if (!options.streaming) return checks;
  const problems = await replicaIdentityProblems(client, tables);
  const refusal = problems.length > 0 ? replicaIdentityError(problems) : null;
  checks.push(
    refusal === null
      ? passed(
        "replica identity",
        "every selected table has a primary key or a replica identity: UPDATE and DELETE " +
          "keep working once it is published",
      )
      : failed(
        "replica identity",
        refusal.message,
        refusal.message.slice(refusal.message.indexOf("Fix each table:")),
      ),
  );
  if (refusal !== null) return checks;
  try {
    const outcome = await syncPublication(
      client,
      options.publicationName,
      user,
      database,
      tables,
      { dryRun: true, owner: options.owner },
    );
    const { plan } = outcome;
    checks.push(
      outcome.warning
        ? warning("publication", outcome.warning)
        : plan.statements.length === 0
        ? passed(
          "publication",
          `"${plan.name}" holds exactly the ${tables.length} selected table(s)`,
        )
        : passed(
          "publication",
          `a run will ${
            plan.statements.some((x) => x.startsWith("CREATE")) ? "create" : "change"
          } "${plan.name}": ${plan.statements.join("; ")}`,
        ),
    );
  } catch (err) {
    if (err instanceof OwnershipError) {
      checks.push(failed("publication", err.message, err.message));
    } else if (err instanceof SourceSetupError) {
      checks.push(
        failed("publication", err.message, err.message.slice(err.message.indexOf("Either"))),
      );
    } else throw err;
  }
  return checks;
}

function shortList(names: string[]): string {
  return names.length <= 10
    ? names.join(", ")
    : `${names.slice(0, 10).join(", ")}, … (${names.length - 10} more)`;
}
