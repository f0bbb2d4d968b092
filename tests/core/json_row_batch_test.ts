import assert from "node:assert/strict";
import { JsonRowBatch } from "../../src/core/json_row_batch.ts";

Deno.test("JsonRowBatch: fragments round-trip through growth and reset", () => {
  const batch = new JsonRowBatch(3, 8, 2);
  const rows = [
    ["1", '"a\\"b"', "null"],
    ["2", '"ü€😀"', '{"k":[1,2]}'],
    ["3", '""', "null"],
  ];
  for (const [a, b, c] of rows) {
    batch.pushFragment(a);
    batch.pushFragment(b);
    if (c === "null") batch.pushNull();
    else batch.pushFragment(c);
    batch.endRow();
  }
  assert.equal(batch.rows, 3);
  assert.deepEqual(batch.toRows(), rows);
  assert.equal(batch.text(4), '"ü€😀"');
  batch.reset();
  assert.deepEqual(batch.toRows(), []);
  batch.pushFragment("7");
  batch.pushNull();
  batch.pushFragment("true");
  batch.endRow();
  assert.deepEqual(batch.toRows(), [["7", "null", "true"]]);
  assert.deepEqual(JsonRowBatch.fromRows(3, rows).toRows(), rows);
});

Deno.test("JsonRowBatch: a row with the wrong number of fragments is refused", () => {
  const batch = new JsonRowBatch(2);
  batch.pushFragment("1");
  assert.throws(() => batch.endRow(), /row 0 has 1 fragments, expected 2/);
});
