/**
 * The PostgreSQL snapshot reader against a real server: keyset COPY chunks over keys whose
 * text COPY escapes, resuming after a key, tables without a key streamed in chunks with
 * backpressure, and a reader given up half-way that still serves the next table.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { EventEmitter } from "node:events";
import type pg from "pg";
import type { JsonRowBatch } from "../../../src/core/json_row_batch.ts";
import type { TableId } from "../../../src/core/table_schema.ts";
import type { TableSelection } from "../../../src/ports/snapshot_source.ts";
import { openPg, type PgEndpoint } from "../../../src/source/postgres/pg_endpoint.ts";
import { PgCopyRows, unescapeCopyText } from "../../../src/source/postgres/pg_copy_rows.ts";
import { pgTextByteWriter } from "../../../src/source/postgres/pg_text_bytes.ts";
import { PgSnapshotSource } from "../../../src/source/postgres/pg_snapshot_source.ts";
import { PgTypeCatalog } from "../../../src/source/postgres/pg_type_catalog.ts";
import { serviceEnv, waitFor } from "../../helpers/services.ts";

const SCHEMA = `replicant_pg_snap_${Deno.pid}`;

function endpoint(): PgEndpoint {
  const { host, port, user, database } = serviceEnv().pg;
  const password = Deno.env.get("REPLICANT_PG_PASSWORD");
  return { host, port, user, database, origin: "test", ...(password ? { password } : {}) };
}

function selectTables(...names: string[]): TableSelection {
  return {
    table: (id: TableId) => id.schema === SCHEMA && names.includes(id.table),
    columns: () => null,
  };
}

async function withSchema(fn: (db: pg.Client) => Promise<void>): Promise<void> {
  const db = await openPg(endpoint(), "replicant-test");
  try {
    await db.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE; CREATE SCHEMA "${SCHEMA}"`);
    await fn(db);
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`).catch(() => {});
    await db.end();
  }
}

/** Every row of the batches as parsed JSON values, and the size of each batch. */
async function readAll(it: AsyncIterable<JsonRowBatch>) {
  const rows: unknown[][] = [];
  const sizes: number[] = [];
  for await (const batch of it) {
    sizes.push(batch.rows);
    for (const row of batch.toRows()) rows.push(row.map((f) => JSON.parse(f)));
  }
  return { rows, sizes };
}

const TRICKY = [
  "",
  " ",
  "plain",
  "it's",
  "''",
  'say "hi"',
  "back\\slash",
  "\\N",
  "\\\\",
  "tab\there",
  "new\nline",
  "cr\rlf\n",
  "\u0001\u001f\u007f",
  "ünï ☃ 😀 中文",
  "E'x'",
  "x'); DROP TABLE t; --",
];

Deno.test("unescapeCopyText reads COPY's escapes like COPY FROM does", () => {
  const cases: [string, string][] = [
    ["plain", "plain"],
    ["\\\\", "\\"],
    ["\\t\\n\\r\\b\\f\\v", "\t\n\r\b\f\v"],
    ["\\101\\60\\0x", "A0\u0000x"],
    ["\\x41\\x4\\xg", "A\u0004xg"],
    ["\\N\\q\\.", "Nq."],
    ["end\\", "end\\"],
  ];
  for (const [escaped, want] of cases) {
    const src = new TextEncoder().encode(escaped);
    const dst = new Uint8Array(src.length);
    const n = unescapeCopyText(src, 0, src.length, dst);
    assert.equal(new TextDecoder().decode(dst.subarray(0, n)), want, escaped);
  }
});

/** A protocol message: type, length (counting itself), body. */
function message(type: string, body: Uint8Array | string): Buffer {
  const b = typeof body === "string" ? Buffer.from(body) : Buffer.from(body);
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeUInt32BE(4 + b.length, 1);
  return Buffer.concat([head, b]);
}

