/** keySlot against values of `redis-cli cluster keyslot` (Redis 7.0). */
import assert from "node:assert/strict";
import { keySlot, SLOT_COUNT } from "../../src/sink/redis/key_slot.ts";

Deno.test("keySlot: CRC16 mod 16384 as CLUSTER KEYSLOT", () => {
  const known: [string, number][] = [
    ["foo", 12182],
    ["bar", 5061],
    ["hello", 866],
    ["123456789", 12739],
    ["", 0],
    ["é€ü", 9519], // UTF-8 bytes, not UTF-16 code units
  ];
  for (const [key, slot] of known) assert.equal(keySlot(key), slot, key);
});

Deno.test("keySlot: {hashtag} rules", () => {
  const known: [string, number][] = [
    ["{user1000}.following", 3443],
    ["user1000", 3443],
    ["foo{bar}{zap}", 5061], // first {...} only: "bar"
    ["foo{}{bar}", 8363], // empty first tag: whole key
    ["foo{{bar}}zap", 4015], // tag is "{bar"
    ["{}foo", 9500],
  ];
  for (const [key, slot] of known) assert.equal(keySlot(key), slot, key);
  assert.equal(keySlot("{a}x"), keySlot("{a}y"));
  assert.equal(keySlot("no{close"), keySlot("no{close"));
});

Deno.test("keySlot: always within 0..16383", () => {
  for (let i = 0; i < 5000; i++) {
    const s = keySlot(`replicant_stream_${i}`);
    assert.ok(Number.isInteger(s) && s >= 0 && s < SLOT_COUNT);
  }
});
