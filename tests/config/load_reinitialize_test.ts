import assert from "node:assert/strict";
import { loadReinitialize } from "../../src/config/load_reinitialize.ts";
import { problemsOf, writeConfig } from "./write_config.ts";

const load = (text: string) => loadReinitialize(writeConfig("reinit.yaml", text));
const problems = (text: string) => {
  const path = writeConfig("reinit.yaml", text);
  const found = problemsOf(() => loadReinitialize(path));
  for (const p of found) assert.equal(p.file, path);
  return found.map((p) => [p.key, p.message]);
};

Deno.test("Arcion's reinitialize file: catalog, schema and the four lists", () => {
  const r = load(`
catalog: pagila
schema: public
add-tables: [payment, inventory]
remove-tables:
  - rental
reinit-tables: [customer]
refresh-schema-tables: [film]
`);
  assert.equal(r.catalog, "pagila");
  assert.equal(r.schema, "public");
  assert.deepEqual(r.add, ["payment", "inventory"]);
  assert.deepEqual(r.remove, ["rental"]);
  assert.deepEqual(r.reinit, ["customer"]);
  assert.deepEqual(r.refreshSchema, ["film"]);
});

Deno.test("reinitialize: a mapping of tables (filter-like) gives their names; no schema for MySQL", () => {
  const r = load(`catalog: shop\nadd-tables:\n  orders:\n  order_items:\n`);
  assert.deepEqual(r.add, ["orders", "order_items"]);
  assert.equal(r.schema, null);
  assert.deepEqual(r.remove, []);
});

Deno.test("reinitialize: problems name the file and the key", () => {
  assert.deepEqual(problems(`add-tables: [a]\n`), [[
    "catalog",
    "is required: the tables' database",
  ]]);
  const found = problems(
    `catalog: c\nadd-table: [a]\nremove-tables: [a, 3]\nadd-tables: [A, {x: 1}]\n`,
  );
  const keys = found.map(([k]) => k);
  assert.ok(keys.includes("add-table"), JSON.stringify(found));
  assert.ok(keys.includes("add-tables.1"), JSON.stringify(found));
  // A table listed twice (names ignore case) is ambiguous.
  assert.ok(
    found.some(([k, m]) => k === "remove-tables" && /listed under add-tables too/.test(m)),
    JSON.stringify(found),
  );
  assert.deepEqual(problems(""), [[
    "",
    "expected a mapping with `catalog` and `add-tables`, `remove-tables` or `reinit-tables`",
  ]]);
});
