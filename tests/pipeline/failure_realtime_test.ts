/**
 * Realtime failure semantics with real faults on a private Redis: a connection cut
 * mid-batch by a proxy, an ACL user denied a stream (NOPERM) or XDEL, a key of the wrong
 * type (WRONGTYPE), maxmemory reached mid-batch (OOM). EVENTUAL undoes and retries or skips
 * the table; GLOBAL keeps one stream in commit order and records what it could not undo.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanupIndoubt } from "../../src/commands/cleanup_indoubt_command.ts";
import { ALL_TABLES, type PipelineLog } from "../../src/pipeline/realtime_pipeline.ts";
import { indoubtPath, readIndoubt } from "../../src/pipeline/indoubt_log.ts";
import { RedisStreamSink } from "../../src/sink/redis/redis_stream_sink.ts";
import { waitFor } from "../helpers/services.ts";
import { TcpProxy } from "../helpers/tcp_proxy.ts";
import {
  oomReplies,
  type PrivateRedis,
  privateRedis,
  tightenMemory,
  xaddMarker,
} from "./failure_fixture.ts";
import {
  assertStrictlyIncreasing,
  type Fixture,
  fixture,
  readCdc,
  startRealtime,
} from "./pg_realtime_fixture.ts";
import { RedisCheckpointStore } from "../../src/sink/redis/checkpoint_store.ts";
import { InDoubtError } from "../../src/core/errors.ts";

type Change = [table: string, op: string, id: number];

/**
 * Interleaves transactions over several tables (inserts, updates, deletes) and returns the
 * changes in commit order, as a GLOBAL stream must hold them.
 */
async function generate(fx: Fixture, tables: string[], n: number, pad = 40): Promise<Change[]> {
  for (const t of tables) {
    await fx.pg.query(`CREATE TABLE IF NOT EXISTS "${t}" (id int PRIMARY KEY, v text)`);
  }
  const out: Change[] = [];
  const [a, b, c] = tables;
  for (let i = 0; i < n; i++) {
    const sql: string[] = [];
    const add = (t: string, op: string, id: number, stmt: string) => {
      sql.push(stmt);
      out.push([t, op, id]);
    };
    const v = `'${String(i).padEnd(pad, "x")}'`;
    add(a, "c", i, `INSERT INTO "${a}" VALUES (${i}, ${v})`);
    add(b, "c", i, `INSERT INTO "${b}" VALUES (${i}, ${v})`);
    if (c && i % 2 === 0) add(c, "c", i, `INSERT INTO "${c}" VALUES (${i}, ${v})`);
    if (i > 0) add(a, "u", i - 1, `UPDATE "${a}" SET v = 'u${i}' WHERE id = ${i - 1}`);
    if (i % 4 === 1) add(b, "d", i - 1, `DELETE FROM "${b}" WHERE id = ${i - 1}`);
    await fx.pg.query(`BEGIN; ${sql.join("; ")}; COMMIT`);
  }
  return out;
}

/** Entries a list of changes makes in Redis (a delete is followed by its tombstone). */
function entryCount(changes: Change[]): number {
  return changes.reduce((n, [, op]) => n + (op === "d" ? 2 : 1), 0);
}

function changesOf(entries: Awaited<ReturnType<typeof readCdc>>): Change[] {
  return entries.filter((e) => !e.tombstone).map((e) => [
    e.source!.table as string,
    e.op!,
    ((e.key ?? e.before ?? e.after) as { id: number }).id,
  ]);
}

function memoryLog() {
  const lines: string[] = [];
  const log: PipelineLog = {
    info: (m) => lines.push(`INFO ${m}`),
    warn: (m) => lines.push(`WARN ${m}`),
    fail: (m) => lines.push(`ERROR ${m}`),
  };
  return { lines, log };
}

async function faultySink(port: number, user?: { name: string; password: string }) {
  return await RedisStreamSink.open({
    host: "127.0.0.1",
    port,
    username: user?.name,
    password: user?.password,
    poolSize: 2,
    origin: "faulty",
  }, { maxStreamLength: 0 });
}

