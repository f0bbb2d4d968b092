/**
 * `realtime.start-position` of a MySQL/MariaDB source, turned into the binlog coordinate
 * realtime reads from: `log` + `position` as given; `gtid` (MariaDB, or MySQL with
 * gtid_mode=ON); a time (`start-timestamp`, or `log` + `position` rewound by
 * `rewind-realtime-start-position-m`), for which the binlog file that begins at or before
 * that time is found from the files' format description events, read with short binlog
 * dumps, and transactions before the time are passed over by a StartTimeGate.
 *
 * @module
 */

import type { AnyBinlogEvent } from "@vlasky/zongji";
import { SourceError, startNotServable } from "../../core/errors.ts";
import { type MysqlEndpoint, mysqlQueryError, openMysql, pickServerId } from "./mysql_endpoint.ts";
import { eventName, ZongjiAdapter } from "./zongji_adapter.ts";
import type { StartPosition } from "../../config/load_extractor.ts";
import type { BinlogCoordinate } from "./mysql_position.ts";
import { masterStatus } from "./mysql_snapshot_source.ts";

/** Where a time-based start reads from: the start of `file`, at or before `startMs`. */
export interface BinlogTimeStart {
  file: string;
  pos: number;
  /** The time of the start: `startMs`, or the rewound position's time minus the rewind. */
  startMs: number;
}

const PROBE_TIMEOUT_MS = 15_000;

/**
 * Reads the binlog from `file`:`pos` until `pick` returns a time for an event, and returns
 * it; null when the end of the binlog comes first (nothing written there yet).
 */
async function probe(
  endpoint: MysqlEndpoint,
  serverId: number,
  file: string,
  pos: number,
  pick: (name: string, e: AnyBinlogEvent) => number | null,
): Promise<number | null> {
  const binlog = new ZongjiAdapter(endpoint);
  try {
    return await new Promise<number | null>((resolve, reject) => {
      let quiet: ReturnType<typeof setTimeout> | null = null;
      const deadline = setTimeout(
        () => reject(new SourceError(`No answer reading the binlog at ${file}:${pos}`)),
        PROBE_TIMEOUT_MS,
      );
      const done = (v: number | null) => {
        clearTimeout(deadline);
        if (quiet) clearTimeout(quiet);
        resolve(v);
      };
      binlog.onEvent((e: AnyBinlogEvent) => {
        const t = pick(eventName(e), e);
        if (t !== null) return done(t);
        // The dump keeps the connection open at the end of the binlog: a pause means the end.
        if (quiet) clearTimeout(quiet);
        quiet = setTimeout(() => done(null), 1000);
      });
      binlog.onError((err: Error) => {
        clearTimeout(deadline);
        reject(err);
      });
      binlog.start(serverId, { filename: file, position: pos });
      quiet = setTimeout(() => done(null), 3000);
    });
  } finally {
    binlog.stop();
  }
}

/** The time the binlog file was begun: its format description event. */
function fileStartTime(
  endpoint: MysqlEndpoint,
  serverId: number,
  file: string,
): Promise<number | null> {
  return probe(endpoint, serverId, file, 4, (name, e) => name === "format" ? e.timestamp : null);
}

async function serverFacts(
  endpoint: MysqlEndpoint,
): Promise<{ files: string[]; id: number; nowMs: number }> {
  const conn = await openMysql(endpoint);
  try {
    const [logs] = await conn.query({ sql: "SHOW BINARY LOGS", rowsAsArray: true }) as unknown as [
      unknown[][],
    ];
    const [ids] = await conn.query({
      sql: "SELECT @@GLOBAL.server_id, CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)",
      rowsAsArray: true,
    }) as unknown as [unknown[][]];
    return {
      files: logs.map((r) => String(r[0])),
      id: pickServerId(endpoint.serverIds, Number(ids[0][0])),
      nowMs: Number(ids[0][1]),
    };
  } catch (err) {
    throw mysqlQueryError(endpoint, "Listing the binary logs", err);
  } finally {
    conn.destroy();
  }
}

/**
 * The binlog file to read from for a start at `startMs`: the newest whose first event is at
 * or before it (a binary search over the files' start times). When even the oldest file
 * begins later, changes between `startMs` and it may have been purged: refused.
 */
