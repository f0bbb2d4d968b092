/**
 * Metrics end to end with the compiled binary: `realtime --metrics-port` against a private
 * Redis. /metrics parses with the strict Prometheus text parser and its per-table counters
 * equal the changes made and the entries in Redis; /health is ready, turns failed while
 * Redis is down and ready again after; SIGTERM exits 0; `--log-format json` writes one JSON
 * object a line to trace.log, with the per-table statistics as `stats` events.
 */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  defaultSlotName,
  dropPublication,
  dropSlot,
} from "../../src/source/postgres/pg_replication_slot.ts";
import { createOwnedSlot } from "../helpers/owned_slot.ts";
import { pgClient, readStream } from "../helpers/clients.ts";
import { parsePrometheusText, sampleValue } from "../helpers/prom_parse.ts";
import { scratchHome, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { privateRedis } from "../pipeline/failure_fixture.ts";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function get(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  return { status: res.status, text: await res.text() };
}

function isTombstone(f: string[]): boolean {
  return (f.length === 2 && f[1] === "default") ||
    (f[2] === "value" && f[3] === "default") ||
    (f[0] === "op" && f[1] === "tombstone");
}

Deno.test("metrics e2e: /metrics counts match Redis, /health follows Redis, JSON logs", async () => {
  const schema = `mt_${Date.now().toString(36)}`;
  const id = schema;
  const db = await pgClient();
  const redis = await privateRedis();
  const admin = redis.admin();
  const home = scratchHome();
  const slot = defaultSlotName("default", id);
  let run: ReturnType<typeof startReplicant> | null = null;
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(`CREATE TABLE ${schema}.t (id int PRIMARY KEY, v text)`);
    await createOwnedSlot(db, id, schema);
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
    );
    const conn = redis.connFile(home.dir, "redis.yaml");
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    run = startReplicant([
      "realtime",
      home.pgConn,
      conn,
      "--id",
      id,
      "--home",
      home.dir,
      "--filter",
      filter,
      "--metrics-port",
      String(port),
      "--log-format",
      "json",
      "--stats-interval",
      "1",
    ]);
    await waitFor(async () => (await get(`${base}/health`)).status === 200, {
      what: "/health to answer",
      timeoutMs: 20_000,
      intervalMs: 100,
    });

    // 30 inserts, 10 updates, 5 deletes: 45 changes (+5 tombstones in the stream).
    await db.query(
      `INSERT INTO ${schema}.t SELECT i, 'v' || i FROM generate_series(1, 30) i`,
    );
    for (let i = 1; i <= 10; i++) {
      await db.query(`UPDATE ${schema}.t SET v = 'u${i}' WHERE id = ${i}`);
    }
    await db.query(`DELETE FROM ${schema}.t WHERE id > 25`);
    const N = 45;
    const table = `replicant.${schema}.t`;
    const stream = `replicant_${schema}_t_cdc_logs`;
    const changes = (text: string) => {
      const fam = parsePrometheusText(text);
      const op = (o: string) =>
        sampleValue(fam, "replicant_realtime_changes_total", { table, op: o }) ?? 0;
      return { fam, insert: op("insert"), update: op("update"), delete: op("delete") };
    };
    let last = "";
    await waitFor(async () => {
      last = (await get(`${base}/metrics`)).text;
      const c = changes(last);
      return c.insert + c.update + c.delete === N;
    }, { what: `${N} changes in /metrics`, timeoutMs: 30_000, intervalMs: 100 });
    const c = changes(last);
    assert.deepEqual([c.insert, c.update, c.delete], [30, 10, 5]);
    const entries = await readStream(admin, stream);
    const tombstones = entries.filter(([, f]) => isTombstone(f)).length;
    assert.equal(tombstones, 5);
    assert.equal(entries.length - tombstones, N, "XLEN minus tombstones equals the counter");
    assert.equal(
      sampleValue(c.fam, "replicant_stream_entries_total", { phase: "realtime" }),
      entries.length,
    );
    assert.ok(sampleValue(c.fam, "replicant_batches_total", { phase: "realtime" })! >= 1);
    assert.ok(sampleValue(c.fam, "replicant_commit_to_xadd_seconds_count")! >= 1);
    assert.ok(
      sampleValue(c.fam, "replicant_redis_roundtrip_seconds_count", { phase: "realtime" })! >= 1,
    );
    assert.ok(sampleValue(c.fam, "process_resident_memory_bytes")! > 1e6);
    assert.ok(c.fam.has("replicant_source_lag_seconds"));
    await waitFor(async () => {
      const fam = parsePrometheusText((await get(`${base}/metrics`)).text);
      const bytes = sampleValue(fam, "replicant_source_lag_bytes");
      return bytes !== undefined && bytes >= 0;
    }, { what: "lag bytes sampled" });
    const health = await get(`${base}/health`);
    assert.equal(health.status, 200);
    assert.equal(JSON.parse(health.text).status, "ready");
    assert.equal((await get(`${base}/nothing`)).status, 404);

    // Redis down: failed (503); back up: ready.
    await redis.kill();
    await waitFor(async () => {
      const h = await get(`${base}/health`);
      return h.status === 503 && JSON.parse(h.text).status === "failed";
    }, { what: "/health failed while Redis is down", timeoutMs: 15_000, intervalMs: 200 });
    await redis.start();
    await waitFor(async () => {
      const h = await get(`${base}/health`);
      return h.status === 200 && JSON.parse(h.text).status === "ready";
    }, { what: "/health ready after Redis is back", timeoutMs: 20_000, intervalMs: 200 });

    Deno.kill(run.pid, "SIGTERM");
    const r = await run.done;
    run = null;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // stderr messages of the run are JSON lines too.
    const errLines = r.stderr.split("\n").filter((l) => l.trim() !== "");
    assert.ok(errLines.length > 0);
    for (const l of errLines) assert.equal(typeof JSON.parse(l).event, "string", l);

    const trace = readFileSync(join(home.dir, "data", id, "trace.log"), "utf8");
    const lines = trace.split("\n").filter((l) => l !== "");
    assert.ok(lines.length > 3);
    const objs = lines.map((l) => JSON.parse(l));
    for (const o of objs) {
      assert.deepEqual(Object.keys(o).slice(0, 4), ["ts", "level", "event", "id"]);
      assert.equal(o.id, id);
      assert.ok(!Number.isNaN(Date.parse(o.ts)));
      if (o.event === "log") assert.equal(typeof o.msg, "string");
    }
    const final = objs.filter((o) => o.event === "stats" && o.table === table).pop();
    assert.ok(final, "per-table statistics in trace.log");
    assert.equal(final.final, true);
    assert.equal(final.changes, 45);
    assert.deepEqual(final.ops, { insert: 30, update: 10, delete: 5 });
    assert.ok(objs.some((o) => o.event === "stats_total" && o.final));
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done.catch(() => {});
    }
    await dropSlot(db, slot).catch(() => {});
    await dropPublication(db, slot).catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await db.end();
    admin.disconnect();
    await redis.stop();
    rmSync(home.dir, { recursive: true, force: true });
  }
});
