import assert from "node:assert/strict";
import { openMysql, pickServerId } from "../../../src/source/mysql/mysql_endpoint.ts";
import { SourceError } from "../../../src/core/errors.ts";
import { endpoint } from "./mysql_test_helpers.ts";

Deno.test("mysql endpoint: server id choice never takes the server's own", () => {
  assert.equal(pickServerId([1, 5], 1), 5);
  assert.equal(pickServerId([7], 1), 7);
  assert.throws(() => pickServerId([1], 1), /server_id 1/);
  assert.notEqual(pickServerId([], 0x5ea1), 0x5ea1);
});

Deno.test("mysql endpoint: sessions run in UTC", async () => {
  const conn = await openMysql(endpoint());
  try {
    const [rows] = await conn.query("SELECT @@session.time_zone AS tz") as unknown as [
      { tz: string }[],
    ];
    assert.equal(rows[0].tz, "+00:00");
  } finally {
    await conn.end();
  }
});

Deno.test("mysql endpoint: connect errors name server, origin and the fix", async () => {
  await assert.rejects(
    openMysql(endpoint({ port: 1 })),
    (err: Error) =>
      err instanceof SourceError && /127\.0\.0\.1:1/.test(err.message) &&
      /test mysql\.yaml/.test(err.message) && /connection refused/.test(err.message),
  );
  await assert.rejects(
    openMysql(endpoint({ user: "nobody_here", password: "x" })),
    (err: Error) => err instanceof SourceError && /access denied/.test(err.message),
  );
  await assert.rejects(
    openMysql(endpoint({ database: "no_such_db_here" })),
    (err: Error) =>
      err instanceof SourceError && /"no_such_db_here" does not exist/.test(err.message),
  );
});
