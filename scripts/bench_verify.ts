/**
 * `replicant verify` on a large table: time and peak memory. Not a test; run by hand:
 *
 *   ./scripts/deno run -A scripts/bench_verify.ts [--rows 10000000] [--source pg|mysql]
 *       [--keep-streams true]
 *
 * Creates (once per row count) bench_verify.rows in the private PostgreSQL or MariaDB of
 * `scripts/services` — id BIGINT primary key, VARCHAR(64), DECIMAL(12,2), a timestamp, a
 * boolean, about 110 bytes of JSON per row — copies it into Redis with `dist/replicant
 * snapshot` (compact, no schema halves), then runs `dist/replicant verify` on it, sampling
 * the verify process's resident memory (VmRSS and VmHWM of /proc) every 100 ms. Prints one
 * JSON line: rows, snapshot seconds, verify seconds (wall, and CPU of the verify process as
 * last sampled: the wall time depends on what else runs), verify rows/s, peak RSS in MiB,
 * peak size of its temporary partition files in MiB, exit code. The streams and the id's state are deleted afterwards unless --keep-streams true (a
 * second run then verifies again without a new snapshot). Connection settings come from the
 * REPLICANT_* variables of `scripts/services env`; needs dist/replicant (scripts/build).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Redis } from "ioredis";
import pg from "pg";
import mysql from "mysql2/promise";

const env = (k: string, d: string) => process.env[k] || d;
const log = (s: string) => console.error(`bench_verify: ${s}`);
const args = new Map<string, string>();
for (let i = 2; i + 1 < process.argv.length; i += 2) {
  args.set(process.argv[i].replace(/^--/, ""), process.argv[i + 1]);
}
const rows = Number((args.get("rows") ?? "10000000").replaceAll("_", ""));
const source = args.get("source") ?? "pg";
const keep = args.get("keep-streams") === "true";
const bin = env("BENCH_BIN", join(import.meta.dirname!, "..", "dist", "replicant"));
const id = `bench-verify-${source}`;
const pgPort = Number(env("REPLICANT_PG_PORT", "55432"));
const myPort = Number(env("REPLICANT_MYSQL_PORT", "53306"));
const redisPort = Number(env("REPLICANT_REDIS_PORT", "56379"));

/** Creates the table unless it holds `rows` rows already (recorded in bench_verify.meta). */
async function prepareTable(): Promise<void> {
  if (source === "pg") {
    const db = new pg.Client({
      host: "127.0.0.1",
      port: pgPort,
      user: env("REPLICANT_PG_USER", "postgres"),
      database: env("REPLICANT_PG_DATABASE", "replicant"),
    });
    await db.connect();
    try {
      const have = await db.query(
        "SELECT n FROM bench_verify.meta LIMIT 1",
      ).then((r: pg.QueryResult) => Number(r.rows[0]?.n ?? -1), () => -1);
      if (have === rows) return;
      log(`creating bench_verify.rows with ${rows} rows in PostgreSQL`);
      await db.query("DROP SCHEMA IF EXISTS bench_verify CASCADE; CREATE SCHEMA bench_verify");
      await db.query(
        "CREATE TABLE bench_verify.rows (id bigint PRIMARY KEY, name varchar(64) NOT NULL, " +
          "amount numeric(12,2), created timestamp(6), flag boolean)",
      );
      await db.query(
        `INSERT INTO bench_verify.rows SELECT g, md5(g::text), (g % 100000) / 100.0, ` +
          `timestamp '2024-01-01' + g * interval '1 second', g % 2 = 0 ` +
          `FROM generate_series(1, ${rows}) g`,
      );
      await db.query("CREATE TABLE bench_verify.meta (n bigint)");
      await db.query("INSERT INTO bench_verify.meta VALUES ($1)", [rows]);
      await db.query("VACUUM ANALYZE bench_verify.rows");
    } finally {
      await db.end();
    }
    return;
  }
  const db = await mysql.createConnection({
    host: "127.0.0.1",
    port: myPort,
    user: env("REPLICANT_MYSQL_USER", "root"),
    password: env("REPLICANT_MYSQL_PASSWORD", ""),
  });
  try {
    const have = await db.query("SELECT n FROM bench_verify.meta LIMIT 1").then(
      ([r]) => Number((r as { n: number }[])[0]?.n ?? -1),
      () => -1,
    );
    if (have === rows) return;
    log(`creating bench_verify.rows with ${rows} rows in MariaDB`);
    await db.query("DROP DATABASE IF EXISTS bench_verify");
    await db.query("CREATE DATABASE bench_verify");
    await db.query("USE bench_verify");
    await db.query(
      "CREATE TABLE `rows` (id bigint PRIMARY KEY, name varchar(64) NOT NULL, " +
        "amount decimal(12,2), created datetime(6), flag boolean)",
    );
    await db.query(
      `INSERT INTO \`rows\` SELECT seq, md5(seq), (seq % 100000) / 100.0, ` +
        `'2024-01-01' + INTERVAL seq SECOND, seq % 2 = 0 FROM seq_1_to_${rows}`,
    );
    await db.query("CREATE TABLE meta (n bigint)");
    await db.query("INSERT INTO meta VALUES (?)", [rows]);
  } finally {
    await db.end();
  }
}

