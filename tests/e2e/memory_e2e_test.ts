/**
 * End-to-end memory bounds: the compiled binary's resident
 * memory stays under 300 MiB for a large snapshot and for one huge realtime transaction.
 *
 * Sizes are the (smaller ones for a quick local run through the environment):
 * - `REPLICANT_MEMORY_ROWS` rows of ~200 bytes for the snapshot (default 10 000 000);
 * - `REPLICANT_MEMORY_TX_ROWS` rows in the single realtime transaction (default 1 000 000).
 *
 * Entries go to a private Redis (no persistence) whose stream the test trims while Replicant
 * writes, so neither Redis nor the machine has to hold them; the count is XINFO's
 * `entries-added`. RSS is VmRSS of /proc/<pid>/status sampled every 100 ms (the maximum is
 * kept: VmHWM is gone once the process exits).
 */
import assert from "node:assert/strict";
import { dropPublication, dropSlot } from "../../src/source/postgres/pg_replication_slot.ts";
import { readFileSync, rmSync } from "node:fs";
import process from "node:process";
import type pg from "pg";
import type { Redis } from "ioredis";
import { pgClient } from "../helpers/clients.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { type PrivateRedis, privateRedis } from "../pipeline/failure_fixture.ts";

const MiB = 1024 * 1024;
const LIMIT = 300 * MiB;

function sizeFromEnv(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v.replaceAll("_", ""));
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}=${JSON.stringify(v)} is not a count`);
  return n;
}

const ROWS = sizeFromEnv("REPLICANT_MEMORY_ROWS", 10_000_000);
const TX_ROWS = sizeFromEnv("REPLICANT_MEMORY_TX_ROWS", 1_000_000);

/** VmRSS of a live process in bytes, or null once it is gone. */
function rssOf(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Samples a process's RSS every 100 ms until stopped; keeps the maximum. */
function rssSampler(pid: number) {
  let max = 0;
  let samples = 0;
  const sample = () => {
    const rss = rssOf(pid);
    if (rss !== null) {
      samples++;
      if (rss > max) max = rss;
    }
  };
  sample();
  const timer = setInterval(sample, 100);
  return {
    get max() {
      return max;
    },
    get samples() {
      return samples;
    },
    stop() {
      sample();
      clearInterval(timer);
    },
  };
}

/** Trims a stream to nothing every 200 ms (the entries are counted by `entries-added`). */
function trimmer(admin: Redis, stream: string) {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await admin.xtrim(stream, "MAXLEN", 0).catch(() => {});
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}

/** XINFO STREAM `entries-added` (Redis 7.0+): every entry ever added, trimmed or not. */
async function entriesAdded(admin: Redis, stream: string): Promise<number> {
  const info = await admin.call("XINFO", "STREAM", stream) as unknown[];
  const i = info.indexOf("entries-added");
  assert.ok(i >= 0, "XINFO STREAM has entries-added (Redis 7.0+)");
  return Number(info[i + 1]);
}

interface Env {
  db: pg.Client;
  redis: PrivateRedis;
  admin: Redis;
  home: ReturnType<typeof scratchHome>;
  schema: string;
  redisConn: string;
  filter: string;
}

async function withEnv(tag: string, fn: (env: Env) => Promise<void>): Promise<void> {
  const schema = `mem_${tag}_${Date.now().toString(36)}`;
  const db = await pgClient();
  const redis = await privateRedis();
  const admin = redis.admin();
  // Speed over durability: nothing here survives a Redis crash anyway.
  await admin.config("SET", "appendonly", "no");
  const home = scratchHome();
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    await fn({
      db,
      redis,
      admin,
      home,
      schema,
      redisConn: redis.connFile(home.dir, "private_redis.yaml"),
      filter: home.write(
        "filter.yaml",
        `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
      ),
    });
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await db.end();
    admin.disconnect();
    await redis.stop();
    rmSync(home.dir, { recursive: true, force: true });
  }
}

