/**
 * MariaDB sources with what real schemas and Arcion's own files bring, through the binary:
 * filter column lists as Arcion's samples write them, ENUM/SET labels beyond the BMP,
 * declared types, Arcion's heartbeat table, server ids, grants, foreign-key cascades.
 */
import assert from "node:assert/strict";
import { runReplicant } from "../helpers/replicant.ts";
import { afters, filterFile, mysqlFixture } from "../helpers/mysql_fixture.ts";

Deno.test("filter columns: Arcion's upper-case comma form selects them; an unknown one is exit 2", async () => {
  const f = await mysqlFixture("myfid_cols");
  try {
    await f.db.query(
      "CREATE TABLE customers (id INT PRIMARY KEY, first_name VARCHAR(20), last_name VARCHAR(20), " +
        "email VARCHAR(40))",
    );
    await f.db.query("INSERT INTO customers VALUES (1, 'Ada', 'Lovelace', 'ada@example.org')");
    const arcionForm = filterFile(
      f.home,
      `allow:\n  catalog: "${f.database}"\n  types: [TABLE]\n  allow:\n    CUSTOMERS:\n` +
        `      allow: ["FIRST_NAME, LAST_NAME"]\n`,
    );
    const ok = await runReplicant(f.args("snapshot", ["--filter", arcionForm]));
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(await afters(f.redis, `${f.database}_customers`), [
      { id: 1, first_name: "Ada", last_name: "Lovelace" },
    ]);

    const unknown = filterFile(
      f.home,
      `allow:\n  - catalog: "${f.database}"\n    allow:\n      customers:\n` +
        `        allow: [first_name, no_such_column]\n`,
    );
    const bad = await runReplicant(f.args("snapshot", ["--filter", unknown, "--overwrite"]));
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(
      bad.stderr,
      new RegExp(
        `filter\\.yaml: allow\\[0\\]\\.allow\\.customers\\.allow: column "no_such_column" is ` +
          `not a column of table ${f.database}\\.customers \\(id, first_name, last_name, email\\)`,
      ),
    );
    // Nothing was written: the stream of the first run is still there as it was.
    assert.equal(await f.redis.xlen(`${f.database}_customers`), 1);
  } finally {
    await f.cleanup();
  }
});
