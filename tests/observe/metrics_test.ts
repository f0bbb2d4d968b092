/**
 * Pure: the metrics registry renders the Prometheus text format 0.0.4 (checked by
 * the strict parser of tests/helpers/prom_parse.ts), histograms bucket correctly, label
 * values are escaped; the replicant metrics count per table and op; health transitions;
 * the statistics summary and JSON log lines.
 */
import assert from "node:assert/strict";
import { HealthState } from "../../src/observe/health.ts";
import { exponentialBuckets, MetricsRegistry } from "../../src/observe/metrics.ts";
import { ReplicantMetrics } from "../../src/observe/replicant_metrics.ts";
import { formatLogLine } from "../../src/observe/replication_log.ts";
import { formatStats } from "../../src/observe/stats_summary.ts";
import { logFormatOfArgv, observeSettingsOf, stderrLine } from "../../src/observe/run_observer.ts";
import type { TableSchema } from "../../src/core/table_schema.ts";
import { parsePrometheusText, sampleValue } from "../helpers/prom_parse.ts";

Deno.test("render: HELP and TYPE lines, counters and gauges with labels", () => {
  const r = new MetricsRegistry();
  const c = r.counter("x_total", "Things done.\nTwo lines \\ slash.", ["table", "op"]);
  c.labels("public.a", "insert").inc(3);
  c.labels("public.a", "insert").inc();
  c.labels("public.b", "delete").inc(2);
  const g = r.gauge("y_bytes", "A gauge.");
  g.labels().set(-1.5);
  const text = r.render();
  assert.match(
    text,
    /^# HELP x_total Things done\.\\nTwo lines \\\\ slash\.\n# TYPE x_total counter\n/,
  );
  assert.ok(text.includes('x_total{table="public.a",op="insert"} 4\n'));
  assert.ok(text.includes("# TYPE y_bytes gauge\ny_bytes -1.5\n"));
  const fam = parsePrometheusText(text);
  assert.equal(fam.get("x_total")!.type, "counter");
  assert.equal(fam.get("x_total")!.help, "Things done.\nTwo lines \\ slash.");
  assert.equal(sampleValue(fam, "x_total", { table: "public.b", op: "delete" }), 2);
  assert.equal(sampleValue(fam, "y_bytes"), -1.5);
});

Deno.test("label values: backslash, quote and newline escaped and parsed back", () => {
  const r = new MetricsRegistry();
  const nasty = 'we\\ird "name"\nline2 {x="y"}, é';
  r.counter("n_total", "n", ["table"]).labels(nasty).inc();
  const text = r.render();
  assert.ok(text.includes('n_total{table="we\\\\ird \\"name\\"\\nline2 {x=\\"y\\"}, é"} 1\n'));
  assert.equal(sampleValue(parsePrometheusText(text), "n_total", { table: nasty }), 1);
});

Deno.test("histogram: fixed buckets, cumulative, +Inf, sum and count", () => {
  const r = new MetricsRegistry();
  const h = r.histogram("lat_seconds", "Latency.", ["phase"], [0.01, 0.1, 1]);
  const c = h.labels("realtime");
  for (const v of [0.005, 0.01, 0.05, 0.5, 0.7, 3]) c.observe(v);
  const text = r.render();
  const fam = parsePrometheusText(text);
  const b = (le: string) => sampleValue(fam, "lat_seconds_bucket", { phase: "realtime", le });
  assert.equal(b("0.01"), 2); // le is inclusive
  assert.equal(b("0.1"), 3);
  assert.equal(b("1"), 5);
  assert.equal(b("+Inf"), 6);
  assert.equal(sampleValue(fam, "lat_seconds_count", { phase: "realtime" }), 6);
  assert.ok(Math.abs(sampleValue(fam, "lat_seconds_sum", { phase: "realtime" })! - 4.265) < 1e-9);
  assert.equal(fam.get("lat_seconds")!.type, "histogram");
  assert.deepEqual(exponentialBuckets(0.001, 2, 4), [0.001, 0.002, 0.004, 0.008]);
  assert.throws(() => r.histogram("bad", "b", [], [1, 1]), /increase/);
});

