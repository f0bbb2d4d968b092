import assert from "node:assert/strict";
import { jsonLine, messageEvent, plainMessage, rounded } from "../../src/observe/log_event.ts";
import {
  progressEvent,
  progressTotalEvent,
  SnapshotProgress,
  snapshotSummaryEvents,
  tableDoneEvent,
  type TableProgress,
} from "../../src/observe/snapshot_progress.ts";
import { statsEvents } from "../../src/observe/stats_summary.ts";
import { RunConsole } from "../../src/observe/run_console.ts";
import { realtimeSummary, realtimeSummaryEvents } from "../../src/commands/realtime_modes.ts";
import { errorOutput, fatalEvent, usageOutput } from "../../src/commands/describe_error.ts";
import { configWarningEvent } from "../../src/commands/replication_setup.ts";
import { ConfigError } from "../../src/config/mod.ts";
import { ExistingStreamsError, SinkError, SourceError, UsageError } from "../../src/core/errors.ts";
import { idOfArgv, logFormatOf } from "../../src/observe/run_observer.ts";
import { failed, foundOf, passed, warning } from "../../src/core/prerequisite_check.ts";
import { checkEvent, connectHintOf, verdict } from "../../src/commands/test_connection_command.ts";

const TS = new Date("2026-01-02T03:04:05.000Z");

function table(over: Partial<TableProgress>): TableProgress {
  return {
    name: "public.t",
    estimated: 1000,
    rows: 0,
    startedAt: 0,
    finishedAt: null,
    status: "running",
    ...over,
  };
}

function collector() {
  const lines: string[] = [];
  return { lines, write: (text: string) => lines.push(...text.split("\n").filter((l) => l)) };
}

Deno.test("jsonLine: ts, level, event, id first, one line, undefined fields left out", () => {
  const line = jsonLine(
    { level: "warn", event: "x", fields: { msg: 'a "b"\nc', n: 1, gone: undefined } },
    "id1",
    TS,
  );
  assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
  assert.equal(
    line,
    '{"ts":"2026-01-02T03:04:05.000Z","level":"warn","event":"x","id":"id1","msg":"a \\"b\\"\\nc","n":1}\n',
  );
  assert.deepEqual(Object.keys(JSON.parse(jsonLine(messageEvent("info", "m"), undefined, TS))), [
    "ts",
    "level",
    "event",
    "msg",
  ]);
  assert.equal(plainMessage("\nreplicant: SIGTERM: stopping\n"), "SIGTERM: stopping");
  assert.equal(plainMessage("not replicant: x"), "not replicant: x");
  assert.equal(rounded(1.26), 1.3);
  assert.equal(rounded(2 / 3, 3), 0.667);
  assert.equal(rounded(NaN), null);
  assert.equal(rounded(Infinity), null);
  assert.equal(idOfArgv(["snapshot", "--id", "a"]), "a");
  assert.equal(idOfArgv(["--id=b"]), "b");
  assert.equal(idOfArgv(["snapshot"]), undefined);
});

Deno.test("progress events: rate, percent (at most 99 while running), ETA, null unknowns", () => {
  const now = 10_000;
  const e = progressEvent(table({ rows: 250, startedAt: 5_000 }), now);
  assert.equal(e.event, "progress");
  assert.deepEqual(e.fields, {
    table: "public.t",
    status: "running",
    rows: 250,
    estimated_rows: 1000,
    percent: 25,
    rows_per_s: 50,
    eta_s: 15,
    elapsed_s: 5,
  });
  const over = progressEvent(table({ rows: 1500, startedAt: 5_000 }), now).fields;
  assert.equal(over.percent, 99, "an estimate below the rows is no 150 %");
  assert.equal(over.eta_s, null);
  const unknown = progressEvent(table({ estimated: 0, rows: 0, startedAt: now }), now).fields;
  assert.deepEqual([unknown.percent, unknown.eta_s, unknown.rows_per_s], [null, null, 0]);

  const total = progressTotalEvent(
    [
      table({ rows: 100, startedAt: 0 }),
      table({ name: "public.u", rows: 20, status: "done", finishedAt: 1_000 }),
      table({ name: "public.w", status: "waiting", startedAt: null }),
    ],
    0,
    4_000,
  );
  assert.deepEqual(total, {
    level: "info",
    event: "progress_total",
    fields: {
      tables: 3,
      tables_done: 1,
      tables_running: 1,
      rows: 120,
      rows_per_s: 30,
      elapsed_s: 4,
    },
  });
});

