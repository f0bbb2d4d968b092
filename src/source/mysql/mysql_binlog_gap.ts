/**
 * Whether a MySQL/MariaDB server can still deliver every change after a binlog checkpoint,
 * and whether it is the server the checkpoint came from.
 *
 * Server identity: MySQL's `server_uuid`. MariaDB has none; its identity here is
 * `server_id` with `server_uid` (a hash of the server's port and MAC address), recorded
 * with the checkpoint (and moved to the new server when a failover is accepted). The same
 * identity is the same server. Another identity may still be the same binlog history (the
 * server moved to another port or host): on MariaDB the binlog decides, when
 * `BINLOG_GTID_POS(file, pos)` of the checkpoint's coordinate gives the checkpoint's own
 * GTID position.
 *
 * A server that is not the checkpoint's may still continue it (a failover) when the
 * checkpoint has GTIDs, the server has every one of them, and it still holds every
 * transaction after them. On MariaDB those GTIDs must also come from other servers than
 * the new one (replicated to it): a server that generated them itself under the same
 * server_id is not a replica of the old one.
 *
 * @module
 */

import type { SourceGap } from "../../core/errors.ts";
import type { MysqlConnection } from "./mysql_endpoint.ts";
import {
  type BinlogCoordinate,
  isMysqlGtid,
  mariadbGtidCovered,
  type MariadbGtidPos,
  type MysqlGtidSet,
  mysqlGtidSetContains,
  parseMariadbGtidPos,
  parseMysqlGtidSet,
} from "./mysql_position.ts";

/** What a server says about itself and its binlog. */
export interface MysqlServerView {
  mariadb: boolean;
  /** `mysql:<server_uuid>` or `mariadb:<server_id>:<server_uid>`. */
  identity: string;
  serverId: number;
  /** `SHOW BINARY LOGS`, oldest first. */
  binlogs: string[];
  /** MariaDB `@@gtid_binlog_state`: the last GTID of every domain and server in the binlog. */
  gtidBinlogState?: string;
  /** MariaDB: the Gtid_list of the oldest binlog (what precedes it); undefined if unknown. */
  oldestGtidList?: string;
  /**
   * MariaDB `BINLOG_GTID_POS(file, pos)` of the checkpoint's coordinate: null when the
   * server has no event boundary there, undefined when not asked (same identity) or refused.
   */
  gtidAtCheckpoint?: string | null;
  /** MySQL `@@gtid_mode` is ON. */
  gtidMode?: boolean;
  gtidExecuted?: string;
  gtidPurged?: string;
}

export type MysqlResumeVerdict =
  | { kind: "continue" }
  /** Another server, holding every GTID of the checkpoint and everything after them. */
  | { kind: "failover"; from: string | null; to: string }
  | { kind: "gap"; gap: SourceGap };

export function describeCoordinate(at: BinlogCoordinate): string {
  return `binlog ${at.file}:${at.pos}` + (at.gtid ? `, GTID ${at.gtid}` : "");
}

/**
 * Whether the server can continue after `at`. `what` says what the position is, for
 * messages (`after the last transaction written`, …); `recorded` is the identity of the checkpoint's
 * server (null when the checkpoint predates identities: then the binlog alone decides).
 */
