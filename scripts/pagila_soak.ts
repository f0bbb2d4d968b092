/**
 * Optional soak (not part of `deno task test`): the real Pagila schema, read from a local
 * mirror of github.com/devrimgunduz/pagila when one is present, replicated with
 * `replicant full` while pgbench runs a rental-shop workload on it, killed with SIGKILL at
 * random moments and resumed, then every table replayed from its streams and compared with
 * the source, every column of every row.
 *
 *   ./scripts/deno run -A scripts/pagila_soak.ts
 *
 * Environment: PAGILA_MIRROR (bare git directory; default /work/.mirror/devrimgunduz+pagila/
 * repo), SOAK_SECONDS (default 120), SOAK_SEED, SOAK_RATE (pgbench transactions/s, default
 * 50), REPLICANT_BIN (default dist/replicant), and the private servers of scripts/services.
 *
 * Nothing of Pagila is kept in this repository. Its data files are not in every mirror (they
 * are large): rows are then generated in Pagila's volumes (16k rentals and payments…). The
 * schema is adapted to the server at hand: PostgreSQL 18's `uuidv7()` and VIRTUAL generated
 * columns become gen_random_uuid() and STORED before 18, and the pgvector table is left out
 * when the extension is not installed.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import pg from "pg";
import { Redis } from "ioredis";
import { prng } from "../tests/helpers/change_log.ts";
import { assertTableReplays } from "../tests/helpers/pg_replay.ts";

const env = (name: string, fallback: string) => process.env[name] ?? fallback;
const mirror = env("PAGILA_MIRROR", "/work/.mirror/devrimgunduz+pagila/repo");
const seconds = Number(env("SOAK_SECONDS", "120"));
const seed = Number(env("SOAK_SEED", String(Math.floor(Math.random() * 2 ** 31))));
const rate = Number(env("SOAK_RATE", "50"));
const root = new URL("..", import.meta.url).pathname;
const bin = env("REPLICANT_BIN", join(root, "dist", "replicant"));
const pgEnv = {
  host: env("REPLICANT_PG_HOST", "127.0.0.1"),
  port: Number(env("REPLICANT_PG_PORT", "55432")),
  user: env("REPLICANT_PG_USER", "postgres"),
  database: env("REPLICANT_PG_DATABASE", "replicant"),
};
const redisEnv = {
  host: env("REPLICANT_REDIS_HOST", "127.0.0.1"),
  port: Number(env("REPLICANT_REDIS_PORT", "56379")),
};
const pgBin = env("REPLICANT_PG_BIN", "/usr/lib/postgresql/15/bin");

function git(file: string): string | null {
  try {
    return execFileSync("git", ["--git-dir", mirror, "show", `HEAD:${file}`], {
      encoding: "utf8",
      maxBuffer: 256 * 1024 * 1024,
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch {
    return null;
  }
}

/** Pagila's schema made loadable on this server (see the module comment). */
function adaptSchema(sql: string, version: number, vector: boolean): string {
  let chunks = sql.split(/^(?=--\n-- Name: )/m);
  if (!vector) {
    chunks = chunks.filter((c) => !/^--\n-- Name: [^\n]*(film_embedding|vector)/.test(c));
  }
  let out = chunks.join("");
  if (version < 180000) {
    out = out.replaceAll("uuidv7()", "gen_random_uuid()").replaceAll(") VIRTUAL", ") STORED");
  }
  return out;
}