Deno.test("registry rejects bad names, reserved labels, duplicates and negative counters", () => {
  const r = new MetricsRegistry();
  assert.throws(() => r.counter("1bad", "x"), /invalid metric name/);
  assert.throws(() => r.counter("ok_total", "x", ["le"]), /invalid label/);
  assert.throws(() => r.counter("ok2_total", "x", ["__x"]), /invalid label/);
  r.counter("dup_total", "x");
  assert.throws(() => r.gauge("dup_total", "x"), /twice/);
  const c = r.counter("c_total", "x", ["a"]);
  assert.throws(() => c.labels(), /takes 1/);
  assert.throws(() => c.labels("v").inc(-1), /only goes up/);
});

Deno.test("the strict parser rejects malformed exposition text", () => {
  const bad = [
    "x_total 1", // no final newline
    "x total 1\n",
    'x_total{a="1} 1\n',
    'x_total{a="\\q"} 1\n',
    'x_total{1a="v"} 1\n',
    "x_total one\n",
    "x_total 1 2 3\n",
    "# TYPE x_total countr\n",
    "# TYPE x_total counter\n# TYPE x_total counter\n",
    "x_total 1\n# TYPE x_total counter\n",
    "# TYPE x_total counter\nx_total -1\n",
    "x 1\nx 2\n",
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
  ];
  for (const text of bad) {
    assert.throws(() => parsePrometheusText(text), Error, JSON.stringify(text));
  }
  assert.equal(parsePrometheusText("# a comment\n\nx 1 1700000000000\n").get("x")!.type, "untyped");
});

function schema(name: string): TableSchema {
  return { id: { catalog: "db", schema: "public", table: name } } as unknown as TableSchema;
}

Deno.test("replicant metrics: per table and op per batch, entries, latency, skipped, undo", () => {
  const m = new ReplicantMetrics();
  const a = schema("a");
  const b = schema("b");
  const e = (n: number) => Array.from({ length: n }, () => ["k", "v"]);
  const now = 1_000_000;
  m.realtimeBatch([
    { entries: e(1), op: "c", table: a, tsMs: now - 250 },
    { entries: e(1), op: "u", table: a, tsMs: now - 200 },
    { entries: e(2), op: "d", table: a, tsMs: now - 100 }, // delete + tombstone
  ], now);
  m.realtimeBatch([{ entries: e(1), op: "c", table: b, tsMs: now }], now);
  m.realtimeBatch([], now); // nothing, not a batch
  m.snapshotBatch("db.public.a", 10, 2);
  m.retry("realtime");
  m.undone(3);
  m.skippedTable("snapshot");
  m.inDoubt(2);
  m.realtimeRoundTrip(1.5);
  const fam = parsePrometheusText(m.render());
  const v = (name: string, labels: Record<string, string> = {}) => sampleValue(fam, name, labels);
  const ta = "db.public.a";
  assert.equal(v("replicant_realtime_changes_total", { table: ta, op: "insert" }), 1);
  assert.equal(v("replicant_realtime_changes_total", { table: ta, op: "update" }), 1);
  assert.equal(v("replicant_realtime_changes_total", { table: ta, op: "delete" }), 1);
  assert.equal(v("replicant_realtime_changes_total", { table: "db.public.b", op: "insert" }), 1);
  assert.equal(v("replicant_stream_entries_total", { phase: "realtime" }), 5);
  assert.equal(v("replicant_stream_entries_total", { phase: "snapshot" }), 10);
  assert.equal(v("replicant_snapshot_rows_total", { table: ta }), 10);
  assert.equal(v("replicant_batches_total", { phase: "realtime" }), 2);
  assert.equal(v("replicant_batch_retries_total", { phase: "realtime" }), 1);
  assert.equal(v("replicant_undone_entries_total"), 3);
  assert.equal(v("replicant_skipped_tables_total", { phase: "snapshot" }), 1);
  assert.equal(v("replicant_indoubt_entries"), 2);
  assert.equal(v("replicant_commit_to_xadd_seconds_count"), 2);
  assert.ok(Math.abs(v("replicant_commit_to_xadd_seconds_sum")! - 0.25) < 1e-9);
  assert.equal(v("replicant_commit_to_xadd_seconds_bucket", { le: "0.256" }), 2);
  assert.equal(v("replicant_commit_to_xadd_seconds_bucket", { le: "0.128" }), 1);
  assert.equal(v("replicant_redis_roundtrip_seconds_count", { phase: "realtime" }), 1);
  assert.ok(v("process_resident_memory_bytes")! > 0);
  assert.equal(v("replicant_health_status", { status: "ready" }), 1);
  assert.equal(v("replicant_source_lag_seconds"), 0);
  const stats = m.tableStats();
  assert.deepEqual(stats.map((t) => [t.table, t.snapshotRows, t.changes, t.ops]), [
    [ta, 10, 3, { insert: 1, update: 1, delete: 1 }],
    ["db.public.b", 0, 1, { insert: 1 }],
  ]);
});

