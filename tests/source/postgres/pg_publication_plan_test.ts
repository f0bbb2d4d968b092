import assert from "node:assert/strict";
import {
  planPublication,
  type PublicationState,
} from "../../../src/source/postgres/pg_publication.ts";
import type { PgRelation } from "../../../src/source/postgres/pg_schema_reader.ts";

const rel = (oid: number, table: string, relkind: "r" | "p" = "r"): PgRelation => ({
  id: { catalog: "db", schema: "s", table },
  relOid: oid,
  relkind,
  estimatedRows: 0,
});

const state = (over: Partial<PublicationState> = {}): PublicationState => ({
  owner: "dba",
  comment: null,
  allTables: false,
  viaRoot: true,
  actions: { insert: true, update: true, delete: true, truncate: true },
  tables: new Map([[1, { name: "s.a", sql: '"s"."a"' }]]),
  schemas: [],
  filtered: [],
  ...over,
});

Deno.test("publication plan: created with exactly the selected tables, partitions via their root", () => {
  const plan = planPublication("p", null, [rel(1, "a"), rel(2, "pay", "p")]);
  assert.deepEqual(plan.statements, [
    'CREATE PUBLICATION "p" FOR TABLE "s"."a", "s"."pay" WITH (publish_via_partition_root = true)',
  ]);
  assert.deepEqual(plan.added, [], "a new publication announces nothing: no slot reads it yet");
});

Deno.test("publication plan: right as it is, nothing to run", () => {
  const plan = planPublication("p", state(), [rel(1, "a")]);
  assert.deepEqual(plan.statements, []);
});

Deno.test("publication plan: tables gained are required and announced; extra ones only tidied", () => {
  const plan = planPublication(
    "p",
    state({
      tables: new Map([[1, { name: "s.a", sql: '"s"."a"' }], [9, { name: "s.x", sql: '"s"."x"' }]]),
    }),
    [rel(1, "a"), rel(2, "b")],
  );
  assert.deepEqual(plan.statements, ['ALTER PUBLICATION "p" SET TABLE "s"."a", "s"."b"']);
  assert.deepEqual(plan.added.map((t) => t.id.table), ["b"]);
  assert.deepEqual(plan.required, ['publication "p" lacks s.b']);
  assert.deepEqual(plan.tidy, ['publication "p" also holds s.x']);
  const extraOnly = planPublication(
    "p",
    state({
      tables: new Map([[1, { name: "s.a", sql: '"s"."a"' }], [9, { name: "s.x", sql: '"s"."x"' }]]),
    }),
    [rel(1, "a")],
  );
  assert.deepEqual(extraOnly.required, [], "usable as it is when it may not be changed");
});

Deno.test("publication plan: what would lose changes is required", () => {
  const plan = planPublication(
    "p",
    state({
      actions: { insert: true, update: true, delete: false, truncate: false },
      viaRoot: false,
      filtered: ["s.a"],
    }),
    [rel(1, "a"), rel(2, "pay", "p")],
  );
  assert.deepEqual(plan.required, [
    'publication "p" lacks s.pay',
    'publication "p" filters the rows or columns of s.a',
    'publication "p" does not publish DELETE, TRUNCATE',
    'publication "p" publishes the changes of partitions under their own names ' +
    "(publish_via_partition_root is off); selected: db.s.pay",
  ]);
  assert.deepEqual(plan.statements, [
    'ALTER PUBLICATION "p" SET TABLE "s"."a", "s"."pay"',
    `ALTER PUBLICATION "p" SET (publish = 'insert, update, delete, truncate')`,
    'ALTER PUBLICATION "p" SET (publish_via_partition_root = true)',
  ]);
});

Deno.test("publication plan: FOR ALL TABLES and whole schemas become the list of tables", () => {
  const all = planPublication("p", state({ allTables: true, tables: new Map() }), [rel(1, "a")]);
  assert.deepEqual(all.statements, [
    'DROP PUBLICATION "p"',
    'CREATE PUBLICATION "p" FOR TABLE "s"."a" WITH (publish_via_partition_root = true)',
  ]);
  assert.deepEqual([all.required, all.added], [[], []], "every selected table was published");
  const schema = planPublication("p", state({ tables: new Map(), schemas: ["s"] }), [
    rel(1, "a"),
  ]);
  assert.deepEqual(schema.statements, ['ALTER PUBLICATION "p" SET TABLE "s"."a"']);
  assert.deepEqual([schema.required, schema.added], [[], []], "published through its schema");
});

Deno.test("publication plan: one it creates records its owner in the same statements", () => {
  const owner = { group: "default", id: "o'k" };
  const comment = `COMMENT ON PUBLICATION "p" IS 'replicant default/o''k'`;
  const created = planPublication("p", null, [rel(1, "a")], owner);
  assert.deepEqual(created.statements, [
    'CREATE PUBLICATION "p" FOR TABLE "s"."a" WITH (publish_via_partition_root = true)',
    comment,
  ]);
  assert.equal(created.ownerStatement, comment);
  // FOR ALL TABLES is made anew: the new one records the owner again.
  const replaced = planPublication(
    "p",
    state({ allTables: true, tables: new Map(), comment: "replicant default/o'k" }),
    [rel(1, "a")],
    owner,
  );
  assert.deepEqual(replaced.statements.slice(1), created.statements);
  // Changed in place, it keeps its comment.
  const changed = planPublication("p", state(), [rel(1, "a"), rel(2, "b")], owner);
  assert.deepEqual(changed.statements, ['ALTER PUBLICATION "p" SET TABLE "s"."a", "s"."b"']);
});