/** Rows in Pagila's volumes, consistent with its foreign keys. */
const GENERATED_DATA = `
SET session_replication_role = replica;
INSERT INTO language (name) SELECT n FROM unnest(ARRAY['English','Italian','Japanese','Mandarin','French','German']) n;
INSERT INTO category (name) SELECT 'category ' || i FROM generate_series(1, 16) i;
INSERT INTO actor (first_name, last_name) SELECT 'first' || i, 'last' || i FROM generate_series(1, 200) i;
INSERT INTO country (country) SELECT 'country ' || i FROM generate_series(1, 109) i;
INSERT INTO city (city, country_id) SELECT 'city ' || i, 1 + i % 109 FROM generate_series(1, 600) i;
INSERT INTO address (address, district, city_id, postal_code, phone)
  SELECT i || ' Main Street', 'district ' || i % 50, 1 + i % 600, lpad(i::text, 5, '0'), '555-' || i
  FROM generate_series(1, 603) i;
INSERT INTO staff (first_name, last_name, address_id, email, store_id, username, picture)
  VALUES ('Mike', 'Hillyer', 3, 'mike@example.com', 1, 'Mike', decode(md5('mike'), 'hex')),
         ('Jon', 'Stephens', 4, 'jon@example.com', 2, 'Jon', NULL);
INSERT INTO store (manager_staff_id, address_id) VALUES (1, 1), (2, 2);
INSERT INTO film (title, description, release_year, language_id, rental_duration, rental_rate,
    length, replacement_cost, rating, special_features, fulltext)
  SELECT 'FILM ' || i, 'A ' || md5(i::text) || ' story', 2006, 1 + i % 6, 3 + i % 5,
         (ARRAY[0.99, 2.99, 4.99])[1 + i % 3], 46 + i % 140, 9.99 + i % 21,
         (ARRAY['G','PG','PG-13','R','NC-17'])[1 + i % 5]::mpaa_rating,
         CASE i % 3 WHEN 0 THEN ARRAY['Trailers'] WHEN 1 THEN ARRAY['Commentaries','Deleted Scenes']
           ELSE ARRAY['Behind the Scenes'] END,
         to_tsvector('english', 'FILM ' || i || ' story')
  FROM generate_series(1, 1000) i;
INSERT INTO film_actor (actor_id, film_id)
  SELECT DISTINCT 1 + (i / 1000 + i * 7) % 200, 1 + i % 1000 FROM generate_series(1, 5462) i;
INSERT INTO film_category (film_id, category_id) SELECT i, 1 + i % 16 FROM generate_series(1, 1000) i;
INSERT INTO inventory (film_id, store_id) SELECT 1 + i % 1000, 1 + i % 2 FROM generate_series(1, 4581) i;
INSERT INTO customer (store_id, first_name, last_name, email, address_id, active)
  SELECT 1 + i % 2, 'FIRST' || i, 'LAST' || i, 'c' || i || '@example.com', 5 + i % 598, 1
  FROM generate_series(1, 599) i;
INSERT INTO rental (rental_date, inventory_id, customer_id, return_date, staff_id)
  SELECT timestamptz '2022-01-01' + i * interval '15 minutes', 1 + i % 4581, 1 + i % 599,
         CASE WHEN i % 10 <> 0 THEN timestamptz '2022-01-05' + i * interval '15 minutes' END, 1 + i % 2
  FROM generate_series(1, 16044) i;
INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date)
  SELECT r.customer_id, r.staff_id, r.rental_id, (ARRAY[0.99, 2.99, 4.99, 5.99])[1 + r.rental_id % 4],
         r.rental_date + interval '1 hour'
  FROM rental r WHERE r.rental_date < '2022-07-01';
SET session_replication_role = origin;
ANALYZE;
`;

/** The rental shop's workload: rentals and payments, returns, film edits, payments moved. */
const PGBENCH_SCRIPT = `\\set cid random(1, 599)
\\set iid random(1, 4581)
\\set fid random(1, 1000)
\\set day random(0, 150)
\\set amt random(99, 1199)
\\set dice random(1, 10)
BEGIN;
INSERT INTO rental (rental_date, inventory_id, customer_id, staff_id) VALUES (clock_timestamp(), :iid, :cid, 1) RETURNING rental_id \\gset
INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date) VALUES (:cid, 1, :rental_id, :amt / 100.0, timestamptz '2022-01-15' + :day * interval '1 day');
UPDATE payment SET payment_date = payment_date + interval '31 days', amount = amount + 0.01 WHERE payment_id = (SELECT max(payment_id) - 7 FROM payment) AND payment_date < '2022-06-01';
UPDATE rental SET return_date = clock_timestamp() WHERE rental_id = :rental_id - 3;
UPDATE film SET rental_rate = rental_rate, length = length + 1 WHERE film_id = :fid;
UPDATE film SET description = (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 150)) WHERE film_id = :fid AND :dice = 1;
UPDATE customer SET active = 1 - active, email = 'e' || :amt || '@example.com' WHERE customer_id = :cid;
DELETE FROM payment WHERE payment_id = (SELECT max(payment_id) - 50 FROM payment);
END;
`;