Deno.test("PgCopyRows reads rows cut anywhere across socket chunks, and hands pg the rest", async () => {
  const catalog = new PgTypeCatalog();
  const writers = [pgTextByteWriter(23, catalog), pgTextByteWriter(25, catalog)];
  const big = "x".repeat(3000);
  const rows = ["1\tab\\tc\n", "2\t\\N\n", `3\t${big}\n`, "4\t☃\n"];
  const copyOut = message("H", new Uint8Array([0, 0, 2, 0, 0, 0, 0]));
  const data = Buffer.concat(rows.map((r) => message("d", r)));
  const end = Buffer.concat([message("c", ""), message("C", "COPY 4\0"), message("Z", "I")]);
  const error = message("E", "SERROR\0Mboom\0\0");
  const want = [["1", '"ab\\tc"'], ["2", "null"], ["3", `"${big}"`], ["4", '"☃"']];
  /** Feeds `bytes` cut at `cuts`; returns the rows parsed and the bytes pg was given. */
  const feed = async (bytes: Buffer, cuts: number[]) => {
    const stream = Object.assign(new EventEmitter(), { pause() {}, resume() {} });
    const toPg: Buffer[] = [];
    stream.on("data", (b: Buffer) => toPg.push(Buffer.from(b)));
    const copy = new PgCopyRows("COPY …", writers, [0], 2);
    copy.submit({ query() {}, sendCopyFail() {}, stream });
    let at = 0;
    for (const cut of [...cuts, bytes.length]) {
      stream.emit("data", bytes.subarray(at, cut));
      at = cut;
    }
    const got: string[][] = [];
    copy.handleCommandComplete();
    for (let batch; (batch = await copy.next().catch(() => null)) !== null;) {
      got.push(...batch.toRows());
    }
    return { got, toPg: Buffer.concat(toPg) };
  };
  const whole = Buffer.concat([copyOut, data, end]);
  for (let cut = 1; cut < whole.length; cut += cut < 60 || cut > whole.length - 60 ? 1 : 7) {
    for (const second of [cut + 1, cut + 5, whole.length]) {
      const cuts = second < whole.length && second > cut ? [cut, second] : [cut];
      const { got, toPg } = await feed(whole, cuts);
      assert.deepEqual(got, want, `cut at ${cuts}`);
      assert.deepEqual(toPg, end, `cut at ${cuts}: what pg gets`);
    }
  }
  // An error after some rows, or instead of the COPY: pg gets it, from its first byte.
  const failed = Buffer.concat([copyOut, message("d", rows[0]), error]);
  for (let cut = 1; cut < failed.length; cut++) {
    const { got, toPg } = await feed(failed, [cut]);
    assert.deepEqual(got, want.slice(0, 1));
    assert.deepEqual(toPg, error);
  }
  assert.deepEqual((await feed(error, [])).toPg, error);
});

Deno.test({
  name: "pg snapshot: keyset COPY chunks over tricky composite keys, and resume after a key",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withSchema(async (db) => {
      await db.query(
        `CREATE TABLE "${SCHEMA}".ck (k text, n int, v text NOT NULL, PRIMARY KEY (k, n))`,
      );
      await db.query(
        `CREATE TABLE "${SCHEMA}".typed (b bool, ts timestamptz, x numeric(10,2), u uuid,
           PRIMARY KEY (b, ts, x, u))`,
      );
      for (const [i, k] of TRICKY.entries()) {
        for (const n of [2, 1]) {
          await db.query({
            text: `INSERT INTO "${SCHEMA}".ck VALUES ($1, $2, $3)`,
            values: [k, n, `${i}/${n}`],
          });
        }
      }
      await db.query(
        `INSERT INTO "${SCHEMA}".typed SELECT g % 2 = 0, timestamptz '2024-01-01' + g * interval
           '1 hour', g / 3.0, md5(g::text)::uuid FROM generate_series(1, 23) g`,
      );
      const want = ((await db.query({
        text: `SELECT k, n FROM "${SCHEMA}".ck ORDER BY k, n`,
        rowMode: "array",
      })).rows as [string, string][]).map(([k, n]) => [k, Number(n)]);

      const snap = await PgSnapshotSource.open(endpoint(), selectTables("ck", "typed"));
      try {
        const tables = await snap.tables();
        const ck = tables.find((t) => t.schema.id.table === "ck")!.schema;
        const typed = tables.find((t) => t.schema.id.table === "typed")!.schema;
        const reader = await snap.reader();
        const all = await readAll(reader.read(ck, null, 3));
        assert.deepEqual(all.rows.map(([k, n]) => [k, n]), want);
        assert.deepEqual(all.sizes, [...Array(10).fill(3), 2]);
        for (const [k, n, v] of all.rows) {
          assert.equal(v, `${TRICKY.indexOf(k as string)}/${n}`);
        }
        // Resume after a key given as JSON values (the tail of a stream).
        const at = want.findIndex(([k]) => k === "tab\there");
        const rest = await readAll(reader.read(ck, [...want[at]], 4));
        assert.deepEqual(rest.rows.map(([k, n]) => [k, n]), want.slice(at + 1));

        const t = await readAll(reader.read(typed, null, 2));
        assert.equal(t.rows.length, 23);
        assert.equal(new Set(t.rows.map((r) => JSON.stringify(r))).size, 23);
        const wantTyped = (await db.query({
          text: `SELECT to_json(b)::text, x::text FROM "${SCHEMA}".typed ORDER BY b, ts, x, u`,
          rowMode: "array",
        })).rows as string[][];
        assert.deepEqual(t.rows.map(([b, , x]) => [String(b), x]), wantTyped);
        await reader.close();
      } finally {
        await snap.close();
      }
    });
  },
});

