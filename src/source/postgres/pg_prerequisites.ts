/**
 * What logical decoding needs from a PostgreSQL source, checked on an open connection:
 * wal_level, a free replication slot and WAL sender, the REPLICATION attribute, and the
 * right to create the publication. Each check names the setting or statement that fixes it.
 *
 * @module
 */

import type pg from "pg";
import { failed, passed, type PrerequisiteCheck } from "../../core/prerequisite_check.ts";

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

  const [user, isSuper, canReplicate, canCreate] = await one(
    `SELECT current_user::text, r.rolsuper::text, r.rolreplication::text,
            has_database_privilege(current_database(), 'CREATE')::text
       FROM pg_roles r WHERE r.rolname = current_user`,
  );
  const replicationFix = `run ALTER ROLE "${user}" WITH REPLICATION`;
  const createFix = `run GRANT CREATE ON DATABASE <database> TO "${user}" (and make it owner ` +
    "of the replicated tables)";
  checks.push(
    isSuper === "true" || canReplicate === "true"
      ? passed("replication privilege", isSuper === "true" ? "superuser" : "REPLICATION")
      : failed(
        "replication privilege",
        `user "${user}" may not stream changes: ${replicationFix}`,
        replicationFix,
      ),
  );
  checks.push(
    isSuper === "true" || canCreate === "true"
      ? passed("publication rights", isSuper === "true" ? "superuser" : "CREATE on the database")
      : failed(
        "publication rights",
        `user "${user}" may not create the publication: ${createFix}`,
        createFix,
      ),
  );
  return checks;
}
