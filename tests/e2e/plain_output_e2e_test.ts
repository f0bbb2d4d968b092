/**
 * End-to-end: what Replicant and the setup scripts write when their output is not a terminal
 * (a log file, `kubectl logs`, CI): snapshot progress as plain lines every
 * `--progress-interval` with rows, rate and ETA per table; not one ANSI escape byte, from the
 * binary or from scripts/services, scripts/deno, scripts/build and scripts/demo; `--help`
 * laid out for 80 columns; and a `full` run's snapshot table printed when the snapshot ends,
 * its total being the snapshot's own time.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import mysql from "mysql2/promise";
import {
  defaultSlotName,
  dropPublication,
  dropSlot,
} from "../../src/source/postgres/pg_replication_slot.ts";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import { replicantBin, repoRoot, runReplicant, scratchHome } from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";

const ESC = "\x1b";

function assertNoEscape(what: string, text: string): void {
  const at = text.indexOf(ESC);
  assert.equal(
    at,
    -1,
    `${what}: an escape byte at ${at}: ${
      JSON.stringify(text.slice(Math.max(0, at - 60), at + 20))
    }`,
  );
}

/** Runs a repository script with stdout and stderr on pipes (not terminals). */
function runScript(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    // Without NO_COLOR inherited: the scripts must find out by themselves.
    const { NO_COLOR: _, ...inherited } = process.env;
    const child = spawn(args[0], args.slice(1), {
      cwd: repoRoot,
      env: { ...inherited, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, out }));
  });
}

Deno.test("plain output: snapshot progress lines with rows, rate and ETA per table", async () => {
  const schema = `plain_${Date.now().toString(36)}`;
  const rows = 300_000;
  const db = await pgClient();
  const redis = redisClient();
  const home = scratchHome();
  const id = `${schema}_snap`;
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(`CREATE TABLE ${schema}.big (id int PRIMARY KEY, note text)`);
    await db.query(
      `INSERT INTO ${schema}.big SELECT g, repeat('x', 40) FROM generate_series(1, ${rows}) g`,
    );
    await db.query(`CREATE TABLE ${schema}.small (id int PRIMARY KEY)`);
    await db.query(`INSERT INTO ${schema}.small SELECT generate_series(1, 10)`);
    // The estimate that percent and ETA are measured against.
    await db.query(`ANALYZE ${schema}.big`);
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
    );
    const extractor = home.write("extractor.yaml", "snapshot:\n  fetch-size-rows: 2000\n");
    const res = await runReplicant([
      "snapshot",
      home.pgConn,
      home.redisConn,
      "--filter",
      filter,
      "--extractor",
      extractor,
      "--id",
      id,
      "--home",
      home.dir,
      "--progress-interval",
      "0.1",
    ]);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assertNoEscape("snapshot stdout", res.stdout);
    assertNoEscape("snapshot stderr", res.stderr);

    const heads = res.stderr.split("\n").filter((l) => /^snapshot: \d+\/2 tables done, /.test(l));
    assert.ok(heads.length >= 1, res.stderr);
    const table = `replicant.${schema}.big`;
    const line = new RegExp(
      `^snapshot: ${table.replaceAll(".", "\\.")}: ([\\d,]+) of ~([\\d,]+) rows ` +
        `\\((\\d+)%\\), (\\S+), eta (\\S+)$`,
    );
    const ticks = res.stderr.split("\n").map((l) => l.match(line)).filter((m) => m !== null);
    assert.ok(ticks.length >= 2, `per-table progress lines of ${table}:\n${res.stderr}`);
    let last = 0;
    for (const m of ticks) {
      const n = Number(m![1].replaceAll(",", ""));
      assert.ok(n >= last && n <= rows, m![0]);
      last = n;
      assert.ok(Math.abs(Number(m![2].replaceAll(",", "")) - rows) <= rows / 10, m![0]);
      assert.ok(Number(m![3]) <= 99, m![0]);
    }
    // Once rows flow, a rate (rows/s) and an ETA in seconds or minutes.
    assert.ok(
      ticks.some((m) => /^[\d.]+k?\/s$/.test(m![4]) && /^\d+s$|^\d+:\d\d$/.test(m![5])),
      res.stderr,
    );
    assert.match(res.stdout, new RegExp(`^${table.replaceAll(".", "\\.")} +done +300,000 `, "m"));
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
    await deleteKeys(redis, `replicant_${schema}_*`);
    await deleteKeys(redis, `replicate_io_*_${id}`);
    redis.disconnect();
  }
});