export function mysqlResumeVerdict(
  at: BinlogCoordinate,
  what: string,
  recorded: string | null,
  server: MysqlServerView,
): MysqlResumeVerdict {
  const checkpoint = `${describeCoordinate(at)} (${what})` +
    (recorded ? ` on server ${recorded}` : "");
  const gap = (available: string, reason: string): MysqlResumeVerdict => ({
    kind: "gap",
    gap: { checkpoint, available, reason },
  });
  const binlogs = server.binlogs.length > 0
    ? `binlogs ${server.binlogs[0]} to ${server.binlogs[server.binlogs.length - 1]}`
    : "no binlog";
  const gtid = at.gtid && isMysqlGtid(at.gtid) !== server.mariadb ? at.gtid : undefined;
  const sameIdentity = recorded === null || recorded === server.identity;
  const otherServer = `server ${server.identity}, a different server`;

  if (server.mariadb) {
    // Another identity may still be the same binlog history (the server moved to another
    // port or host): then the checkpoint's coordinate gives the checkpoint's own GTIDs.
    const same = sameIdentity ||
      (typeof server.gtidAtCheckpoint === "string" && gtid !== undefined &&
        sameMariadbPos(server.gtidAtCheckpoint, gtid));
    if (gtid) {
      const wanted = parseMariadbGtidPos(gtid);
      const state = mariadbState(server.gtidBinlogState ?? "");
      const lacking = [...wanted].filter(([d, g]) =>
        !((state.get(`${d}-${g.server}`) ?? -1n) >= g.seq)
      );
      if (lacking.length > 0) {
        return gap(
          `${same ? "" : otherServer + ", with "}gtid_binlog_state ${server.gtidBinlogState}`,
          `The server does not have the checkpoint's transactions ${
            lacking.map(([d, g]) => `${d}-${g.server}-${g.seq}`).join(", ")
          }${same ? "" : ": it is not the checkpoint's server, nor a replica of it"}.`,
        );
      }
      const purged = purgedDomains(wanted, server.oldestGtidList);
      if (purged !== null) {
        return gap(
          `${binlogs}; the oldest starts after GTIDs ${server.oldestGtidList}`,
          `Binlogs holding transactions after the checkpoint were purged (${purged}).`,
        );
      }
      if (same) return { kind: "continue" };
      const own = [...wanted].filter(([, g]) => g.server === server.serverId);
      if (own.length > 0) {
        return gap(
          otherServer,
          `The connection file now leads to another server than the checkpoint's, and the ` +
            `checkpoint's GTIDs ${
              own.map(([d, g]) => `${d}-${g.server}-${g.seq}`).join(", ")
            } carry that server's own server_id ${server.serverId}: it wrote them itself, it ` +
            `did not receive them from the checkpoint's server.`,
        );
      }
      return { kind: "failover", from: recorded, to: server.identity };
    }
    return filePositionVerdict(same);
  }

  if (gtid && server.gtidMode) {
    const wanted = parseMysqlGtidSet(gtid);
    const executed = parseMysqlGtidSet(server.gtidExecuted ?? "");
    const missing = mysqlGtidSetMinus(wanted, executed);
    if (missing.size > 0) {
      return gap(
        `${sameIdentity ? "" : otherServer + ", with "}gtid_executed ${server.gtidExecuted}`,
        `The server does not have the checkpoint's transactions ${formatSet(missing)}.`,
      );
    }
    const lost = mysqlGtidSetMinus(parseMysqlGtidSet(server.gtidPurged ?? ""), wanted);
    if (lost.size > 0) {
      return gap(
        `${binlogs}; gtid_purged ${server.gtidPurged}`,
        `Binlogs holding transactions after the checkpoint were purged (${formatSet(lost)}).`,
      );
    }
    return sameIdentity
      ? { kind: "continue" }
      : { kind: "failover", from: recorded, to: server.identity };
  }
  return filePositionVerdict(sameIdentity);

  function filePositionVerdict(same: boolean): MysqlResumeVerdict {
    if (!same) {
      return gap(
        otherServer,
        "The connection file now leads to another server than the checkpoint's, and " +
          "without GTIDs a binlog file and position mean nothing on another server.",
      );
    }
    if (!server.binlogs.includes(at.file)) {
      return gap(
        binlogs,
        `Binlog ${at.file} was purged (PURGE BINARY LOGS, expire_logs_days or ` +
          "binlog_expire_logs_seconds); the changes after the checkpoint in it are gone.",
      );
    }
    return { kind: "continue" };
  }
}

function sameMariadbPos(a: string, b: string): boolean {
  const pa = parseMariadbGtidPos(a), pb = parseMariadbGtidPos(b);
  if (pa.size !== pb.size) return false;
  for (const [d, g] of pa) {
    const o = pb.get(d);
    if (!o || o.server !== g.server || o.seq !== g.seq) return false;
  }
  return true;
}

/** `@@gtid_binlog_state` (one entry per domain and server) → `domain-server` → seq. */
function mariadbState(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const part of text.replace(/\s+/g, "").split(",")) {
    const m = /^(\d+)-(\d+)-(\d+)$/.exec(part);
    if (m) out.set(`${m[1]}-${m[2]}`, BigInt(m[3]));
  }
  return out;
}

/**
 * The domains whose transactions after `wanted` were purged: the oldest binlog starts after
 * a later GTID of the domain, or after any GTID of a domain `wanted` has none of. Null when
 * nothing needed was purged (or the oldest binlog's list is unknown).
 */
function purgedDomains(wanted: MariadbGtidPos, oldestList: string | undefined): string | null {
  if (oldestList === undefined) return null;
  const purged: string[] = [];
  for (const part of oldestList.replace(/[\[\]\s]/g, "").split(",")) {
    const m = /^(\d+)-(\d+)-(\d+)$/.exec(part);
    if (!m) continue;
    const have = wanted.get(Number(m[1]));
    if (have === undefined || have.seq < BigInt(m[3])) purged.push(part);
  }
  return purged.length > 0 ? `up to ${purged.join(", ")}` : null;
}

