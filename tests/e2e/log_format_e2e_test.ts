/**
 * `--log-format json` end to end with the compiled binary: a snapshot and a short
 * realtime run write nothing but JSON objects, one a line, on stdout and stderr, and the
 * progress, table_done, summary and stats events carry the numbers of the tables; errors
 * that end a run (bad configuration, bad usage, existing state) are one `fatal` object each.
 * The other commands too: test-connection (a `check` per check and `check_total`),
 * fetch-schemas (a `schema` per table and `schemas_written`) and cleanup-indoubt
 * (`indoubt_entry` per entry and `cleanup_indoubt`), with the exit codes of the text format.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type pg from "pg";
import { parse as parseYaml } from "yaml";
import type { Redis } from "ioredis";
import {
  defaultSlotName,
  dropPublication,
  dropSlot,
} from "../../src/source/postgres/pg_replication_slot.ts";
import { createOwnedSlot } from "../helpers/owned_slot.ts";
import { deleteKeys, pgClient, readStream, redisClient } from "../helpers/clients.ts";
import {
  runReplicant,
  type ScratchHome,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";
import { indoubtPath } from "../../src/pipeline/indoubt_log.ts";
import { type Event, eventsOf, ofEvent } from "../helpers/log_events.ts";

function pgConnWithWarning(home: ScratchHome): string {
  const env = serviceEnv();
  // `socket-timeout-s` is an Arcion key Replicant ignores with a warning.
  return home.write(
    "pg_warn.yaml",
    `type: POSTGRESQL\nhost: ${env.pg.host}\nport: ${env.pg.port}\ndatabase: ${env.pg.database}\n` +
      `username: ${env.pg.user}\nmax-connections: 4\nsocket-timeout-s: 10\n`,
  );
}

async function withSchema(
  fn: (db: pg.Client, redis: Redis, schema: string, home: ScratchHome) => Promise<void>,
): Promise<void> {
  const schema = `lf_${Date.now().toString(36)}`;
  const db = await pgClient();
  const redis = redisClient();
  const home = scratchHome();
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    await fn(db, redis, schema, home);
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await deleteKeys(redis, `replicant_${schema}_*`);
    await deleteKeys(redis, `replicate_io_*_${schema}*`);
    await db.end();
    redis.disconnect();
    rmSync(home.dir, { recursive: true, force: true });
  }
}

Deno.test("log format json: snapshot and realtime write only JSON lines with right numbers", async () => {
  await withSchema(async (db, redis, schema, home) => {
    const BIG = 60_000;
    const SMALL = 7;
    await db.query(`CREATE TABLE ${schema}.big (id int PRIMARY KEY, v text)`);
    await db.query(
      `INSERT INTO ${schema}.big SELECT i, repeat('x', 40) FROM generate_series(1, ${BIG}) i`,
    );
    await db.query(`CREATE TABLE ${schema}.small (id int PRIMARY KEY, v int)`);
    await db.query(`INSERT INTO ${schema}.small SELECT i, i FROM generate_series(1, ${SMALL}) i`);
    // VACUUM counts every row, so the estimate progress is measured against is known here.
    await db.query(`VACUUM ${schema}.big`);
    const estimate = Number(
      (await db.query(
        `SELECT greatest(reltuples, 0)::int8::text AS n FROM pg_class WHERE oid = $1::regclass`,
        [`${schema}.big`],
      )).rows[0].n,
    );
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
    );
    const pgConn = pgConnWithWarning(home);
    const big = `replicant.${schema}.big`;
    const small = `replicant.${schema}.small`;
    const id = `${schema}_snap`;

    const snap = await runReplicant([
      "snapshot",
      pgConn,
      home.redisConn,
      "--filter",
      filter,
      "--id",
      id,
      "--home",
      home.dir,
      "--log-format",
      "json",
      "--stats-interval",
      "1",
      "--progress-interval",
      "0.1",
    ]);
    assert.equal(snap.code, 0, snap.stdout + snap.stderr);
    const out = eventsOf(snap.stdout, "snapshot stdout", id);
    const err = eventsOf(snap.stderr, "snapshot stderr", id);

    const warning = ofEvent(err, "config_warning");
    assert.equal(warning.length, 1, snap.stderr);
    assert.equal(warning[0].level, "warn");
    assert.equal(warning[0].file, pgConn);
    assert.equal(warning[0].key, "socket-timeout-s");

    // Progress: only running tables, rows growing up to the count, percent of the estimate.
    const progress = ofEvent(err, "progress").filter((e) => e.table === big);
    assert.ok(progress.length >= 1, `progress events of ${big}:\n${snap.stderr}`);
    let last = 0;
    for (const p of progress) {
      assert.equal(p.status, "running");
      assert.ok(p.rows >= last && p.rows <= BIG, JSON.stringify(p));
      last = p.rows;
      assert.equal(p.estimated_rows, estimate);
      assert.equal(p.percent, Math.round(Math.min(99, (100 * p.rows) / estimate) * 10) / 10);
      assert.ok(p.rows_per_s >= 0 && p.elapsed_s > 0, JSON.stringify(p));
      assert.ok(p.eta_s === null || p.eta_s >= 0, JSON.stringify(p));
    }
    for (const t of ofEvent(err, "progress_total")) {
      assert.equal(t.tables, 2);
      assert.ok(t.rows <= BIG + SMALL);
    }
    const done = new Map(ofEvent(err, "table_done").map((e) => [e.table, e]));
    assert.deepEqual([...done.keys()].sort(), [big, small]);
    assert.equal(done.get(big)!.rows, BIG);
    assert.equal(done.get(small)!.rows, SMALL);
    assert.equal(done.get(big)!.status, "done");

    // The summary: one object per table, then the total, on stdout and nothing else there.
    assert.deepEqual(out.map((e) => e.event), ["summary", "summary", "summary_total"]);
    const summary = new Map(ofEvent(out, "summary").map((e) => [e.table, e]));
    for (const [table, rows] of [[big, BIG], [small, SMALL]] as const) {
      const s = summary.get(table)!;
      assert.equal(s.phase, "snapshot");
      assert.equal(s.status, "done");
      assert.equal(s.rows, rows, `${table} rows in the summary`);
      assert.ok(s.elapsed_s >= 0);
    }
    const total = out[2];
    assert.equal(total.phase, "snapshot");
    assert.deepEqual(
      [total.tables, total.done, total.skipped, total.failed, total.rows],
      [2, 2, 0, 0, BIG + SMALL],
    );
    assert.equal((await readStream(redis, `replicant_${schema}_big`)).length, BIG);

    // Statistics: the final ones carry each table's rows, on stderr as in trace.log.
    const finalStats = ofEvent(err, "stats").filter((e) => e.final);
    assert.deepEqual(
      Object.fromEntries(finalStats.map((e) => [e.table, e.snapshot_rows])),
      { [big]: BIG, [small]: SMALL },
    );
    const finalTotal = ofEvent(err, "stats_total").filter((e) => e.final);
    assert.equal(finalTotal.length, 1);
    assert.equal(finalTotal[0].snapshot_rows, BIG + SMALL);
    for (const s of ofEvent(err, "stats")) {
      assert.ok(s.snapshot_rows <= (s.table === big ? BIG : SMALL));
    }
    const trace = eventsOf(
      readFileSync(join(home.dir, "data", id, "trace.log"), "utf8"),
      "snapshot trace.log",
      id,
    );
    assert.deepEqual(
      ofEvent(trace, "stats").filter((e) => e.final).map((e) => [e.table, e.snapshot_rows]),
      finalStats.map((e) => [e.table, e.snapshot_rows]),
    );

    // Realtime: periodic statistics while it runs, then the summary after SIGTERM.
    const rtId = `${schema}_rt`;
    const slot = defaultSlotName("default", rtId);
    await createOwnedSlot(db, rtId, schema);
    let run: ReturnType<typeof startReplicant> | null = null;
    try {
      run = startReplicant([
        "realtime",
        pgConn,
        home.redisConn,
        "--filter",
        filter,
        "--id",
        rtId,
        "--home",
        home.dir,
        "--log-format",
        "json",
        "--stats-interval",
        "1",
      ]);
      await db.query(`INSERT INTO ${schema}.small SELECT i, i FROM generate_series(101, 130) i`);
      for (let i = 101; i <= 110; i++) {
        await db.query(`UPDATE ${schema}.small SET v = -v WHERE id = ${i}`);
      }
      await db.query(`DELETE FROM ${schema}.small WHERE id BETWEEN 121 AND 125`);
      const CHANGES = 30 + 10 + 5;
      const traceFile = join(home.dir, "data", rtId, "trace.log");
      await waitFor(() => {
        let text = "";
        try {
          text = readFileSync(traceFile, "utf8");
        } catch {
          return false;
        }
        return eventsOf(text, "realtime trace.log", rtId).some((e) =>
          e.event === "stats" && !e.final && e.table === small && e.changes === CHANGES
        );
      }, { what: `a periodic stats event with ${CHANGES} changes`, timeoutMs: 30_000 });
      run.kill("SIGTERM");
      const rt = await run.done;
      run = null;
      assert.equal(rt.code, 0, rt.stdout + rt.stderr);
      const rtOut = eventsOf(rt.stdout, "realtime stdout", rtId);
      const rtErr = eventsOf(rt.stderr, "realtime stderr", rtId);
      const periodic = ofEvent(rtErr, "stats").filter((e) => !e.final && e.table === small);
      assert.ok(periodic.some((e) => e.changes === CHANGES), rt.stderr);
      const fin = ofEvent(rtErr, "stats").filter((e) => e.final && e.table === small);
      assert.equal(fin.length, 1, rt.stderr);
      assert.equal(fin[0].changes, CHANGES);
      assert.deepEqual(fin[0].ops, { insert: 30, update: 10, delete: 5 });
      assert.equal(fin[0].snapshot_rows, 0);
      assert.ok(ofEvent(rtErr, "log").some((e) => /streaming changes/.test(e.msg)), rt.stderr);

      const rtSummary = ofEvent(rtOut, "summary").find((e) => e.table === small);
      assert.ok(rtSummary, rt.stdout);
      assert.equal(rtSummary.phase, "realtime");
      assert.equal(rtSummary.stream, `replicant_${schema}_small_cdc_logs`);
      assert.equal(rtSummary.changes, CHANGES);
      const rtTotal = ofEvent(rtOut, "summary_total");
      assert.equal(rtTotal.length, 1, rt.stdout);
      assert.equal(rtTotal[0].changes, CHANGES);
      assert.ok(rtTotal[0].transactions >= 12, rt.stdout);
      assert.equal(typeof rtTotal[0].checkpoint, "string");
    } finally {
      if (run) {
        run.kill("SIGKILL");
        await run.done.catch(() => {});
      }
      await dropSlot(db, slot).catch(() => {});
      await dropPublication(db, slot).catch(() => {});
    }

    // Existing state without --resume: the run ends with one fatal object (exit 2).
    const again = await runReplicant([
      "snapshot",
      home.pgConn,
      home.redisConn,
      "--filter",
      filter,
      "--id",
      id,
      "--home",
      home.dir,
      "--log-format",
      "json",
    ]);
    assert.equal(again.code, 2, again.stdout + again.stderr);
    assert.equal(again.stdout, "");
    const fatal = ofEvent(eventsOf(again.stderr, "existing state stderr", id), "fatal");
    assert.equal(fatal.length, 1, again.stderr);
    assert.deepEqual([fatal[0].level, fatal[0].error, fatal[0].exit_code], [
      "error",
      "StateError",
      2,
    ]);
    assert.match(fatal[0].msg, /--resume/);
  });
});

Deno.test("log format json: configuration and usage errors are one fatal object", async () => {
  const home = scratchHome();
  try {
    const badRedis = home.write(
      "redis_bad.yaml",
      `type: REDIS_STREAM\nhost: 127.0.0.1\nport: 6379\nmax-conections: 2\n`,
    );
    const badExtractor = home.write("extractor.yaml", "snapshot:\n  threads: many\n");
    const r = await runReplicant([
      "snapshot",
      home.pgConn,
      badRedis,
      "--extractor",
      badExtractor,
      "--id",
      "lf_bad",
      "--home",
      home.dir,
      "--log-format",
      "json",
    ]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.equal(r.stdout, "");
    const events = eventsOf(r.stderr, "config error stderr", "lf_bad");
    assert.equal(events.length, 1, r.stderr);
    const [e] = events;
    assert.deepEqual([e.level, e.event, e.error, e.exit_code], [
      "error",
      "fatal",
      "ConfigError",
      2,
    ]);
    assert.equal(e.file, badRedis);
    assert.equal(e.key, "max-conections");
    assert.deepEqual(
      e.problems.map((p: Event) => [p.file, p.key]),
      [[badRedis, "max-conections"], [badExtractor, "snapshot.threads"]],
    );
    assert.match(e.msg, /did you mean `max-connections`/);
    assert.match(e.msg, /extractor\.yaml: snapshot\.threads: /);

    // The same in text: the message as before, not JSON.
    const text = await runReplicant([
      "snapshot",
      home.pgConn,
      badRedis,
      "--extractor",
      badExtractor,
      "--home",
      home.dir,
    ]);
    assert.equal(text.code, 2);
    assert.match(text.stderr, /^replicant: .*redis_bad\.yaml: max-conections: unknown key/);
    assert.throws(() => JSON.parse(text.stderr.split("\n")[0]));

    const usage = await runReplicant(["realtime", home.redisConn, "--bogus", "--log-format=json"]);
    assert.equal(usage.code, 2, usage.stdout + usage.stderr);
    const [u, ...rest] = eventsOf(usage.stderr, "usage error stderr");
    assert.deepEqual(rest, []);
    assert.deepEqual([u.event, u.error, u.exit_code], ["fatal", "UsageError", 2]);
    assert.match(u.msg, /unknown option '--bogus'/);
  } finally {
    rmSync(home.dir, { recursive: true, force: true });
  }
});

/** A check of a test-connection report file (test_connection_<name>.json). */
interface ReportCheck {
  name: string;
  status: "PASSED" | "FAILED" | "WARNING" | "SKIPPED";
  detail: string;
  hint?: string;
}

