import assert from "node:assert/strict";
import {
  formatEnumSetType,
  parseEnumSetLabels,
  relabelDefault,
} from "../../../src/source/mysql/mysql_enum_labels.ts";
import { readMysqlTables } from "../../../src/source/mysql/mysql_schema_reader.ts";
import { MysqlBinlogSource } from "../../../src/source/mysql/mysql_binlog_source.ts";
import { openMysql } from "../../../src/source/mysql/mysql_endpoint.ts";
import { SourceError } from "../../../src/core/errors.ts";
import { admin, endpoint, env, selectTables, uniqueName } from "./mysql_test_helpers.ts";

Deno.test("ENUM/SET labels as information_schema prints them: quotes, commas, escapes", () => {
  const labels = ["a,b", "it's", "back\\slash", "l1\nl2", "nul\0", "", "😀"];
  const printed = formatEnumSetType("enum", labels);
  assert.equal(printed, "enum('a,b','it''s','back\\\\slash','l1\\nl2','nul\\0','','😀')");
  assert.deepEqual(parseEnumSetLabels(printed), labels);
  assert.deepEqual(parseEnumSetLabels("SET('x','y')"), ["x", "y"]);
  assert.equal(parseEnumSetLabels("varchar(10)"), null);
  assert.equal(relabelDefault("'? grin'", "enum", ["a", "? grin"], ["a", "😀 grin"]), "'😀 grin'");
  assert.equal(relabelDefault("?,b", "set", ["?", "b"], ["🎉", "b"]), "🎉,b");
  assert.equal(relabelDefault(null, "enum", [], []), null);
});

Deno.test("labels beyond the BMP are read back through a temporary table the binlog never sees", async () => {
  const db = await admin();
  const t = uniqueName("emo");
  await db.query(
    `CREATE TABLE ${t} (id INT PRIMARY KEY, e ENUM('why?','😀'), s SET('🎉','b')) CHARSET utf8mb4`,
  );
  const conn = await openMysql(endpoint());
  try {
    const status = async () => JSON.stringify((await db.query("SHOW MASTER STATUS"))[0]);
    const before = await status();
    const [table] = await readMysqlTables(conn, selectTables(t), env.database);
    assert.equal(await status(), before, "nothing written to the binlog");
    assert.deepEqual(table.types.map((x) => x.labels), [undefined, ["why?", "😀"], ["🎉", "b"]]);
    assert.deepEqual(table.columns.map((c) => c.sourceType), [
      "int(11)",
      "enum('why?','😀')",
      "set('🎉','b')",
    ]);
  } finally {
    await conn.end();
    await db.query(`DROP TABLE ${t}`);
    await db.end();
  }
});

Deno.test("without CREATE TEMPORARY TABLES, realtime refuses a table whose labels it cannot read", async () => {
  const db = await admin();
  const t = uniqueName("emo_denied");
  const user = uniqueName("lbl").slice(0, 32);
  await db.query(`CREATE TABLE ${t} (id INT PRIMARY KEY, e ENUM('a','😀')) CHARSET utf8mb4`);
  await db.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw'`);
  await db.query(`GRANT SELECT ON ${env.database}.* TO '${user}'@'%'`);
  await db.query(`GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${user}'@'%'`);
  try {
    await assert.rejects(
      MysqlBinlogSource.open(endpoint({ user, password: "pw" }), { selection: selectTables(t) }),
      (err: Error) =>
        err instanceof SourceError &&
        err.message.includes(`${t}.e: information_schema prints its labels as enum('a','?')`) &&
        err.message.includes(`Grant the user CREATE TEMPORARY TABLES ON ${env.database}.*`),
    );
  } finally {
    await db.query(`DROP USER '${user}'@'%'`);
    await db.query(`DROP TABLE ${t}`);
    await db.end();
  }
});
