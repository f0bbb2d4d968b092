/**
 * End-to-end `replicant verify` against PostgreSQL and MariaDB: while a generator writes and
 * `replicant full` streams, verify finds every table equal (exit 0); then one row changed
 * directly in Redis, one snapshot entry deleted and one extra entry added are each reported
 * with their key (exit 6, text and json); a stream recorded as trimmed by retention makes
 * its table "not verified" (exit 3), never "equal". With the replication stopped, verify
 * goes ahead when the source changed only other tables since, and waits (then gives up,
 * saying why) when a verified table changed.
 */
import assert from "node:assert/strict";
import mysql from "mysql2/promise";
import type { Redis } from "ioredis";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import {
  type RunningReplicant,
  runReplicant,
  type ScratchHome,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";
import {
  ChangeGenerator,
  type GeneratorOptions,
  mysqlTxRunner,
  pgTxRunner,
  readEntries,
} from "../helpers/change_log.ts";
import { dropPublication, dropSlot } from "../../src/source/postgres/pg_replication_slot.ts";
import { RETENTION_FIELD_PREFIX } from "../../src/ports/checkpoint.ts";

const ROWS = 3000;

interface SourceBed {
  /** Logical name → SQL name of the keyed tables the generator writes. */
  tables: Record<string, string>;
  stream(t: string): string;
  placeholders: GeneratorOptions["placeholders"];
  run: GeneratorOptions["run"];
  connFile(home: ScratchHome): string;
  filter: string;
  /** Adds and removes rows of the keyless table `k`. */
  touchKeyless(i: number): Promise<void>;
  /** A write to a table the filter does not select. */
  writeElsewhere(): Promise<void>;
  close(): Promise<void>;
}

async function pgBed(tag: string, id: string): Promise<SourceBed> {
  const schema = `verify_${tag}`;
  const slot = `replicant_default_${id}`.replace(/[^a-z0-9_]/g, "_").slice(0, 63);
  const db = await pgClient();
  const writer = await pgClient();
  const tables = { a: `${schema}.a`, b: `${schema}.b` };
  await db.query(`CREATE SCHEMA ${schema}`);
  for (const sql of Object.values(tables)) {
    await db.query(`CREATE TABLE ${sql} (id int PRIMARY KEY, v text NOT NULL, n bigint)`);
    await db.query(
      `INSERT INTO ${sql} SELECT g, md5(g::text), g::bigint * 7 FROM generate_series(1, ${ROWS}) g`,
    );
  }
  // Without a key, with duplicate rows; updates and deletes need the whole old row.
  await db.query(`CREATE TABLE ${schema}.k (a int, b text)`);
  await db.query(`ALTER TABLE ${schema}.k REPLICA IDENTITY FULL`);
  await db.query(`INSERT INTO ${schema}.k SELECT g % 50, 'x' FROM generate_series(1, 200) g`);
  await db.query(`CREATE SCHEMA ${schema}_other`);
  await db.query(`CREATE TABLE ${schema}_other.x (id serial PRIMARY KEY, v text)`);
  return {
    tables,
    stream: (t) => `replicant_${schema}_${t}`,
    placeholders: "dollar",
    run: pgTxRunner(writer),
    connFile: (home) => home.pgConn,
    filter: `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
    async touchKeyless(i) {
      await db.query(`INSERT INTO ${schema}.k VALUES ($1, 'y'), ($1, 'y')`, [i % 7]);
      await db.query(
        `DELETE FROM ${schema}.k WHERE ctid IN (SELECT ctid FROM ${schema}.k WHERE a = $1 LIMIT 1)`,
        [i % 50],
      );
    },
    async writeElsewhere() {
      await db.query(`INSERT INTO ${schema}_other.x (v) VALUES ('elsewhere')`);
    },
    async close() {
      await dropSlot(db, slot).catch(() => {});
      await dropPublication(db, slot).catch(() => {});
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await db.query(`DROP SCHEMA IF EXISTS ${schema}_other CASCADE`);
      await writer.end();
      await db.end();
    },
  };
}

async function mariadbBed(tag: string): Promise<SourceBed> {
  const env = serviceEnv().mysql;
  const connect = () =>
    mysql.createConnection({
      host: env.host,
      port: env.port,
      user: env.user,
      password: env.password,
    });
  const database = `verify_${tag}`;
  const db = await connect();
  const writer = await connect();
  const tables = { a: `${database}.a`, b: `${database}.b` };
  await db.query(`CREATE DATABASE ${database}`);
  await db.query(`USE ${database}`); // seq_1_to_N needs a current database
  for (const sql of Object.values(tables)) {
    await db.query(`CREATE TABLE ${sql} (id int PRIMARY KEY, v varchar(64) NOT NULL, n bigint)`);
    await db.query(`INSERT INTO ${sql} SELECT seq, md5(seq), seq * 7 FROM seq_1_to_${ROWS}`);
  }
  await db.query(`CREATE TABLE ${database}.k (a int, b varchar(8))`);
  await db.query(`INSERT INTO ${database}.k SELECT seq % 50, 'x' FROM seq_1_to_200`);
  await db.query(`CREATE DATABASE ${database}_other`);
  await db.query(`CREATE TABLE ${database}_other.x (id int AUTO_INCREMENT PRIMARY KEY, v text)`);
  return {
    tables,
    stream: (t) => `${database}_${t}`,
    placeholders: "question",
    run: mysqlTxRunner(writer),
    // Binlog clients of this test area use server ids 5301-5399.
    connFile: (home) =>
      home.write(
        "mysql.yaml",
        `type: MARIADB\nhost: ${env.host}\nport: ${env.port}\nusername: ${env.user}\n` +
          `password: "${env.password}"\nslave-server-ids: [${
            5301 + Math.floor(Math.random() * 99)
          }]\nmax-connections: 6\n`,
      ),
    filter: `allow:\n  - catalog: ${database}\n    types: [TABLE]\n`,
    async touchKeyless(i) {
      await db.query(`INSERT INTO ${database}.k VALUES (?, 'y'), (?, 'y')`, [i % 7, i % 7]);
      await db.query(`DELETE FROM ${database}.k WHERE a = ? LIMIT 1`, [i % 50]);
    },
    async writeElsewhere() {
      await db.query(`INSERT INTO ${database}_other.x (v) VALUES ('elsewhere')`);
    },
    async close() {
      await db.query(`DROP DATABASE IF EXISTS ${database}`);
      await db.query(`DROP DATABASE IF EXISTS ${database}_other`);
      await writer.end();
      await db.end();
    },
  };
}

interface VerifyTable {
  table: string;
  result: string;
  reason?: string;
  source_rows?: number;
  rebuilt_rows?: number;
  missing?: number;
  extra?: number;
  different?: number;
  samples?: { missing: string[]; extra: string[]; different: string[] };
}

/** `replicant verify --log-format json`: exit code and the `verify_table` events by table. */
async function verifyJson(args: string[]) {
  const res = await runReplicant([...args, "--log-format", "json"]);
  const events = res.stdout.trim().split("\n").filter((l) => l).map((l) => JSON.parse(l));
  const tables = new Map<string, VerifyTable>();
  for (const e of events) {
    if (e.event === "verify_table") tables.set(String(e.table).split(".").at(-1)!, e);
  }
  const summary = events.find((e) => e.event === "verify_summary");
  return { code: res.code, tables, summary, stderr: res.stderr, stdout: res.stdout };
}

/** An entry's fields with its key and `after` replaced (compact format). */
function retarget(fields: string[], id: number, change?: (after: Record<string, unknown>) => void) {
  const key = JSON.parse(fields[0]);
  const value = JSON.parse(fields[1]);
  const keyPayload = "payload" in key ? key.payload : key;
  keyPayload.id = id;
  const payload = "payload" in value ? value.payload : value;
  payload.after.id = id;
  change?.(payload.after);
  return [JSON.stringify(key), JSON.stringify(value)];
}

async function verifyScenario(source: "pg" | "mariadb"): Promise<void> {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const id = `verify-${source}-${tag}`;
  const seed = Math.floor(Math.random() * 2 ** 31);
  const bed = source === "pg" ? await pgBed(tag, id) : await mariadbBed(tag);
  const redis: Redis = redisClient();
  const home = scratchHome();
  let run: RunningReplicant | null = null;
  const generator = new ChangeGenerator({
    tables: bed.tables,
    placeholders: bed.placeholders,
    seed,
    pauseMs: 2,
    run: bed.run,
  });
  for (const t of Object.keys(bed.tables)) {
    generator.seed(t, Array.from({ length: ROWS }, (_, i) => i + 1));
  }
  const checkpointKey = `replicate_io_checkpoint_default_${id}`;
  const conn = bed.connFile(home);
  const filter = home.write("filter.yaml", bed.filter);
  const verifyArgs = ["verify", conn, home.redisConn, "--id", id, "--home", home.dir];
  try {
    run = startReplicant([
      "full",
      conn,
      home.redisConn,
      "--filter",
      filter,
      "--applier",
      home.write("applier.yaml", "realtime:\n  batch-size-rows: 50\n"),
      "--id",
      id,
      "--home",
      home.dir,
      "--overwrite",
    ]);
    const running: RunningReplicant = run;
    let exited = false;
    running.done.then(() => (exited = true));
    generator.start();
    await waitFor(async () => {
      if (exited) throw new Error(`replicant exited: ${(await running.done).stderr}`);
      return (await redis.hget(checkpointKey, "snapshot:complete")) === "1";
    }, { what: "snapshot complete", timeoutMs: 60_000 });
    let touches = 0;
    const keyless = (async () => {
      while (touches < 40) await bed.touchKeyless(touches++);
    })();
    await waitFor(async () => (await redis.xlen(`${bed.stream("a")}_cdc_logs`)) > 200, {
      what: "changes streaming",
      timeoutMs: 60_000,
    });

    // 1. While the writer and the replication run: every table equal, at one point.
    const live = await verifyJson(verifyArgs);
    assert.equal(live.code, 0, `seed ${seed}: ${live.stdout}\n${live.stderr}`);
    assert.deepEqual([...live.tables.keys()].sort(), ["a", "b", "k"]);
    for (const t of live.tables.values()) {
      assert.equal(t.result, "equal", JSON.stringify(t));
      assert.equal(t.source_rows, t.rebuilt_rows);
    }
    assert.ok(live.tables.get("a")!.source_rows! > ROWS / 2);
    assert.equal(live.summary.exit_code, 0);
    assert.equal(live.summary.equal, 3);

    await generator.stop();
    await keyless;
    // Once more after the writer stopped (replication still running, idle).
    const idle = await verifyJson(verifyArgs);
    assert.equal(idle.code, 0, `seed ${seed}: ${idle.stdout}\n${idle.stderr}`);

    // 2. Tampering directly in Redis.
    const snap = await readEntries(redis, bed.stream("a"));
    const cdc = await readEntries(redis, `${bed.stream("a")}_cdc_logs`);
    const touched = new Set(cdc.filter((e) => e.key).map((e) => Number(e.key!.id)));
    const untouched = snap.filter((e) => !touched.has(Number(e.key!.id)));
    assert.ok(untouched.length > 2);
    const raw = async (stream: string, entryId: string) =>
      (await redis.xrange(stream, entryId, entryId))[0][1];
    // One row changed: an update of row K1 with another value, positioned like the newest
    // change (so at or before the point verify reads).
    const newest = cdc.filter((e) => e.op === "u" || e.op === "c").at(-1)!;
    const k1 = Number(untouched[0].key!.id);
    await redis.xadd(
      `${bed.stream("a")}_cdc_logs`,
      "*",
      ...retarget(await raw(`${bed.stream("a")}_cdc_logs`, newest.id), k1, (after) => {
        after.v = "changed in Redis";
      }),
    );
    // One entry deleted: row K2's snapshot entry.
    const k2 = Number(untouched[1].key!.id);
    await redis.xdel(bed.stream("a"), untouched[1].id);
    // One extra entry: a snapshot row the source never had.
    const k3 = 90_000_000;
    await redis.xadd(bed.stream("a"), "*", ...retarget(await raw(bed.stream("a"), snap[0].id), k3));

    const tampered = await verifyJson(verifyArgs);
    assert.equal(tampered.code, 6, `seed ${seed}: ${tampered.stdout}\n${tampered.stderr}`);
    const a = tampered.tables.get("a")!;
    assert.equal(a.result, "different");
    assert.deepEqual([a.missing, a.extra, a.different], [1, 1, 1], JSON.stringify(a));
    assert.deepEqual(a.samples, {
      missing: [`{"id":${k2}}`],
      extra: [`{"id":${k3}}`],
      different: [`{"id":${k1}}`],
    });
    assert.equal(tampered.tables.get("b")!.result, "equal");
    assert.equal(tampered.summary.different, 1);
    // The same in text: a table with each key under its kind, exit 6.
    const text = await runReplicant(verifyArgs);
    assert.equal(text.code, 6, text.stderr);
    assert.match(text.stdout, /DIFFERENT/);
    assert.ok(
      text.stdout.includes(
        `missing {"id":${k2}}; extra {"id":${k3}}; different {"id":${k1}}`,
      ),
      text.stdout,
    );

    // 3. A stream recorded as trimmed by retention: that table is not verified.
    await redis.hset(
      checkpointKey,
      RETENTION_FIELD_PREFIX + `${bed.stream("b")}_cdc_logs`,
      JSON.stringify({ through: "1-0", at: new Date().toISOString() }),
    );
    const trimmed = await verifyJson([...verifyArgs, "--tables", "b", "k"]);
    assert.equal(trimmed.code, 3, trimmed.stderr);
    const b = trimmed.tables.get("b")!;
    assert.equal(b.result, "not_verified");
    assert.match(b.reason!, /_b_cdc_logs: trimmed by retention \(entries below 1-0 may be gone\)/);
    assert.equal(trimmed.tables.get("k")!.result, "equal");
    assert.equal(trimmed.tables.has("a"), false);

    const stopping: RunningReplicant = run;
    stopping.kill("SIGTERM");
    const res = await stopping.done;
    run = null;
    assert.equal(res.code, 0, res.stderr);

    // 4. Replication stopped, the source written only elsewhere since: nothing to wait for.
    await bed.writeElsewhere();
    const stopped = await verifyJson([...verifyArgs, "--tables", "k", "--wait-timeout", "30"]);
    assert.equal(stopped.code, 0, `${stopped.stdout}\n${stopped.stderr}`);
    assert.match(stopped.stderr, /no change of the verified tables lies between them/);
    // A change of a verified table the stopped replication did not deliver: verify waits for
    // it, and says why it gave up.
    await bed.touchKeyless(7);
    const behind = await runReplicant([...verifyArgs, "--tables", "k", "--wait-timeout", "3"]);
    assert.equal(behind.code, 2, behind.stderr);
    assert.match(behind.stderr, /has not reached .* after 3 s .*is it running\?/s);
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await generator.stop().catch(() => {});
    await bed.close();
    await deleteKeys(redis, `${bed.stream("")}*`);
    await deleteKeys(redis, `replicate_io_*_default_${id}`);
    redis.disconnect();
  }
}

Deno.test("verify (pg): equal while writing and streaming; tampered entries reported by key; trimmed not verified; stopped replication", async () => {
  await verifyScenario("pg");
});

Deno.test("verify (mariadb): equal while writing and streaming; tampered entries reported by key; trimmed not verified; stopped replication", async () => {
  await verifyScenario("mariadb");
});

/**
 * GLOBAL (one stream for every table, in commit order) with `applier`'s message format:
 * equal while the writer and the replication run; a snapshot entry deleted is reported.
 */
async function verifyGlobal(source: "pg" | "mariadb", format: "compact" | "fields") {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const id = `verify-g-${source}-${tag}`;
  const seed = Math.floor(Math.random() * 2 ** 31);
  const bed = source === "pg" ? await pgBed(tag, id) : await mariadbBed(tag);
  const redis: Redis = redisClient();
  const home = scratchHome();
  let run: RunningReplicant | null = null;
  const generator = new ChangeGenerator({
    tables: bed.tables,
    placeholders: bed.placeholders,
    seed,
    pauseMs: 2,
    run: bed.run,
  });
  for (const t of Object.keys(bed.tables)) {
    generator.seed(t, Array.from({ length: ROWS }, (_, i) => i + 1));
  }
  const global = `replicate_io_cdc_log_default_${id}`;
  const conn = bed.connFile(home);
  const verifyArgs = ["verify", conn, home.redisConn, "--id", id, "--home", home.dir];
  try {
    run = startReplicant([
      "full",
      conn,
      home.redisConn,
      "--filter",
      home.write("filter.yaml", bed.filter),
      "--applier",
      home.write(
        "applier.yaml",
        `realtime:\n  batch-size-rows: 50\n  replay-consistency: GLOBAL\nmessage-format: ${format}\n`,
      ),
      "--id",
      id,
      "--home",
      home.dir,
      "--overwrite",
    ]);
    const running: RunningReplicant = run;
    let exited = false;
    running.done.then(() => (exited = true));
    generator.start();
    let touches = 0;
    const keyless = (async () => {
      while (touches < 40) await bed.touchKeyless(touches++);
    })();
    await waitFor(async () => {
      if (exited) throw new Error(`replicant exited: ${(await running.done).stderr}`);
      return (await redis.xlen(global)) > 300;
    }, { what: "changes streaming into the GLOBAL stream", timeoutMs: 60_000 });
    const live = await verifyJson(verifyArgs);
    assert.equal(live.code, 0, `seed ${seed}: ${live.stdout}\n${live.stderr}`);
    for (const t of ["a", "b", "k"]) {
      assert.equal(live.tables.get(t)?.result, "equal", live.stdout);
      assert.deepEqual(
        (live.tables.get(t) as unknown as { streams: string[] }).streams,
        [bed.stream(t), global],
      );
    }
    await generator.stop();
    await keyless;
    // A snapshot row whose key no change touched, deleted directly in Redis.
    const touched = new Set<number>();
    for (const [, fields] of await redis.xrange(global, "-", "+")) {
      const key = format === "fields" ? fields[fields.indexOf("key") + 1] : fields[0];
      if (key !== "default") touched.add(Number(JSON.parse(key).payload?.id ?? JSON.parse(key).id));
    }
    const snap = await redis.xrange(bed.stream("a"), "-", "+");
    const victim = snap.find(([, f]) => {
      const key = JSON.parse(format === "fields" ? f[f.indexOf("key") + 1] : f[0]);
      return !touched.has(Number(key.payload?.id ?? key.id));
    })!;
    const victimKey = JSON.parse(
      format === "fields" ? victim[1][victim[1].indexOf("key") + 1] : victim[1][0],
    );
    await redis.xdel(bed.stream("a"), victim[0]);
    const cut = await verifyJson(verifyArgs);
    assert.equal(cut.code, 6, cut.stderr);
    assert.deepEqual(cut.tables.get("a")!.samples!.missing, [
      `{"id":${victimKey.payload?.id ?? victimKey.id}}`,
    ]);
    assert.equal(cut.tables.get("b")!.result, "equal");
    const stopping: RunningReplicant = run;
    stopping.kill("SIGTERM");
    const res = await stopping.done;
    run = null;
    assert.equal(res.code, 0, res.stderr);
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await generator.stop().catch(() => {});
    await bed.close();
    await deleteKeys(redis, `${bed.stream("")}*`);
    await deleteKeys(redis, `replicate_io_*_default_${id}`);
    redis.disconnect();
  }
}

Deno.test("verify (pg, GLOBAL, fields format): equal while streaming; a deleted entry reported", async () => {
  await verifyGlobal("pg", "fields");
});

Deno.test("verify (mariadb, GLOBAL, compact): equal while streaming; a deleted entry reported", async () => {
  await verifyGlobal("mariadb", "compact");
});
