import assert from "node:assert/strict";
import { parse } from "yaml";
import type { TableSchema } from "../../src/core/table_schema.ts";
import {
  buildSchemaDumpEntry,
  newestPerTable,
  parseSchemaDumpFields,
  plannedDumpEntries,
  schemaDumpFields,
} from "../../src/schema/schema_dump.ts";
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

Deno.test("planned entries: new tables v1, unchanged nothing, changed the next version", () => {
  const first = plannedDumpEntries([orders(), noPk], [], 1);
  assert.deepEqual(first.map((e) => [e.id.table, e.version]), [["orders", 1], ["tags", 1]]);
  assert.deepEqual(plannedDumpEntries([orders(), noPk], first, 2), []);
  const added = orders([{
    name: "qty",
    sourceType: "integer",
    connectType: "int32",
    nullable: true,
    keyPosition: null,
    defaultValue: null,
  }]);
  const second = plannedDumpEntries([added, noPk], first, 3);
  assert.deepEqual(second.map((e) => [e.id.table, e.version]), [["orders", 2]]);
  const newest = newestPerTable([...first, ...second]);
  assert.deepEqual(newest.map((e) => [e.id.table, e.version, e.columns.length]), [
    ["orders", 2, 3],
    ["tags", 1, 1],
  ]);
  // Back to the first layout: still a new version (the newest one differs).
  assert.deepEqual(
    plannedDumpEntries([orders()], [...first, ...second], 4).map((e) => e.version),
    [3],
  );
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
