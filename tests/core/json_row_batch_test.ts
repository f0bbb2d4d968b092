import assert from "node:assert/strict";
import { JsonRowBatch } from "../../src/core/json_row_batch.ts";
import { seededTest } from "../helpers/test_seed.ts";

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

seededTest("JsonRowBatch: pushJsonString writes what JSON.stringify writes", (_seed, rand) => {
  const samples = [
    "",
    "plain",
    'quote " and \\ backslash',
    "\u0000\u0001\b\t\n\f\r\u001f\u007f",
    "tail ü",
    "ü first",
    "€ and 😀",
    "lone \ud800 surrogate",
    "x".repeat(5000),
  ];
  // Random strings over ASCII (controls included) with a few non-ASCII units.
  for (let n = 0; n < 2000; n++) {
    let s = "";
    const len = Math.floor(rand() * 40);
    for (let i = 0; i < len; i++) {
      const r = rand();
      s += String.fromCharCode(
        r < 0.9 ? Math.floor(rand() * 128) : 0x80 + Math.floor(rand() * 0xff80),
      );
    }
    samples.push(s);
  }
  const batch = new JsonRowBatch(1, 4, 2);
  for (const s of samples) {
    batch.pushJsonString(s);
    batch.endRow();
  }
  const text = batch.toRows().map((r) => r[0]);
  assert.deepEqual(text, samples.map((s) => JSON.stringify(s)));
  // pushFragment keeps non-ASCII fragments whole.
  const b2 = new JsonRowBatch(1, 4, 2);
  for (const s of samples) {
    b2.pushFragment(JSON.stringify(s));
    b2.endRow();
  }
  assert.deepEqual(b2.toRows().map((r) => r[0]), samples.map((s) => JSON.stringify(s)));
});
