import assert from "node:assert/strict";
import {
  gtidCovered,
  mysqlGtidSetMinus,
  mysqlResumeVerdict,
  type MysqlServerView,
} from "../../../src/source/mysql/mysql_binlog_gap.ts";
import { formatMysqlGtidSet, parseMysqlGtidSet } from "../../../src/source/mysql/mysql_position.ts";

const WHAT = "after the last transaction written";
const A = "mariadb:1:uidA";
const B = "mariadb:2:uidB";

function mariadb(over: Partial<MysqlServerView> = {}): MysqlServerView {
  return {
    mariadb: true,
    identity: A,
    serverId: 1,
    binlogs: ["binlog.000003", "binlog.000004"],
    gtidBinlogState: "0-1-120",
    oldestGtidList: "0-1-80",
    gtidAtCheckpoint: "0-1-100",
    ...over,
  };
}

const at = { file: "binlog.000004", pos: 1234, gtid: "0-1-100" };

Deno.test("mariadb verdict: the same server with the checkpoint's transactions continues", () => {
  assert.deepEqual(mysqlResumeVerdict(at, WHAT, A, mariadb()), { kind: "continue" });
  assert.deepEqual(mysqlResumeVerdict(at, WHAT, null, mariadb()), { kind: "continue" });
  // The file is purged but nothing after the checkpoint: GTIDs still reach it.
  assert.deepEqual(
    mysqlResumeVerdict(
      at,
      WHAT,
      A,
      mariadb({ binlogs: ["binlog.000005"], oldestGtidList: "0-1-100", gtidAtCheckpoint: null }),
    ),
    { kind: "continue" },
  );
  // Moved to another port (another identity), same binlog history.
  assert.deepEqual(
    mysqlResumeVerdict(at, WHAT, "mariadb:1:oldport", mariadb()),
    { kind: "continue" },
  );
});

Deno.test("mariadb verdict: purged past the checkpoint, GTIDs missing, another server", () => {
  const purged = mysqlResumeVerdict(at, WHAT, A, mariadb({ oldestGtidList: "0-1-101" }));
  assert.equal(purged.kind, "gap");
  if (purged.kind === "gap") {
    assert.match(purged.gap.reason, /purged \(up to 0-1-101\)/);
    assert.match(purged.gap.checkpoint, /binlog binlog\.000004:1234, GTID 0-1-100/);
  }
  const newDomain = mysqlResumeVerdict(at, WHAT, A, mariadb({ oldestGtidList: "0-1-90,1-1-5" }));
  assert.equal(newDomain.kind, "gap", "a domain the checkpoint never saw was purged");

  const behind = mysqlResumeVerdict(at, WHAT, A, mariadb({ gtidBinlogState: "0-1-99" }));
  assert.equal(behind.kind, "gap");
  if (behind.kind === "gap") assert.match(behind.gap.reason, /does not have .* 0-1-100/);

  // A fresh server with the same server_id and a longer history of its own.
  const impostor = mysqlResumeVerdict(
    at,
    WHAT,
    A,
    mariadb({ identity: "mariadb:1:uidC", gtidAtCheckpoint: "0-1-7", gtidBinlogState: "0-1-500" }),
  );
  assert.equal(impostor.kind, "gap");
  if (impostor.kind === "gap") assert.match(impostor.gap.reason, /own server_id 1/);
});

Deno.test("mariadb verdict: a replica that has the checkpoint's GTIDs is a failover", () => {
  const replica = mariadb({
    identity: B,
    serverId: 2,
    binlogs: ["binlog.000001"],
    gtidBinlogState: "0-1-100,0-2-130",
    oldestGtidList: "",
    gtidAtCheckpoint: null,
  });
  assert.deepEqual(mysqlResumeVerdict(at, WHAT, A, replica), {
    kind: "failover",
    from: A,
    to: B,
  });
  const lagging = mysqlResumeVerdict(at, WHAT, A, { ...replica, gtidBinlogState: "0-1-90" });
  assert.equal(lagging.kind, "gap");
  // Once the move is recorded, the replica is the checkpoint's server.
  assert.deepEqual(mysqlResumeVerdict(at, WHAT, B, replica), { kind: "continue" });
});

