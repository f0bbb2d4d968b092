/**
 * End-to-end: the compiled binary snapshots real PostgreSQL tables into real Redis.
 */
import assert from "node:assert/strict";
import type pg from "pg";
import type { Redis } from "ioredis";
import { deleteKeys, pgClient, readStream, redisClient } from "../helpers/clients.ts";
import { runReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";

const SCHEMA = "e2e_snap";

async function withServers(fn: (db: pg.Client, redis: Redis) => Promise<void>): Promise<void> {
  const db = await pgClient();
  const redis = redisClient();
  try {
    await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE; CREATE SCHEMA ${SCHEMA}`);
    await deleteKeys(redis, `replicant_${SCHEMA}_*`);
    await fn(db, redis);
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    await deleteKeys(redis, `replicant_${SCHEMA}_*`);
    // The state and schema dump of the ids these tests run (e2e-threads, e2e-modes, …).
    await deleteKeys(redis, "replicate_io_*_default_e2e-*");
    await db.end();
    redis.disconnect();
  }
}

function filterFor(home: ReturnType<typeof scratchHome>, tables?: string[]): string {
  const allow = tables ? `\n    allow:\n${tables.map((t) => `      ${t}: {}`).join("\n")}` : "";
  return home.write(
    "filter.yaml",
    `allow:\n  - catalog: replicant\n    schema: ${SCHEMA}\n    types: [TABLE]${allow}\n`,
  );
}

/**
 * Asserts `actual` is 1..n in order, naming the first difference (a deepEqual diff of
 * 200k numbers would take gigabytes).
 */
function assertSequence(actual: number[], n: number, what: string): void {
  const bad = actual.findIndex((v, i) => v !== i + 1);
  assert.ok(
    bad === -1 && actual.length === n,
    `${what}: ${actual.length} entries, expected 1..${n}` +
      (bad === -1
        ? ""
        : `; at index ${bad}: ${actual[bad]} (around: ${
          actual.slice(Math.max(0, bad - 2), bad + 3)
        })`),
  );
}

/** Key column values (as text) of every entry of a stream, with the op of each. */
async function streamKeys(redis: Redis, stream: string, key = "id"): Promise<string[]> {
  const entries = await readStream(redis, stream);
  return entries.map(([, fields]) => String(JSON.parse(fields[0]).payload[key]));
}

Deno.test("snapshot of a 200k-row table and 5 small tables with threads: 4", async () => {
  await withServers(async (db, redis) => {
    await db.query(`CREATE TABLE ${SCHEMA}.big (id bigint PRIMARY KEY, v text, n numeric(12,3))`);
    await db.query(
      `INSERT INTO ${SCHEMA}.big SELECT g, md5(g::text), g / 7.0 FROM generate_series(1, 200000) g`,
    );
    for (let i = 1; i <= 5; i++) {
      // Mixed keys: composite, text, no key at all.
      const ddl = i === 4
        ? `CREATE TABLE ${SCHEMA}.small${i} (a int, b text, PRIMARY KEY (b, a))`
        : i === 5
        ? `CREATE TABLE ${SCHEMA}.small${i} (a int, b text)`
        : `CREATE TABLE ${SCHEMA}.small${i} (a int PRIMARY KEY, b text)`;
      await db.query(ddl);
      await db.query(
        `INSERT INTO ${SCHEMA}.small${i} SELECT g, 'row ' || g FROM generate_series(1, ${
          i * 997
        }) g`,
      );
    }
    await db.query(`ANALYZE`);
    const home = scratchHome();
    const extractor = home.write(
      "extractor.yaml",
      "snapshot:\n  threads: 4\n  fetch-size-rows: 7_000\n",
    );
    const applier = home.write("applier.yaml", "snapshot:\n  batch-size-rows: 1_000\n");
    const res = await runReplicant([
      "snapshot",
      home.pgConn,
      home.redisConn,
      "--extractor",
      extractor,
      "--applier",
      applier,
      "--filter",
      filterFor(home),
      "--id",
      "e2e-threads",
      "--home",
      home.dir,
      "--overwrite",
    ]);
    assert.equal(res.code, 0, res.stderr + res.stdout);
    assert.match(res.stdout, /replicant\.e2e_snap\.big\s+done\s+200,000/);

    const big = await streamKeys(redis, `replicant_${SCHEMA}_big`);
    assert.equal(big.length, 200_000);
    assert.equal(new Set(big).size, 200_000);
    assertSequence(big.map(Number), 200_000, "big");
    for (let i = 1; i <= 5; i++) {
      const stream = `replicant_${SCHEMA}_small${i}`;
      const entries = await readStream(redis, stream);
      assert.equal(entries.length, i * 997, stream);
      const keys = new Set(entries.map(([, f]) => {
        const row = JSON.parse(f[1]).payload.after;
        return `${row.a}|${row.b}`;
      }));
      const expected = new Set(
        Array.from({ length: i * 997 }, (_, j) => `${j + 1}|row ${j + 1}`),
      );
      assert.deepEqual(keys, expected, stream);
    }
    // Entries carry the row, losslessly: numeric as its exact text.
    const [, first] = (await redis.xrange(`replicant_${SCHEMA}_big`, "-", "+", "COUNT", 1))[0];
    const value = JSON.parse(first[1]).payload;
    assert.equal(value.op, "r");
    assert.deepEqual(value.after, { id: 1, v: "c4ca4238a0b923820dcc509a6f75849b", n: "0.143" });
  });
});

Deno.test("rows changed while the snapshot runs appear neither twice nor torn", async () => {
  await withServers(async (db, redis) => {
    const rows = 150_000;
    await db.query(`CREATE TABLE ${SCHEMA}.moving (id int PRIMARY KEY, version int NOT NULL)`);
    await db.query(
      `INSERT INTO ${SCHEMA}.moving SELECT g, 0 FROM generate_series(1, ${rows}) g`,
    );
    const home = scratchHome();
    const extractor = home.write("extractor.yaml", "snapshot:\n  fetch-size-rows: 2000\n");
    const stream = `replicant_${SCHEMA}_moving`;
    const run = startReplicant([
      "snapshot",
      home.pgConn,
      home.redisConn,
      "--extractor",
      extractor,
      "--filter",
      filterFor(home),
      "--id",
      "e2e-consistent",
      "--home",
      home.dir,
      "--overwrite",
    ]);
    let finished = false;
    run.done.then(() => (finished = true));
    await waitFor(async () => finished || (await redis.xlen(stream)) > 0, {
      timeoutMs: 30_000,
      what: "the snapshot to start writing",
    });
    // Move rows the snapshot has not reached yet and rows it already passed, add and delete.
    let writesDuringSnapshot = 0;
    for (let round = 1; !finished && round <= 200; round++) {
      await db.query(
        `BEGIN; UPDATE ${SCHEMA}.moving SET version = ${round} WHERE id % 97 = ${round % 97};
         DELETE FROM ${SCHEMA}.moving WHERE id = ${round * 500};
         INSERT INTO ${SCHEMA}.moving VALUES (${rows + round}, ${round}); COMMIT`,
      );
      if ((await redis.xlen(stream)) < rows) writesDuringSnapshot++;
    }
    const res = await run.done;
    assert.equal(res.code, 0, res.stderr);
    assert.ok(writesDuringSnapshot > 0, "no write happened while the snapshot ran");
    const entries = await readStream(redis, stream);
    const seen = entries.map(([, f]) => JSON.parse(f[1]).payload.after);
    assert.equal(seen.length, rows);
    assert.ok(
      seen.every((r: { version: number }) => r.version === 0),
      "a row changed after the start",
    );
    assertSequence(seen.map((r: { id: number }) => r.id), rows, "moving");
  });
});

Deno.test("write modes: existing streams need a choice; replace, append, truncate", async () => {
  await withServers(async (db, redis) => {
    await db.query(`CREATE TABLE ${SCHEMA}.w (id int PRIMARY KEY)`);
    await db.query(`INSERT INTO ${SCHEMA}.w SELECT generate_series(1, 100)`);
    const home = scratchHome();
    const stream = `replicant_${SCHEMA}_w`;
    const base = [
      "snapshot",
      home.pgConn,
      home.redisConn,
      "--filter",
      filterFor(home),
      "--id",
      "e2e-modes",
      "--home",
      home.dir,
    ];
    assert.equal((await runReplicant([...base, "--overwrite"])).code, 0);
    assert.equal(await redis.xlen(stream), 100);

    const again = await runReplicant(base);
    assert.equal(again.code, 2, "state of the id without --resume/--overwrite");
    assert.match(again.stderr, /--resume/);
    assert.match(again.stderr, /--overwrite/);

    const exists = await runReplicant([...base, "--overwrite"]);
    assert.equal(exists.code, 2);
    assert.match(exists.stderr, new RegExp(stream));
    assert.match(exists.stderr, /--replace-existing.*--truncate-existing.*--append-existing/s);
    assert.doesNotMatch(exists.stderr, /\n\s+at /, "no stack trace");

    assert.equal((await runReplicant([...base, "--overwrite", "--append-existing"])).code, 0);
    assert.equal(await redis.xlen(stream), 200);

    assert.equal((await runReplicant([...base, "--overwrite", "--replace"])).code, 0);
    assert.equal(await redis.xlen(stream), 100);

    await redis.xgroup("CREATE", stream, "consumers", "0");
    assert.equal((await runReplicant([...base, "--overwrite", "--truncate-existing"])).code, 0);
    assert.equal(await redis.xlen(stream), 100);
    const groups = (await redis.xinfo("GROUPS", stream)) as unknown[];
    assert.equal(groups.length, 1, "truncate keeps consumer groups");

    assert.equal((await runReplicant([...base, "--overwrite", "--replace-existing"])).code, 0);
    assert.equal(await redis.xlen(stream), 100);
    assert.equal(
      ((await redis.xinfo("GROUPS", stream)) as unknown[]).length,
      0,
      "replace drops them",
    );
  });
});

Deno.test("an interrupted snapshot resumes after the last key written", async () => {
  await withServers(async (db, redis) => {
    const rows = 200_000;
    await db.query(`CREATE TABLE ${SCHEMA}.r (id int PRIMARY KEY, v text)`);
    await db.query(`INSERT INTO ${SCHEMA}.r SELECT g, 'v' || g FROM generate_series(1, ${rows}) g`);
    const home = scratchHome();
    const stream = `replicant_${SCHEMA}_r`;
    const extractor = home.write("extractor.yaml", "snapshot:\n  fetch-size-rows: 1000\n");
    const args = [
      "snapshot",
      home.pgConn,
      home.redisConn,
      "--extractor",
      extractor,
      "--filter",
      filterFor(home),
      "--id",
      "e2e-resume",
      "--home",
      home.dir,
    ];
    const run = startReplicant([...args, "--overwrite"]);
    await waitFor(async () => (await redis.xlen(stream)) > 20_000, {
      timeoutMs: 30_000,
      what: "20k rows written",
    });
    run.kill("SIGKILL");
    await run.done;
    const partial = await redis.xlen(stream);
    assert.ok(partial < rows, `killed too late (${partial} rows)`);
    const res = await runReplicant([...args, "--resume"]);
    assert.equal(res.code, 0, res.stderr);
    const keys = (await streamKeys(redis, stream)).map(Number);
    assertSequence(keys, rows, "resumed");
    const rerun = await runReplicant([...args, "--resume"]);
    assert.equal(rerun.code, 0);
    assert.match(rerun.stdout, /already complete/);
  });
});

Deno.test("a composite key of tricky text spans many small chunks, every row once", async () => {
  await withServers(async (db, redis) => {
    // Text that COPY escapes or that SQL literals must quote, as keys of keyset chunks.
    const texts = [
      "",
      " ",
      "plain",
      "it's",
      "''",
      'say "hi"',
      "back\\slash",
      "\\N",
      "\\\\'",
      "tab\there",
      "new\nline",
      "cr\r\n",
      "\u0001\u007f",
      "ünï ☃ 😀 中文",
      "E'x'",
      "x'); DROP TABLE t; --",
    ];
    await db.query(
      `CREATE TABLE ${SCHEMA}.tricky (k text, n int, v text NOT NULL, PRIMARY KEY (k, n))`,
    );
    const expected = new Map<string, string>();
    for (const [i, k] of texts.entries()) {
      for (const n of [3, 1, 2]) {
        const v = `${k}|${i}/${n}`;
        await db.query(`INSERT INTO ${SCHEMA}.tricky VALUES ($1, $2, $3)`, [k, n, v]);
        expected.set(JSON.stringify([k, n]), v);
      }
    }
    const home = scratchHome();
    const extractor = home.write("extractor.yaml", "snapshot:\n  fetch-size-rows: 4\n");
    const applier = home.write("applier.yaml", "snapshot:\n  batch-size-rows: 3\n");
    const res = await runReplicant([
      "snapshot",
      home.pgConn,
      home.redisConn,
      "--extractor",
      extractor,
      "--applier",
      applier,
      "--filter",
      filterFor(home, ["tricky"]),
      "--id",
      "e2e-tricky-keys",
      "--home",
      home.dir,
      "--overwrite",
    ]);
    assert.equal(res.code, 0, res.stderr + res.stdout);
    const entries = await readStream(redis, `replicant_${SCHEMA}_tricky`);
    const got = entries.map(([, f]) => {
      const key = JSON.parse(f[0]).payload;
      const after = JSON.parse(f[1]).payload.after;
      assert.deepEqual(key, { k: after.k, n: after.n });
      return [JSON.stringify([after.k, after.n]), after.v] as [string, string];
    });
    assert.equal(got.length, texts.length * 3);
    assert.deepEqual(new Map(got), expected);
    // In key order, as PostgreSQL sorts them.
    const order = (await db.query(`SELECT k, n FROM ${SCHEMA}.tricky ORDER BY k, n`)).rows
      .map((r: { k: string; n: number }) => JSON.stringify([r.k, r.n]));
    assert.deepEqual(got.map(([k]) => k), order);
  });
});