const EVENT_STATUS: Record<ReportCheck["status"], string> = {
  PASSED: "ok",
  FAILED: "failed",
  WARNING: "warning",
  SKIPPED: "skipped",
};

/**
 * The `check` events of one connection against its report file: same checks in the same
 * order, the status in json words, the detail without the hint and the hint as the report
 * has it.
 */
function assertChecksMatchReport(checks: Event[], connection: string): ReportCheck[] {
  const mine = checks.filter((e) => e.connection === connection);
  assert.ok(mine.length > 0, `check events of ${connection}`);
  const path = mine[0].report;
  const report = JSON.parse(readFileSync(path, "utf8")) as { checks: ReportCheck[] };
  assert.deepEqual(
    mine.map((e) => [e.name, e.status, e.report]),
    report.checks.map((c) => [c.name, EVENT_STATUS[c.status], path]),
  );
  mine.forEach((e, i) => {
    const c = report.checks[i];
    assert.equal(e.level, { ok: "info", warning: "warn", failed: "error" }[e.status as string]);
    assert.equal(e.hint, c.hint ?? null, `hint of ${e.name}`);
    if (e.hint === null) assert.equal(e.detail, c.detail, e.name);
    else {
      assert.ok(c.detail.startsWith(e.detail) && c.detail.includes(e.hint), JSON.stringify(e));
      assert.ok(!e.detail.includes(e.hint), `${e.name}: the hint apart from the detail`);
    }
  });
  return report.checks;
}