Deno.test("table_done and summary events: one object per table, then a total", () => {
  const tables = [
    table({ rows: 1000, startedAt: 0, finishedAt: 2_000, status: "done" }),
    table({
      name: "public.bad",
      rows: 3,
      startedAt: 1_000,
      finishedAt: 2_000,
      status: "skipped",
      error: "WRONGTYPE",
    }),
  ];
  assert.deepEqual(tableDoneEvent(tables[0], 9_999), {
    level: "info",
    event: "table_done",
    fields: {
      table: "public.t",
      status: "done",
      rows: 1000,
      elapsed_s: 2,
      rows_per_s: 500,
      error: undefined,
    },
  });
  // The total covers the snapshot itself (first start to last end), not the run's age (4 s).
  const events = snapshotSummaryEvents(tables, 4_000);
  assert.deepEqual(events.map((e) => [e.level, e.event, e.fields.table]), [
    ["info", "summary", "public.t"],
    ["warn", "summary", "public.bad"],
    ["info", "summary_total", undefined],
  ]);
  assert.deepEqual(events[1].fields, {
    phase: "snapshot",
    table: "public.bad",
    status: "skipped",
    rows: 3,
    elapsed_s: 1,
    rows_per_s: 3,
    error: "WRONGTYPE",
  });
  assert.deepEqual(events[2].fields, {
    phase: "snapshot",
    tables: 2,
    done: 1,
    skipped: 1,
    failed: 0,
    rows: 1003,
    elapsed_s: 2,
    rows_per_s: 501.5,
  });
});

Deno.test("SnapshotProgress json: table_done when a table ends, summary as JSON lines", () => {
  const out = collector();
  const p = new SnapshotProgress({ isTTY: true, write: out.write }, undefined, {
    format: "json",
    id: "r1",
  });
  assert.equal(p.intervalMs, 5000, "no 500 ms redraw in json, even on a terminal");
  p.add("public.t", 10);
  p.add("public.u", 0);
  p.tableStarted("public.t");
  p.rowsWritten("public.t", 4);
  p.rowsWritten("public.t", 6);
  p.tableFinished("public.t", "done");
  p.stop();
  assert.equal(out.lines.length, 1);
  const done = JSON.parse(out.lines[0]);
  assert.deepEqual([done.event, done.id, done.table, done.rows], [
    "table_done",
    "r1",
    "public.t",
    10,
  ]);
  const summary = p.summary().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(summary.map((e) => [e.event, e.table, e.rows]), [
    ["summary", "public.t", 10],
    ["summary", "public.u", 0],
    ["summary_total", undefined, 10],
  ]);
  assert.ok(summary.every((e) => e.id === "r1"));

  const text = new SnapshotProgress({ isTTY: true, write: () => {} });
  assert.equal(text.intervalMs, 500);
  text.add("public.t", 10);
  assert.match(text.summary(), /^table\s+status\s+rows/);
});

Deno.test("stats events: per table counts and ops, rate since the previous, then a total", () => {
  const events = statsEvents(
    [
      { table: "public.a", snapshotRows: 5, changes: 20, ops: { insert: 15, delete: 5 } },
      { table: "public.b", snapshotRows: 7, changes: 0, ops: {} },
    ],
    new Map([["public.a", 5]]),
    10,
    true,
  );
  assert.deepEqual(events, [
    {
      level: "info",
      event: "stats",
      fields: {
        table: "public.a",
        final: true,
        snapshot_rows: 5,
        changes: 20,
        ops: { insert: 15, delete: 5 },
        rows_per_s: 2,
      },
    },
    {
      level: "info",
      event: "stats",
      fields: {
        table: "public.b",
        final: true,
        snapshot_rows: 7,
        changes: 0,
        ops: {},
        rows_per_s: 0.7,
      },
    },
    {
      level: "info",
      event: "stats_total",
      fields: {
        final: true,
        tables: 2,
        snapshot_rows: 12,
        changes: 20,
        rows_per_s: 2.7,
        interval_s: 10,
      },
    },
  ]);
  assert.equal(statsEvents([], new Map(), 0, false)[0].fields.rows_per_s, 0);
});