export async function binlogStartAtTime(
  endpoint: MysqlEndpoint,
  startMs: number,
): Promise<BinlogTimeStart> {
  const { files, id } = await serverFacts(endpoint);
  if (files.length === 0) {
    throw new SourceError("SHOW BINARY LOGS lists no file: is the binary log on (`log-bin`)?");
  }
  const startOf = async (file: string) => (await fileStartTime(endpoint, id, file)) ?? Infinity;
  const oldest = await startOf(files[0]);
  // Binlog timestamps have whole seconds.
  const at = Math.floor(startMs / 1000) * 1000;
  if (oldest > at) {
    startNotServable(
      `start-timestamp ${new Date(startMs).toISOString()}`,
      `binlogs ${files[0]} to ${files[files.length - 1]}; the oldest begins at ${
        Number.isFinite(oldest) ? new Date(oldest).toISOString() : "an unknown time"
      }`,
      "The oldest binary log the server still has begins after the start: the changes " +
        "before it were purged (or never logged).",
    );
  }
  let lo = 0, hi = files.length - 1;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if ((await startOf(files[mid])) <= at) lo = mid;
    else hi = mid - 1;
  }
  return { file: files[lo], pos: 4, startMs };
}

/**
 * A start `minutes` before the event at `file`:`pos` (Arcion's
 * `rewind-realtime-start-position-m`): the time of that event minus the rewind, then as
 * binlogStartAtTime. At the end of the binlog the event's time is the server's now.
 */
export async function binlogStartRewound(
  endpoint: MysqlEndpoint,
  file: string,
  pos: number,
  minutes: number,
): Promise<BinlogTimeStart> {
  const { id, nowMs } = await serverFacts(endpoint);
  const skip = new Set(["rotate", "format", "unknown"]);
  const eventAt = await probe(
    endpoint,
    id,
    file,
    pos,
    (name, e) => skip.has(name) || e.timestamp === 0 ? null : e.timestamp,
  ).catch((err) => {
    throw mysqlQueryError(endpoint, `Reading the binlog at ${file}:${pos}`, err);
  });
  const base = eventAt ?? nowMs;
  return await binlogStartAtTime(endpoint, base - minutes * 60_000);
}

/** Where realtime starts for a `start-position`, and the time its gate opens at (if any). */
export interface MysqlStart {
  coordinate: BinlogCoordinate;
  /** Transactions committed before this are passed over (StartTimeGate); null: none. */
  gateMs: number | null;
}

export async function resolveMysqlStart(
  endpoint: MysqlEndpoint,
  start: StartPosition,
): Promise<MysqlStart> {
  if (start.startTimestampMs !== undefined) {
    const at = await binlogStartAtTime(endpoint, start.startTimestampMs);
    return { coordinate: { file: at.file, pos: at.pos }, gateMs: at.startMs };
  }
  if (start.log !== undefined && start.position !== undefined) {
    if (start.rewindMinutes !== undefined) {
      const at = await binlogStartRewound(endpoint, start.log, start.position, start.rewindMinutes);
      return { coordinate: { file: at.file, pos: at.pos }, gateMs: at.startMs };
    }
    return { coordinate: { file: start.log, pos: start.position }, gateMs: null };
  }
  if (start.gtid !== undefined) {
    return { coordinate: await gtidStart(endpoint, start.gtid), gateMs: null };
  }
  throw new SourceError(
    "start-position gives no MySQL start (log and position, gtid, or start-timestamp)",
  );
}

/**
 * A start at a GTID set (MySQL `uuid:1-5`) or position (MariaDB `0-1-42`): only where the
 * server can stream from one (the file is replaced by the server's first rotate event).
 */
async function gtidStart(endpoint: MysqlEndpoint, gtid: string): Promise<BinlogCoordinate> {
  const conn = await openMysql(endpoint);
  try {
    const [rows] = await conn.query({ sql: "SELECT VERSION()", rowsAsArray: true }) as unknown as [
      unknown[][],
    ];
    const isMariadb = /mariadb/i.test(String(rows[0][0]));
    const mysqlStyle = gtid.includes(":");
    if (isMariadb === mysqlStyle) {
      throw new SourceError(
        `start-position.gtid ${JSON.stringify(gtid)} is a ${
          mysqlStyle ? "MySQL GTID set" : "MariaDB GTID position"
        }, but the server is ${isMariadb ? "MariaDB" : "MySQL"}`,
      );
    }
    if (!isMariadb) {
      const [mode] = await conn.query({
        sql: "SELECT @@GLOBAL.gtid_mode",
        rowsAsArray: true,
      }) as unknown as [
        unknown[][],
      ];
      if (String(mode[0][0]).toUpperCase() !== "ON") {
        throw new SourceError(
          "start-position.gtid needs gtid_mode=ON on the MySQL server; give `log` and `position` instead",
        );
      }
    }
    const now = await masterStatus(conn, isMariadb);
    return { file: now.file, pos: 4, gtid };
  } catch (err) {
    throw mysqlQueryError(endpoint, "Checking start-position.gtid", err);
  } finally {
    conn.destroy();
  }
}
