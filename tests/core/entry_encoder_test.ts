import assert from "node:assert/strict";
import { decodeEntry } from "../../src/core/entry_decoder.ts";
import { type EntryOptions, TableEntryEncoder } from "../../src/core/entry_encoder.ts";
import type { TableSchema } from "../../src/core/table_schema.ts";
import { ByteSlice, entryText, WrappedField } from "../../src/core/entry_field.ts";
import { JsonRowBatch } from "../../src/core/json_row_batch.ts";
import { BatchChangeEvent, type ChangeEvent, type Op } from "../../src/core/change_event.ts";
import { PG_POSITION_FIELDS } from "../../src/source/postgres/pgoutput_position.ts";

const table: TableSchema = {
  id: { catalog: "shop", schema: "public", table: "orders" },
  columns: [
    {
      name: "id",
      sourceType: "int8",
      connectType: "int64",
      nullable: false,
      keyPosition: 1,
      defaultValue: null,
    },
    {
      name: "note",
      sourceType: "text",
      connectType: "string",
      nullable: true,
      keyPosition: null,
      defaultValue: null,
    },
    {
      name: "doc",
      sourceType: "jsonb",
      connectType: "string",
      nullable: true,
      keyPosition: null,
      defaultValue: null,
    },
  ],
  keyColumns: [0],
  hasKey: true,
};

const options = (over: Partial<EntryOptions> = {}): EntryOptions => ({
  format: "compact",
  includeSchema: true,
  tombstones: true,
  connector: "postgresql",
  positionFields: PG_POSITION_FIELDS,
  replicationId: "r1",
  version: "9.9.9",
  ...over,
});

const position = { tsMs: 1700000000000, fields: '"lsn":123,"txId":7,"sequence":0' };

Deno.test("compact entry: key and value JSON with schema and lossless payload", () => {
  const enc = new TableEntryEncoder(table, options());
  const [entry] = enc.encode({
    table,
    op: "c",
    before: null,
    after: ["9007199254740993", '"a \\"b\\""', '{"n":12345678901234567890}'],
    position,
  }, 42);
  assert.equal(entry.length, 2);
  const key = JSON.parse(entry[0]);
  assert.deepEqual(key.payload, { id: 9007199254740993 });
  assert.equal(key.schema.fields[0].field, "id");
  // The raw fragment keeps digits a double would round.
  assert.ok(
    entry[1].includes(
      '"after":{"id":9007199254740993,"note":"a \\"b\\"","doc":{"n":12345678901234567890}}',
    ),
  );
  const value = JSON.parse(entry[1]);
  assert.equal(value.payload.op, "c");
  assert.equal(value.payload.ts_ms, 42);
  assert.equal(value.payload.before, null);
  assert.deepEqual(value.payload.source, {
    version: "9.9.9",
    connector: "postgresql",
    name: "r1",
    ts_ms: 1700000000000,
    snapshot: "false",
    db: "shop",
    schema: "public",
    table: "orders",
    lsn: 123,
    txId: 7,
    sequence: 0,
  });
  assert.deepEqual(value.schema.fields.map((f: { field: string }) => f.field), [
    "before",
    "after",
    "source",
    "op",
    "ts_ms",
  ]);
});

Deno.test("delete is followed by a tombstone unless tombstones are off", () => {
  const before = ["5", "null", "null"];
  const ev = { table, op: "d" as const, before, after: null, position };
  const withT = new TableEntryEncoder(table, options({ includeSchema: false })).encode(ev, 1);
  assert.equal(withT.length, 2);
  assert.deepEqual(withT[1], ['{"id":5}', "default"]);
  assert.equal(JSON.parse(withT[0][1]).after, null);
  const without = new TableEntryEncoder(table, options({ tombstones: false })).encode(ev, 1);
  assert.equal(without.length, 1);
});

Deno.test("include-schema false writes bare payloads", () => {
  const enc = new TableEntryEncoder(table, options({ includeSchema: false }));
  const entry = enc.encodeRead(["1", '"x"', "null"], { tsMs: 5, fields: "" }, 6);
  assert.equal(entry[0], '{"id":1}');
  const value = JSON.parse(entry[1]);
  assert.equal(value.op, "r");
  assert.equal(value.source.snapshot, "true");
  assert.deepEqual(value.after, { id: 1, note: "x", doc: null });
});