Deno.test({
  name: "pg snapshot: a table without a key streams in chunks, read no further than 1 ahead",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withSchema(async (db) => {
      const rows = 100_000;
      await db.query(`CREATE TABLE "${SCHEMA}".nokey (a int, b text)`);
      await db.query(
        `INSERT INTO "${SCHEMA}".nokey SELECT g, 'row ' || g FROM generate_series(1, ${rows}) g`,
      );
      const client = await openPg(endpoint(), "replicant-test-copy");
      try {
        const catalog = new PgTypeCatalog();
        const writers = [pgTextByteWriter(23, catalog), pgTextByteWriter(25, catalog)];
        const chunk = 5_000;
        const copy = new PgCopyRows(
          `COPY (SELECT a, b FROM "${SCHEMA}".nokey) TO STDOUT`,
          writers,
          [],
          chunk,
        );
        client.query(copy);
        const first = (await copy.next())!;
        assert.equal(first.rows, chunk);
        // The consumer holds one batch and does not ask for more: reading stops once the
        // next one is full.
        await waitFor(() => copy.paused, { what: "the COPY to pause" });
        assert.ok(copy.rows <= 3 * chunk, `${copy.rows} rows read ahead`);
        const seen = new Set<number>();
        const take = (b: JsonRowBatch) => {
          for (let r = 0; r < b.rows; r++) seen.add(Number(b.text(r * 2)));
          copy.release(b);
        };
        take(first);
        for (let b; (b = await copy.next()) !== null;) {
          assert.ok(b.rows === chunk || copy.rows === rows);
          take(b);
        }
        await copy.finished;
        assert.equal(seen.size, rows);
        assert.equal((await client.query("SELECT 1 AS one")).rows[0].one, "1");
      } finally {
        await client.end();
      }
    });
  },
});

Deno.test({
  name: "pg snapshot: a read given up half-way leaves the reader able to read the next table",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withSchema(async (db) => {
      await db.query(`CREATE TABLE "${SCHEMA}".nokey (a int, b text)`);
      await db.query(
        `INSERT INTO "${SCHEMA}".nokey SELECT g, 'row ' || g FROM generate_series(1, 50000) g`,
      );
      await db.query(`CREATE TABLE "${SCHEMA}".keyed (id int PRIMARY KEY)`);
      await db.query(`INSERT INTO "${SCHEMA}".keyed SELECT generate_series(1, 1000)`);
      const snap = await PgSnapshotSource.open(endpoint(), selectTables("nokey", "keyed"));
      try {
        const tables = await snap.tables();
        const by = (name: string) => tables.find((t) => t.schema.id.table === name)!.schema;
        const reader = await snap.reader();
        for (const table of [by("nokey"), by("keyed")]) {
          for await (const batch of reader.read(table, null, 100)) {
            assert.equal(batch.rows, 100);
            break;
          }
        }
        const keyed = await readAll(reader.read(by("keyed"), null, 300));
        assert.deepEqual(
          keyed.rows.map(([id]) => id),
          Array.from({ length: 1000 }, (_, i) => i + 1),
        );
        const nokey = await readAll(reader.read(by("nokey"), null, 7_000));
        assert.equal(nokey.rows.length, 50_000);
        assert.deepEqual(nokey.sizes, [...Array(7).fill(7_000), 1_000]);
        // Given up again and closed at once: close does not wait for the rest.
        for await (const _ of reader.read(by("nokey"), null, 10)) break;
        await reader.close();
      } finally {
        await snap.close();
      }
    });
  },
});

Deno.test({
  name: "pg snapshot: given up while the next chunk's COPY is over, the reader goes on",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withSchema(async (db) => {
      await db.query(`CREATE TABLE "${SCHEMA}".ahead (id int PRIMARY KEY)`);
      await db.query(`INSERT INTO "${SCHEMA}".ahead SELECT generate_series(1, 150)`);
      const snap = await PgSnapshotSource.open(endpoint(), selectTables("ahead"));
      try {
        const [table] = await snap.tables();
        const reader = await snap.reader();
        for await (const batch of reader.read(table.schema, null, 100)) {
          assert.equal(batch.rows, 100);
          // The second chunk's COPY has run to its end (its batch waits, the socket paused).
          await waitFor(async () =>
            (await db.query(
              `SELECT 1 FROM pg_stat_activity WHERE state = 'idle in transaction'
                 AND query LIKE 'COPY %ahead%' AND query LIKE '%WHERE%'`,
            )).rows.length > 0, { what: "the second COPY over" });
          break;
        }
        // Before the fix the socket stayed paused and this read never ended.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const again = await Promise.race([
          readAll(reader.read(table.schema, null, 1000)),
          new Promise<never>((_, reject) =>
            timer = setTimeout(() => reject(new Error("the reader is stuck")), 20_000)
          ),
        ]).finally(() => clearTimeout(timer));
        assert.equal(again.rows.length, 150);
        await reader.close();
      } finally {
        await snap.close();
      }
    });
  },
});
