import assert from "node:assert/strict";
import {
  formatCount,
  formatDuration,
  formatRate,
  renderTable,
} from "../../src/observe/text_table.ts";

Deno.test("renderTable aligns text left and numbers right", () => {
  const out = renderTable(["table", "rows"], [["a", "1,000"], ["long_name", "5"]]);
  assert.equal(out, "table       rows\n---------  -----\na          1,000\nlong_name      5");
});

Deno.test("number formats", () => {
  assert.equal(formatCount(1234567), "1,234,567");
  assert.equal(formatRate(250_000), "250k/s");
  assert.equal(formatRate(1500), "1.5k/s");
  assert.equal(formatRate(0), "-");
  assert.equal(formatDuration(59), "59s");
  assert.equal(formatDuration(61), "1:01");
  assert.equal(formatDuration(3661), "1:01:01");
});
