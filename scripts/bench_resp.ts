/**
 * XADD throughput: ioredis pipelines (as RedisStreamSink.append does) against RespPipeline.
 *
 *   ./scripts/deno run -A scripts/bench_resp.ts
 *   .tools/node_modules/.bin/bun run scripts/bench_resp.ts
 *
 * Environment: BENCH_REDIS_HOST / BENCH_REDIS_PORT (default 127.0.0.1:56379),
 * BENCH_ENTRIES (500000), BENCH_BATCH (1000), BENCH_IN_FLIGHT (comma list, "2,4"),
 * BENCH_MAXLEN (0). Entries look like the compact format: a ~20 byte JSON key and a
 * ~250 byte JSON value. Each run writes to its own stream and deletes it afterwards.
 */
import process from "node:process";
import { Redis } from "ioredis";
import { RespPipeline } from "../src/sink/redis/resp_pipeline.ts";

const host = process.env.BENCH_REDIS_HOST || "127.0.0.1";
const port = Number(process.env.BENCH_REDIS_PORT || 56379);
const total = Number(process.env.BENCH_ENTRIES || 500_000);
const batchSize = Number(process.env.BENCH_BATCH || 1000);
const inFlightList = (process.env.BENCH_IN_FLIGHT || "2,4").split(",").map(Number);
const maxLen = Number(process.env.BENCH_MAXLEN || 0);
const runtime = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined"
  ? `bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`;

/** Distinct batches, cycled; building entries is not what is measured. */
function makeBatches(count: number): string[][][] {
  const batches: string[][][] = [];
  let n = 0;
  for (let b = 0; b < count; b++) {
    const batch: string[][] = [];
    for (let i = 0; i < batchSize; i++, n++) {
      const key = JSON.stringify({ id: 1_000_000_000 + n });
      const value = JSON.stringify({
        id: 1_000_000_000 + n,
        customer: `customer ${n % 977}`,
        email: `user${n}@example.com`,
        status: n % 3 === 0 ? "shipped" : "pending",
        total: (n * 7.31) % 10_000,
        note: n % 10 === 0 ? "café – ünïcødé ✓" : "regular order, nothing special",
        created_at: "2024-05-17T12:34:56.789Z",
        updated_at: "2024-05-18T01:02:03.456Z",
        tags: ["a", "b", "c"],
      });
      batch.push([key, value]);
    }
    batches.push(batch);
  }
  return batches;
}

/** Runs `send` for `entriesToWrite / batchSize` batches with `inFlight` of them outstanding. */
async function drive(
  entriesToWrite: number,
  inFlight: number,
  batches: string[][][],
  send: (entries: string[][]) => Promise<number>,
): Promise<{ rate: number; cpuUsPerEntry: number }> {
  const count = Math.ceil(entriesToWrite / batchSize);
  let next = 0;
  let failed = 0;
  const start = performance.now();
  const cpu = process.cpuUsage();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      failed += await send(batches[i % batches.length]);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  if (failed > 0) throw new Error(`${failed} entries failed`);
  const entries = count * batchSize;
  return { rate: entries / seconds, cpuUsPerEntry: (used.user + used.system) / entries };
}

async function benchIoredis(stream: string, n: number, inFlight: number, batches: string[][][]) {
  const client = new Redis({ host, port, lazyConnect: true, connectionName: "bench-ioredis" });
  await client.connect();
  try {
    return await drive(n, inFlight, batches, async (entries) => {
      const pipe = client.pipeline();
      for (const fields of entries) {
        if (maxLen > 0) pipe.xadd(stream, "MAXLEN", "~", maxLen, "*", ...fields);
        else pipe.xadd(stream, "*", ...fields);
      }
      const replies = (await pipe.exec()) as [Error | null, unknown][];
      let failed = 0;
      for (const [err] of replies) if (err) failed++;
      return failed;
    });
  } finally {
    await client.del(stream);
    await client.quit();
  }
}

async function benchResp(stream: string, n: number, inFlight: number, batches: string[][][]) {
  const conn = await RespPipeline.open({ host, port, origin: "bench" });
  try {
    return await drive(n, inFlight, batches, async (entries) => {
      const replies = await conn.xaddBatch(stream, entries, maxLen);
      let failed = 0;
      for (const r of replies) if (typeof r !== "string") failed++;
      return failed;
    });
  } finally {
    await conn.command("DEL", stream);
    await conn.close();
  }
}

const batches = makeBatches(50);
const bytes = batches[0].reduce((s, [k, v]) => s + k.length + v.length, 0) / batchSize;
console.log(
  `${runtime}: ${total} entries, batches of ${batchSize}, ~${bytes.toFixed(0)} chars/entry, ` +
    `Redis ${host}:${port}${maxLen > 0 ? `, MAXLEN ~ ${maxLen}` : ""}`,
);
// Warm-up of both paths (JIT), not reported.
await benchIoredis(`bench:resp:warm:${process.pid}`, 50_000, 2, batches);
await benchResp(`bench:resp:warm:${process.pid}`, 50_000, 2, batches);
for (const inFlight of inFlightList) {
  const a = await benchIoredis(`bench:resp:ioredis:${process.pid}`, total, inFlight, batches);
  const b = await benchResp(`bench:resp:resp:${process.pid}`, total, inFlight, batches);
  const fmt = (r: { rate: number; cpuUsPerEntry: number }) =>
    `${Math.round(r.rate).toLocaleString("en-US")} entries/s (client CPU ${
      r.cpuUsPerEntry.toFixed(2)
    } µs/entry)`;
  console.log(
    `in flight ${inFlight}: ioredis pipeline ${fmt(a)}, RespPipeline ${fmt(b)}, ` +
      `x${(b.rate / a.rate).toFixed(2)}`,
  );
}
