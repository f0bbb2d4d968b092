import assert from "node:assert/strict";
import { parse } from "yaml";
import type { TableSchema } from "../../src/core/table_schema.ts";
import {
  buildSchemaDumpEntry,
  newestPerTable,
  parseSchemaDumpFields,
  schemaDumpFields,
} from "../../src/schema/schema_dump.ts";
import { SchemaHistory } from "../../src/schema/schema_history.ts";
import { renderSchemasYaml } from "../../src/schema/schemas_yaml.ts";

function orders(extra: TableSchema["columns"] = []): TableSchema {
  return {
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
        sourceType: "character varying(20)",
        connectType: "string",
        nullable: true,
        keyPosition: null,
        defaultValue: "'none'::character varying",
      },
      ...extra,
    ],
    keyColumns: [0],
    hasKey: true,
  };
}

const noPk: TableSchema = {
  id: { catalog: "shop", schema: null, table: "tags" },
  columns: [
    {
      name: "code",
      sourceType: "varchar(8)",
      connectType: "string",
      nullable: false,
      keyPosition: null,
      defaultValue: null,
    },
  ],
  keyColumns: [0],
  hasKey: true,
};

Deno.test("schema dump entry: fields hold every column property and read back equal", () => {
  const e = buildSchemaDumpEntry(orders(), 3, 1700000000000);
  const fields = schemaDumpFields(e);
  const map = Object.fromEntries(
    Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]]),
  );
  assert.equal(map.catalog, "shop");
  assert.equal(map.schema, "public");
  assert.equal(map.table, "orders");
  assert.equal(map.version, "3");
  assert.deepEqual(JSON.parse(map.columns)[1], {
    name: "note",
    type: "character varying(20)",
    normalized_type: "string",
    nullable: true,
    default: "'none'::character varying",
    primary_key_position: null,
  });
  assert.deepEqual(parseSchemaDumpFields(fields), e);
});

Deno.test("schema dump entry: a table without primary key lists its unique key; MySQL no schema", () => {
  const e = buildSchemaDumpEntry(noPk, 1, 0);
  assert.deepEqual(e.uniqueKeys, [["code"]]);
  const back = parseSchemaDumpFields(schemaDumpFields(e))!;
  assert.equal(back.id.schema, null);
  assert.deepEqual(buildSchemaDumpEntry(orders(), 1, 0).uniqueKeys, []);
});

Deno.test("schema history: new tables v1, unchanged nothing, changed the next version", async () => {
  const history = SchemaHistory.inMemory();
  const first = await history.recordAll([orders(), noPk], 1);
  assert.deepEqual(first.map((e) => [e.id.table, e.version]), [["orders", 1], ["tags", 1]]);
  assert.deepEqual(await history.recordAll([orders(), noPk], 2), []);
  const added = orders([{
    name: "qty",
    sourceType: "integer",
    connectType: "int32",
    nullable: true,
    keyPosition: null,
    defaultValue: null,
  }]);
  const second = await history.recordAll([added, noPk], 3);
  assert.deepEqual(second.map((e) => [e.id.table, e.version]), [["orders", 2]]);
  assert.deepEqual(history.newest().map((e) => [e.id.table, e.version, e.columns.length]), [
    ["orders", 2, 3],
    ["tags", 1, 1],
  ]);
  // Back to the first layout: a new version (versions only grow; the newest is current).
  assert.deepEqual((await history.recordAll([orders()], 4)).map((e) => e.version), [3]);
  assert.deepEqual(newestPerTable([...history.versions(orders().id)]).map((e) => e.version), [3]);
});

Deno.test("schema history: a DDL position finds the version a first pass recorded there", async () => {
  const history = SchemaHistory.inMemory();
  await history.recordAll([orders()], 1);
  const added = orders([{
    name: "qty",
    sourceType: "integer",
    connectType: "int32",
    nullable: true,
    keyPosition: null,
    defaultValue: null,
  }]);
  const v2 = await history.record(added, "P1");
  assert.equal(v2.entry.version, 2);
  assert.equal(v2.created, true);
  const v3 = await history.record(orders(), "P2");
  assert.equal(v3.entry.version, 3);
  // A replay meets the same DDLs again: same versions, nothing new.
  assert.equal((await history.record(added, "P1")).entry.version, 2);
  assert.equal((await history.record(orders(), "P2")).created, false);
  assert.equal(history.atPosition(orders().id, "P1")?.version, 2);
  // The newest version seen again at another DDL: same version, a marker of the position.
  const again = await history.record(orders(), "P3");
  assert.deepEqual([again.entry.version, again.created], [3, false]);
  assert.equal(history.atPosition(orders().id, "P3")?.version, 3);
  // Round trip of the new fields through the stream's field list.
  const back = parseSchemaDumpFields(schemaDumpFields(v2.entry))!;
  assert.equal(back.sinceKey, "P1");
  assert.equal(back.version, 2);
});

Deno.test("schemas.yaml: tables with catalog, schema, version, columns and keys", () => {
  const e = buildSchemaDumpEntry(orders(), 2, 0);
  const t = buildSchemaDumpEntry(noPk, 1, 0);
  const text = renderSchemasYaml([e, t], "stream s");
  assert.match(text, /^# Written by replicant fetch-schemas from stream s\n/);
  const doc = parse(text);
  assert.deepEqual(doc.tables[0], {
    catalog: "shop",
    schema: "public",
    table: "orders",
    version: 2,
    columns: [
      {
        name: "id",
        type: "int8",
        "normalized-type": "int64",
        nullable: false,
        default: null,
        "primary-key-position": 1,
      },
      {
        name: "note",
        type: "character varying(20)",
        "normalized-type": "string",
        nullable: true,
        default: "'none'::character varying",
        "primary-key-position": null,
      },
    ],
    "unique-keys": [],
  });
  assert.equal("schema" in doc.tables[1], false);
  assert.deepEqual(doc.tables[1]["unique-keys"], [["code"]]);
});