/** Whether the transaction `gtid` is within the checkpoint's GTID set or position. */
export function gtidCovered(checkpointGtid: string, gtid: string): boolean {
  return isMysqlGtid(checkpointGtid)
    ? mysqlGtidSetContains(parseMysqlGtidSet(checkpointGtid), gtid)
    : mariadbGtidCovered(parseMariadbGtidPos(checkpointGtid), gtid);
}

/** The GTIDs of `a` that are not in `b`. */
export function mysqlGtidSetMinus(a: MysqlGtidSet, b: MysqlGtidSet): MysqlGtidSet {
  const out: MysqlGtidSet = new Map();
  for (const [uuid, intervals] of a) {
    const other = b.get(uuid) ?? [];
    const left: [bigint, bigint][] = [];
    for (const [lo, hi] of intervals) {
      let from = lo;
      for (const [olo, ohi] of other) {
        if (ohi < from || olo > hi) continue;
        if (olo > from) left.push([from, olo - 1n]);
        from = ohi + 1n;
        if (from > hi) break;
      }
      if (from <= hi) left.push([from, hi]);
    }
    if (left.length > 0) out.set(uuid, left);
  }
  return out;
}

function formatSet(set: MysqlGtidSet): string {
  return [...set].map(([k, iv]) =>
    k + ":" + iv.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`)).join(":")
  ).join(",");
}

/** The server's identity (see the module note). */
export async function mysqlServerIdentity(
  conn: MysqlConnection,
  mariadb: boolean,
): Promise<string> {
  if (!mariadb) return `mysql:${await scalar(conn, "SELECT @@GLOBAL.server_uuid")}`;
  const id = await scalar(conn, "SELECT @@GLOBAL.server_id");
  // server_uid exists from MariaDB 10.3 on.
  const uid = await scalar(conn, "SELECT @@GLOBAL.server_uid").catch(() => "");
  return `mariadb:${id}:${uid}`;
}

async function scalar(conn: MysqlConnection, sql: string): Promise<string> {
  const [rows] = await conn.query({ sql, rowsAsArray: true }) as unknown as [unknown[][]];
  return String(rows[0]?.[0] ?? "");
}

/**
 * Reads what mysqlResumeVerdict needs about the server, for the coordinate `at` recorded on
 * server `recorded`. `BINLOG_GTID_POS` reads the binlog file up to the position, so it is
 * asked only when the identity differs (the only case that uses it).
 */
export async function readMysqlServerView(
  conn: MysqlConnection,
  mariadb: boolean,
  at: BinlogCoordinate,
  recorded: string | null,
): Promise<MysqlServerView> {
  const [logs] = await conn.query("SHOW BINARY LOGS") as unknown as [Record<string, unknown>[]];
  const view: MysqlServerView = {
    mariadb,
    identity: await mysqlServerIdentity(conn, mariadb),
    serverId: Number(await scalar(conn, "SELECT @@GLOBAL.server_id")),
    binlogs: logs.map((r) => String(r.Log_name ?? r.log_name)),
  };
  if (mariadb) {
    view.gtidBinlogState = await scalar(conn, "SELECT @@GLOBAL.gtid_binlog_state");
    if (view.binlogs.length > 0) {
      try {
        const [events] = await conn.query(
          `SHOW BINLOG EVENTS IN ${conn.escape(view.binlogs[0])} LIMIT 4`,
        ) as unknown as [Record<string, unknown>[]];
        const list = events.find((e) => e.Event_type === "Gtid_list");
        if (list) view.oldestGtidList = String(list.Info ?? "").replace(/[\[\]\s]/g, "");
      } catch {
        // Unknown: the server itself then refuses a position it purged.
      }
    }
    if (recorded !== null && recorded !== view.identity) {
      try {
        const [rows] = await conn.query({
          sql: "SELECT BINLOG_GTID_POS(?, ?)",
          values: [at.file, at.pos],
          rowsAsArray: true,
        }) as unknown as [unknown[][]];
        const v = rows[0]?.[0];
        view.gtidAtCheckpoint = v === null || v === undefined ? null : String(v);
      } catch {
        // Unknown: the identity alone decides.
      }
    }
  } else {
    const mode = await scalar(conn, "SELECT @@GLOBAL.gtid_mode").catch(() => "OFF");
    view.gtidMode = mode.toUpperCase() === "ON";
    if (view.gtidMode) {
      view.gtidExecuted = (await scalar(conn, "SELECT @@GLOBAL.gtid_executed"))
        .replace(/\s+/g, "");
      view.gtidPurged = (await scalar(conn, "SELECT @@GLOBAL.gtid_purged")).replace(/\s+/g, "");
    }
  }
  return view;
}