async function withRedis(fn: (redis: PrivateRedis) => Promise<void>): Promise<void> {
  const redis = await privateRedis();
  try {
    await fn(redis);
  } finally {
    await redis.stop();
  }
}

Deno.test({
  name: "failure: GLOBAL keeps commit order; undo denied → in-doubt file, exit 4, cleanup, resume",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withRedis(async (redis) => {
      const fx = await fixture("fl_glob", { redisPort: redis.port });
      const home = mkdtempSync(join(tmpdir(), "replicant-indoubt-"));
      const proxy = await TcpProxy.start(redis.port);
      const admin = redis.admin();
      await admin.call("ACL", "SETUSER", "nodel", "on", ">pw", "~*", "&*", "+@all", "-xdel");
      const user = { name: "nodel", password: "pw" };
      let sink = await faultySink(proxy.port, user);
      try {
        const tables = ["a", "b", "c"].map((s) => `${fx.prefix}_${s}`);
        const expected = await generate(fx, tables, 40);
        const stream = fx.naming.globalCdcStream();
        const file = indoubtPath(home, fx.prefix);
        // The 30th XADD of the first batch (50 entries) never reaches Redis: 29 land.
        const cut = proxy.cutAt(xaddMarker(stream), 30);
        const { lines, log } = memoryLog();
        const first = startRealtime(fx, {
          sink,
          checkpoints: new RedisCheckpointStore(sink.client, fx.naming.checkpointKey()),
          replayConsistency: "GLOBAL",
          indoubtFile: file,
          batchRows: 50,
          retry: { maxRetries: 2, waitMs: 20 },
          log,
        });
        const err = await first.done.then(() => null, (e) => e);
        await cut;
        assert.ok(err instanceof InDoubtError, `expected InDoubtError, got ${err}`);
        assert.equal(err.exitCode, 4);
        assert.match(err.message, /cleanup-indoubt --id /);
        assert.ok(err.message.includes(file), err.message);
        // 29 entries landed: whole batches that were accepted, then the failed batch's
        // first entries, which could not be deleted; the file lists exactly those.
        const landed = (await admin.xrange(stream, "-", "+")).map(([id]) => id);
        assert.equal(landed.length, 29);
        const listed = readIndoubt(file);
        assert.ok(listed.length > 0 && listed.length === err.entries.length);
        const kept = landed.length - listed.length;
        assert.deepEqual(listed.map((e) => e.id), landed.slice(kept));
        assert.ok(listed.every((e) => e.stream === stream));
        assert.equal(
          readFileSync(file, "utf8"),
          landed.slice(kept).map((id) => `${stream} ${id}\n`).join(""),
        );
        assert.ok(lines.some((l) => l.startsWith("ERROR GLOBAL replication stopped")));

        // cleanup-indoubt as the admin user removes them and empties the file.
        const conn = redis.connFile(home, "admin.yaml");
        assert.equal(await cleanupIndoubt(conn, { home, id: fx.prefix }), 0);
        assert.deepEqual(readIndoubt(file), []);
        // What stays is the accepted batches: the first changes, in order.
        const accepted = await readCdc(admin, stream);
        assert.equal(accepted.length, kept);
        const acceptedChanges = changesOf(accepted);
        assert.deepEqual(acceptedChanges, expected.slice(0, acceptedChanges.length));
        // A second run finds nothing left to do.
        assert.equal(await cleanupIndoubt(conn, { home, id: fx.prefix }), 0);

        // --resume: every change exactly once, in commit order across the tables.
        await sink.close();
        sink = await faultySink(proxy.port, user);
        const second = startRealtime(fx, {
          sink,
          checkpoints: new RedisCheckpointStore(sink.client, fx.naming.checkpointKey()),
          replayConsistency: "GLOBAL",
          indoubtFile: file,
          batchRows: 50,
          resume: true,
        });
        const total = entryCount(expected);
        await waitFor(async () => (await admin.xlen(stream)) >= total, {
          what: `${total} entries in ${stream}`,
          timeoutMs: 20_000,
        });
        const outcome = await second.stop();
        const entries = await readCdc(admin, stream);
        assert.equal(entries.length, total);
        assert.deepEqual(changesOf(entries), expected);
        assertStrictlyIncreasing(entries);
        assert.deepEqual(outcome.tables.map((t) => [t.table, t.stream]), [[ALL_TABLES, stream]]);
        assert.equal(outcome.skippedTables.length, 0);
      } finally {
        await sink.close().catch(() => {});
        admin.disconnect();
        await proxy.close();
        await fx.cleanup();
        rmSync(home, { recursive: true, force: true });
      }
    }),
});

