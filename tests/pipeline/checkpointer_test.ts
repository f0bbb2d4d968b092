import assert from "node:assert/strict";
import { Checkpointer } from "../../src/pipeline/checkpointer.ts";

Deno.test("checkpointer: advances only over fully accepted transactions, in order", () => {
  const c = new Checkpointer();
  const a = c.begin("A");
  c.add(a, 2);
  c.close(a);
  const b = c.begin("B");
  c.add(b, 1);
  c.close(b);
  const e = c.begin("E"); // empty transaction (nothing selected)
  c.close(e);
  assert.equal(c.advance(), null);
  c.accepted(b); // B done before A: no move
  assert.equal(c.advance(), null);
  c.accepted(a);
  assert.equal(c.advance(), null);
  c.accepted(a);
  assert.equal(c.advance(), "E"); // A, B and the empty E are all behind
  assert.equal(c.inFlight, 0);
  assert.equal(c.advance(), null);
});

Deno.test("checkpointer: a transaction in parts waits for its last part", () => {
  const c = new Checkpointer();
  const t = c.begin("T");
  c.add(t, 3);
  c.accepted(t, 3);
  assert.equal(c.advance(), null, "more parts may come");
  c.add(t, 1);
  c.close(t);
  assert.equal(c.advance(), null);
  c.accepted(t);
  assert.equal(c.advance(), "T");
  assert.throws(() => c.add(t), /closed/);
});

Deno.test("checkpointer: empty transactions behind a pending one wait for it", () => {
  const c = new Checkpointer();
  const a = c.begin("A");
  c.add(a);
  c.close(a);
  for (const t of ["H1", "H2"]) c.close(c.begin(t));
  assert.equal(c.advance(), null);
  c.accepted(a);
  assert.equal(c.advance(), "H2");
  assert.throws(() => c.accepted(a), /more accepted than pending/);
});

Deno.test("checkpointer: keeps memory bounded over many transactions", () => {
  const c = new Checkpointer();
  let last: string | null = null;
  for (let i = 0; i < 10_000; i++) {
    const t = c.begin(String(i));
    c.add(t);
    c.close(t);
    c.accepted(t);
    last = c.advance() ?? last;
  }
  assert.equal(last, "9999");
  assert.equal(c.inFlight, 0);
});