Deno.test("realtime summary json: a summary per stream writer and a total", () => {
  const outcome = {
    tables: [
      { table: "public.a", stream: "a_cdc_logs", changes: 7, duplicates: 2, status: "ok" as const },
      {
        table: "public.b",
        stream: "b_cdc_logs",
        changes: 1,
        duplicates: 0,
        status: "skipped" as const,
        error: "NOPERM",
      },
    ],
    skippedTables: ["public.b"],
    transactions: 5,
    checkpoint: "0/16B3748",
    interrupted: true,
  };
  const events = realtimeSummaryEvents(outcome);
  assert.deepEqual(events.map((e) => [e.level, e.event]), [
    ["info", "summary"],
    ["warn", "summary"],
    ["info", "summary_total"],
  ]);
  assert.deepEqual(events[1].fields, {
    phase: "realtime",
    table: "public.b",
    stream: "b_cdc_logs",
    status: "skipped",
    changes: 1,
    duplicates: 0,
    error: "NOPERM",
  });
  assert.deepEqual(events[2].fields, {
    phase: "realtime",
    tables: 2,
    skipped: 1,
    changes: 8,
    duplicates: 2,
    transactions: 5,
    checkpoint: "0/16B3748",
    interrupted: true,
  });
  const lines = realtimeSummary(outcome, "json", "r1").split("\n");
  assert.equal(lines.length, 3);
  assert.deepEqual(lines.map((l) => JSON.parse(l).id), ["r1", "r1", "r1"]);
  assert.match(realtimeSummary(outcome), /^table\s+stream\s+status\s+changes/);
  assert.match(realtimeSummary(outcome), /5 transaction\(s\); checkpoint 0\/16B3748$/);
});

Deno.test("fatal events carry message, class, exit code and the file/key/table/stream", () => {
  const config = new ConfigError([
    { file: "dst.yaml", key: "port", message: "must be an integer" },
    { file: "src.yaml", key: "snapshot.threads", message: "must be at least 1" },
  ]);
  const { event, code } = fatalEvent(config, false);
  assert.equal(code, 2);
  assert.deepEqual(event, {
    level: "error",
    event: "fatal",
    fields: {
      msg: "dst.yaml: port: must be an integer\nsrc.yaml: snapshot.threads: must be at least 1",
      error: "ConfigError",
      exit_code: 2,
      file: "dst.yaml",
      key: "port",
      problems: [
        { file: "dst.yaml", key: "port", message: "must be an integer" },
        { file: "src.yaml", key: "snapshot.threads", message: "must be at least 1" },
      ],
    },
  });
  const source = fatalEvent(new SourceError("lost", "public.t"), false).event.fields;
  assert.deepEqual([source.error, source.table, source.exit_code], ["SourceError", "public.t", 1]);
  assert.equal(fatalEvent(new SinkError("OOM", "s1"), false).event.fields.stream, "s1");
  assert.deepEqual(fatalEvent(new ExistingStreamsError(["a", "b"]), false).event.fields.streams, [
    "a",
    "b",
  ]);
  const internal = fatalEvent(new TypeError("x is undefined"), true).event.fields;
  assert.deepEqual([internal.error, internal.exit_code], ["TypeError", 1]);
  assert.match(String(internal.msg), /^internal error: x is undefined/);
  assert.match(String(internal.stack), /TypeError: x is undefined/);
  assert.equal(fatalEvent(new UsageError("bad"), false).event.fields.stack, undefined);

  const json = errorOutput(new UsageError("--x"), { verbose: false, format: "json", id: "r" });
  assert.equal(json.code, 2);
  assert.deepEqual(
    [JSON.parse(json.text).msg, JSON.parse(json.text).id, json.text.endsWith("\n")],
    ["--x", "r", true],
  );
  assert.equal(
    errorOutput(new UsageError("--x"), { verbose: false, format: "text" }).text,
    "replicant: --x\n",
  );
  const usage = JSON.parse(usageOutput("error: unknown option '--y'\n", "json"));
  assert.deepEqual([usage.msg, usage.error, usage.exit_code], [
    "unknown option '--y'",
    "UsageError",
    2,
  ]);
  assert.equal(
    usageOutput("error: unknown option '--y'\n", "text"),
    "error: unknown option '--y' (see replicant --help)\n",
  );
  assert.equal(
    usageOutput("error: unknown option '--y'\n", "text", undefined, "snapshot"),
    "error: unknown option '--y' (see replicant snapshot --help)\n",
  );
  assert.equal(
    usageOutput(
      "error: unknown option '--thread'\n(Did you mean --threads?)\n",
      "text",
      "x",
      "full",
    ),
    "error: unknown option '--thread'\n(Did you mean --threads?)\n(see replicant full --help)\n",
  );
});

