import assert from "node:assert/strict";
import { encodeDdlEntry } from "../../src/schema/ddl_entry.ts";
import { decodeEntry } from "../../src/core/entry_decoder.ts";
import { mysqlSortKeyOfSource } from "../../src/source/mysql/mysql_position.ts";

Deno.test("DDL entries: fields layout, source position readable by the stream-tail rule", () => {
  const col = (name: string, type: string) => ({
    name,
    type,
    normalized_type: "string" as const,
    nullable: true,
    default: null,
    primary_key_position: null,
  });
  const fields = encodeDdlEntry(
    {
      table: { catalog: "shop", schema: null, table: "orders" },
      statement: "ALTER TABLE orders ADD COLUMN c text",
      before: { version: 1, columns: [col("a", "text")] },
      after: { version: 2, columns: [col("a", "text"), col("c", "text")] },
      position: {
        tsMs: 1000,
        fields: `"server_id":1,"file":"binlog.000002","pos":345,"row":0`,
        sortKey: "x",
      },
    },
    { connector: "mysql", replicationId: "r1", version: "test" },
    2000,
  );
  const m = new Map<string, string>();
  for (let i = 0; i < fields.length; i += 2) m.set(fields[i], fields[i + 1]);
  assert.equal(m.get("op"), "ddl");
  assert.equal(m.get("table"), "shop.orders");
  assert.equal(m.get("statement"), "ALTER TABLE orders ADD COLUMN c text");
  assert.equal(JSON.parse(m.get("after")!).version, 2);
  assert.deepEqual(JSON.parse(m.get("before")!).columns.map((c: { name: string }) => c.name), [
    "a",
  ]);
  const decoded = decodeEntry(fields, "fields");
  assert.equal(decoded.op, "ddl");
  assert.equal(decoded.source?.table, "orders");
  assert.equal(decoded.source?.pos, 345);
  assert.ok(mysqlSortKeyOfSource(decoded.source));
});
