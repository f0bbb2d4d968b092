import assert from "node:assert/strict";
import { MysqlBinlogSource } from "../../../src/source/mysql/mysql_binlog_source.ts";
import { MysqlSnapshotSource } from "../../../src/source/mysql/mysql_snapshot_source.ts";
import { formatCheckpoint, parseCheckpoint } from "../../../src/source/mysql/mysql_position.ts";
import type { MysqlTable } from "../../../src/source/mysql/mysql_schema_reader.ts";
import type { RowFragments } from "../../../src/core/change_event.ts";
import type { JsonRowBatch } from "../../../src/core/json_row_batch.ts";
import type { TableId } from "../../../src/core/table_schema.ts";
import { coreConnection, MysqlTextRows } from "../../../src/source/mysql/mysql_text_rows.ts";
import { openMysql, quoteIdent } from "../../../src/source/mysql/mysql_endpoint.ts";
import { SourceError } from "../../../src/core/errors.ts";
import { waitFor } from "../../helpers/services.ts";
import {
  admin,
  collect,
  endpoint,
  env,
  selectTables,
  sortRows,
  stringPathRows,
  uniqueName,
} from "./mysql_test_helpers.ts";

async function readAll(
  it: AsyncIterable<JsonRowBatch>,
): Promise<{ chunks: number[]; rows: RowFragments[] }> {
  const chunks: number[] = [];
  const rows: RowFragments[] = [];
  for await (const c of it) {
    chunks.push(c.rows);
    rows.push(...c.toRows());
  }
  return { chunks, rows };
}

Deno.test("mysql snapshot: schema, keyset chunks, composite keys, resume after a key", async () => {
  const t1 = uniqueName("sn_pk"), t2 = uniqueName("sn_ck"), t3 = uniqueName("sn_uk");
  const db = await admin();
  try {
    await db.query(
      `CREATE TABLE ${t1} (id BIGINT UNSIGNED PRIMARY KEY, v VARCHAR(10) NOT NULL DEFAULT 'x',
      n INT NULL) DEFAULT CHARSET=utf8mb4`,
    );
    await db.query(`CREATE TABLE ${t2} (a VARCHAR(10) NOT NULL, b VARBINARY(4) NOT NULL,
      c INT, PRIMARY KEY (b, a)) DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_general_ci`);
    await db.query(
      `CREATE TABLE ${t3} (u INT NOT NULL, n INT NULL, z INT, UNIQUE KEY (n), UNIQUE KEY (u))`,
    );
    await db.query(`INSERT INTO ${t1} (id, n) SELECT seq, seq * 2 FROM seq_1_to_1005`);
    await db.query(`INSERT INTO ${t1} (id) VALUES (18446744073709551615)`);
    const letters = ["a", "B", "c", "D", "é", "F"];
    for (const b of ["00", "01", "FF"]) {
      for (const a of letters) await db.query(`INSERT INTO ${t2} VALUES (?, X'${b}', 1)`, [a]);
    }
    await db.query(`INSERT INTO ${t3} SELECT seq, seq, seq FROM seq_1_to_10`);

    const snap = await MysqlSnapshotSource.open(endpoint(), selectTables(t1, t2, t3));
    try {
      assert.equal(snap.connector, "mysql");
      assert.ok(Math.abs(snap.snapshotTsMs - Date.now()) < 60_000);
      const tables = await snap.tables();
      const by = new Map(tables.map((t) => [t.schema.id.table, t.schema as MysqlTable]));
      const s1 = by.get(t1)!, s2 = by.get(t2)!, s3 = by.get(t3)!;
      assert.deepEqual(s1.id, { catalog: env.database, schema: null, table: t1 } as TableId);
      assert.deepEqual(
        s1.columns.map((
          c,
        ) => [c.name, c.sourceType, c.connectType, c.nullable, c.keyPosition, c.defaultValue]),
        [
          ["id", "bigint(20) unsigned", "int64", false, 1, null],
          ["v", "varchar(10)", "string", false, null, "'x'"],
          ["n", "int(11)", "int32", true, null, "NULL"],
        ],
      );
      assert.deepEqual(s2.keyColumns, [1, 0]);
      assert.deepEqual(s2.columns.map((c) => c.keyPosition), [2, 1, null]);
      assert.equal(s3.hasKey, true);
      assert.deepEqual(s3.keyColumns, [0], "unique key over NOT NULL columns");
      assert.deepEqual(s3.columns.map((c) => c.keyPosition), [null, null, null]);

      const reader = await snap.reader();
      const r1 = await readAll(reader.read(s1, null, 100));
      assert.deepEqual(r1.chunks, [...Array(10).fill(100), 6]);
      assert.deepEqual(r1.rows.slice(0, 2), [["1", '"x"', "2"], ["2", '"x"', "4"]]);
      assert.deepEqual(r1.rows.at(-1), ['"18446744073709551615"', '"x"', "null"]);
      assert.deepEqual(r1.rows, await stringPathRows(s1), "byte path = string path");
      const after = await readAll(reader.read(s1, [1000], 4));
      assert.deepEqual(after.rows.map((r) => r[0]), [
        "1001",
        "1002",
        "1003",
        "1004",
        "1005",
        '"18446744073709551615"',
      ]);
      const afterBig = await readAll(reader.read(s1, ["18446744073709551615"], 4));
      assert.equal(afterBig.rows.length, 0);

      // Composite key (binary, case-insensitive text): chunks of 4 keep the server's order.
      const whole2 = await readAll(reader.read(s2, null, 100));
      const chunked2 = await readAll(reader.read(s2, null, 4));
      assert.deepEqual(chunked2.rows, whole2.rows);
      assert.deepEqual(whole2.rows, await stringPathRows(s2), "byte path = string path");
      assert.equal(whole2.rows.length, 18);
      assert.deepEqual(chunked2.chunks, [4, 4, 4, 4, 2]);
      // Resume after a key read back from a stream (binary as base64).
      const resumed = await readAll(reader.read(s2, ["AQ==", "c"], 100));
      const idx = whole2.rows.findIndex((r) => r[1] === '"AQ=="' && r[0] === '"c"');
      assert.deepEqual(resumed.rows, whole2.rows.slice(idx + 1));
      const r3 = await readAll(reader.read(s3, [7], 2));
      assert.deepEqual(r3.rows.map((r) => r[0]), ["8", "9", "10"]);
      await reader.close();
    } finally {
      await snap.close();
    }
  } finally {
    for (const t of [t1, t2, t3]) await db.query(`DROP TABLE IF EXISTS ${t}`);
    await db.end();
  }
});

