/**
 * Soak with the real Sakila sample database, when a copy of it is present outside the
 * repository (nothing of it is in the repository): loads it into the private MariaDB
 * (`scripts/services`), runs `replicant full` on it through the binary while a seeded writer
 * does rental-shop work (rentals, returns, payments, film edits that fire Sakila's triggers on
 * the MyISAM `film_text`, actors joining and leaving films), kills replicant with SIGKILL a few
 * times and resumes it, then replays every stream independently and compares every column of
 * every row of every table with the database.
 *
 *   SAKILA_MIRROR=/work/.mirror/gabrielqueirozsmn+sakila/repo \
 *     ./scripts/deno run -A scripts/soak_sakila.ts
 *
 * SAKILA_MIRROR is a git directory (or a plain folder) holding sakila-schema.sql and
 * sakila-data.sql; without it the soak says so and exits 0. Other settings: SOAK_SECONDS
 * (writer time, default 60), SOAK_KILLS (default 5), REPLICANT_TEST_SEED (replays a run),
 * REPLICANT_BIN (default dist/replicant). It uses the database `sakila` of the private
 * MariaDB (dropped first) and its own Redis keys, removed at the end.
 */
import { execFileSync, spawnSync } from "node:child_process";
import type { Buffer } from "node:buffer";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";
import type mysql from "mysql2/promise";
import { deleteKeys, redisClient } from "../tests/helpers/clients.ts";
import { prng } from "../tests/helpers/change_log.ts";
import { expectedRows } from "../tests/helpers/rental_schema.ts";
import { connect as connectExact } from "../tests/helpers/mysql_fixture.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../tests/helpers/replicant.ts";
import { serviceEnv, waitFor } from "../tests/helpers/services.ts";
import {
  assertStrictPositions,
  changes,
  differences,
  multiset,
  replayTable,
} from "../tests/helpers/stream_replay.ts";

