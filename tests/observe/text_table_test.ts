import assert from "node:assert/strict";
import {
  formatCount,
  formatDuration,
  formatRate,
  renderTable,
  terminalWidth,
  wrapText,
} from "../../src/observe/text_table.ts";

Deno.test("renderTable aligns text left and numbers right", () => {
  const out = renderTable(["table", "rows"], [["a", "1,000"], ["long_name", "5"]]);
  assert.equal(out, "table       rows\n---------  -----\na          1,000\nlong_name      5");
});

Deno.test("renderTable wraps the last column to the width", () => {
  const detail = "the user may read the binlog and take the brief FLUSH TABLES WITH READ LOCK";
  const out = renderTable(["conn", "status", "detail"], [["a.yaml", "PASSED", detail]], {
    width: 50,
  });
  const lines = out.split("\n");
  for (const l of lines) assert.ok(l.length <= 50, `${l.length} columns: ${l}`);
  assert.equal(lines[2], "a.yaml  PASSED  the user may read the binlog and");
  assert.equal(lines[3], "                take the brief FLUSH TABLES WITH");
  assert.equal(lines[4], "                READ LOCK");
  assert.equal(lines.slice(2).map((l) => l.slice(16)).join(" "), detail);
  // Fits already: unchanged.
  assert.equal(
    renderTable(["a", "b"], [["x", "y z"]], { width: 80 }),
    renderTable(["a", "b"], [["x", "y z"]]),
  );
  // A word longer than the room stays whole on its own line.
  assert.deepEqual(wrapText("ab " + "x".repeat(40) + " cd", 30), ["ab", "x".repeat(40), "cd"]);
});

Deno.test("terminalWidth: COLUMNS, else a terminal's width, else none (piped)", () => {
  assert.equal(terminalWidth({ isTTY: true, columns: 120 }, undefined), 120);
  assert.equal(terminalWidth({ isTTY: true, columns: 120 }, "80"), 80);
  assert.equal(terminalWidth({ isTTY: false }, "100"), 100);
  assert.equal(terminalWidth({ isTTY: false }, undefined), undefined);
  assert.equal(terminalWidth({}, "wide"), undefined);
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