Deno.test("binlog verdict without GTIDs: only the same server, only while the file is there", () => {
  const noGtid = { file: "binlog.000004", pos: 1234 };
  const mysql = (over: Partial<MysqlServerView> = {}): MysqlServerView => ({
    mariadb: false,
    identity: "mysql:aaaa",
    serverId: 1,
    binlogs: ["binlog.000004"],
    gtidMode: false,
    ...over,
  });
  assert.deepEqual(mysqlResumeVerdict(noGtid, WHAT, "mysql:aaaa", mysql()), { kind: "continue" });
  const purged = mysqlResumeVerdict(
    noGtid,
    WHAT,
    "mysql:aaaa",
    mysql({ binlogs: ["binlog.000005"] }),
  );
  assert.equal(purged.kind, "gap");
  if (purged.kind === "gap") assert.match(purged.gap.reason, /binlog\.000004 was purged/);
  const other = mysqlResumeVerdict(noGtid, WHAT, "mysql:aaaa", mysql({ identity: "mysql:bbbb" }));
  assert.equal(other.kind, "gap");
  const start = mysqlResumeVerdict(
    noGtid,
    "the extractor's realtime.start-position",
    null,
    mysql({ binlogs: ["binlog.000009"] }),
  );
  assert.equal(start.kind, "gap");
  if (start.kind === "gap") assert.match(start.gap.checkpoint, /start-position/);
});

Deno.test("mysql verdict with GTIDs: executed must hold the checkpoint, purged must be in it", () => {
  const u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
  const u2 = "4f22fb58-82db-22f2-af44-d91bb0530673";
  const gtidAt = { file: "binlog.000004", pos: 99, gtid: `${u1}:1-50` };
  const view = (over: Partial<MysqlServerView> = {}): MysqlServerView => ({
    mariadb: false,
    identity: `mysql:${u1}`,
    serverId: 1,
    binlogs: ["binlog.000004"],
    gtidMode: true,
    gtidExecuted: `${u1}:1-70`,
    gtidPurged: `${u1}:1-20`,
    ...over,
  });
  assert.deepEqual(mysqlResumeVerdict(gtidAt, WHAT, `mysql:${u1}`, view()), { kind: "continue" });
  assert.equal(
    mysqlResumeVerdict(gtidAt, WHAT, `mysql:${u1}`, view({ gtidPurged: `${u1}:1-55` })).kind,
    "gap",
  );
  assert.equal(
    mysqlResumeVerdict(gtidAt, WHAT, `mysql:${u1}`, view({ gtidExecuted: `${u1}:1-40` })).kind,
    "gap",
  );
  assert.deepEqual(
    mysqlResumeVerdict(
      gtidAt,
      WHAT,
      `mysql:${u1}`,
      view({ identity: `mysql:${u2}`, gtidExecuted: `${u1}:1-70,${u2}:1-3` }),
    ),
    { kind: "failover", from: `mysql:${u1}`, to: `mysql:${u2}` },
  );
});

Deno.test("GTID sets: difference and coverage", () => {
  const u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
  const minus = (a: string, b: string) =>
    formatMysqlGtidSet(mysqlGtidSetMinus(parseMysqlGtidSet(a), parseMysqlGtidSet(b)));
  assert.equal(minus(`${u}:1-10`, `${u}:1-10`), "");
  assert.equal(minus(`${u}:1-10`, `${u}:3-4:8`), `${u}:1-2:5-7:9-10`);
  assert.equal(minus(`${u}:1-10`, ""), `${u}:1-10`);
  assert.equal(minus(`${u}:5`, `${u}:1-4:6-9`), `${u}:5`);
  assert.ok(gtidCovered(`${u}:1-10`, `${u}:10`));
  assert.ok(!gtidCovered(`${u}:1-10`, `${u}:11`));
  assert.ok(gtidCovered("0-1-100,1-2-5", "0-1-99"));
  assert.ok(!gtidCovered("0-1-100", "0-2-101"));
  assert.ok(!gtidCovered("0-1-100", "1-1-1"));
});
