import assert from "node:assert/strict";
import { type ConfigProblem, loadFilter } from "../../src/config/mod.ts";
import { problemAt, problemsOf, writeConfig } from "./write_config.ts";

const load = (text: string) => loadFilter(writeConfig("filter.yaml", text));
const problems = (text: string) => {
  const path = writeConfig("filter.yaml", text);
  const found = problemsOf(() => loadFilter(path));
  for (const p of found) assert.equal(p.file, path);
  return found;
};
const keys = (list: readonly ConfigProblem[]) => list.map((p) => p.key);

Deno.test("Arcion's list form with tables and column allow-lists", () => {
  const filter = load(`
allow:
- catalog: "tpch"
  schema: "public"
  types: [TABLE]
  allow:
    CUSTOMERS:
      allow: ["FB, IG"]
    ORDERS:
      allow: ["product", "service"]
      conditions: "o_orderkey < 5000"
    RETURNS:
- catalog: other
`);
  assert.deepEqual(filter.entries, [
    {
      catalog: "tpch",
      schema: "public",
      types: ["TABLE"],
      tables: [
        { name: "CUSTOMERS", columns: ["FB", "IG"], columnsKey: "allow[0].allow.CUSTOMERS.allow" },
        {
          name: "ORDERS",
          columns: ["product", "service"],
          columnsKey: "allow[0].allow.ORDERS.allow",
        },
        { name: "RETURNS" },
      ],
    },
    { catalog: "other", types: ["TABLE"] },
  ]);
  assert.deepEqual(filter.warnings.map((w) => [w.key, w.message]), [[
    "allow[0].allow.ORDERS.conditions",
    "ignored: Replicant does not filter rows: every row of the table is replicated",
  ]]);
});

Deno.test("Arcion's single-entry form (allow as a mapping)", () => {
  const filter = load(`
allow:
  catalog: "tpch"
  types: [TABLE]
  allow:
    NATION:
      allow: ["US, AUS"]
    PART:
`);
  assert.deepEqual(filter.entries, [{
    catalog: "tpch",
    types: ["TABLE"],
    tables: [
      { name: "NATION", columns: ["US", "AUS"], columnsKey: "allow.allow.NATION.allow" },
      { name: "PART" },
    ],
  }]);
});

Deno.test("tables as a plain list, types as one word, VIEW warned", () => {
  const filter = load("allow:\n  - catalog: db\n    types: [TABLE, VIEW]\n    allow: [a, b]\n");
  assert.deepEqual(filter.entries[0].tables, [{ name: "a" }, { name: "b" }]);
  assert.deepEqual(filter.warnings.map((w) => w.key), ["allow[0].types"]);
  assert.deepEqual(load("allow:\n  catalog: db\n  types: table\n").entries[0].types, ["TABLE"]);
});

Deno.test("a filter without `allow`", () => {
  assert.deepEqual(keys(problems("# empty\n")), ["allow"]);
  assert.equal(
    problemAt(problems("alow:\n  - catalog: x\n"), "alow").message,
    "unknown key; did you mean `allow`?",
  );
});

Deno.test("malformed filter entries, all reported", () => {
  const found = problems(`
allow:
  - catalog: db
    types: [TABLES]
    allow:
      t1:
        allow: []
      t2:
        allow: [{a: 1}]
      t3:
        colums: [x]
  - scheme: public
  - just-a-name
`);
  assert.deepEqual(keys(found), [
    "allow[0].types[0]",
    "allow[0].allow.t1.allow",
    "allow[0].allow.t2.allow[0]",
    "allow[0].allow.t3.colums",
    "allow[1].scheme",
    "allow[2]",
  ]);
  assert.match(problemAt(found, "allow[0].types[0]").message, /did you mean `TABLE`\?/);
  assert.match(problemAt(found, "allow[1].scheme").message, /did you mean `schema`\?/);
  assert.match(problemAt(found, "allow[2]").message, /must be a mapping/);
});
