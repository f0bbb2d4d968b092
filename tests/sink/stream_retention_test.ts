/**
 * Retention against a real Redis: consumer groups reading at different speeds (one stopped)
 * while entries are written and retention runs; the hard cap; streams without groups; the
 * minimum length and age; the tail a resume or an undo reads; the records of what was
 * trimmed; and the same on a Redis Cluster.
 */
import assert from "node:assert/strict";
import process from "node:process";
import type { Cluster, Redis } from "ioredis";
import { redisClient } from "../helpers/clients.ts";
import { prng } from "../helpers/change_log.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { StreamTailGuard } from "../../src/sink/redis/stream_tail_guard.ts";
import {
  RetentionLoop,
  type RetentionSettings,
  StreamRetention,
  type StreamTrim,
} from "../../src/sink/redis/stream_retention.ts";
import { readStreamTail } from "../../src/sink/redis/stream_tails.ts";
import { pgSortKeyOfSource } from "../../src/source/postgres/pgoutput_position.ts";
import type { RedisClient } from "../../src/sink/redis/redis_connection.ts";

const tag = () => `ret_${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

/** A retention with hooks that remember what they were told. */
function retention(
  client: RedisClient,
  settings: Partial<RetentionSettings> = {},
  guard?: StreamTailGuard,
) {
  const records: [string, string][] = [];
  const trims: StreamTrim[] = [];
  const warnings: string[] = [];
  const r = new StreamRetention(
    client,
    { minLength: 0, minAgeMs: 0, ...settings },
    guard ?? new StreamTailGuard(),
    {
      record: (stream, through) => {
        records.push([stream, through]);
        return Promise.resolve();
      },
      trimmed: (t) => trims.push(t),
      warn: (m) => warnings.push(m),
    },
  );
  return { r, records, trims, warnings };
}

/** An entry shaped like a realtime change of PostgreSQL (compact, no schema). */
function change(n: number): string[] {
  return [
    JSON.stringify({ id: n }),
    JSON.stringify({
      before: null,
      after: { id: n, v: `v${n}` },
      source: { lsn: 1000 + n, txId: n, sequence: 0 },
      op: "c",
      ts_ms: 0,
    }),
  ];
}

async function fill(redis: RedisClient, stream: string, from: number, count: number) {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 500) {
    const pipe = redis.pipeline();
    for (let n = from + i; n < from + Math.min(count, i + 500); n++) {
      pipe.xadd(stream, "*", ...change(n));
    }
    for (const [err, id] of (await pipe.exec()) as [Error | null, string][]) {
      if (err) throw err;
      ids.push(id);
    }
  }
  return ids;
}

/** Reads up to `count` new entries for `consumer` of `group`, acknowledges `ack` of them. */
async function consume(redis: Redis, stream: string, group: string, count: number, ack: number) {
  const reply = await redis.xreadgroup(
    "GROUP",
    group,
    "c1",
    "COUNT",
    count,
    "STREAMS",
    stream,
    ">",
  ) as [string, [string, string[]][]][] | null;
  const entries = reply?.[0][1] ?? [];
  const ids = entries.map(([id]) => id);
  if (ack > 0 && ids.length > 0) await redis.xack(stream, group, ...ids.slice(0, ack));
  return ids;
}

/** Stream ids compared as (ms, seq). */
function compareIds(a: string, b: string): number {
  const [am, as] = a.split("-").map(BigInt);
  const [bm, bs] = b.split("-").map(BigInt);
  return am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
}

async function ids(redis: RedisClient, stream: string): Promise<string[]> {
  return (await redis.xrange(stream, "-", "+")).map(([id]) => id);
}

Deno.test("retention: groups at different speeds and one stopped never lose an unacknowledged entry", async () => {
  const seed = Number(process.env.REPLICANT_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const rand = prng(seed);
  const redis = redisClient();
  const stream = tag();
  const { r } = retention(redis);
  const loop = new RetentionLoop(r, () => [stream], 30, (err) => {
    throw err;
  });
  try {
    await fill(redis, stream, 0, 10);
    for (const g of ["fast", "slow", "stopped"]) {
      await redis.xgroup("CREATE", stream, g, "0");
    }
    // The stopped group reads 5 entries, acknowledges 3, then never again.
    await consume(redis, stream, "stopped", 5, 3);
    const stoppedFloor = (await ids(redis, stream))[3];
    loop.start();
    const written: string[] = [...(await ids(redis, stream))];
    const seen: Record<string, string[]> = { fast: [], slow: [] };
    for (let round = 0; round < 60; round++) {
      written.push(...await fill(redis, stream, 1000 + round * 100, 20 + Math.floor(rand() * 60)));
      // fast reads everything and acknowledges everything; slow lags and keeps some pending.
      seen.fast.push(...await consume(redis, stream, "fast", 1000, 1000));
      const n = Math.floor(rand() * 60);
      seen.slow.push(...await consume(redis, stream, "slow", n, Math.floor(n / 2)));
      const pending = await redis.xpending(stream, "slow", "-", "+", 1000) as [string][];
      if (pending.length > 0) {
        await redis.xack(stream, "slow", ...pending.slice(0, 10).map((p) => p[0]));
      }
      await new Promise((res) => setTimeout(res, 5));
      // Every entry some group has not acknowledged is still there.
      const present = new Set(await ids(redis, stream));
      for (const id of written) {
        if (compareIds(id, stoppedFloor) >= 0) {
          assert.ok(
            present.has(id),
            `seed ${seed}: entry ${id} the stopped group did not acknowledge is gone`,
          );
        }
      }
      for (const [id] of await redis.xpending(stream, "slow", "-", "+", 10_000) as [string][]) {
        assert.ok(present.has(id), `seed ${seed}: pending entry ${id} of group slow is gone`);
      }
    }
    await loop.stop();
    // Whatever they read, they read in order, without a gap: nothing vanished before them.
    seen.slow.push(...await consume(redis, stream, "slow", 100_000, 0));
    seen.fast.push(...await consume(redis, stream, "fast", 100_000, 100_000));
    assert.deepEqual(seen.fast, written, `seed ${seed}: fast read every entry`);
    assert.deepEqual(seen.slow, written, `seed ${seed}: slow read every entry`);
    await redis.xack(stream, "slow", ...written);
    // Once the others acknowledged everything, the stopped group alone holds the stream back:
    // everything below its oldest pending entry goes, everything from it on stays.
    await r.pass([stream]);
    assert.equal((await ids(redis, stream))[0], stoppedFloor, `seed ${seed}`);
    const rest = await consume(redis, stream, "stopped", 1_000_000, 0);
    assert.deepEqual(rest, written.slice(5), `seed ${seed}: stopped group`);
  } finally {
    await loop.stop();
    await redis.del(stream);
    redis.disconnect();
  }
});

Deno.test("retention: once every group acknowledged, the stream shrinks to its protected tail", async () => {
  const redis = redisClient();
  const stream = tag();
  try {
    await fill(redis, stream, 0, 20_000);
    await redis.xgroup("CREATE", stream, "a", "0");
    await redis.xgroup("CREATE", stream, "b", "0");
    const { r, records, trims } = retention(redis);
    // Nothing acknowledged: nothing goes.
    assert.deepEqual(await r.pass([stream]), []);
    assert.equal(await redis.xlen(stream), 20_000);
    await consume(redis, stream, "a", 100_000, 100_000);
    await consume(redis, stream, "b", 100_000, 100_000);
    const before = Number(await redis.call("MEMORY", "USAGE", stream));
    await r.pass([stream]);
    // Bounded: only the newest entries a resume reads stay.
    assert.equal(await redis.xlen(stream), 16);
    const after = Number(await redis.call("MEMORY", "USAGE", stream));
    assert.ok(after * 50 < before, `memory ${before} → ${after} bytes`);
    assert.equal(trims.reduce((n, t) => n + t.removed, 0), 20_000 - 16);
    assert.equal(trims[0].unread, 0);
    // Recorded before each trim call, up to the bound it then applied.
    const first = (await ids(redis, stream))[0];
    assert.equal(records.length, Math.ceil((20_000 - 16) / 1000));
    assert.deepEqual(records.at(-1), [stream, first]);
    // Writing on, acknowledging on: the stream stays small.
    for (let i = 0; i < 5; i++) {
      await fill(redis, stream, 100_000 + i * 1000, 1000);
      await consume(redis, stream, "a", 100_000, 100_000);
      await consume(redis, stream, "b", 100_000, 100_000);
      await r.pass([stream]);
      assert.equal(await redis.xlen(stream), 16);
    }
  } finally {
    await redis.del(stream);
    redis.disconnect();
  }
});

Deno.test("retention: the hard cap trims unread entries and reports them; no groups: cap only", async () => {
  const redis = redisClient();
  const [withGroup, noGroup, noCap] = [tag(), tag(), tag()];
  try {
    for (const s of [withGroup, noGroup, noCap]) await fill(redis, s, 0, 3000);
    await redis.xgroup("CREATE", withGroup, "stopped", "0");
    await consume(redis, withGroup, "stopped", 500, 500);
    const { r, trims, warnings } = retention(redis, { maxLength: 1000 });
    await r.pass([withGroup, noGroup]);
    assert.equal(await redis.xlen(withGroup), 1000);
    assert.equal(await redis.xlen(noGroup), 1000);
    const capped = trims.find((t) => t.stream === withGroup)!;
    assert.equal(capped.removed, 2000);
    assert.equal(capped.unread, 1500, "2000 trimmed, 500 of them acknowledged");
    assert.equal(capped.group, "stopped");
    assert.equal(trims.find((t) => t.stream === noGroup)!.unread, 0, "no group: nobody's unread");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /max-length 1000 trimmed 1500 entries of stream .* group "stopped"/);
    // Without groups and without a cap nothing is trimmed.
    await retention(redis).r.pass([noCap]);
    assert.equal(await redis.xlen(noCap), 3000);
  } finally {
    await redis.del(withGroup, noGroup, noCap);
    redis.disconnect();
  }
});

Deno.test("retention: min-length and min-age keep entries every group acknowledged", async () => {
  const redis = redisClient();
  const [a, b] = [tag(), tag()];
  try {
    for (const s of [a, b]) {
      await fill(redis, s, 0, 2500);
      await redis.xgroup("CREATE", s, "g", "0");
      await consume(redis, s, "g", 10_000, 10_000);
    }
    await retention(redis, { minLength: 700 }).r.pass([a]);
    assert.equal(await redis.xlen(a), 700);
    // Entries younger than a minute stay, even though acknowledged.
    await retention(redis, { minAgeMs: 60_000 }).r.pass([b]);
    assert.equal(await redis.xlen(b), 2500);
  } finally {
    await redis.del(a, b);
    redis.disconnect();
  }
});

Deno.test("retention: a resume and the undo of a batch in flight see the same tail as without it", async () => {
  const redis = redisClient();
  const [trimmed, untouched] = [tag(), tag()];
  try {
    const guard = new StreamTailGuard();
    for (const s of [trimmed, untouched]) {
      await fill(redis, s, 0, 200);
      await redis.xgroup("CREATE", s, "g", "0");
    }
    const good = (await ids(redis, trimmed)).at(-1)!;
    // A realtime batch starts after `good`; 40 of its entries land, then it fails.
    guard.batchStarted(trimmed, good);
    for (const s of [trimmed, untouched]) {
      await fill(redis, s, 200, 40);
      await consume(redis, s, "g", 100_000, 100_000);
    }
    const { r } = retention(redis, {}, guard);
    await r.pass([trimmed]);
    // The undo deletes everything after `good` in both.
    for (const s of [trimmed, untouched]) {
      const landed =
        (await redis.xrange(s, `(${s === trimmed ? good : (await ids(redis, s))[199]}`, "+"))
          .map(([id]) => id);
      assert.equal(landed.length, 40);
      await redis.xdel(s, ...landed);
    }
    guard.batchSettled(trimmed);
    assert.equal(await redis.xlen(trimmed), 16, "the 16 newest entries before the batch stay");
    const tailOf = (s: string) => readStreamTail(redis, s, "compact", true, pgSortKeyOfSource);
    const [t1, t2] = [await tailOf(trimmed), await tailOf(untouched)];
    assert.equal(t1.sortKey, t2.sortKey, "a resume finds the same position");
    assert.equal(t1.lastId, good);
    // A batch into a stream that held nothing before: not trimmed at all.
    const empty = new StreamTailGuard();
    empty.batchStarted(trimmed, null);
    assert.deepEqual(await retention(redis, {}, empty).r.pass([trimmed]), []);
  } finally {
    await redis.del(trimmed, untouched);
    redis.disconnect();
  }
});

Deno.test("retention: a snapshot writer's window of newest entries stays while it writes", async () => {
  const redis = redisClient();
  const stream = tag();
  try {
    await fill(redis, stream, 0, 3000);
    await redis.xgroup("CREATE", stream, "g", "0");
    await consume(redis, stream, "g", 100_000, 100_000);
    const guard = new StreamTailGuard();
    const release = guard.keepNewest(stream, 2500);
    await retention(redis, {}, guard).r.pass([stream]);
    assert.equal(await redis.xlen(stream), 2500);
    release();
    await retention(redis, {}, guard).r.pass([stream]);
    assert.equal(await redis.xlen(stream), 16);
  } finally {
    await redis.del(stream);
    redis.disconnect();
  }
});

Deno.test("retention on a Redis Cluster: each stream trimmed on its own node", async () => {
  const bed = await startRedisCluster({ replicas: 0 });
  const cluster: Cluster = bed.client();
  try {
    const streams = ["{a}orders", "{b}orders", "{c}orders"].map((s) => `${tag()}${s}`);
    for (const s of streams) {
      await fill(cluster, s, 0, 1500);
      await cluster.xgroup("CREATE", s, "g", "0");
      await consume(cluster as unknown as Redis, s, "g", 200, 200);
    }
    const { r, trims } = retention(cluster, { maxLength: 1200 });
    await r.pass(streams);
    for (const s of streams) {
      // Acknowledged: 200; the cap leaves 1200: 300 trimmed, 100 of them unread.
      assert.equal(await cluster.xlen(s), 1200);
    }
    assert.equal(trims.length, 3);
    assert.ok(trims.every((t) => t.removed === 300 && t.unread === 100), JSON.stringify(trims));
    for (const s of streams) await consume(cluster as unknown as Redis, s, "g", 10_000, 10_000);
    await r.pass(streams);
    for (const s of streams) assert.equal(await cluster.xlen(s), 16);
  } finally {
    cluster.disconnect();
    bed.stop();
  }
});

Deno.test("retention: memory pressure runs a pass at once, between the periodic ones", async () => {
  const redis = redisClient();
  const stream = tag();
  const { r } = retention(redis);
  const loop = new RetentionLoop(r, () => [stream], 3_600_000, (err) => {
    throw err;
  });
  try {
    await fill(redis, stream, 0, 500);
    await redis.xgroup("CREATE", stream, "g", "0");
    await consume(redis, stream, "g", 1000, 1000);
    loop.start();
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(await redis.xlen(stream), 500, "no pass before the interval");
    loop.trigger(); // what the memory gate does when Redis is above the mark
    const deadline = Date.now() + 5000;
    while ((await redis.xlen(stream)) > 16 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.equal(await redis.xlen(stream), 16);
  } finally {
    await loop.stop();
    await redis.del(stream);
    redis.disconnect();
  }
});
