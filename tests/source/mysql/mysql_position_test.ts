import assert from "node:assert/strict";
import {
  addMysqlGtid,
  binlogFileSequence,
  compareCoordinates,
  formatCheckpoint,
  formatMysqlGtidSet,
  mariadbGtidCovered,
  mysqlGtidSetContains,
  mysqlPositionFields,
  mysqlSortKey,
  mysqlSortKeyOfSource,
  parseCheckpoint,
  parseMariadbGtidPos,
  parseMasterStatus,
  parseMysqlGtidSet,
  snapshotSkipThrough,
} from "../../../src/source/mysql/mysql_position.ts";
import { SourceError } from "../../../src/core/errors.ts";

const U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
const U2 = "4a5b6c7d-0000-11e1-9e33-c80aa9429562";

Deno.test("mysql position: sort keys are fixed width and order like positions", () => {
  assert.equal(binlogFileSequence("binlog.000042"), 42);
  assert.equal(binlogFileSequence("mysql-bin.1234567"), 1234567);
  assert.throws(() => binlogFileSequence("nonumber"), SourceError);
  const k = mysqlSortKey("binlog.000003", 1333, 7);
  assert.equal(k, "0000000003" + "00000000000000001333" + "0000000007");
  const keys = [
    mysqlSortKey("binlog.000002", 999999999, 5),
    mysqlSortKey("binlog.000003", 4, 0),
    mysqlSortKey("binlog.000003", 4, 1),
    mysqlSortKey("binlog.000003", 10, 0),
    mysqlSortKey("binlog.000010", 4, 0),
  ];
  assert.deepEqual([...keys].sort(), keys);
  // A snapshot at (file 3, pos 10) covers transactions starting before 10, not at 10.
  const mark = snapshotSkipThrough({ file: "binlog.000003", pos: 10 });
  assert.ok(keys[2] <= mark && keys[3] > mark && keys[4] > mark);
  assert.ok(compareCoordinates({ file: "b.000002", pos: 9 }, { file: "b.000010", pos: 4 }) < 0);
});

Deno.test("mysql position: source fields", () => {
  assert.equal(
    mysqlPositionFields(1, "0-1-6", "binlog.000001", 1234, 0),
    '"server_id":1,"gtid":"0-1-6","file":"binlog.000001","pos":1234,"row":0',
  );
  assert.equal(
    mysqlPositionFields(7, undefined, "binlog.000001", 4, 3),
    '"server_id":7,"file":"binlog.000001","pos":4,"row":3',
  );
  JSON.parse(`{${mysqlPositionFields(1, `${U1}:5`, "b.1", 4, 0)}}`);
});

Deno.test("mysql position: checkpoint tokens round-trip and are validated", () => {
  const c = { file: "binlog.000004", pos: 1856, gtid: "0-1-12,1-2-3" };
  assert.equal(formatCheckpoint(c), '{"file":"binlog.000004","pos":1856,"gtid":"0-1-12,1-2-3"}');
  assert.deepEqual(parseCheckpoint(formatCheckpoint(c)), c);
  assert.equal(formatCheckpoint({ file: "b.1", pos: 4 }), '{"file":"b.1","pos":4}');
  assert.deepEqual(parseCheckpoint('{"file":"b.1","pos":4,"gtid":""}'), { file: "b.1", pos: 4 });
  assert.throws(() => parseCheckpoint("0/1528A70"), SourceError);
  assert.throws(() => parseCheckpoint('{"file":"b.1"}'), SourceError);
});

Deno.test("mysql position: SHOW MASTER STATUS rows of MySQL (multi-line GTID set) and MariaDB", () => {
  const mysqlRow = {
    File: "mysql-bin.000007",
    Position: 2381,
    Binlog_Do_DB: "",
    Binlog_Ignore_DB: "",
    Executed_Gtid_Set: `${U1}:1-5,\n${U2}:1-3:7-9`,
  };
  assert.deepEqual(parseMasterStatus(mysqlRow), {
    file: "mysql-bin.000007",
    pos: 2381,
    gtid: `${U1}:1-5,${U2}:1-3:7-9`,
  });
  assert.deepEqual(parseMasterStatus({ ...mysqlRow, Executed_Gtid_Set: "" }), {
    file: "mysql-bin.000007",
    pos: 2381,
  });
  assert.deepEqual(parseMasterStatus({ File: "binlog.000003", Position: "645" }, "0-1-8"), {
    file: "binlog.000003",
    pos: 645,
    gtid: "0-1-8",
  });
  assert.throws(() => parseMasterStatus({}), SourceError);
});

Deno.test("mysql position: MySQL GTID sets (uuid:n), merge, contains, tags", () => {
  const set = parseMysqlGtidSet(`${U2}:7-9:1-3, ${U1.toUpperCase()}:1-5`);
  assert.equal(formatMysqlGtidSet(set), `${U1}:1-5,${U2}:1-3:7-9`);
  assert.ok(mysqlGtidSetContains(set, `${U2}:8`));
  assert.ok(!mysqlGtidSetContains(set, `${U2}:5`));
  addMysqlGtid(set, `${U2}:4`);
  addMysqlGtid(set, `${U2}:5`);
  addMysqlGtid(set, `${U2}:6`);
  assert.equal(formatMysqlGtidSet(set), `${U1}:1-5,${U2}:1-9`);
  addMysqlGtid(set, `${U1}:18446744073709551615`);
  assert.ok(mysqlGtidSetContains(set, `${U1}:18446744073709551615`));
  const tagged = parseMysqlGtidSet(`${U1}:1-3:tag_a:1-2`);
  assert.equal(formatMysqlGtidSet(tagged), `${U1}:1-3,${U1}:tag_a:1-2`);
  assert.ok(mysqlGtidSetContains(tagged, `${U1}:tag_a:2`));
  assert.equal(formatMysqlGtidSet(parseMysqlGtidSet("")), "");
  assert.throws(() => parseMysqlGtidSet("nope:1"), SourceError);
  assert.throws(() => parseMysqlGtidSet(`${U1}:5-3`), SourceError);
});

Deno.test("mysql position: MariaDB GTID positions", () => {
  const pos = parseMariadbGtidPos("0-1-12, 1-2-3");
  assert.ok(mariadbGtidCovered(pos, "0-1-12"));
  assert.ok(mariadbGtidCovered(pos, "0-5-2"));
  assert.ok(!mariadbGtidCovered(pos, "0-1-13"));
  assert.ok(!mariadbGtidCovered(pos, "2-1-1"));
  assert.throws(() => parseMariadbGtidPos(`${U1}:1`), SourceError);
});

Deno.test("mysql position: sort key of a written entry's source block", () => {
  const fields = mysqlPositionFields(1, "0-1-6", "binlog.000004", 1856, 2);
  assert.equal(
    mysqlSortKeyOfSource(JSON.parse(`{${fields}}`)),
    mysqlSortKey("binlog.000004", 1856, 2),
  );
  assert.equal(mysqlSortKeyOfSource(null), null);
  assert.equal(mysqlSortKeyOfSource({ file: null, pos: null, row: null }), null);
  assert.equal(mysqlSortKeyOfSource({ snapshot: "true", db: "x" }), null);
});