Deno.test(`memory e2e: snapshot of ${ROWS} rows of ~200 bytes stays under 300 MiB RSS`, async () => {
  await withEnv("snap", async (env) => {
    const t0 = Date.now();
    await env.db.query(`CREATE TABLE ${env.schema}.big (id bigint PRIMARY KEY, v text NOT NULL)`);
    await env.db.query(
      `INSERT INTO ${env.schema}.big SELECT g, rpad(md5(g::text), 190, 'x') FROM generate_series(1, ${ROWS}) g`,
    );
    const tLoaded = Date.now();
    const stream = `replicant_${env.schema}_big`;
    const run = startReplicant([
      "snapshot",
      env.home.pgConn,
      env.redisConn,
      "--filter",
      env.filter,
      "--id",
      env.schema,
      "--home",
      env.home.dir,
    ]);
    const rss = rssSampler(run.pid);
    const stopTrim = trimmer(env.admin, stream);
    const res = await run.done;
    rss.stop();
    await stopTrim();
    const tDone = Date.now();
    assert.equal(res.code, 0, res.stderr);
    assert.equal(await entriesAdded(env.admin, stream), ROWS, "entries written");
    console.log(
      `snapshot of ${ROWS} rows: load ${tLoaded - t0} ms, replicant ${tDone - tLoaded} ms, ` +
        `max RSS ${(rss.max / MiB).toFixed(1)} MiB over ${rss.samples} samples`,
    );
    assert.ok(rss.samples >= 5, `only ${rss.samples} RSS samples`);
    assert.ok(rss.max < LIMIT, `max RSS ${(rss.max / MiB).toFixed(1)} MiB ≥ 300 MiB`);
  });
});

Deno.test(`memory e2e: one realtime transaction of ${TX_ROWS} rows stays under 300 MiB RSS`, async () => {
  await withEnv("tx", async (env) => {
    const id = env.schema;
    const slot = `replicant_default_${id}`;
    await env.db.query(`CREATE TABLE ${env.schema}.t (id bigint PRIMARY KEY, v text NOT NULL)`);
    const stream = `replicant_${env.schema}_t_cdc_logs`;
    let run: RunningReplicant | null = null;
    let rss: ReturnType<typeof rssSampler> | null = null;
    let stopTrim: (() => Promise<void>) | null = null;
    try {
      const t0 = Date.now();
      run = startReplicant([
        "realtime",
        env.home.pgConn,
        env.redisConn,
        "--filter",
        env.filter,
        "--id",
        id,
        "--home",
        env.home.dir,
        "--overwrite",
      ]);
      const current = run;
      let exited = false;
      current.done.then(() => (exited = true));
      const sampler = rss = rssSampler(current.pid);
      // Streaming once the slot is held by replicant's walsender.
      await waitFor(async () => {
        if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
        const r = await env.db.query(
          "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
          [slot],
        );
        return r.rows[0]?.active === true;
      }, { what: `slot ${slot} active`, timeoutMs: 30_000, intervalMs: 100 });
      stopTrim = trimmer(env.admin, stream);
      const tStart = Date.now();
      await env.db.query(
        `INSERT INTO ${env.schema}.t SELECT g, rpad(md5(g::text), 190, 'x') FROM generate_series(1, ${TX_ROWS}) g`,
      );
      const tCommitted = Date.now();
      await waitFor(async () => {
        if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
        return (await entriesAdded(env.admin, stream).catch(() => 0)) >= TX_ROWS;
      }, { what: `${TX_ROWS} entries in ${stream}`, timeoutMs: 180_000, intervalMs: 250 });
      const tDone = Date.now();
      current.kill("SIGTERM");
      const res = await current.done;
      run = null;
      sampler.stop();
      await stopTrim();
      assert.equal(res.code, 0, res.stderr);
      assert.equal(await entriesAdded(env.admin, stream), TX_ROWS, "entries written");
      console.log(
        `realtime transaction of ${TX_ROWS} rows: start ${tStart - t0} ms, insert+commit ` +
          `${tCommitted - tStart} ms, all in Redis after ${tDone - tStart} ms, ` +
          `max RSS ${(sampler.max / MiB).toFixed(1)} MiB over ${sampler.samples} samples`,
      );
      assert.ok(sampler.max < LIMIT, `max RSS ${(sampler.max / MiB).toFixed(1)} MiB ≥ 300 MiB`);
    } finally {
      rss?.stop();
      await stopTrim?.();
      if (run) {
        run.kill("SIGKILL");
        await run.done;
      }
      await dropSlot(env.db, slot).catch(() => {});
      await dropPublication(env.db, slot).catch(() => {});
    }
  });
});