Deno.test("plain output: full prints its snapshot table when the snapshot ends, total = snapshot time", async () => {
  const schema = `plain_full_${Date.now().toString(36)}`;
  const db = await pgClient();
  const redis = redisClient();
  const home = scratchHome();
  const id = `${schema}`;
  const slot = defaultSlotName("default", id);
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(`CREATE TABLE ${schema}.t (id int PRIMARY KEY)`);
    await db.query(`INSERT INTO ${schema}.t SELECT generate_series(1, 1000)`);
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
    );
    const child = spawn(
      replicantBin(),
      ["full", home.pgConn, home.redisConn, "--filter", filter, "--id", id, "--home", home.dir],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    const exited = new Promise<number>((r) => child.on("close", (code) => r(code ?? 1)));
    try {
      // The table is on stdout while realtime runs, not only once it stops.
      await waitFor(() => /^total /m.test(stdout), {
        what: "the snapshot table on stdout",
        timeoutMs: 30_000,
      });
      assert.doesNotMatch(stdout, /transaction\(s\)/);
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      process.kill(child.pid!, "SIGTERM");
    }
    const res = { code: await exited, stdout, stderr };
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assertNoEscape("full stdout", res.stdout);
    assertNoEscape("full stderr", res.stderr);
    // The snapshot table comes before the realtime summary, and its total is the table's time
    // (one table), not the run's (over 3 s of realtime).
    const table = stdout.match(new RegExp(`^replicant\\.${schema}\\.t +done +1,000 +(\\S+) `, "m"));
    const total = stdout.match(/^total +1,000 +(\S+) /m);
    assert.ok(table && total, stdout);
    assert.equal(total[1], table[1], stdout);
    assert.ok(stdout.indexOf("total ") < stdout.indexOf("transaction(s)"), stdout);
  } finally {
    await dropSlot(db, slot).catch(() => {});
    await dropPublication(db, slot).catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
    await deleteKeys(redis, `replicant_${schema}_*`);
    await deleteKeys(redis, `replicate_io_*_${id}`);
    redis.disconnect();
  }
});

Deno.test("plain output: --help fits 80 columns and does not break a sentence", async () => {
  const top = await runReplicant(["--help"]);
  assert.equal(top.code, 0);
  assertNoEscape("--help", top.stdout);
  const paragraph = top.stdout.split("\n\n")[1].split("\n");
  assert.equal(
    paragraph.join(" "),
    "Replicate MySQL/MariaDB and PostgreSQL tables into Redis Streams: a consistent " +
      "snapshot, then realtime changes in commit order, nothing lost and nothing duplicated.",
  );
  // Filled lines: a break mid-sentence left a short line ("snapshot,") before.
  for (const l of paragraph.slice(0, -1)) assert.ok(l.length >= 60, JSON.stringify(l));
  for (
    const args of [
      [],
      ["snapshot"],
      ["realtime"],
      ["full"],
      ["fetch-schemas"],
      ["cleanup-indoubt"],
      ["test-connection"],
      ["verify"],
    ]
  ) {
    const r = await runReplicant([...args, "--help"]);
    assert.equal(r.code, 0, r.stderr);
    for (const l of r.stdout.split("\n")) {
      assert.ok(l.length <= 80, `${args.join(" ") || "replicant"} --help: ${l.length}: ${l}`);
    }
  }
});

Deno.test("plain output: no ANSI escapes from the binary's errors and other commands", async () => {
  const home = scratchHome();
  for (
    const args of [
      ["snapshot", home.pgConn, home.redisConn, "--filter", "nope.yaml", "--home", home.dir],
      ["snapshot", home.pgConn, "--bogus"],
      ["test-connection", home.pgConn, home.redisConn, "--home", home.dir],
      ["fetch-schemas", home.pgConn, "--output-file", `${home.dir}/s.yaml`],
      ["--version"],
    ]
  ) {
    const r = await runReplicant(args);
    assertNoEscape(args.join(" ") + " (stdout)", r.stdout);
    assertNoEscape(args.join(" ") + " (stderr)", r.stderr);
  }
});

Deno.test("plain output: no ANSI escapes from scripts/services, scripts/deno, scripts/demo", async () => {
  const status = await runScript(["./scripts/services", "status"]);
  assert.equal(status.code, 0, status.out);
  assertNoEscape("scripts/services status", status.out);
  const start = await runScript(["./scripts/services", "start"]);
  assert.equal(start.code, 0, start.out);
  assertNoEscape("scripts/services start", start.out);
  // Deno colours an uncaught error even into a pipe; scripts/deno must stop it.
  const deno = await runScript(["./scripts/deno", "eval", "throw new Error('plain')"]);
  assert.notEqual(deno.code, 0);
  assert.match(deno.out, /Error: plain/);
  assertNoEscape("scripts/deno eval", deno.out);

  // The demo (scripts/build, scripts/services, psql, replicant) on small sample data.
  const env = serviceEnv();
  const demo = await runScript(["./scripts/demo"], {
    DEMO_ORDERS: "2000",
    DEMO_CUSTOMERS: "200",
    DEMO_LOAD_SECONDS: "2",
  });
  const redis = redisClient();
  const db = await pgClient();
  const my = await mysql.createConnection({
    host: env.mysql.host,
    port: env.mysql.port,
    user: env.mysql.user,
    password: env.mysql.password,
  });
  try {
    assert.equal(demo.code, 0, demo.out);
    assertNoEscape("scripts/demo", demo.out);
    assert.match(demo.out, /==> Building the single binary \(scripts\/build\)\nbuild: /);
    assert.match(demo.out, /==> Done in \d+ s/);
    // It uses its own id's slot and does not leave it behind (a slot keeps WAL forever).
    assert.match(demo.out, /==> Dropping replication slot replicant_default_demo /);
    const slots = await db.query(
      "SELECT slot_name FROM pg_replication_slots WHERE slot_name = $1",
      ["replicant_default_demo"],
    );
    assert.equal(slots.rowCount, 0);
  } finally {
    // What the demo leaves for a user to explore, removed here.
    await db.query("DROP SCHEMA IF EXISTS shop CASCADE");
    await db.end();
    await my.query("DROP DATABASE IF EXISTS shop_my");
    await my.end();
    await deleteKeys(redis, "replicant_shop_*");
    await deleteKeys(redis, "shop_my_*");
    await deleteKeys(redis, "replicate_io_*_demo");
    await deleteKeys(redis, "replicate_io_*_demo-my");
    redis.disconnect();
  }
});