Deno.test("config warnings and run messages follow the format", () => {
  assert.deepEqual(
    configWarningEvent({ file: "pg.yaml", key: "socket-timeout-s", message: "ignored" }),
    {
      level: "warn",
      event: "config_warning",
      fields: {
        msg: "pg.yaml: socket-timeout-s: ignored",
        file: "pg.yaml",
        key: "socket-timeout-s",
      },
    },
  );
  const out = collector();
  const err = collector();
  const json = new RunConsole("json", "r1", out, err);
  json.print("Stopped cleanly.", "warn");
  json.say("info", "\nreplicant: SIGTERM: stopping\n");
  json.emit({ level: "info", event: "stats_total", fields: { tables: 0 } });
  json.printFormatted('{"a":1}');
  assert.deepEqual(
    out.lines.map((l) => JSON.parse(l)).map((e) => [e.level, e.event, e.msg ?? e.a]),
    [
      ["warn", "log", "Stopped cleanly."],
      [undefined, undefined, 1],
    ],
  );
  assert.deepEqual(err.lines.map((l) => JSON.parse(l)).map((e) => [e.event, e.id, e.msg]), [
    ["log", "r1", "SIGTERM: stopping"],
    ["stats_total", "r1", undefined],
  ]);
  const tout = collector();
  const terr = collector();
  const text = new RunConsole("text", "r1", tout, terr);
  text.print("Stopped cleanly.");
  text.emit({ level: "info", event: "stats_total", fields: {} });
  assert.deepEqual([tout.lines, terr.lines], [["Stopped cleanly."], []]);
});

Deno.test("RunConsole.result: the event on stdout in json, the text (if any) in text", () => {
  const e = { level: "info" as const, event: "schemas_written", fields: { tables: 2 } };
  const out = collector();
  const err = collector();
  const json = new RunConsole("json", "r1", out, err);
  json.result(e, "Wrote 2 table(s)");
  json.result({ ...e, event: "schema" });
  assert.deepEqual(out.lines.map((l) => JSON.parse(l)).map((x) => [x.event, x.id, x.tables]), [
    ["schemas_written", "r1", 2],
    ["schema", "r1", 2],
  ]);
  const tout = collector();
  const terr = collector();
  const text = new RunConsole("text", "r1", tout, terr);
  text.result(e, "Wrote 2 table(s)");
  text.result({ ...e, event: "schema" });
  assert.deepEqual([tout.lines, terr.lines, err.lines], [["Wrote 2 table(s)"], [], []]);
  assert.equal(logFormatOf({}), "text");
  assert.equal(logFormatOf({ logFormat: "json" }), "json");
  assert.throws(
    () => logFormatOf({ logFormat: "yaml" }),
    /--log-format yaml: expected text or json/,
  );
});

Deno.test("check events: status ok/failed/warning, what was found apart from the hint", () => {
  const fix = 'run ALTER ROLE "u" WITH REPLICATION';
  const bad = failed("replication privilege", `user "u" may not stream changes: ${fix}`, fix);
  assert.equal(foundOf(bad), 'user "u" may not stream changes');
  const warn = warning(
    "maxmemory-policy",
    "volatile-lru: noeviction is recommended (CONFIG SET x)",
    "CONFIG SET x",
  );
  assert.equal(foundOf(warn), "volatile-lru: noeviction is recommended");
  assert.equal(foundOf(passed("wal_level", "logical")), "logical");
  // A hint that is not in the detail leaves the detail whole.
  assert.equal(foundOf(failed("x", "found it", "elsewhere")), "found it");
  const report = { connection: "pg.yaml", type: "POSTGRESQL" };
  const e = checkEvent(bad, report, "/h/data/default/test_connection_pg.json");
  assert.deepEqual(e, {
    level: "error",
    event: "check",
    fields: {
      connection: "pg.yaml",
      type: "POSTGRESQL",
      name: "replication privilege",
      status: "failed",
      detail: 'user "u" may not stream changes',
      hint: fix,
      report: "/h/data/default/test_connection_pg.json",
    },
  });
  assert.deepEqual(
    [checkEvent(warn, report, "r").level, checkEvent(warn, report, "r").fields.status],
    ["warn", "warning"],
  );
  const ok = checkEvent(passed("wal_level", "logical"), report, "r");
  assert.deepEqual([ok.level, ok.fields.status, ok.fields.hint], ["info", "ok", null]);
});

