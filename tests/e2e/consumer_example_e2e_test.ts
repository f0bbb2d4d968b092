/**
 * End-to-end: examples/consumer.ts keeps a copy of a table from a real replication
 * (`replicant full` on PostgreSQL) while random transactions (and one TRUNCATE) change the
 * table; it is killed
 * (-9) once in the middle of a batch, a second consumer takes its pending entries over
 * (XAUTOCLAIM), and in the end the copy equals the table, row for row.
 *
 * Random: REPLICANT_TEST_SEED replays a run (the seed is printed when it fails).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  defaultSlotName,
  dropPublication,
  dropSlot,
} from "../../src/source/postgres/pg_replication_slot.ts";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import {
  repoRoot,
  type RunningReplicant,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";

const ROWS = 2000;
const TRANSACTIONS = 200;

/** A small deterministic generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** examples/consumer.ts as a user runs it, its output collected. */
function startConsumer(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "examples/consumer.ts", ...args],
    cwd: repoRoot,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = { text: "" };
  const collect = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) out.text += chunk;
  };
  const done = Promise.all([collect(child.stdout), collect(child.stderr), child.status]);
  return {
    out,
    kill: (signal: Deno.Signal) => {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
    },
    status: async () => (await done)[2],
  };
}

Deno.test("examples/consumer.ts: a killed consumer recovers its pending entries; copy = table", async () => {
  const seed = Number(process.env.REPLICANT_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const rand = random(seed);
  const env = serviceEnv();
  const schema = `consumer_${Date.now().toString(36)}`;
  const id = schema;
  const slot = defaultSlotName("default", id);
  const snapshotStream = `${env.pg.database}_${schema}_items`;
  const cdcStream = `${snapshotStream}_cdc_logs`;
  const dir = mkdtempSync(join(tmpdir(), "replicant-consumer-"));
  const mapFile = join(dir, "items.json");
  const db = await pgClient();
  const redis = redisClient();
  const home = scratchHome();
  let replicant: RunningReplicant | null = null;
  const consumers: ReturnType<typeof startConsumer>[] = [];
  const consumer = (name: string) => {
    const c = startConsumer([
      "--redis",
      `redis://${env.redis.host}:${env.redis.port}`,
      "--snapshot",
      snapshotStream,
      "--stream",
      cdcStream,
      "--group",
      "items-copy",
      "--consumer",
      name,
      "--state",
      mapFile,
      "--count",
      "20",
      "--work-ms",
      "100",
    ]);
    consumers.push(c);
    return c;
  };
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(
      `CREATE TABLE ${schema}.items (id int PRIMARY KEY, name text NOT NULL, qty int)`,
    );
    await db.query(
      `INSERT INTO ${schema}.items SELECT g, 'item ' || g, g % 7 FROM generate_series(1, ${ROWS}) g`,
    );
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: ${env.pg.database}\n    schema: ${schema}\n    types: [TABLE]\n`,
    );
    replicant = startReplicant(
      ["full", home.pgConn, home.redisConn, "--filter", filter, "--id", id, "--home", home.dir],
    );
    await waitFor(
      async () =>
        (await redis.hget(`replicate_io_checkpoint_default_${id}`, "snapshot:complete")) === "1",
      { what: "the snapshot", timeoutMs: 60_000 },
    );

    // Random transactions: inserts of new ids, updates and deletes of existing ones.
    const present = new Set(Array.from({ length: ROWS }, (_, i) => i + 1));
    let nextId = ROWS + 1;
    let entries = 0;
    const pick = () => [...present][Math.floor(rand() * present.size)];
    const writer = (async () => {
      for (let t = 0; t < TRANSACTIONS; t++) {
        if (t === TRANSACTIONS / 2) {
          // One TRUNCATE: an entry without key that empties the copy.
          await db.query(`TRUNCATE ${schema}.items`);
          present.clear();
          entries++;
        }
        await db.query("BEGIN");
        for (let n = 1 + Math.floor(rand() * 4); n > 0; n--) {
          const r = rand();
          if (r < 0.4 || present.size === 0) {
            const k = nextId++;
            await db.query(`INSERT INTO ${schema}.items VALUES ($1, $2, $3)`, [k, `new ${k}`, t]);
            present.add(k);
            entries++;
          } else if (r < 0.8) {
            await db.query(`UPDATE ${schema}.items SET qty = $2, name = $3 WHERE id = $1`, [
              pick(),
              Math.floor(rand() * 1000),
              `upd ${t}`,
            ]);
            entries++;
          } else {
            const k = pick();
            await db.query(`DELETE FROM ${schema}.items WHERE id = $1`, [k]);
            present.delete(k);
            entries += 2; // the delete and its tombstone
          }
        }
        await db.query("COMMIT");
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    // The consumer stops on a stream that is not there: the change stream appears with the
    // first change.
    await waitFor(async () => (await redis.exists(cdcStream)) === 1, {
      what: `${cdcStream} created by the first change`,
      timeoutMs: 60_000,
    });
    // The first consumer: killed -9 while it works on a batch it has not acknowledged.
    let pending = 0;
    for (let attempt = 0; attempt < 5 && pending === 0; attempt++) {
      const first = consumer(`first-${attempt}`);
      await waitFor(() => /applied \d+ change\(s\) up to \d+-\d+/.test(first.out.text), {
        what: "the first consumer applying changes",
        timeoutMs: 60_000,
      });
      await new Promise((r) => setTimeout(r, 30 + Math.floor(rand() * 60)));
      first.kill("SIGKILL");
      await first.status();
      pending = ((await redis.xpending(cdcStream, "items-copy")) as [number])[0];
    }
    assert.ok(pending > 0, "the kill left entries delivered but not acknowledged");

    // The second consumer takes them over, then reads on.
    const second = consumer("second");
    await writer;
    await waitFor(async () => (await redis.xlen(cdcStream)) === entries, {
      what: `${entries} entries in ${cdcStream}`,
      timeoutMs: 60_000,
    });
    const [[lastId]] = await redis.xrevrange(cdcStream, "+", "-", "COUNT", 1);
    await waitFor(async () => {
      const map = JSON.parse(readFileSync(mapFile, "utf8"));
      const left = ((await redis.xpending(cdcStream, "items-copy")) as [number])[0];
      return map.lastId === lastId && left === 0;
    }, { what: `the copy up to ${lastId}, nothing pending`, timeoutMs: 60_000 });
    second.kill("SIGTERM");
    assert.equal((await second.status()).code, 0, second.out.text);
    assert.match(second.out.text, new RegExp(`recovered ${pending} pending entries`));

    // The copy is the table.
    const rows = await db.query(`SELECT id, name, qty FROM ${schema}.items ORDER BY id`);
    const copy = JSON.parse(readFileSync(mapFile, "utf8")).rows as Record<string, unknown>;
    const table = Object.fromEntries(
      rows.rows.map((r: { id: number }) => [JSON.stringify({ id: r.id }), r]),
    );
    assert.equal(Object.keys(copy).length, rows.rowCount);
    assert.deepEqual(copy, table);
    assert.match(
      second.out.text,
      new RegExp(`applied \\d+ change\\(s\\) up to ${lastId}; the copy has ${rows.rowCount} rows`),
    );
  } catch (err) {
    (err as Error).message += `\n(REPLICANT_TEST_SEED=${seed} replays this run)`;
    throw err;
  } finally {
    for (const c of consumers) c.kill("SIGKILL");
    await Promise.all(consumers.map((c) => c.status()));
    if (replicant) {
      replicant.kill("SIGTERM");
      await replicant.done;
    }
    await dropSlot(db, slot).catch(() => {});
    await dropPublication(db, slot).catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
    await deleteKeys(redis, `${snapshotStream}*`);
    await deleteKeys(redis, `replicate_io_*_${id}`);
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
    rmSync(home.dir, { recursive: true, force: true });
  }
});

Deno.test("examples/consumer.ts: a stream that is not there, or no Redis, stops it with one message", async () => {
  const env = serviceEnv();
  const redis = redisClient();
  const dir = mkdtempSync(join(tmpdir(), "replicant-consumer-"));
  const missing = `consumer_missing_${Date.now().toString(36)}_cdc_logs`;
  const args = (url: string, ...more: string[]) => [
    "--redis",
    url,
    "--stream",
    missing,
    "--group",
    "g",
    "--state",
    join(dir, "copy.json"),
    "--exit-when-idle",
    ...more,
  ];
  try {
    const url = `redis://${env.redis.host}:${env.redis.port}`;
    const noStream = startConsumer(args(url));
    assert.equal((await noStream.status()).code, 2, noStream.out.text);
    assert.match(noStream.out.text, new RegExp(`--stream ${missing}: no such stream in Redis at`));
    assert.equal(await redis.exists(missing), 0, "the consumer created the stream");
    const noSnapshot = startConsumer(args(url, "--snapshot", `${missing}_snap`));
    assert.equal((await noSnapshot.status()).code, 2, noSnapshot.out.text);
    assert.match(noSnapshot.out.text, /--snapshot \S+_snap: no such stream/);

    // Nothing listens on the port: one line, no stack trace, exit 1.
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    const noRedis = startConsumer(args(`redis://127.0.0.1:${port}`));
    assert.equal((await noRedis.status()).code, 1, noRedis.out.text);
    assert.match(
      noRedis.out.text,
      new RegExp(`^consumer: Redis at redis://127\\.0\\.0\\.1:${port}: `),
    );
    assert.doesNotMatch(noRedis.out.text, /Unhandled error event|\n\s+at /);
  } finally {
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
});