const DB = "sakila";
const mirror = process.env.SAKILA_MIRROR ?? "/work/.mirror/gabrielqueirozsmn+sakila/repo";
const seconds = Number(process.env.SOAK_SECONDS ?? 60);
const kills = Number(process.env.SOAK_KILLS ?? 5);
const seed = Number(process.env.REPLICANT_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
const env = serviceEnv().mysql;

/** A file of the copy, as bytes (the data file holds binary BLOB literals). */
function sakilaFile(name: string): Buffer | null {
  if (existsSync(join(mirror, name))) return readFileSync(join(mirror, name));
  if (!existsSync(mirror)) return null;
  try {
    return execFileSync("git", ["--git-dir", mirror, "show", `HEAD:${name}`], {
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch {
    return null;
  }
}

const schema = sakilaFile("sakila-schema.sql");
const data = sakilaFile("sakila-data.sql");
if (schema === null || data === null) {
  console.log(
    `soak_sakila: no Sakila copy at ${mirror} (SAKILA_MIRROR): skipped. A mirror of a ` +
      "repository holding sakila-schema.sql and sakila-data.sql is enough.",
  );
  process.exit(0);
}

/** Runs SQL with the mariadb client; the data file's BLOB literals need a binary session. */
function load(sql: Buffer, charset: string): void {
  const r = spawnSync(
    "mariadb",
    // --force: some copies carry a view that does not load (it plays no part here).
    [
      "-h",
      env.host,
      "-P",
      String(env.port),
      "-u",
      env.user,
      `--default-character-set=${charset}`,
      "--binary-mode",
      "--force",
      ...(charset === "binary" ? [DB] : []),
    ],
    { input: sql, env: { ...process.env, MYSQL_PWD: env.password } },
  );
  const stderr = String(r.stderr);
  if (r.status !== 0 && !/ERROR 1146 .* doesn't exist/.test(stderr)) {
    throw new Error(`loading Sakila failed: ${stderr}`);
  }
}

const connect = () => connectExact(DB);

const RATINGS = ["G", "PG", "PG-13", "R", "NC-17"];
const FEATURES = ["Trailers", "Commentaries", "Deleted Scenes", "Behind the Scenes"];

/** One random piece of rental-shop work, in one transaction. */
async function work(c: mysql.Connection, rand: () => number): Promise<void> {
  const pick = async (sql: string) => {
    const [rows] = await c.query(`${sql} ORDER BY RAND(${Math.floor(rand() * 1e9)}) LIMIT 1`);
    return (rows as Record<string, number>[])[0];
  };
  await c.query("BEGIN");
  try {
    const dice = rand();
    if (dice < 0.35) {
      const inv = await pick("SELECT inventory_id FROM inventory");
      const cu = await pick("SELECT customer_id FROM customer");
      const staff = await pick("SELECT staff_id FROM staff");
      const [r] = await c.query(
        "INSERT INTO rental (rental_date, inventory_id, customer_id, staff_id) " +
          "VALUES (NOW(), ?, ?, ?)",
        [inv.inventory_id, cu.customer_id, staff.staff_id],
      );
      await c.query(
        "INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date) " +
          "VALUES (?, ?, ?, ?, NOW())",
        [
          cu.customer_id,
          staff.staff_id,
          (r as { insertId: number }).insertId,
          (rand() * 10).toFixed(2),
        ],
      );
    } else if (dice < 0.5) {
      const r = await pick("SELECT rental_id FROM rental WHERE return_date IS NULL");
      if (r) {
        await c.query("UPDATE rental SET return_date = NOW() WHERE rental_id = ?", [r.rental_id]);
      }
    } else if (dice < 0.62) {
      const f = await pick("SELECT film_id FROM film");
      await c.query(
        "UPDATE film SET description = ?, rating = ?, special_features = ?, rental_rate = ? " +
          "WHERE film_id = ?",
        [
          `Soak ${seed} ${Math.floor(rand() * 1e9).toString(36)} éé`,
          RATINGS[Math.floor(rand() * RATINGS.length)],
          FEATURES.filter(() => rand() < 0.5).join(","),
          (rand() * 5).toFixed(2),
          f.film_id,
        ],
      );
    } else if (dice < 0.72) {
      const cu = await pick("SELECT customer_id FROM customer");
      await c.query(
        "UPDATE customer SET email = ?, active = 1 - active WHERE customer_id = ?",
        [`soak${Math.floor(rand() * 1e9)}@example.org`, cu.customer_id],
      );
    } else if (dice < 0.8) {
      const [a] = await c.query("INSERT INTO actor (first_name, last_name) VALUES (?, ?)", [
        "SOAK",
        `ACTOR${Math.floor(rand() * 1e6)}`,
      ]);
      const f = await pick("SELECT film_id FROM film");
      await c.query("INSERT INTO film_actor (actor_id, film_id) VALUES (?, ?)", [
        (a as { insertId: number }).insertId,
        f.film_id,
      ]);
    } else if (dice < 0.85) {
      const a = await pick("SELECT actor_id FROM actor WHERE first_name = 'SOAK'");
      if (a) {
        await c.query("DELETE FROM film_actor WHERE actor_id = ?", [a.actor_id]);
        await c.query("DELETE FROM actor WHERE actor_id = ?", [a.actor_id]);
      }
    } else if (dice < 0.9) {
      // A new film (Sakila's trigger adds its film_text row).
      await c.query(
        "INSERT INTO film (title, description, release_year, language_id, rating, " +
          "special_features) VALUES (?, ?, 2006, 1, ?, ?)",
        [
          `SOAK FILM ${Math.floor(rand() * 1e9)}`,
          "A soak film, ünïcode",
          RATINGS[Math.floor(rand() * RATINGS.length)],
          FEATURES[Math.floor(rand() * FEATURES.length)],
        ],
      );
    } else if (dice < 0.95) {
      // A rental undone, its payments first (Sakila's FK would set them NULL).
      const r = await pick("SELECT rental_id FROM rental");
      await c.query("DELETE FROM payment WHERE rental_id = ?", [r.rental_id]);
      await c.query("DELETE FROM rental WHERE rental_id = ?", [r.rental_id]);
    } else {
      const p = await pick("SELECT payment_id FROM payment");
      await c.query("UPDATE payment SET amount = amount + 0.01 WHERE payment_id = ?", [
        p.payment_id,
      ]);
    }
    await c.query("COMMIT");
  } catch (err) {
    await c.query("ROLLBACK").catch(() => {});
    throw err;
  }
}

async function main(): Promise<number> {
  console.log(`soak_sakila: seed ${seed} (REPLICANT_TEST_SEED), ${seconds} s, ${kills} kills`);
  const redis = redisClient();
  const id = `sakila-soak-${Date.now().toString(36)}`;
  let run: RunningReplicant | null = null;
  const admin = await connectExact();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${DB}`);
    load(schema!, "utf8mb4");
    load(data!, "binary");
    const writer = await connect();
    const rand = prng(seed);
    const home = scratchHome();
    const source = home.write(
      "mysql.yaml",
      `type: MARIADB\nhost: ${env.host}\nport: ${env.port}\nusername: ${env.user}\n` +
        `password: "${env.password}"\nslave-server-ids: [${2000 + (seed % 60_000)}]\n`,
    );
    const args = (mode: string) => [
      "full",
      source,
      home.redisConn,
      "--filter",
      home.write("filter.yaml", `allow:\n  - catalog: ${DB}\n`),
      "--extractor",
      home.write("extractor.yaml", "snapshot:\n  threads: 2\n  fetch-size-rows: 500\n"),
      "--id",
      id,
      "--home",
      home.dir,
      mode,
    ];
    const [tableRows] = await admin.query(
      "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? " +
        "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
      [DB],
    );
    const tables = (tableRows as { t: string }[]).map((r) => r.t);
    if (tables.length < 16) throw new Error(`Sakila loaded ${tables.length} tables, not 16`);
    const keys = new Map<string, string[]>();
    for (const t of tables) {
      const [k] = await admin.query(
        "SELECT COLUMN_NAME AS c FROM information_schema.KEY_COLUMN_USAGE WHERE " +
          "TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
        [DB, t],
      );
      keys.set(t, (k as { c: string }[]).map((r) => r.c));
    }

    let written = 0;
    let stopping = false;
    const writing = (async () => {
      while (!stopping) {
        await work(writer, rand);
        written++;
        await sleep(5);
      }
    })();
    const deadline = Date.now() + seconds * 1000;
    run = startReplicant([...args("--overwrite"), "--replace-existing"]);
    /** Fails with replicant's output when it stopped by itself. */
    const alive = async (r: RunningReplicant) => {
      const early = await Promise.race([r.done, sleep(0).then(() => null)]);
      if (early) throw new Error(`replicant exited with ${early.code}: ${early.stderr}`);
    };
    for (let k = 0; k < kills; k++) {
      await sleep(Math.max(1000, (deadline - Date.now()) / (kills - k) * rand() * 1.5));
      const current: RunningReplicant = run;
      await alive(current);
      current.kill("SIGKILL");
      await current.done;
      run = startReplicant(args("--resume"));
    }
    await sleep(Math.max(0, deadline - Date.now()));
    stopping = true;
    await writing;
    // A last marker change, then wait for the payment stream to have it.
    await writer.query("INSERT INTO category (name) VALUES ('soak-marker')");
    const last: RunningReplicant = run;
    await waitFor(async () => {
      await alive(last);
      const tail = await redis.xrevrange(`${DB}_category_cdc_logs`, "+", "-", "COUNT", 1);
      return tail.some(([, f]) => f[1].includes("soak-marker"));
    }, { what: "the marker", timeoutMs: 300_000, intervalMs: 500 });
    // Everything before the marker is in: one more second for other streams' writers.
    await sleep(2000);
    last.kill("SIGTERM");
    const res = await last.done;
    run = null;
    await writer.end();

    const verify = await connect();
    await verify.query("SET time_zone = '+00:00'");
    let rows = 0;
    const diffs: string[] = [];
    for (const t of tables) {
      const snap = await changes(redis, `${DB}_${t}`);
      const cdc = await changes(redis, `${DB}_${t}_cdc_logs`);
      assertStrictPositions(`${t}_cdc_logs`, cdc);
      const want = await expectedRows(verify, DB, t);
      rows += want.length;
      diffs.push(
        ...differences(
          t,
          keys.get(t)!,
          replayTable(keys.get(t)!, [...snap, ...cdc]),
          multiset(want),
        ),
      );
    }
    await verify.end();
    console.log(
      `soak_sakila: ${written} transactions, ${kills} kills, exit ${res.code}; ${tables.length} ` +
        `tables, ${rows} rows compared, ${diffs.length} differences`,
    );
    for (const d of diffs.slice(0, 20)) console.log(`  ${d}`);
    const warnings = res.stderr.split("\n").filter((l) => /warning/.test(l));
    for (const w of [...new Set(warnings)].slice(0, 10)) console.log(`  ${w}`);
    return diffs.length === 0 && res.code === 0 ? 0 : 1;
  } finally {
    if (run) {
      try {
        run.kill("SIGKILL");
      } catch { /* already gone */ }
      await run.done;
    }
    await deleteKeys(redis, `${DB}_*`);
    await deleteKeys(redis, `replicate_io_*_default_${id}`);
    await admin.query(`DROP DATABASE IF EXISTS ${DB}`);
    await admin.end();
    redis.disconnect();
  }
}

process.exit(await main());