Deno.test("mysql snapshot: tables without a key stream whole; column allow-list keeps the key", async () => {
  const t1 = uniqueName("sn_nokey"), t2 = uniqueName("sn_cols");
  const db = await admin();
  try {
    await db.query(`CREATE TABLE ${t1} (a INT, b VARCHAR(5))`);
    await db.query(`INSERT INTO ${t1} SELECT seq % 7, 'x' FROM seq_1_to_2500`);
    await db.query(`CREATE TABLE ${t2} (id INT PRIMARY KEY, secret VARCHAR(5), pub INT)`);
    await db.query(`INSERT INTO ${t2} VALUES (1, 's', 10)`);
    const selection = {
      table: (id: TableId) => id.catalog === env.database && [t1, t2].includes(id.table),
      columns: (id: TableId) => (id.table === t2 ? ["pub"] : null),
    };
    const snap = await MysqlSnapshotSource.open(endpoint(), selection);
    try {
      const tables = await snap.tables();
      const s1 = tables.find((t) => t.schema.id.table === t1)!.schema;
      const s2 = tables.find((t) => t.schema.id.table === t2)!.schema as MysqlTable;
      assert.equal(s1.hasKey, false);
      assert.deepEqual(s1.keyColumns, [0, 1]);
      assert.deepEqual(s2.columns.map((c) => c.name), ["id", "pub"]);
      assert.deepEqual(s2.ordinals, [0, 2]);
      const reader = await snap.reader();
      const r1 = await readAll(reader.read(s1, null, 1000));
      assert.deepEqual(r1.chunks, [1000, 1000, 500]);
      assert.equal(r1.rows.filter((r) => r[0] === "0").length, 357);
      assert.deepEqual(sortRows(r1.rows), await stringPathRows(s1 as MysqlTable));
      // The connection is still usable after a streamed read.
      const r2 = await readAll(reader.read(s2, null, 10));
      assert.deepEqual(r2.rows, [["1", "10"]]);
      // Abandoning a streamed read mid-way leaves no dangling state.
      for await (const _ of reader.read(s1, null, 10)) break;
      await reader.close();
    } finally {
      await snap.close();
    }
  } finally {
    for (const t of [t1, t2]) await db.query(`DROP TABLE IF EXISTS ${t}`);
    await db.end();
  }
});