Deno.test("extended and fields formats", () => {
  const row = ["1", '"x"', "null"];
  const ext = new TableEntryEncoder(table, options({ format: "extended" })).encodeRead(
    row,
    position,
    1,
  );
  assert.deepEqual([ext[0], ext[2]], ["key", "value"]);
  assert.equal(JSON.parse(ext[1]).payload.id, 1);
  const flds = new TableEntryEncoder(table, options({ format: "fields" })).encodeRead(
    row,
    position,
    1,
  );
  const map = Object.fromEntries(
    Array.from({ length: flds.length / 2 }, (_, i) => [flds[2 * i], flds[2 * i + 1]]),
  );
  assert.equal(map.op, "r");
  assert.equal(map.table, "shop.public.orders");
  assert.deepEqual(JSON.parse(map.key), { id: 1 });
  assert.equal(map.before, "null");
  assert.deepEqual(JSON.parse(map.after), { id: 1, note: "x", doc: null });
  assert.equal(JSON.parse(map.source).lsn, 123);
});

Deno.test("decodeEntry reads back key and source in every format", () => {
  for (const format of ["compact", "extended", "fields"] as const) {
    for (const includeSchema of [true, false]) {
      const enc = new TableEntryEncoder(table, options({ format, includeSchema }));
      const [entry] = enc.encode({
        table,
        op: "u",
        before: null,
        after: ["77", '"n"', "null"],
        position,
      }, 1);
      const d = decodeEntry(entry, format);
      assert.deepEqual(d.key, { id: 77 }, `${format} ${includeSchema}`);
      assert.equal((d.source as { lsn: number }).lsn, 123);
      assert.equal(d.op, "u");
      assert.deepEqual(d.after, { id: 77, note: "n", doc: null });
      assert.equal(d.before, null);
      assert.equal(d.tombstone, false);
    }
  }
});

Deno.test("decodeEntry gives a consumer the rows of a change and marks tombstones", () => {
  for (const format of ["compact", "extended", "fields"] as const) {
    for (const includeSchema of [true, false]) {
      const what = `${format} ${includeSchema}`;
      const enc = new TableEntryEncoder(table, options({ format, includeSchema }));
      const [update] = enc.encode({
        table,
        op: "u",
        before: ["5", '"old"', '{"a":[1,2]}'],
        after: ["5", '"new"', "null"],
        position,
      }, 1);
      const u = decodeEntry(update, format);
      assert.deepEqual(u.before, { id: 5, note: "old", doc: { a: [1, 2] } }, what);
      assert.deepEqual(u.after, { id: 5, note: "new", doc: null }, what);
      const [del, tombstone] = enc.encode({
        table,
        op: "d",
        before: ["6", '"gone"', "null"],
        after: null,
        position,
      }, 1);
      const d = decodeEntry(del, format);
      assert.deepEqual([d.op, d.key, d.after, d.tombstone], ["d", { id: 6 }, null, false], what);
      assert.deepEqual(d.before, { id: 6, note: "gone", doc: null }, what);
      const t = decodeEntry(tombstone, format);
      assert.deepEqual([t.op, t.key, t.after, t.tombstone], [null, { id: 6 }, null, true], what);
    }
  }
});

Deno.test("a table without columns has the literal key default", () => {
  const empty: TableSchema = { ...table, columns: [], keyColumns: [], hasKey: false };
  const enc = new TableEntryEncoder(empty, options());
  const entry = enc.encodeRead([], position, 1);
  assert.equal(entry[0], "default");
  assert.equal(JSON.parse(entry[1]).payload.after && "{}", "{}");
});

/** Rows as text fragments whose JSON tests the byte path: unicode, escapes, null, nesting. */
const TRICKY: string[][] = [
  [
    "1",
    JSON.stringify('tab\there "quoted" back\\slash\nnewline ☃ 😀 \u0001'),
    '{"a":[1,{"b":null}]}',
  ],
  ["-9007199254740993", '""', "null"],
  ['"9223372036854775807"', JSON.stringify("ünïcödé 中文 𝄞 \u2028".repeat(20)), '"x"'],
  ["0", "null", JSON.stringify({ long: "y".repeat(500), n: 12345678901234567890 })],
];

function tableWith(keyColumns: number[], hasKey: boolean, columns = table.columns): TableSchema {
  return { ...table, columns, keyColumns, hasKey };
}

