import assert from "node:assert/strict";
import { connectSchema, JSON_TEXT_TYPE } from "../../../src/core/table_schema.ts";
import { unavailableFragment } from "../../../src/source/postgres/pg_logical_source.ts";
import { pgConnectType } from "../../../src/source/postgres/pg_text_decoder.ts";
import { PgTypeCatalog } from "../../../src/source/postgres/pg_type_catalog.ts";

const catalog = new PgTypeCatalog([
  { oid: 90001, name: "year", category: "N", elementOid: 0, baseOid: 23 },
  { oid: 90002, name: "words", category: "A", elementOid: 0, baseOid: 1009 },
  { oid: 90003, name: "mood", category: "E", elementOid: 0, baseOid: 0 },
  { oid: 90004, name: "_mood", category: "A", elementOid: 90003, baseOid: 0 },
  { oid: 90005, name: "doc", category: "U", elementOid: 0, baseOid: 3802 },
]);

Deno.test("declared types follow what each PostgreSQL type's values become", () => {
  const cases: [number, number, unknown][] = [
    [21, 1, "int16"],
    [23, 1, "int32"],
    [20, 1, "int64"],
    [26, 1, "int64"], // oid
    [700, 1, "float"],
    [701, 1, "double"],
    [16, 1, "boolean"],
    [17, 1, "bytes"],
    [1700, 1, "string"], // numeric
    [1184, 1, "string"], // timestamptz
    [114, 1, JSON_TEXT_TYPE],
    [3802, 1, JSON_TEXT_TYPE],
    [1009, 1, { type: "array", items: "string" }], // text[]
    [1007, 2, { type: "array", items: { type: "array", items: "int32" } }], // int4[][]
    [1007, 0, { type: "array", items: "int32" }], // dimensions unknown: one
    [199, 1, { type: "array", items: JSON_TEXT_TYPE }], // json[]
    [22, 1, { type: "array", items: "int16" }], // int2vector
    [30, 1, { type: "array", items: "int64" }], // oidvector
    [90001, 1, "int32"], // domain over integer (Pagila's year)
    [90002, 0, { type: "array", items: "string" }], // domain over text[]
    [90004, 1, { type: "array", items: "string" }], // enum[]
    [90005, 1, JSON_TEXT_TYPE], // domain over jsonb
    [123456, 1, "string"], // unknown
  ];
  for (const [oid, dims, want] of cases) {
    assert.deepEqual(pgConnectType(oid, catalog, dims), want, `oid ${oid}`);
  }
});

Deno.test("Connect schemas of declared types: arrays' elements are optional, names kept", () => {
  assert.deepEqual(connectSchema("int32", false, "id"), {
    type: "int32",
    optional: false,
    field: "id",
  });
  assert.deepEqual(connectSchema({ type: "array", items: JSON_TEXT_TYPE }, true, "docs"), {
    type: "array",
    items: { type: "string", name: "io.debezium.data.Json", optional: true },
    optional: true,
    field: "docs",
  });
});

Deno.test("the unavailable-value placeholder has the column's declared type", () => {
  const text = '"__replicant_unavailable_value"';
  assert.equal(unavailableFragment("string"), text);
  assert.equal(unavailableFragment(JSON_TEXT_TYPE), text);
  assert.equal(unavailableFragment("bytes"), `"${btoa("__replicant_unavailable_value")}"`);
  assert.equal(unavailableFragment({ type: "array", items: "string" }), `[${text}]`);
  assert.deepEqual(
    JSON.parse(unavailableFragment({ type: "array", items: "int64" })),
    [...new TextEncoder().encode("__replicant_unavailable_value")],
  );
  assert.equal(
    unavailableFragment({ type: "array", items: { type: "array", items: "string" } }),
    `[[${text}]]`,
  );
});
