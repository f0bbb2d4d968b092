/**
 * `--log-format json` end to end with the compiled binary (issue 8): a snapshot and a short
 * realtime run write nothing but JSON objects, one a line, on stdout and stderr, and the
 * progress, table_done, summary and stats events carry the numbers of the tables; errors
 * that end a run (bad configuration, bad usage, existing state) are one `fatal` object each.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import type { Redis } from "ioredis";
import {
  defaultSlotName,
  dropPublication,
  dropSlot,
  ensurePublication,
  ensureSlot,
} from "../../src/source/postgres/pg_replication_slot.ts";
import { deleteKeys, pgClient, readStream, redisClient } from "../helpers/clients.ts";
import {
  runReplicant,
  type ScratchHome,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";

// deno-lint-ignore no-explicit-any
type Event = Record<string, any>;

const LEVELS = new Set(["info", "warn", "error"]);

/**
 * Every line of a run's output as a JSON object with the common fields; a line that is not
 * JSON fails the test with the line in the message.
 */
function eventsOf(output: string, what: string, id?: string): Event[] {
  const lines = output.split("\n");
  assert.equal(lines.pop(), "", `${what}: output ends with a newline`);
  return lines.map((line) => {
    let e: Event;
    try {
      e = JSON.parse(line);
    } catch {
      throw new assert.AssertionError({ message: `${what}: not a JSON line: ${line}` });
    }
    assert.ok(e !== null && typeof e === "object" && !Array.isArray(e), `${what}: ${line}`);
    assert.ok(!Number.isNaN(Date.parse(e.ts)), `${what}: ts of ${line}`);
    assert.ok(LEVELS.has(e.level), `${what}: level of ${line}`);
    assert.equal(typeof e.event, "string", `${what}: event of ${line}`);
    if (id !== undefined) assert.equal(e.id, id, `${what}: id of ${line}`);
    return e;
  });
}

const ofEvent = (events: Event[], name: string) => events.filter((e) => e.event === name);

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
      "100",
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
    await ensurePublication(db, slot, "all");
    await ensureSlot(db, slot);
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
