import process from "node:process";
import type { TableSelection } from "../../pipeline/snapshot_source.ts";
import type { VerifyPoint } from "../../pipeline/table_verifier.ts";
import { openPg, type PgEndpoint } from "./pg_endpoint.ts";
import { HEARTBEAT_PREFIX } from "./pg_logical_source.ts";
import { createSlotWithSnapshot, sanitizeSlotName } from "./pg_replication_slot.ts";
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
): Promise<VerifyPoint> {
  const name = sanitizeSlotName(`replicant_verify_${process.pid}_${Date.now().toString(36)}`);
  const slot = await createSlotWithSnapshot(endpoint, name, { temporary: true });
  let source: PgSnapshotSource;
  let reader;
  try {
    source = await PgSnapshotSource.open(endpoint, selection, slot.snapshotName);
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
    close: () => source.close(),
  };
}
