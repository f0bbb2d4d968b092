import process from "node:process";
import type { TableSelection } from "../../ports/snapshot_source.ts";
import type { VerifyPoint } from "../../ports/verify_point.ts";
import { openPg, type PgEndpoint } from "./pg_endpoint.ts";
import { HEARTBEAT_PREFIX } from "./pg_logical_source.ts";
import { createSlotWithSnapshot, readSlot, sanitizeSlotName } from "./pg_replication_slot.ts";
import type { PgTable } from "./pg_schema_reader.ts";
import { PgSnapshotSource } from "./pg_snapshot_source.ts";
import { parseLsn, pgSortKey, pgSortKeyOfSource } from "./pgoutput_position.ts";

/**
 * PostgreSQL at a point `replicant verify` can cut the streams at: a temporary logical slot
 * created with `EXPORT_SNAPSHOT` gives a snapshot holding exactly the transactions whose
 * commit record is before its consistent point P, the same rule by which a slot decides
 * what it streams. The snapshot is imported into repeatable-read transactions, then the
 * slot is dropped (it held nothing but that instant); changes whose commit LSN is below P
 * are the ones the snapshot shows. A heartbeat message after P lets an idle replication
 * move its checkpoint past P.
 */
export async function openPgVerifyPoint(
  endpoint: PgEndpoint,
  selection: TableSelection,
  replication: { slot: string; publication: string },
): Promise<VerifyPoint> {
  const name = sanitizeSlotName(`replicant_verify_${process.pid}_${Date.now().toString(36)}`);
  const slot = await createSlotWithSnapshot(endpoint, name, { temporary: true });
  let source: PgSnapshotSource;
  let reader;
  try {
    source = await PgSnapshotSource.open(endpoint, selection, {
      exportedSnapshot: slot.snapshotName,
    });
    try {
      reader = await source.reader();
    } catch (err) {
      await source.close();
      throw err;
    }
  } finally {
    await slot.close();
  }
  const lsn = parseLsn(slot.consistentPoint);
  const below = pgSortKey(lsn, 0);
  const client = await openPg(endpoint, "replicant-verify");
  try {
    await client.query("SELECT pg_logical_emit_message(false, $1, '')", [HEARTBEAT_PREFIX]);
  } catch {
    // Without the right to emit it, an idle replication moves on at its own heartbeat.
  } finally {
    await client.end().catch(() => {});
  }
  return {
    source,
    reader,
    description: `PostgreSQL LSN ${slot.consistentPoint}`,
    sortKeyOf: pgSortKeyOfSource,
    includes: (sortKey) => sortKey < below,
    reached: (token) => parseLsn(token) >= lsn,
    caughtUp: (_token, tables) =>
      noPendingChanges(endpoint, replication, slot.consistentPoint, tables as PgTable[]),
    close: () => source.close(),
  };
}

/**
 * Whether the replication's slot, not in use, holds no change of `tables` in transactions
 * that commit before `point`: peeked (nothing consumed) with pgoutput, counting inserts,
 * updates and deletes of those tables and any truncate.
 */
async function noPendingChanges(
  endpoint: PgEndpoint,
  replication: { slot: string; publication: string },
  point: string,
  tables: PgTable[],
): Promise<boolean> {
  const client = await openPg(endpoint, "replicant-verify");
  try {
    const slot = await readSlot(client, replication.slot);
    if (slot === null || slot.active) return false;
    const res = await client.query({
      text: `SELECT count(*)::int8::text
               FROM pg_logical_slot_peek_binary_changes($1, $2::pg_lsn, NULL,
                      'proto_version', '1', 'publication_names', $3) p
              WHERE get_byte(p.data, 0) = 84
                 OR (get_byte(p.data, 0) IN (68, 73, 85)
                     AND ((get_byte(p.data, 1)::int8 << 24) | (get_byte(p.data, 2) << 16)
                          | (get_byte(p.data, 3) << 8) | get_byte(p.data, 4))::oid
                         = ANY($4::oid[]))`,
      values: [
        replication.slot,
        point,
        replication.publication,
        `{${tables.map((t) => t.relOid).join(",")}}`,
      ],
      rowMode: "array",
    });
    return Number(res.rows[0][0]) === 0;
  } catch {
    return false; // the slot was taken meanwhile, or cannot be read: wait for the checkpoint
  } finally {
    await client.end().catch(() => {});
  }
}