Deno.test("mysql snapshot: consistent snapshot with its binlog position hands off to the binlog", async () => {
  const t1 = uniqueName("sn_cons");
  const db = await admin();
  try {
    await db.query(`CREATE TABLE ${t1} (id INT PRIMARY KEY, v INT)`);
    await db.query(`INSERT INTO ${t1} SELECT seq, 0 FROM seq_1_to_100`);
    const snap = await MysqlSnapshotSource.open(endpoint(), selectTables(t1));
    const source = await MysqlBinlogSource.open(endpoint(), { selection: selectTables(t1) });
    try {
      const [t] = await snap.tables();
      const reader = await snap.reader();
      // Written after the reader's snapshot: invisible to it, visible to the binlog after
      // the snapshot's position.
      await db.query(`INSERT INTO ${t1} SELECT seq, 1 FROM seq_101_to_150`);
      await db.query(`UPDATE ${t1} SET v = 2 WHERE id <= 10`);
      await db.query(`DELETE FROM ${t1} WHERE id = 100`);
      const rows = (await readAll(reader.read(t.schema, null, 30))).rows;
      assert.equal(rows.length, 100);
      assert.ok(rows.every((r) => r[1] === "0"));
      const positions = snap.tablePositions();
      const pos = positions.get(`${env.database}.${t1}`)!;
      assert.ok(pos, "the table's snapshot position is recorded");
      assert.match(pos.file, /\.\d+$/);
      assert.match(pos.gtid!, /^0-1-\d+$/);
      assert.deepEqual(snap.lowestPosition(), { file: pos.file, pos: pos.pos, gtid: pos.gtid });

      // Realtime from the snapshot's position yields exactly the later changes, all after
      // the table's skip mark.
      const stream = collect(source, formatCheckpoint(pos));
      await stream.waitEvents(50 + 10 + 1);
      await stream.stop();
      const evs = stream.events();
      assert.deepEqual(evs.map((e) => e.op).join(""), "c".repeat(50) + "u".repeat(10) + "d");
      assert.ok(evs.every((e) => e.position.sortKey! > pos.skipThrough));
      // And from the GTID alone the same.
      const byGtid = collect(
        source,
        JSON.stringify({ ...parseCheckpoint(formatCheckpoint(pos)), pos: 4 }),
      );
      await byGtid.waitEvents(61);
      await byGtid.stop();
      assert.deepEqual(
        byGtid.events().map((e) => e.position.sortKey),
        evs.map((e) => e.position.sortKey),
      );
      await reader.close();
    } finally {
      await source.close();
      await snap.close();
    }
  } finally {
    await db.query(`DROP TABLE IF EXISTS ${t1}`);
    await db.end();
  }
});

Deno.test("mysql snapshot: two batches reused, the socket paused one chunk ahead, abandoned keyset reads drained", async () => {
  const t1 = uniqueName("sn_ahead");
  const db = await admin();
  try {
    await db.query(`CREATE TABLE ${t1} (id INT PRIMARY KEY, v VARCHAR(100) NOT NULL)`);
    await db.query(
      `INSERT INTO ${t1} SELECT seq, REPEAT(CHAR(65 + seq % 26), 90) FROM seq_1_to_1000`,
    );
    const snap = await MysqlSnapshotSource.open(endpoint(), selectTables(t1));
    try {
      const [t] = await snap.tables();
      const table = t.schema as MysqlTable;
      const expected = await stringPathRows(table);

      // The row reader alone, so its progress can be watched.
      const conn = await openMysql(endpoint());
      try {
        const rows = new MysqlTextRows(coreConnection(conn), table.types, table.keyColumns);
        const q = rows.query(`SELECT * FROM ${quoteIdent(t1)}`, [], 100);
        const seen: JsonRowBatch[] = [];
        const got: RowFragments[] = [];
        const first = (await q.next())!;
        const firstText = first.toRows();
        seen.push(first);
        got.push(...firstText);
        // While the first batch is held, the second fills, then the socket pauses: rows
        // that arrive meanwhile wait in mysql2's queue, unread.
        await waitFor(() => q.rowCount >= 200, { timeoutMs: 10_000, what: "the second chunk" });
        for (let i = 0; i < 5; i++) await db.query("SELECT 1");
        assert.equal(q.rowCount, 200, "the reader stays one chunk ahead");
        assert.deepEqual(first.toRows(), firstText, "the held batch is not written to");
        for (;;) {
          const b = await q.next();
          if (!b) break;
          assert.ok(q.rowCount <= got.length + 2 * 100);
          if (!seen.includes(b)) seen.push(b);
          got.push(...b.toRows());
        }
        assert.equal(seen.length, 2, "two batches circulate");
        assert.deepEqual(got, expected);
        assert.deepEqual(q.lastKey()!.map((k) => k?.toString()), ["1000"]);
      } finally {
        await conn.end();
      }

      const reader = await snap.reader();
      // Abandoned after the first chunk: the next chunk's query is drained, the connection
      // keeps working.
      for await (const _ of reader.read(table, null, 10)) break;
      for await (const _ of reader.read(table, [500], 10)) break;
      const all = await readAll(reader.read(table, null, 333));
      assert.deepEqual(all.chunks, [333, 333, 333, 1]);
      assert.deepEqual(all.rows, expected);
      // A read that fails names the table; the connection still works afterwards. (A column
      // the table lacks: DDL on the table would wait for the reader's snapshot to end.)
      const broken = {
        ...table,
        columns: table.columns.map((c, i) => i === 1 ? { ...c, name: "no_such_column" } : c),
      };
      await assert.rejects(
        readAll(reader.read(broken, null, 10)),
        (err: unknown) =>
          err instanceof SourceError && err.message.includes(t1) &&
          err.message.includes("no_such_column"),
      );
      assert.equal((await readAll(reader.read(table, [990], 4))).rows.length, 10);
      await reader.close();
    } finally {
      await snap.close();
    }
  } finally {
    await db.query(`DROP TABLE IF EXISTS ${t1}`);
    await db.end();
  }
});
