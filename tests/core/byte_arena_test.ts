import assert from "node:assert/strict";
import { ByteArena } from "../../src/core/byte_arena.ts";

Deno.test("ByteArena: a block serves again only once nothing holds it", () => {
  const arena = new ByteArena(100, 2);
  const a = arena.room(60);
  a.used = 60;
  arena.hold(a);
  arena.hold(a);
  const b = arena.room(60); // a is full: a new block
  assert.notEqual(b, a);
  b.used = 60;
  arena.hold(b);
  assert.equal(arena.free, 0); // a is still held
  arena.release(a);
  assert.equal(arena.free, 0);
  arena.release(a);
  assert.equal(arena.free, 1);
  const c = arena.room(60); // b is full: a comes back, empty
  assert.equal(c, a);
  assert.equal(c.used, 0);
  arena.release(b); // b is not current and nothing holds it
  assert.equal(arena.free, 1);
  c.used = 60;
  arena.hold(c);
  assert.equal(arena.room(60), b);
  assert.equal(b.used, 0);
});

Deno.test("ByteArena: the current block is not recycled under its writer, big blocks are not kept", () => {
  const arena = new ByteArena(100, 4);
  const a = arena.room(10);
  a.used = 10;
  arena.hold(a);
  arena.release(a); // current: stays current, not free
  assert.equal(arena.free, 0);
  assert.equal(arena.room(10), a);
  const big = arena.room(500); // larger than a block: its own size
  assert.equal(big.bytes.length, 500);
  assert.equal(arena.free, 1); // a, held by nobody, retired when big took over
  big.used = 500;
  arena.room(10); // big retired: not kept (not a block's size)
  assert.equal(arena.free, 0); // a was reused as the current block
});

Deno.test("ByteArena: blocks nobody held are never written over", () => {
  const arena = new ByteArena(100, 4);
  const a = arena.room(60);
  a.used = 60;
  const b = arena.room(60);
  b.used = 60;
  const c = arena.room(60);
  assert.notEqual(c, a);
  assert.notEqual(c, b);
  assert.equal(arena.free, 0);
});