Deno.test("connect hints: the closing (check …) or : check … of the endpoints' messages", () => {
  assert.equal(
    connectHintOf(
      'Cannot connect to PostgreSQL at h:1 database "d" (pg.yaml): authentication failed for ' +
        'user "u": wrong password (check `password` or `password-file`)',
    ),
    "check `password` or `password-file`",
  );
  assert.equal(
    connectHintOf(
      "Cannot connect to Redis at h:1 (r.yaml): WRONGPASS invalid username-password pair " +
        "(authentication failed: check `username` and `password` or `password-file`)",
    ),
    "check `username` and `password` or `password-file`",
  );
  assert.equal(
    connectHintOf('Cannot connect to X: database "d" does not exist: check `database`'),
    "check `database`",
  );
  assert.equal(connectHintOf("Cannot connect to X: connect ETIMEDOUT"), undefined);
});

Deno.test("SnapshotProgress off a terminal: a head line and a line per running table", async () => {
  const out = collector();
  const p = new SnapshotProgress({ isTTY: false, write: out.write }, 20);
  p.add("public.big", 1000);
  p.add("public.none", 0);
  p.add("public.later", 5);
  p.start();
  p.tableStarted("public.big");
  p.tableStarted("public.none");
  p.rowsWritten("public.big", 400);
  p.rowsWritten("public.none", 3);
  await new Promise((r) => setTimeout(r, 70));
  p.stop();
  const text = out.lines.join("\n");
  assert.equal(text.indexOf("\x1b"), -1, "no terminal control codes");
  assert.match(text, /^snapshot: 0\/3 tables done, 403 rows, /m);
  assert.match(
    text,
    /^snapshot: public\.big: 400 of ~1,000 rows \(40%\), [\d.]+k?\/s, eta (\d+s|\d+:\d\d)$/m,
  );
  // Without an estimate: no percent, no ETA; a waiting table has no line.
  assert.match(text, /^snapshot: public\.none: 3 rows, [\d.]+k?\/s, eta -$/m);
  assert.doesNotMatch(text, /public\.later/);
});

Deno.test("test-connection verdict: counts passes, warnings and failures", () => {
  const count = (PASSED: number, WARNING: number, FAILED: number) =>
    verdict({ PASSED, WARNING, FAILED, SKIPPED: 0 });
  assert.equal(count(14, 0, 0), "All 14 checks passed.");
  assert.match(count(13, 1, 0), /^No check failed: 13 passed, 1 warning\. Read the WARNING row:/);
  assert.match(count(11, 2, 0), /^No check failed: 11 passed, 2 warnings\. Read the WARNING rows:/);
  assert.match(count(10, 1, 2), /^2 checks FAILED, 1 warning, 10 passed: fix the FAILED rows/);
});

Deno.test("a resumed table's rate counts the rows this run copied, not the earlier run's", () => {
  const t = table({ rows: 1000, already: 900, startedAt: 0, finishedAt: 2_000, status: "done" });
  assert.equal(tableDoneEvent(t, 9_999).fields.rows, 1000);
  assert.equal(tableDoneEvent(t, 9_999).fields.rows_per_s, 50);
  const total = snapshotSummaryEvents([t], 9_999).at(-1)!;
  assert.deepEqual([total.fields.rows, total.fields.rows_per_s], [1000, 50]);
  assert.equal(
    progressEvent({ ...t, status: "running", finishedAt: null }, 2_000).fields.rows_per_s,
    50,
  );
});