function kib(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(status);
  return m ? Number(m[1]) : 0;
}

/** Bytes of the files under `dir` (0 when it does not exist). */
function dirBytes(dir: string): number {
  let n = 0;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
    }
  } catch {
    // not there (yet, or any more)
  }
  return n;
}

/**
 * Runs the binary; samples its peak RSS every 100 ms, and the size of `spill` (the verify's
 * temporary partitions) every 500 ms.
 */
function run(
  argv: string[],
  spill?: string,
): Promise<
  {
    code: number;
    seconds: number;
    peakMiB: number;
    cpuSeconds: number;
    spillMiB: number;
    out: string;
  }
> {
  const started = performance.now();
  const child = spawn(bin, argv, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => process.stderr.write(d));
  let peak = 0;
  let cpuTicks = 0;
  const sample = () => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      peak = Math.max(peak, kib(status, "VmRSS"), kib(status, "VmHWM"));
      // utime and stime (fields 14 and 15, after the parenthesised command name).
      const stat = readFileSync(`/proc/${child.pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      cpuTicks = Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone
    }
  };
  const timer = setInterval(sample, 100);
  let spillPeak = 0;
  const spillTimer = spill
    ? setInterval(() => (spillPeak = Math.max(spillPeak, dirBytes(spill))), 500)
    : null;
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      clearInterval(timer);
      if (spillTimer) clearInterval(spillTimer);
      resolve({
        code: code ?? 1,
        seconds: (performance.now() - started) / 1000,
        peakMiB: Math.round(peak / 1024),
        cpuSeconds: Math.round(cpuTicks) / 100,
        spillMiB: Math.round(spillPeak / 2 ** 20),
        out,
      });
    });
  });
}

await prepareTable();
const home = mkdtempSync(join(tmpdir(), "replicant-bench-verify-"));
const write = (name: string, text: string) => {
  writeFileSync(join(home, name), text);
  return join(home, name);
};
const srcConn = source === "pg"
  ? write(
    "pg.yaml",
    `type: POSTGRESQL\nhost: 127.0.0.1\nport: ${pgPort}\ndatabase: ${
      env("REPLICANT_PG_DATABASE", "replicant")
    }\nusername: ${env("REPLICANT_PG_USER", "postgres")}\n`,
  )
  : write(
    "mysql.yaml",
    `type: MARIADB\nhost: 127.0.0.1\nport: ${myPort}\nusername: ${
      env("REPLICANT_MYSQL_USER", "root")
    }\npassword: "${env("REPLICANT_MYSQL_PASSWORD", "")}"\n`,
  );
const dstConn = write("redis.yaml", `type: REDIS_STREAM\nhost: 127.0.0.1\nport: ${redisPort}\n`);
const filter = write(
  "filter.yaml",
  source === "pg"
    ? `allow:\n  - catalog: ${
      env("REPLICANT_PG_DATABASE", "replicant")
    }\n    schema: bench_verify\n    types: [TABLE]\n`
    : "allow:\n  - catalog: bench_verify\n    types: [TABLE]\n",
);
const applier = write("applier.yaml", "include-schema: false\n");
const redis = new Redis({ host: "127.0.0.1", port: redisPort });
const stream = source === "pg"
  ? `${env("REPLICANT_PG_DATABASE", "replicant")}_bench_verify_rows`
  : "bench_verify_rows";
try {
  let snapshotSeconds: number | null = null;
  if (!keep || (await redis.xlen(stream)) !== rows) {
    log(`snapshot of ${rows} rows into ${stream}`);
    const snap = await run([
      "snapshot",
      srcConn,
      dstConn,
      "--applier",
      applier,
      "--filter",
      filter,
      "--id",
      id,
      "--home",
      home,
      "--overwrite",
      "--replace-existing",
    ]);
    if (snap.code !== 0) throw new Error(`snapshot exited ${snap.code}`);
    snapshotSeconds = Math.round(snap.seconds);
  }
  log("verify");
  const spill = join(home, "spill");
  const verify = await run([
    "verify",
    srcConn,
    dstConn,
    "--id",
    id,
    "--home",
    home,
    "--applier",
    applier,
    "--filter",
    filter,
    "--spill-dir",
    spill,
  ], spill);
  process.stderr.write(verify.out);
  console.log(JSON.stringify({
    source,
    rows,
    snapshot_seconds: snapshotSeconds,
    verify_seconds: Math.round(verify.seconds * 10) / 10,
    verify_rows_per_second: Math.round(rows / verify.seconds),
    verify_cpu_seconds: verify.cpuSeconds,
    verify_peak_rss_mib: verify.peakMiB,
    verify_peak_spill_mib: verify.spillMiB,
    verify_exit_code: verify.code,
  }));
} finally {
  if (!keep) {
    // Every stream of both tables (rows and meta, snapshot and change streams) and the id's.
    const prefix = stream.slice(0, stream.length - "rows".length);
    const keys = [
      ...await redis.keys(`${prefix}*`),
      `replicate_io_checkpoint_default_${id}`,
      `replicate_io_replication_schema_default_${id}`,
    ];
    await redis.del(...keys);
  }
  redis.disconnect();
  rmSync(home, { recursive: true, force: true });
}