Deno.test("log format json: test-connection writes a check event per check and a total", async () => {
  const home = scratchHome();
  try {
    const id = `lf_tc_${Date.now().toString(36)}`;
    const pgConn = pgConnWithWarning(home);
    const ok = await runReplicant([
      "test-connection",
      pgConn,
      home.redisConn,
      "--home",
      home.dir,
      "--id",
      id,
      "--log-format",
      "json",
    ]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const out = eventsOf(ok.stdout, "test-connection stdout", id);
    const err = eventsOf(ok.stderr, "test-connection stderr", id);
    assert.deepEqual(err.map((e) => [e.event, e.file, e.key]), [
      ["config_warning", pgConn, "socket-timeout-s"],
    ]);
    const checks = ofEvent(out, "check");
    assert.equal(out.length, checks.length + 1, ok.stdout);
    const total = out[out.length - 1];
    assert.equal(total.event, "check_total");
    assert.deepEqual(new Set(checks.map((e) => e.connection)), new Set([pgConn, home.redisConn]));
    const pgChecks = assertChecksMatchReport(checks, pgConn);
    const redisChecks = assertChecksMatchReport(checks, home.redisConn);
    for (const e of checks) {
      assert.ok(e.status === "ok" || e.status === "warning", JSON.stringify(e));
      assert.equal(e.type, e.connection === pgConn ? "POSTGRESQL" : "REDIS_STREAM");
    }
    const byName = new Map(checks.map((e) => [`${e.type} ${e.name}`, e]));
    for (
      const name of [
        "POSTGRESQL credentials",
        "POSTGRESQL wal_level",
        "REDIS_STREAM ACL rights",
        "REDIS_STREAM maxmemory-policy",
      ]
    ) {
      assert.equal(byName.get(name)?.status, "ok", name);
    }
    assert.equal(byName.get("POSTGRESQL wal_level")!.detail, "logical");
    const warnings = checks.filter((e) => e.status === "warning").length;
    assert.deepEqual(
      [total.level, total.connections, total.checks, total.ok, total.warning, total.failed],
      ["info", 2, pgChecks.length + redisChecks.length, checks.length - warnings, warnings, 0],
    );
    assert.deepEqual(total.reports, [
      join(home.dir, "data", id, "test_connection_pg_warn.json"),
      join(home.dir, "data", id, "test_connection_redis_stream.json"),
    ]);

    // A wrong password: exit 1 as in text, the credentials check failed with its hint.
    const my = serviceEnv().mysql;
    const password = `wrong-${crypto.randomUUID()}`;
    const badConn = home.write(
      "mysql_badpw.yaml",
      `type: MARIADB\nhost: ${my.host}\nport: ${my.port}\nusername: ${my.user}\n` +
        `password: "${password}"\n`,
    );
    const args = ["test-connection", badConn, "--home", home.dir, "--id", id];
    const text = await runReplicant(args);
    assert.equal(text.code, 1, text.stdout + text.stderr);
    assert.match(text.stdout, /credentials\s+FAILED\s+Cannot connect to MySQL/);
    const bad = await runReplicant([...args, "--log-format", "json"]);
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    assert.equal(bad.stderr, "");
    assert.ok(!bad.stdout.includes(password), "the password is never printed");
    const badOut = eventsOf(bad.stdout, "failing test-connection stdout", id);
    const badChecks = ofEvent(badOut, "check");
    assertChecksMatchReport(badChecks, badConn);
    assert.deepEqual(badChecks.map((e) => [e.name, e.status, e.level]), [
      ["host/port reachable", "ok", "info"],
      ["credentials", "failed", "error"],
    ]);
    const cred = badChecks[1];
    assert.equal(cred.type, "MARIADB");
    assert.match(cred.detail, /authentication failed: access denied for user /);
    assert.ok(cred.detail.includes(badConn), cred.detail);
    assert.match(cred.hint, /^check `username` and `password` or `password-file`/);
    assert.deepEqual(badOut.map((e) => e.event), ["check", "check", "check_total"]);
    const badTotal = badOut[2];
    assert.deepEqual(
      [badTotal.level, badTotal.connections, badTotal.checks, badTotal.ok, badTotal.failed],
      ["error", 1, 2, 1, 1],
    );

    // A connection file that cannot be read: the fatal event, exit 2 as in text.
    const missing = join(home.dir, "no_such_conn.yaml");
    const textMissing = await runReplicant(["test-connection", missing, "--home", home.dir]);
    const fatal = await runReplicant([
      "test-connection",
      missing,
      "--home",
      home.dir,
      "--id",
      id,
      "--log-format",
      "json",
    ]);
    assert.equal(textMissing.code, 2, textMissing.stderr);
    assert.equal(fatal.code, 2, fatal.stdout + fatal.stderr);
    assert.equal(fatal.stdout, "");
    const [f, ...more] = eventsOf(fatal.stderr, "unreadable connection stderr", id);
    assert.deepEqual(more, []);
    assert.deepEqual([f.event, f.error, f.exit_code, f.file], ["fatal", "ConfigError", 2, missing]);
  } finally {
    rmSync(home.dir, { recursive: true, force: true });
  }
});

Deno.test("log format json: fetch-schemas writes a schema event per table and where", async () => {
  await withSchema(async (db, _redis, schema, home) => {
    await db.query(`CREATE TABLE ${schema}.orders (id bigint PRIMARY KEY, note text NOT NULL)`);
    await db.query(
      `CREATE TABLE ${schema}.lines (o int, n int, sku text NOT NULL UNIQUE, PRIMARY KEY (o, n))`,
    );
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
    );
    const id = `${schema}_fs`;
    const snap = await runReplicant([
      "snapshot",
      home.pgConn,
      home.redisConn,
      "--filter",
      filter,
      "--id",
      id,
      "--home",
      home.dir,
    ]);
    assert.equal(snap.code, 0, snap.stdout + snap.stderr);
    const orders = `replicant.${schema}.orders`;
    const lines = `replicant.${schema}.lines`;
    const expected = new Map([
      [orders, { columns: ["id", "note"], primary_key: ["id"] }],
      [lines, { columns: ["o", "n", "sku"], primary_key: ["o", "n"] }],
    ]);

    // From the schema dump of the id (the manifest names the Redis connection).
    const output = join(home.dir, "dump_schemas.yaml");
    const r = await runReplicant([
      "fetch-schemas",
      "--id",
      id,
      "--home",
      home.dir,
      "--output-file",
      output,
      "--log-format",
      "json",
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stderr, "");
    const events = eventsOf(r.stdout, "fetch-schemas stdout", id);
    const yamlTables = (parseYaml(readFileSync(output, "utf8")) as {
      tables: { schema: string; table: string; version: number; "unique-keys": string[][] }[];
    }).tables;
    const schemaEvents = ofEvent(events, "schema");
    assert.deepEqual(events.map((e) => e.event), ["schema", "schema", "schemas_written"]);
    assert.deepEqual(
      schemaEvents.map((e) => e.table),
      yamlTables.map((t) => `replicant.${t.schema}.${t.table}`),
    );
    for (const [i, e] of schemaEvents.entries()) {
      const want = expected.get(e.table);
      assert.ok(want, e.table);
      assert.deepEqual([e.columns, e.primary_key], [want.columns, want.primary_key], e.table);
      assert.equal(e.version, 1);
      assert.equal(e.file, output);
      assert.deepEqual(e.unique_keys, yamlTables[i]["unique-keys"]);
    }
    const written = events[2];
    assert.deepEqual(
      [written.tables, written.file, written.stream],
      [2, output, `replicate_io_replication_schema_default_${id}`],
    );

    // From the source: no versions; where it came from.
    const srcOut = join(home.dir, "src_schemas.yaml");
    const src = await runReplicant([
      "fetch-schemas",
      home.pgConn,
      "--filter",
      filter,
      "--output-file",
      srcOut,
      "--log-format=json",
    ]);
    assert.equal(src.code, 0, src.stdout + src.stderr);
    const srcEvents = eventsOf(src.stdout, "fetch-schemas (source) stdout", "default");
    assert.deepEqual(
      ofEvent(srcEvents, "schema").map((e) => [e.table, e.version, e.columns, e.file]).sort(),
      [...expected].map(([t, w]) => [t, null, w.columns, srcOut]).sort(),
    );
    assert.deepEqual(
      ofEvent(srcEvents, "schemas_written").map((e) => [e.tables, e.source, e.source_type]),
      [[2, home.pgConn, "POSTGRESQL"]],
    );
    assert.ok(existsSync(srcOut));

    // No schema dump for the id: exit 2 as in text, the fatal event names the stream.
    const none = `${schema}_none`;
    const missing = await runReplicant([
      "fetch-schemas",
      home.redisConn,
      "--id",
      none,
      "--log-format",
      "json",
    ]);
    const missingText = await runReplicant(["fetch-schemas", home.redisConn, "--id", none]);
    assert.equal(missingText.code, 2, missingText.stderr);
    assert.equal(missing.code, 2, missing.stdout + missing.stderr);
    const [f, ...rest] = eventsOf(missing.stderr, "fetch-schemas without dump stderr", none);
    assert.deepEqual(rest, []);
    assert.deepEqual(
      [f.event, f.error, f.exit_code, f.stream, f.file],
      [
        "fatal",
        "UsageError",
        2,
        `replicate_io_replication_schema_default_${none}`,
        home.redisConn,
      ],
    );
  });
});

Deno.test("log format json: cleanup-indoubt writes what it deleted, counts and streams", async () => {
  const redis = redisClient();
  const home = scratchHome();
  const tag = `lf_ci_${Date.now().toString(36)}`;
  const stream = `${tag}_stream`;
  const user = `${tag}_nodel`;
  try {
    const a = await redis.xadd(stream, "*", "f", "1") as string;
    const b = await redis.xadd(stream, "*", "f", "2") as string;
    const file = indoubtPath(home.dir, tag);
    mkdirSync(dirname(file), { recursive: true });
    const listing = `${stream} ${a}\n${stream} ${b}\n${stream} 1-1\n`;
    writeFileSync(file, listing);
    const run = async (conn: string, ...extra: string[]) => {
      const r = await runReplicant([
        "cleanup-indoubt",
        conn,
        "--id",
        tag,
        "--home",
        home.dir,
        ...extra,
        "--log-format",
        "json",
      ]);
      assert.equal(r.stderr, "", r.stderr);
      return { code: r.code, events: eventsOf(r.stdout, `cleanup-indoubt ${extra}`, tag) };
    };
    const entries = (events: Event[]) =>
      ofEvent(events, "indoubt_entry").map((e) => [e.stream, e.entry_id, e.status, e.level]);
    const summary = (events: Event[]) => {
      const last = events[events.length - 1];
      assert.equal(last.event, "cleanup_indoubt");
      assert.equal(last.file, file);
      return [
        last.level,
        last.dry_run,
        last.entries,
        last.deleted,
        last.already_absent,
        last.would_delete,
        last.failed,
        last.remaining,
        last.streams,
      ];
    };

    const dry = await run(home.redisConn, "--dry-run");
    assert.equal(dry.code, 0);
    assert.deepEqual(entries(dry.events), [
      [stream, a, "would_delete", "info"],
      [stream, b, "would_delete", "info"],
      [stream, "1-1", "already_absent", "info"],
    ]);
    assert.deepEqual(summary(dry.events), ["info", true, 3, 0, 1, 2, 0, 3, [stream]]);
    assert.equal(await redis.xlen(stream), 2);

    // A user without XDEL: every entry failed, exit 4 as in text, the file unchanged.
    await redis.call("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-xdel");
    const env = serviceEnv();
    const nodel = home.write(
      "nodel.yaml",
      `type: REDIS_STREAM\nhost: ${env.redis.host}\nport: ${env.redis.port}\n` +
        `username: ${user}\npassword: pw\n`,
    );
    const denied = await run(nodel);
    assert.equal(denied.code, 4);
    assert.deepEqual(
      ofEvent(denied.events, "indoubt_entry").map((e) => [e.entry_id, e.status, e.level]),
      [[a, "failed", "error"], [b, "failed", "error"], ["1-1", "failed", "error"]],
    );
    for (const e of ofEvent(denied.events, "indoubt_entry")) assert.match(e.error, /NOPERM/);
    assert.deepEqual(summary(denied.events), ["error", false, 3, 0, 0, 0, 3, 3, [stream]]);
    assert.equal(readFileSync(file, "utf8"), listing);
    const deniedText = await runReplicant([
      "cleanup-indoubt",
      nodel,
      "--id",
      tag,
      "--home",
      home.dir,
    ]);
    assert.equal(deniedText.code, 4, deniedText.stdout + deniedText.stderr);

    const clean = await run(home.redisConn);
    assert.equal(clean.code, 0);
    assert.deepEqual(entries(clean.events), [
      [stream, a, "deleted", "info"],
      [stream, b, "deleted", "info"],
      [stream, "1-1", "already_absent", "info"],
    ]);
    assert.deepEqual(summary(clean.events), ["info", false, 3, 2, 1, 0, 0, 0, [stream]]);
    assert.equal(await redis.xlen(stream), 0);
    assert.equal(readFileSync(file, "utf8"), "");

    const again = await run(home.redisConn);
    assert.equal(again.code, 0);
    assert.equal(again.events.length, 1);
    assert.deepEqual(summary(again.events), ["info", false, 0, 0, 0, 0, 0, 0, []]);
  } finally {
    await redis.call("ACL", "DELUSER", user).catch(() => {});
    await redis.del(stream);
    redis.disconnect();
    rmSync(home.dir, { recursive: true, force: true });
  }
});

Deno.test("log format: fetch-schemas, cleanup-indoubt and test-connection take the option", async () => {
  for (const command of ["fetch-schemas", "cleanup-indoubt", "test-connection"]) {
    const help = await runReplicant([command, "--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /--log-format <format>\s+text, or json: one JSON object a line/);
    const bad = await runReplicant([command, "x.yaml", "--log-format", "yaml"]);
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /argument 'yaml' is invalid\. Allowed choices are text, json/);
  }
});