Deno.test("encodeReadBatch writes the same entries as encodeRead, every format and key", () => {
  const tables: [string, TableSchema][] = [
    ["single key", table],
    ["composite key", tableWith([2, 0], true)],
    ["no key (all columns)", tableWith([0, 1, 2], false)],
    ["no columns", tableWith([], false, [])],
  ];
  const position = { tsMs: 1700000000000, fields: "" };
  let reuse: Uint8Array | undefined;
  for (const [what, t] of tables) {
    const rows = t.columns.length === 0 ? [[], []] : TRICKY;
    const batch = JsonRowBatch.fromRows(t.columns.length, rows);
    for (const format of ["compact", "extended", "fields"] as const) {
      for (const includeSchema of [true, false]) {
        for (const wrap of [true, false]) {
          const label = `${what}, ${format}, schema ${includeSchema}, wrap ${wrap}`;
          const opts = options({ format, includeSchema, replicationId: "r☃" });
          const enc = new TableEntryEncoder(t, opts, wrap);
          const { entries, buffer } = enc.encodeReadBatch(batch, position, 42, reuse);
          reuse = buffer;
          const want = rows.map((row) => entryText(enc.encodeRead(row, position, 42)));
          assert.deepEqual(entries.map(entryText), want, label);
          for (const fields of entries) {
            for (const f of fields) {
              // Wrapped only with a schema half; the rest are bytes, nothing is a string.
              if (f instanceof WrappedField) {
                assert.ok(wrap && includeSchema && format !== "fields", label);
                assert.ok(f.body instanceof ByteSlice, label);
              } else assert.ok(f instanceof ByteSlice, label);
            }
          }
          for (const entry of want) {
            for (const f of entry) if (f !== "default" && f.startsWith("{")) JSON.parse(f);
          }
        }
      }
    }
  }
});

Deno.test("encodeReadBatch reuses a large enough buffer and grows a small one", () => {
  const enc = new TableEntryEncoder(table, options({ includeSchema: false }), true);
  const position = { tsMs: 5, fields: "" };
  const batch = JsonRowBatch.fromRows(3, TRICKY);
  const first = enc.encodeReadBatch(batch, position, 1);
  const again = enc.encodeReadBatch(batch, position, 2, first.buffer);
  assert.equal(again.buffer, first.buffer);
  const grown = enc.encodeReadBatch(batch, position, 3, new Uint8Array(10));
  assert.ok(grown.buffer.length > 10);
  assert.deepEqual(
    grown.entries.map(entryText),
    TRICKY.map((row) => enc.encodeRead(row, position, 3)),
  );
});

Deno.test("streamed changes with byte rows encode like their text rows, every format and op", () => {
  const tables: [string, TableSchema][] = [
    ["single key", table],
    ["composite key", tableWith([2, 0], true)],
    ["no key (all columns)", tableWith([0, 1, 2], false)],
    ["no columns", tableWith([], false, [])],
  ];
  const positions = [
    position,
    { tsMs: 1, fields: '"server_id":1,"gtid":"0-1-9","file":"bin.000001","pos":4,"row":0' },
    { tsMs: 2, fields: '"file":"bïn☃.000001"' },
  ];
  for (const [what, t] of tables) {
    const rows = t.columns.length === 0 ? [[], [], []] : TRICKY;
    const batch = JsonRowBatch.fromRows(t.columns.length, rows);
    const events: [Op, number, number][] = [
      ["c", -1, 0],
      ["u", 1, 2],
      ["u", -1, 2],
      ["d", 1, -1],
      ["d", -1, -1],
      ["t", -1, -1],
    ];
    for (const format of ["compact", "extended", "fields"] as const) {
      for (const includeSchema of [true, false]) {
        for (const tombstones of [true, false]) {
          const opts = options({ format, includeSchema, tombstones, replicationId: "r☃" });
          const enc = new TableEntryEncoder(t, opts, true);
          for (const [op, before, after] of events) {
            for (const pos of positions) {
              const label = `${what}, ${format}, schema ${includeSchema}, ${op} ${before}/${after}`;
              const bytes = new BatchChangeEvent(t, op, { batch, before, after }, pos);
              const text: ChangeEvent = {
                table: t,
                op,
                before: before < 0 ? null : rows[before],
                after: after < 0 ? null : rows[after],
                position: pos,
              };
              const got = enc.encode(bytes, 42);
              assert.deepEqual(got.map(entryText), enc.encode(text, 42).map(entryText), label);
              for (const f of got[0]) {
                if (f instanceof WrappedField) assert.ok(f.body instanceof ByteSlice, label);
              }
            }
          }
        }
      }
    }
  }
});

Deno.test("streamed changes fill an arena and move to a new one when it is full", () => {
  const enc = new TableEntryEncoder(table, options({ includeSchema: false }), true);
  const big = [["1", JSON.stringify("x".repeat(300_000)), "null"]];
  const batch = JsonRowBatch.fromRows(3, big);
  const entries = [];
  for (let i = 0; i < 8; i++) {
    entries.push(
      enc.encode(new BatchChangeEvent(table, "c", { batch, before: -1, after: 0 }, position), i),
    );
  }
  // Every entry is still intact after the arena was replaced several times.
  for (let i = 0; i < 8; i++) {
    const value = JSON.parse(entryText(entries[i][0])[1]);
    assert.equal(value.ts_ms, i);
    assert.equal(value.after.note.length, 300_000);
  }
});
