import assert from "node:assert/strict";
import { parseStartTimestamp } from "../../src/config/start_timestamp.ts";

Deno.test("start-timestamp: Arcion's form, ISO-8601, offsets, epoch milliseconds", () => {
  const at = Date.UTC(2023, 5, 30, 10, 15);
  assert.equal(parseStartTimestamp("2023-06-30 10:15 UTC"), at);
  assert.equal(parseStartTimestamp("2023-06-30 10:15: UTC"), at);
  assert.equal(parseStartTimestamp("2023-06-30 15:45 IST"), at);
  assert.equal(parseStartTimestamp("2023-06-30 03:15 PDT"), at);
  assert.equal(parseStartTimestamp("2023-06-30T10:15:00Z"), at);
  assert.equal(parseStartTimestamp("2023-06-30T12:15:00.250+02:00"), at + 250);
  assert.equal(parseStartTimestamp(at), at);
  assert.equal(parseStartTimestamp(String(at)), at);
});

Deno.test("start-timestamp: no zone, an unknown zone and impossible dates are refused", () => {
  const problem = (v: unknown) => (parseStartTimestamp(v) as { problem: string }).problem;
  assert.match(problem("2023-06-30 10:15"), /add a time zone/);
  assert.match(problem("2023-06-30 10:15 XYZ"), /unknown time zone "XYZ"/);
  assert.match(problem("2023-02-30 10:15 UTC"), /not a valid date/);
  assert.match(problem("yesterday"), /expected "YYYY-MM-DD hh:mm/);
});
