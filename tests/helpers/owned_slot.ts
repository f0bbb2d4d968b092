/**
 * A slot and publication made ahead of a run, for the replication id that will use them
 * (recorded as the publication's owner, as Replicant does), so the run's "now" starts here.
 * The publication holds the tables of `schema`, as the run would make it.
 */
import type pg from "pg";
import { defaultSlotName, ensureSlot } from "../../src/source/postgres/pg_replication_slot.ts";
import { ownerCommentStatement } from "../../src/source/postgres/pg_source_ownership.ts";
import { createSchemaPublication } from "./clients.ts";

export async function createOwnedSlot(
  db: pg.Client,
  id: string,
  schema: string,
  group = "default",
): Promise<string> {
  const slot = defaultSlotName(group, id);
  await db.query("BEGIN");
  try {
    await createSchemaPublication(db, slot, schema);
    await db.query(ownerCommentStatement(slot, { group, id }));
    await db.query("COMMIT");
  } catch (err) {
    await db.query("ROLLBACK").catch(() => {});
    throw err;
  }
  await ensureSlot(db, slot);
  return slot;
}