function startReplicant(args: string[]) {
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const done = new Promise<{ code: number; out: string }>((resolve) =>
    child.on(
      "close",
      (code, signal) => resolve({ code: code ?? (signal === "SIGKILL" ? 137 : 128), out }),
    )
  );
  // process.kill: with ChildProcess.kill Deno reports a clean exit as 128.
  return { done, kill: (signal: "SIGKILL" | "SIGTERM") => process.kill(child.pid!, signal) };
}

async function main(): Promise<number> {
  if (!existsSync(mirror)) {
    console.log(`pagila soak: skipped, no mirror at ${mirror} (set PAGILA_MIRROR)`);
    return 0;
  }
  const schema = git("pagila-schema.sql");
  if (schema === null) {
    console.log(`pagila soak: skipped, ${mirror} has no pagila-schema.sql`);
    return 0;
  }
  const data = git("pagila-data.sql");
  console.log(`pagila soak: seed ${seed} (SOAK_SEED=${seed}), ${seconds} s, pgbench ${rate} tx/s`);
  const rand = prng(seed);
  const tag = `${Date.now().toString(36)}`;
  const database = `pagila_soak_${tag}`;
  const id = `pagila-soak-${tag}`;
  const slot = `replicant_default_${id}`.replace(/[^a-z0-9_]/g, "_");
  const admin = new pg.Client(pgEnv);
  await admin.connect();
  const version = Number((await admin.query("SHOW server_version_num")).rows[0].server_version_num);
  const vector = (await admin.query("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"))
    .rows.length > 0;
  await admin.query(`CREATE DATABASE ${database}`);
  const dir = mkdtempSync(join(tmpdir(), "pagila-soak-"));
  const db = new pg.Client({ ...pgEnv, database });
  const redis = new Redis(redisEnv);
  let run: ReturnType<typeof startReplicant> | null = null;
  let failed = false;
  try {
    await db.connect();
    const psql = (file: string) =>
      execFileSync("psql", [
        "-h",
        pgEnv.host,
        "-p",
        String(pgEnv.port),
        "-U",
        pgEnv.user,
        "-d",
        database,
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-f",
        file,
      ], { stdio: ["ignore", "ignore", "inherit"] });
    writeFileSync(join(dir, "schema.sql"), adaptSchema(schema, version, vector));
    psql(join(dir, "schema.sql"));
    writeFileSync(join(dir, "data.sql"), data ?? GENERATED_DATA);
    psql(join(dir, "data.sql"));
    console.log(
      `loaded Pagila's schema${vector ? "" : " (without pgvector's film_embedding)"} and ${
        data ? "its data" : "generated rows (the mirror has no data file)"
      }`,
    );
    const write = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const conn = write(
      "pagila.yaml",
      `type: POSTGRESQL\nhost: ${pgEnv.host}\nport: ${pgEnv.port}\ndatabase: ${database}\n` +
        `username: ${pgEnv.user}\n`,
    );
    const redisConn = write(
      "redis.yaml",
      `type: REDIS_STREAM\nhost: ${redisEnv.host}\nport: ${redisEnv.port}\n`,
    );
    const args = (mode: string) => [
      "full",
      conn,
      redisConn,
      "--filter",
      write("filter.yaml", `allow:\n  - catalog: ${database}\n    schema: public\n`),
      "--applier",
      write("applier.yaml", "include-schema: false\n"),
      "--id",
      id,
      "--home",
      dir,
      mode,
    ];
    const bench = spawn(join(pgBin, "pgbench"), [
      "-n",
      "-h",
      pgEnv.host,
      "-p",
      String(pgEnv.port),
      "-U",
      pgEnv.user,
      "-c",
      "2",
      "-R",
      String(rate),
      "-T",
      String(seconds),
      "--max-tries",
      "10",
      "-f",
      write("pagila.pgbench", PGBENCH_SCRIPT),
      database,
    ], { stdio: ["ignore", "pipe", "pipe"] });
    let benchOut = "";
    bench.stdout!.on("data", (d) => (benchOut += d));
    bench.stderr!.on("data", (d) => (benchOut += d));
    const benchDone = new Promise<number>((r) => bench.on("close", (c) => r(c ?? 1)));
    let benchEnded = false;
    benchDone.then(() => (benchEnded = true));

    run = startReplicant(args("--overwrite"));
    let kills = 0;
    while (!benchEnded) {
      await new Promise((r) => setTimeout(r, 3000 + rand() * 9000));
      if (benchEnded) break;
      run.kill("SIGKILL");
      const r = await run.done;
      if (r.code !== 137) throw new Error(`replicant ended by itself (${r.code}): ${r.out}`);
      kills++;
      run = startReplicant(args("--resume"));
    }
    const benchCode = await benchDone;
    // Every change committed so far is in Redis once the slot confirms past this point.
    const end = (await db.query("SELECT pg_current_wal_lsn()::text AS l")).rows[0].l;
    const caughtUp = Date.now() + 300_000;
    for (;;) {
      const r = await db.query(
        "SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $1",
        [slot, end],
      );
      if (r.rows[0]?.ok) break;
      if (Date.now() > caughtUp) throw new Error(`replicant did not reach ${end} in 5 minutes`);
      await new Promise((r) => setTimeout(r, 500));
    }
    run.kill("SIGTERM");
    const last = await run.done;
    run = null;
    if (last.code !== 0) throw new Error(`replicant exited ${last.code}: ${last.out}`);
    console.log(
      `pgbench: exit ${benchCode}; ${
        (/number of transactions actually processed: \d+/.exec(benchOut) ?? [""])[0]
      }; ${(/number of failed transactions: [^\n]*/.exec(benchOut) ?? [""])[0]}`,
    );
    console.log(`replicant: ${kills} kill -9 and --resume`);

    const tables = (await db.query(
      `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        ORDER BY 1`,
    )).rows.map((r: { relname: string }) => r.relname);
    const partitionStreams = (await redis.keys(`${database}_public_payment_p*`)).length;
    console.log(`streams of partitions: ${partitionStreams}`);
    if (partitionStreams > 0) failed = true;
    console.log("table                rows  changes  replay");
    for (const t of tables) {
      const stream = `${database}_public_${t}`;
      try {
        const r = await assertTableReplays(db, redis, `public.${t}`, {
          snapshot: stream,
          cdc: `${stream}_cdc_logs`,
        });
        console.log(
          `${t.padEnd(18)} ${String(r.rows).padStart(6)} ${String(r.changes).padStart(8)}  same`,
        );
      } catch (err) {
        failed = true;
        console.log(`${t.padEnd(18)} DIFFERENT: ${(err as Error).message.slice(0, 400)}`);
      }
    }
    return failed || benchCode !== 0 ? 1 : 0;
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await db.end().catch(() => {});
    await admin.query(
      "SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1",
      [slot],
    ).catch(() => {});
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => {});
    await admin.end();
    for (const pattern of [`${database}_*`, `replicate_io_*_default_${id}`]) {
      const keys = await redis.keys(pattern);
      if (keys.length > 0) await redis.del(...keys);
    }
    redis.disconnect();
  }
}

process.exit(await main());