Deno.test({
  name: "failure: EVENTUAL undoes a cut batch and retries it; NOPERM and WRONGTYPE tables skipped",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withRedis(async (redis) => {
      const fx = await fixture("fl_evt", { redisPort: redis.port });
      const proxy = await TcpProxy.start(redis.port);
      const admin = redis.admin();
      const [a, b, c, d] = ["a", "b", "c", "d"].map((s) => `${fx.prefix}_${s}`);
      // Reads everywhere, writes only to a's and b's streams and the checkpoint.
      await admin.call(
        "ACL",
        "SETUSER",
        "limited",
        "on",
        ">pw",
        "resetkeys",
        "%R~*",
        `~${fx.stream(a)}`,
        `~${fx.stream(b)}`,
        "~replicate_io_*",
        "&*",
        "+@all",
      );
      await admin.set(fx.stream(d), "not a stream");
      const sink = await faultySink(proxy.port, { name: "limited", password: "pw" });
      try {
        const expected = await generate(fx, [a, b, c], 30);
        await fx.pg.query(`CREATE TABLE "${d}" (id int PRIMARY KEY)`);
        await fx.pg.query(`INSERT INTO "${d}" SELECT generate_series(1, 5)`);
        // Batches of a end at an odd count (1 entry, then 2 per transaction): cutting before
        // the 21st XADD leaves at least one entry of the cut batch landed.
        const cut = proxy.cutAt(xaddMarker(fx.stream(a)), 21);
        const { lines, log } = memoryLog();
        const run = startRealtime(fx, {
          sink,
          checkpoints: new RedisCheckpointStore(sink.client, fx.naming.checkpointKey()),
          batchRows: 50,
          retry: { maxRetries: 3, waitMs: 20 },
          log,
        });
        const want = (t: string) => expected.filter(([x]) => x === t);
        await cut;
        for (const t of [a, b]) {
          await waitFor(async () => (await admin.xlen(fx.stream(t))) >= entryCount(want(t)), {
            what: `all entries of ${t}`,
            timeoutMs: 20_000,
          });
        }
        const outcome = await run.stop();
        for (const t of [a, b]) {
          const entries = await readCdc(admin, fx.stream(t));
          assert.equal(entries.length, entryCount(want(t)), `entries of ${t}`);
          assert.deepEqual(changesOf(entries), want(t));
          assertStrictlyIncreasing(entries);
        }
        // The cut batch: its first entries (20 XADDs were forwarded, minus earlier
        // accepted batches) landed, were deleted, then the whole batch went again.
        const undo = lines.map((l) =>
          / undo: deleted (\d+) entries of a failed batch from (\S+)$/.exec(l)
        ).find((m) => m && m[2] === fx.stream(a));
        assert.ok(undo && Number(undo[1]) > 0 && Number(undo[1]) <= 20, lines.join("\n"));
        assert.deepEqual(
          outcome.skippedTables.sort(),
          [c, d].map((t) => `${fx.endpoint.database}.public.${t}`).sort(),
        );
        const byName = new Map(outcome.tables.map((t) => [t.table, t]));
        assert.match(byName.get(`${fx.endpoint.database}.public.${c}`)!.error!, /NOPERM/);
        assert.match(byName.get(`${fx.endpoint.database}.public.${c}`)!.error!, /at position \d/);
        assert.match(byName.get(`${fx.endpoint.database}.public.${d}`)!.error!, /WRONGTYPE/);
        assert.equal(await admin.exists(fx.stream(c)), 0);
        assert.ok(lines.some((l) =>
          l.startsWith("ERROR") && l.includes(`${fx.endpoint.database}.public.${c}`)
        ));
        assert.ok(
          outcome.checkpoint,
          "the checkpoint moves past the skipped tables\n" + lines.join("\n"),
        );
      } finally {
        await sink.close().catch(() => {});
        admin.disconnect();
        await proxy.close();
        await fx.cleanup();
      }
    }),
});

