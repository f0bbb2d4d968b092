/**
 * A slot and publication made ahead of a run, for the replication id that will use them
 * (recorded as the publication's owner, as Replicant does), so the run's "now" starts here.
 */
import type pg from "pg";
import {
  defaultSlotName,
  ensurePublication,
  ensureSlot,
} from "../../src/source/postgres/pg_replication_slot.ts";
import { withOwnedPublication } from "../../src/source/postgres/pg_source_ownership.ts";

export async function createOwnedSlot(
  db: pg.Client,
  id: string,
  group = "default",
): Promise<string> {
  const slot = defaultSlotName(group, id);
  await withOwnedPublication(db, slot, { group, id }, () => ensurePublication(db, slot, "all"));
  await ensureSlot(db, slot);
  return slot;
}
