import assert from "node:assert/strict";
import { binlogLagBytes, MysqlLagSampler } from "../../src/source/mysql/mysql_lag_sampler.ts";
import { formatCheckpoint } from "../../src/source/mysql/mysql_position.ts";
import { admin, endpoint, uniqueName } from "../source/mysql/mysql_test_helpers.ts";

Deno.test("binlogLagBytes: rest of the file plus every later file; null when purged", () => {
  const logs = [{ name: "b.000001", size: 1000 }, { name: "b.000002", size: 500 }, {
    name: "b.000003",
    size: 300,
  }];
  assert.equal(binlogLagBytes(logs, { file: "b.000002", pos: 200 }), 300 + 300);
  assert.equal(binlogLagBytes(logs, { file: "b.000003", pos: 300 }), 0);
  assert.equal(binlogLagBytes(logs, { file: "b.000000", pos: 4 }), null);
});

Deno.test("MysqlLagSampler: 0 at the binlog's end, grows with writes after the checkpoint", async () => {
  const db = await admin();
  const database = uniqueName("lag");
  let token: string | null = null;
  const sampler = new MysqlLagSampler(endpoint(), () => Promise.resolve(token));
  try {
    assert.equal(await sampler.sample(), null, "no checkpoint yet");
    const [[status]] = await db.query("SHOW MASTER STATUS") as unknown as [
      { File: string; Position: number }[],
    ];
    token = formatCheckpoint({ file: status.File, pos: Number(status.Position) });
    assert.equal(await sampler.sample(), 0);
    await db.query(`CREATE DATABASE ${database}`);
    await db.query(`CREATE TABLE ${database}.t (id int PRIMARY KEY, v text)`);
    await db.query(`INSERT INTO ${database}.t SELECT seq, repeat('x', 200) FROM seq_1_to_100`);
    const lag = await sampler.sample();
    assert.ok(lag !== null && lag > 100 * 200, `lag ${lag}`);
  } finally {
    await db.query(`DROP DATABASE IF EXISTS ${database}`);
    await db.end();
    await sampler.close();
  }
});
