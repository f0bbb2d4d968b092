import assert from "node:assert/strict";
import { editDistance, nearestKey } from "../../src/config/nearest_key.ts";

Deno.test("editDistance counts a swap of neighbours as one edit", () => {
  assert.equal(editDistance("host", "host"), 0);
  assert.equal(editDistance("hsot", "host"), 1);
  assert.equal(editDistance("thread", "threads"), 1);
  assert.equal(editDistance("", "abc"), 3);
});

Deno.test("nearestKey suggests only close keys", () => {
  const keys = ["threads", "fetch-size-rows", "min-job-size-rows", "split-key"];
  assert.equal(nearestKey("thread", keys), "threads");
  assert.equal(nearestKey("fetch_size_rows", keys), "fetch-size-rows");
  assert.equal(nearestKey("Fetch-Size-Row", keys), "fetch-size-rows");
  assert.equal(nearestKey("colour", keys), undefined);
  assert.equal(nearestKey("x", ["y"]), "y");
  assert.equal(nearestKey("ab", ["xyz"]), undefined);
});
