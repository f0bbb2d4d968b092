/**
 * Whether a PostgreSQL slot can still deliver every change after a position.
 *
 * A slot delivers the transactions whose commit record is at or after where it starts:
 * the later of the LSN asked for and its `confirmed_flush_lsn`. Replicant confirms a
 * transaction only after Redis holds it and the checkpoint names it, so the slot of this
 * id never confirms past the checkpoint's commit LSN + 1. A slot that did moved without
 * Replicant (another consumer, `pg_replication_slot_advance`) or is a new slot of the same
 * name; either way the transactions in between can no longer be read.
 *
 * @module
 */

import type pg from "pg";
import { GapError, type SourceGap } from "../../core/errors.ts";
import type { PgEndpoint } from "./pg_endpoint.ts";
import { readSlot, type SlotInfo } from "./pg_replication_slot.ts";
import { pgSystemIdentifier } from "./pg_source_ownership.ts";
import { formatLsn } from "./pgoutput_position.ts";

/** The first LSN whose transactions must still come, and how to name it. */
export interface PgNeededPosition {
  /** After a checkpoint: its commit LSN + 1; else where the slot started, or a start-position. */
  from: bigint;
  /** E.g. `checkpoint 0/1A2B3C8 (the last transaction written)`. */
  what: string;
}

/** The server the position belongs to, and the server now behind the connection file. */
export interface PgServers {
  expected: string;
  actual: string;
}

export function pgSlotGap(
  slotName: string,
  needed: PgNeededPosition,
  slot: SlotInfo | null,
  servers?: PgServers | null,
): SourceGap | null {
  if (servers && servers.expected !== servers.actual) {
    return {
      checkpoint: `${needed.what} on the server with system identifier ${servers.expected}`,
      available: `the server with system identifier ${servers.actual}, a different server`,
      reason: "The connection file now leads to another PostgreSQL server than the one the " +
        "checkpoint came from; its WAL positions and slots are not the checkpoint's.",
    };
  }
  if (slot === null) {
    return {
      checkpoint: needed.what,
      available: `nothing: replication slot "${slotName}" does not exist`,
      reason: `Replication slot "${slotName}" was dropped; the changes it kept for this id ` +
        "are gone.",
    };
  }
  if (slot.walStatus === "lost") {
    return {
      checkpoint: needed.what,
      available: `nothing: slot "${slotName}" is invalidated (wal_status lost)`,
      reason: `The server removed WAL that slot "${slotName}" still needed ` +
        "(max_slot_wal_keep_size).",
    };
  }
  const confirmed = slot.confirmedFlushLsn;
  if (confirmed !== null && confirmed > needed.from) {
    return {
      checkpoint: needed.what,
      available: `changes from ${formatLsn(confirmed)} on (confirmed_flush_lsn of slot ` +
        `"${slotName}")`,
      reason: `Slot "${slotName}" was moved past the checkpoint without Replicant: another ` +
        "consumer read from it or advanced it (pg_replication_slot_advance), or it was " +
        "dropped and created again. Transactions between the two positions were never written.",
    };
  }
  return null;
}

/**
 * Reads the slot (and, when the checkpoint names its server, the server's system identifier)
 * and throws GapError when the slot cannot deliver every change from `needed` on. The
 * publication must still exist too: pgoutput looks it up as of each change, so one dropped
 * (even if made again) cannot decode the changes in between.
 */
export async function assertPgNoGap(
  client: pg.Client,
  endpoint: PgEndpoint,
  slotName: string,
  publicationName: string,
  needed: PgNeededPosition,
  expectedSystem: string | null | undefined,
): Promise<SlotInfo | null> {
  const servers = expectedSystem
    ? { expected: expectedSystem, actual: await pgSystemIdentifier(endpoint) }
    : null;
  const slot = await readSlot(client, slotName);
  const gap = pgSlotGap(slotName, needed, slot, servers) ??
    (await publicationExists(client, publicationName) ? null : {
      checkpoint: needed.what,
      available: `nothing: publication "${publicationName}" does not exist`,
      reason: `Publication "${publicationName}" was dropped; pgoutput cannot decode the ` +
        "changes of the slot without it.",
    });
  if (gap) throw new GapError(gap);
  return slot;
}

async function publicationExists(client: pg.Client, name: string): Promise<boolean> {
  const res = await client.query({
    text: "SELECT 1 FROM pg_publication WHERE pubname = $1",
    values: [name],
  });
  return res.rows.length > 0;
}