Deno.test({
  name: "failure: EVENTUAL waits out OOM mid-batch, undoes, and lands every change once",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withRedis(async (redis) => {
      const fx = await fixture("fl_oom", { redisPort: redis.port });
      const admin = redis.admin();
      try {
        const [a, b] = ["a", "b"].map((s) => `${fx.prefix}_${s}`);
        const expected = await generate(fx, [a, b], 60, 2000);
        await tightenMemory(admin, 150_000);
        const { lines, log } = memoryLog();
        const run = startRealtime(fx, {
          batchRows: 50,
          retry: { maxRetries: 10, waitMs: 100 },
          log,
        });
        await waitFor(async () => (await oomReplies(admin)) > 0, { what: "an OOM reply" });
        await admin.config("SET", "maxmemory", "0");
        const want = (t: string) => expected.filter(([x]) => x === t);
        for (const t of [a, b]) {
          await waitFor(async () => (await admin.xlen(fx.stream(t))) >= entryCount(want(t)), {
            what: `all entries of ${t}`,
            timeoutMs: 20_000,
          });
        }
        const outcome = await run.stop();
        for (const t of [a, b]) {
          const entries = await readCdc(admin, fx.stream(t));
          assert.equal(entries.length, entryCount(want(t)));
          assert.deepEqual(changesOf(entries), want(t));
          assertStrictlyIncreasing(entries);
        }
        assert.ok(lines.some((l) => l.includes("OOM")), lines.join("\n"));
        assert.equal(outcome.skippedTables.length, 0);
      } finally {
        await admin.config("SET", "maxmemory", "0").catch(() => {});
        admin.disconnect();
        await fx.cleanup();
      }
    }),
});

Deno.test({
  name: "failure: GLOBAL undoes and retries a cut batch, and rides out Redis killed mid-stream",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withRedis(async (redis) => {
      const fx = await fixture("fl_gkill", { redisPort: redis.port });
      const proxy = await TcpProxy.start(redis.port);
      const admin = redis.admin();
      const sink = await faultySink(proxy.port);
      try {
        const tables = ["a", "b", "c"].map((s) => `${fx.prefix}_${s}`);
        for (const t of tables) {
          await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY, v text)`);
        }
        const stream = fx.naming.globalCdcStream();
        const { lines, log } = memoryLog();
        const cut = proxy.cutAt(xaddMarker(stream), 30);
        const run = startRealtime(fx, {
          sink,
          checkpoints: new RedisCheckpointStore(sink.client, fx.naming.checkpointKey()),
          replayConsistency: "GLOBAL",
          batchRows: 50,
          retry: { maxRetries: 30, waitMs: 100 },
          log,
        });
        // Changes keep coming while the connection is cut and while Redis is down.
        const generating = generate(fx, tables, 150);
        await cut;
        await waitFor(async () => (await admin.xlen(stream)) >= 120, { what: "120 entries" });
        await redis.kill();
        await new Promise((r) => setTimeout(r, 300));
        await redis.start();
        const expected = await generating;
        const total = entryCount(expected);
        await waitFor(async () => (await admin.xlen(stream)) >= total, {
          what: `${total} entries`,
          timeoutMs: 30_000,
        });
        const outcome = await run.stop();
        const entries = await readCdc(admin, stream);
        assert.equal(entries.length, total);
        assert.deepEqual(changesOf(entries), expected);
        assertStrictlyIncreasing(entries);
        assert.equal(outcome.skippedTables.length, 0);
        assert.ok(lines.some((l) => l.includes("undo: deleted")), lines.join("\n"));
      } finally {
        await sink.close().catch(() => {});
        admin.disconnect();
        await proxy.close();
        await fx.cleanup();
      }
    }),
});
