import assert from "node:assert/strict";
import {
  columnSelected,
  type FilterEntry,
  matchColumnNames,
  selectedColumns,
  tableSelected,
  unknownFilterColumns,
} from "../../src/config/mod.ts";

const filterOf = (...entries: FilterEntry[]) => ({ entries });

Deno.test("no filter selects every table and column", () => {
  assert.equal(tableSelected(null, { catalog: "a", schema: "b", table: "c" }), true);
  assert.equal(tableSelected(undefined, { table: "c" }), true);
  assert.equal(selectedColumns(null, { table: "c" }), null);
  assert.equal(columnSelected(null, { table: "c" }, "x"), true);
});

Deno.test("an entry without tables selects its whole catalog/schema", () => {
  const filter = filterOf({ catalog: "shop", schema: "public", types: ["TABLE"] });
  assert.equal(tableSelected(filter, { catalog: "shop", schema: "public", table: "orders" }), true);
  assert.equal(tableSelected(filter, { catalog: "shop", schema: "audit", table: "orders" }), false);
  assert.equal(
    tableSelected(filter, { catalog: "other", schema: "public", table: "orders" }),
    false,
  );
  assert.equal(
    selectedColumns(filter, { catalog: "shop", schema: "public", table: "orders" }),
    null,
  );
});

Deno.test("MySQL tables have a catalog and no schema", () => {
  const filter = filterOf({ catalog: "shop", types: ["TABLE"], tables: [{ name: "orders" }] });
  assert.equal(tableSelected(filter, { catalog: "shop", table: "orders" }), true);
  assert.equal(tableSelected(filter, { catalog: "shop", schema: null, table: "items" }), false);
  const withSchema = filterOf({ catalog: "shop", schema: "x", types: ["TABLE"] });
  assert.equal(tableSelected(withSchema, { catalog: "shop", table: "orders" }), false);
});

Deno.test("names ignore case; the exact spelling wins for columns", () => {
  const filter = filterOf({
    catalog: "tpch",
    types: ["TABLE"],
    tables: [
      { name: "ORDERS", columns: ["A"] },
      { name: "orders", columns: ["b"] },
      { name: "LINEITEM" },
    ],
  });
  assert.equal(tableSelected(filter, { catalog: "TPCH", table: "lineitem" }), true);
  assert.deepEqual(selectedColumns(filter, { catalog: "tpch", table: "orders" }), ["b"]);
  assert.deepEqual(selectedColumns(filter, { catalog: "tpch", table: "Orders" }), ["A", "b"]);
  assert.equal(selectedColumns(filter, { catalog: "tpch", table: "lineitem" }), null);
  assert.deepEqual(selectedColumns(filter, { catalog: "tpch", table: "nation" }), []);
  assert.equal(columnSelected(filter, { catalog: "tpch", table: "orders" }, "B"), true);
  assert.equal(columnSelected(filter, { catalog: "tpch", table: "orders" }, "a"), false);
});

Deno.test("* and ? make patterns; an exact rule wins over a pattern", () => {
  const filter = filterOf({
    catalog: "app_*",
    schema: "public",
    types: ["TABLE"],
    tables: [{ name: "audit_*", columns: ["id"] }, { name: "audit_log" }, { name: "t?" }],
  });
  const ref = (table: string) => ({ catalog: "app_eu", schema: "public", table });
  assert.equal(tableSelected(filter, ref("audit_2024")), true);
  assert.equal(tableSelected(filter, ref("t1")), true);
  assert.equal(tableSelected(filter, ref("t12")), false);
  assert.equal(tableSelected(filter, ref("users")), false);
  assert.equal(tableSelected(filter, { ...ref("t1"), catalog: "web" }), false);
  assert.deepEqual(selectedColumns(filter, ref("audit_2024")), ["id"]);
  assert.equal(selectedColumns(filter, ref("audit_log")), null);
  // Regex characters in names are literal.
  const dotted = filterOf({ types: ["TABLE"], tables: [{ name: "a.b*" }] });
  assert.equal(tableSelected(dotted, { table: "a.bc" }), true);
  assert.equal(tableSelected(dotted, { table: "axbc" }), false);
});

Deno.test("several entries: any selects; columns are combined", () => {
  const filter = filterOf(
    { catalog: "db", types: ["TABLE"], tables: [{ name: "t", columns: ["a"] }] },
    { catalog: "db", types: ["TABLE"], tables: [{ name: "t", columns: ["b", "a"] }] },
    { catalog: "db", types: ["VIEW"] },
  );
  assert.deepEqual(selectedColumns(filter, { catalog: "db", table: "t" }), ["a", "b"]);
  assert.equal(tableSelected(filter, { catalog: "db", table: "u" }), false);
});

Deno.test("filter column names match the table's like table names: exact spelling, else case", () => {
  const names = ["id", "first_name", "Last_Name", "last_name"];
  assert.deepEqual(matchColumnNames(["FIRST_NAME", "last_name", "ID"], names), {
    matched: new Set(["first_name", "last_name", "id"]),
    unknown: [],
  });
  // Without an exact spelling, every column equal ignoring case.
  assert.deepEqual(
    matchColumnNames(["LAST_NAME", "nope"], names),
    { matched: new Set(["Last_Name", "last_name"]), unknown: ["nope"] },
  );
});

Deno.test("filter columns no selected table has are reported with file, key and the columns", () => {
  const filter = {
    file: "conf/filter/f.yaml",
    entries: [{
      catalog: "tpch",
      types: ["TABLE" as const],
      tables: [
        { name: "NATION", columns: ["N_NAME", "no_such"], columnsKey: "allow.allow.NATION.allow" },
        { name: "audit_*", columns: ["id", "ts"], columnsKey: "allow.allow.audit_*.allow" },
        { name: "missing", columns: ["x"], columnsKey: "allow.allow.missing.allow" },
      ],
    }],
  };
  const tables = [
    { id: { catalog: "tpch", table: "nation" }, columns: ["n_nationkey", "n_name"] },
    { id: { catalog: "tpch", table: "audit_a" }, columns: ["id", "ts"] },
    { id: { catalog: "tpch", table: "audit_b" }, columns: ["id"] },
    { id: { catalog: "other", table: "nation" }, columns: ["no_such"] },
  ];
  const problems = unknownFilterColumns(filter, tables);
  assert.deepEqual(problems, [{
    file: "conf/filter/f.yaml",
    key: "allow.allow.NATION.allow",
    message: 'column "no_such" is not a column of table tpch.nation (n_nationkey, n_name): ' +
      "correct or remove it",
  }]);
  // A pattern's column that none of its tables has.
  const none = unknownFilterColumns({
    ...filter,
    entries: [{ ...filter.entries[0], tables: [{ name: "audit_*", columns: ["zz"] }] }],
  }, tables);
  assert.equal(none.length, 1);
  assert.match(none[0].message, /"zz" is in none of the 2 tables that "audit_\*" selects/);
});
