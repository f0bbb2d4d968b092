import type { TableSelection } from "../../ports/snapshot_source.ts";
import type { VerifyPoint } from "../../ports/verify_point.ts";
import type { TableSchema } from "../../core/table_schema.ts";
import { type MysqlEndpoint, openMysql } from "./mysql_endpoint.ts";
import {
  type BinlogCoordinate,
  binlogFileSequence,
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
      caughtUp: (token, tables) =>
        token === null
          ? Promise.resolve(false)
          : quietBetween(endpoint, parseCheckpoint(token), at, tables),
      close: () => source.close(),
    };
  } catch (err) {
    await source.close();
    throw err;
  }
}

/** Events looked at, at most, between the checkpoint and the point. */
const MAX_EVENTS = 100_000;
/** Events that never carry a change of a table. */
const NEUTRAL = new Set([
  "Gtid",
  "Gtid_list",
  "Binlog_checkpoint",
  "Format_desc",
  "Rotate",
  "Xid",
  "Annotate_rows",
  "Stop",
  "Previous_gtids",
  "Anonymous_Gtid",
  "Heartbeat",
]);

/**
 * Whether the binlog between `from` (the checkpoint) and `to` (the point) holds no change of
 * `tables`: rows events are announced by a table map naming their table; any statement but
 * BEGIN/COMMIT counts as a change (it may be DDL of a selected table).
 */
async function quietBetween(
  endpoint: MysqlEndpoint,
  from: BinlogCoordinate,
  to: BinlogCoordinate,
  tables: TableSchema[],
): Promise<boolean> {
  if (compareCoordinates(from, to) >= 0) return true;
  const selected = new Set(tables.map((t) => `${t.id.catalog}.${t.id.table}`.toLowerCase()));
  const conn = await openMysql(endpoint);
  try {
    const [logs] = await conn.query("SHOW BINARY LOGS") as unknown as [{ Log_name: string }[]];
    const files = logs.map((l) => l.Log_name).filter((f) =>
      binlogFileSequence(f) >= binlogFileSequence(from.file) &&
      binlogFileSequence(f) <= binlogFileSequence(to.file)
    );
    let seen = 0;
    for (const file of files) {
      let pos = file === from.file ? from.pos : 4;
      for (;;) {
        const [events] = await conn.query(`SHOW BINLOG EVENTS IN ? FROM ${pos} LIMIT 1000`, [
          file,
        ]) as unknown as [{ Pos: number; End_log_pos: number; Event_type: string; Info: string }[]];
        for (const e of events) {
          if (file === to.file && Number(e.Pos) >= to.pos) return true;
          if (++seen > MAX_EVENTS) return false;
          if (e.Event_type === "Table_map") {
            const m = /\(([^)]*)\)\s*$/.exec(e.Info ?? "");
            if (!m || selected.has(m[1].replaceAll("`", "").toLowerCase())) return false;
          } else if (e.Event_type === "Query") {
            if (!/^\s*(BEGIN|COMMIT)\s*$/i.test(e.Info ?? "")) return false;
          } else if (!NEUTRAL.has(e.Event_type) && !/_rows(_v1)?$/i.test(e.Event_type)) {
            return false;
          }
        }
        if (events.length < 1000) break;
        pos = Number(events[events.length - 1].End_log_pos);
      }
    }
    return true;
  } catch {
    return false; // no right to read the binlog: wait for the checkpoint
  } finally {
    conn.destroy();
  }
}
