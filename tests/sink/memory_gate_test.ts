import assert from "node:assert/strict";
import { MemoryGate, usedMemoryPercent } from "../../src/sink/redis/memory_gate.ts";

const info = (used: number, max: number) =>
  `# Memory\r\nused_memory:${used}\r\nused_memory_human:1M\r\nmaxmemory:${max}\r\n`;

Deno.test("usedMemoryPercent: used_memory over maxmemory; null without a maxmemory", () => {
  assert.equal(usedMemoryPercent(info(50, 200)), 25);
  assert.equal(usedMemoryPercent(info(50, 0)), null);
  assert.equal(usedMemoryPercent("# Memory\r\n"), null);
});

Deno.test("MemoryGate: waits while any server is above the mark, tells the pause once", async () => {
  const readings = [[info(95, 100), info(10, 100)], [info(91, 100)], [info(50, 100)]];
  let reads = 0;
  const gate = new MemoryGate(90, () => Promise.resolve(readings[Math.min(reads++, 2)]), 5);
  const paused: number[] = [];
  let resumed = 0;
  // Two writers at once: one check, one report.
  await Promise.all([
    gate.wait(undefined, (p) => paused.push(p), () => resumed++),
    gate.wait(undefined, (p) => paused.push(p), () => resumed++),
  ]);
  assert.deepEqual(paused, [95]);
  assert.equal(resumed, 1);
  assert.equal(reads, 3);
  // Below the mark: no new check within the interval.
  await gate.wait();
  assert.equal(reads, 3);
  // Without a mark it never reads.
  const off = new MemoryGate(undefined, () => Promise.reject(new Error("not called")));
  await off.wait();
});

Deno.test("MemoryGate: memory above the mark and OOM replies tell onPressure (retention)", async () => {
  const readings = [[info(95, 100)], [info(92, 100)], [info(50, 100)]];
  let reads = 0;
  const gate = new MemoryGate(90, () => Promise.resolve(readings[Math.min(reads++, 2)]), 5);
  let pressure = 0;
  gate.onPressure = () => pressure++;
  await gate.wait();
  assert.equal(pressure, 2, "once per check above the mark");
  gate.pressure();
  assert.equal(pressure, 3);
});
