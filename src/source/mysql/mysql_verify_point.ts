import type { TableSelection } from "../../pipeline/snapshot_source.ts";
import type { VerifyPoint } from "../../pipeline/table_verifier.ts";
import type { MysqlEndpoint } from "./mysql_endpoint.ts";
import {
  compareCoordinates,
  mysqlSortKeyOfSource,
  parseCheckpoint,
  snapshotSkipThrough,
} from "./mysql_position.ts";
import { MysqlSnapshotSource } from "./mysql_snapshot_source.ts";

/**
 * MySQL/MariaDB at a point `replicant verify` can cut the streams at: one reader's
 * `START TRANSACTION WITH CONSISTENT SNAPSHOT` and the binlog position P of that snapshot
 * (MariaDB `binlog_snapshot_file`/`binlog_snapshot_position`, no lock; MySQL under a brief
 * global read lock, as the snapshot does). Transactions that start before P are in the
 * snapshot; the replication has them all once its checkpoint is at or past P.
 */
export async function openMysqlVerifyPoint(
  endpoint: MysqlEndpoint,
  selection: TableSelection,
): Promise<VerifyPoint> {
  const source = await MysqlSnapshotSource.open(endpoint, selection);
  try {
    const reader = await source.reader();
    const at = reader.coordinate;
    const through = snapshotSkipThrough(at);
    return {
      source,
      reader,
      description: `binlog ${at.file}:${at.pos}${at.gtid ? ` (GTID ${at.gtid})` : ""}`,
      sortKeyOf: mysqlSortKeyOfSource,
      includes: (sortKey) => sortKey <= through,
      reached: (token) => compareCoordinates(parseCheckpoint(token), at) >= 0,
      close: () => source.close(),
    };
  } catch (err) {
    await source.close();
    throw err;
  }
}