Deno.test("source lag: oldest pending change, 0 when caught up; lagging over the threshold", () => {
  const m = new ReplicantMetrics(30);
  let oldest: number | null = null;
  m.oldestPendingMs = () => oldest;
  assert.equal(m.lagSeconds(), 0);
  assert.equal(m.health.report().status, "ready");
  oldest = Date.now() - 45_000;
  assert.ok(m.lagSeconds() >= 45);
  assert.equal(m.health.report().status, "lagging");
  m.redisFailed(new Error("connection refused"));
  assert.equal(m.health.report().status, "failed"); // failed wins over lagging
  oldest = null;
  m.health.redisOk();
  assert.equal(m.health.report().status, "ready");
});

Deno.test("health: failed while Redis fails, ready after a success, failed for good on fatal", () => {
  const h = new HealthState(10);
  assert.deepEqual(h.report(), { status: "ready", lagSeconds: 0, lagThresholdSeconds: 10 });
  h.redisFailed(1000, "ECONNREFUSED");
  h.redisFailed(2000, "ECONNREFUSED again");
  const r = h.report();
  assert.equal(r.status, "failed");
  assert.equal(r.redisFailingSinceMs, 1000);
  assert.match(r.reason!, /again/);
  h.redisOk();
  assert.equal(h.report().status, "ready");
  h.fatal("boom");
  h.redisOk();
  assert.equal(h.report().status, "failed");
  assert.match(h.report().reason!, /boom/);
});

Deno.test("statistics summary: per table rows, ops and rate", () => {
  const lines = formatStats(
    [{ table: "public.a", snapshotRows: 5, changes: 20, ops: { insert: 15, delete: 5 } }],
    new Map([["public.a", 5]]),
    10,
    true,
  );
  assert.deepEqual(lines, [
    "statistics (final): 1 table(s), 25 rows/changes",
    "statistics: table public.a: snapshot rows 5, changes 20 (insert=15 delete=5), 2.0/s",
  ]);
});

Deno.test("log format: JSON lines {ts, level, event, id, msg}; options validated", () => {
  const ts = new Date("2026-01-02T03:04:05.000Z");
  assert.equal(formatLogLine("text", "WARN", "x", "id1", ts), "2026-01-02T03:04:05.000Z WARN x\n");
  const line = formatLogLine("json", "ERROR", 'bad "thing"\nnext', "id1", ts);
  assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
  assert.deepEqual(JSON.parse(line), {
    ts: "2026-01-02T03:04:05.000Z",
    level: "error",
    event: "log",
    id: "id1",
    msg: 'bad "thing"\nnext',
  });
  assert.equal(JSON.parse(stderrLine("json", "info", "\nhello\n", "x")).msg, "hello");
  assert.equal(stderrLine("text", "info", "hello"), "hello\n");
  assert.equal(logFormatOfArgv(["realtime", "--log-format", "json"]), "json");
  assert.equal(logFormatOfArgv(["--log-format=json"]), "json");
  assert.equal(logFormatOfArgv(["realtime"]), "text");
  assert.deepEqual(observeSettingsOf({}), {
    metricsPort: 0,
    metricsHost: "127.0.0.1",
    logFormat: "text",
    statsIntervalSeconds: 60,
  });
  assert.throws(() => observeSettingsOf({ metricsPort: "70000" }), /--metrics-port/);
  assert.throws(() => observeSettingsOf({ logFormat: "xml" }), /--log-format/);
  assert.throws(() => observeSettingsOf({ statsInterval: "-1" }), /--stats-interval/);
});
