/**
 * `realtime.start-position` through the binary, for each way Arcion documents: MySQL `log` +
 * `position`, `gtid`, `start-timestamp` and `rewind-realtime-start-position-m`; PostgreSQL
 * `start-lsn` and `start-timestamp`. Two rows are written some time apart; each start must
 * give exactly the rows from its point on, and a start the source can no longer serve is
 * refused.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { deleteKeys, pgClient, readStream, redisClient } from "../helpers/clients.ts";
import { mysqlFixture } from "../helpers/mysql_fixture.ts";
import { runReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";

type Redis = ReturnType<typeof redisClient>;

/** The ids of the `c` entries of a compact stream. */
async function insertedIds(redis: Redis, stream: string): Promise<number[]> {
  return (await readStream(redis, stream)).map(([, f]) => JSON.parse(f[1]).payload)
    .filter((p) => p.op === "c").map((p) => Number(p.after.id));
}

/** Runs `realtime` until `stream` holds a `c` of `lastId`, stops it cleanly, gives the ids. */
async function realtimeUntil(
  args: string[],
  redis: Redis,
  stream: string,
  lastId: number,
): Promise<number[]> {
  const run = startReplicant(args);
  let exited = false;
  run.done.then(() => (exited = true));
  try {
    await waitFor(async () => {
      if (exited) throw new Error(`replicant exited: ${(await run.done).stderr}`);
      return (await insertedIds(redis, stream)).includes(lastId);
    }, { what: `id ${lastId} in ${stream}`, timeoutMs: 30_000, intervalMs: 100 });
  } finally {
    if (!exited) run.kill("SIGTERM");
  }
  const res = await run.done;
  assert.equal(res.code, 0, res.stderr);
  return await insertedIds(redis, stream);
}

Deno.test("start-position (mariadb): log+position, gtid, start-timestamp, rewind; an unservable time is refused", async () => {
  const f = await mysqlFixture("myfid_start");
  const serverMs = async () => {
    const [r] = await f.db.query("SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) AS t");
    return Number((r as { t: number }[])[0].t);
  };
  const masterStatus = async () => {
    const [r] = await f.db.query("SHOW MASTER STATUS");
    const row = (r as { File: string; Position: number }[])[0];
    const [g] = await f.db.query("SELECT @@GLOBAL.gtid_binlog_pos AS g");
    return { file: row.File, pos: Number(row.Position), gtid: (g as { g: string }[])[0].g };
  };
  try {
    await f.db.query("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))");
    await f.db.query("INSERT INTO t VALUES (1, 'before')");
    const afterFirst = await masterStatus();
    await sleep(1500);
    const between = await serverMs();
    await sleep(1100);
    const beforeSecond = await masterStatus();
    await f.db.query("INSERT INTO t VALUES (2, 'after')");
    const filter = f.home.write("filter.yaml", `allow:\n  - catalog: ${f.database}\n`);
    const stream = `${f.database}_t_cdc_logs`;
    const run = async (name: string, startPosition: string) => {
      await deleteKeys(f.redis, `${f.database}_*`);
      const extractor = f.home.write(
        `${name}.yaml`,
        `realtime:\n  start-position:\n${startPosition}`,
      );
      return await realtimeUntil(
        [
          "realtime",
          f.sourceConn,
          f.home.redisConn,
          "--extractor",
          extractor,
          "--filter",
          filter,
          "--id",
          `${f.id}-${name}`,
          "--home",
          f.home.dir,
        ],
        f.redis,
        stream,
        2,
      );
    };
    assert.deepEqual(
      await run("log", `    log: ${afterFirst.file}\n    position: ${afterFirst.pos}\n`),
      [2],
    );
    assert.deepEqual(await run("gtid", `    gtid: ${afterFirst.gtid}\n`), [2]);
    assert.deepEqual(
      await run("time", `    start-timestamp: "${new Date(between).toISOString()}"\n`),
      [2],
    );
    // One minute before the second row's transaction: the first row again.
    assert.deepEqual(
      await run(
        "rewind",
        `    log: ${beforeSecond.file}\n    position: ${beforeSecond.pos}\n` +
          "    rewind-realtime-start-position-m: 1\n",
      ),
      [1, 2],
    );

    // Before the oldest binary log the server keeps: refused, nothing streamed.
    const old = f.home.write(
      "old.yaml",
      "realtime:\n  start-position:\n    start-timestamp: '2001-01-01 00:00 UTC'\n",
    );
    const refused = await runReplicant([
      "realtime",
      f.sourceConn,
      f.home.redisConn,
      "--extractor",
      old,
      "--filter",
      filter,
      "--id",
      `${f.id}-old`,
      "--home",
      f.home.dir,
    ]);
    // A start the source can no longer serve is a gap: exit 5, named as such.
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(
      refused.stderr,
      /checkpoint: start-timestamp 2001-01-01T00:00:00\.000Z \(extractor realtime\.start-position\)/,
    );
    assert.match(
      refused.stderr,
      /the source can deliver: binlogs \S+ to \S+; the oldest begins at /,
    );
  } finally {
    for (const name of ["log", "gtid", "time", "rewind", "old"]) {
      await deleteKeys(f.redis, `replicate_io_*_default_${f.id}-${name}`);
    }
    await f.cleanup();
  }
});

Deno.test("start-position (postgresql): start-lsn, start-timestamp; a past time on a new slot is refused", async () => {
  const db = await pgClient();
  const redis = redisClient();
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const schema = `start_${tag}`;
  const home = scratchHome();
  const ids: string[] = [];
  const stream = `replicant_${schema}_t_cdc_logs`;
  const filter = home.write(
    "filter.yaml",
    `allow:\n  - catalog: replicant\n    schema: ${schema}\n`,
  );
  const slotOf = (id: string) => `replicant_default_${id.replaceAll("-", "_")}`;
  const serverMs = async () =>
    Number(
      (await db.query("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8 AS t")).rows[0]
        .t,
    );
  /**
   * Starts `realtime` with the start position; once its slot streams, `write` runs; returns
   * the ids that landed when `lastId` did.
   */
  const run = async (
    name: string,
    startPosition: string,
    write: () => Promise<void>,
    lastId: number,
  ) => {
    const id = `start-pg-${tag}-${name}`;
    ids.push(id);
    const extractor = home.write(`${name}.yaml`, `realtime:\n  start-position:\n${startPosition}`);
    const streaming = (async () => {
      await waitFor(async () =>
        (await db.query(
          "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
          [slotOf(id)],
        )).rows.length === 1, { what: `slot of ${id} streaming`, timeoutMs: 30_000 });
      await write();
    })();
    const got = await realtimeUntil(
      [
        "realtime",
        home.pgConn,
        home.redisConn,
        "--extractor",
        extractor,
        "--filter",
        filter,
        "--id",
        id,
        "--home",
        home.dir,
      ],
      redis,
      stream,
      lastId,
    );
    await streaming;
    return got;
  };
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(`CREATE TABLE ${schema}.t (id int PRIMARY KEY, v text)`);
    // Selected too: a table without a key needs a replica identity to be published.
    await db.query(`CREATE TABLE ${schema}.filler (n int)`);
    await db.query(`ALTER TABLE ${schema}.filler REPLICA IDENTITY FULL`);
    // start-lsn ahead of the new slot: a row committed before it is not replicated.
    const current = (await db.query("SELECT pg_current_wal_lsn()::text AS l")).rows[0].l as string;
    const [hi, lo] = current.split("/").map((x) => parseInt(x, 16));
    const ahead = BigInt(hi) * 2n ** 32n + BigInt(lo) + 0x100000n;
    const lsn = `${(ahead >> 32n).toString(16).toUpperCase()}/${
      (ahead & 0xffffffffn).toString(16).toUpperCase()
    }`;
    assert.deepEqual(
      await run("lsn", `    start-lsn: ${lsn}\n`, async () => {
        await db.query(`INSERT INTO ${schema}.t VALUES (1, 'before the lsn')`);
        // Move the WAL past the start LSN (a new segment begins on each switch).
        while (
          !(await db.query("SELECT pg_current_wal_lsn() > $1::pg_lsn AS past", [lsn])).rows[0]
            .past
        ) {
          await db.query(`INSERT INTO ${schema}.filler VALUES (1)`);
          await db.query("SELECT pg_switch_wal()");
        }
        await db.query(`INSERT INTO ${schema}.t VALUES (2, 'after the lsn')`);
      }, 2),
      [2],
    );

    // start-timestamp a moment ahead: what commits before it is passed over.
    await deleteKeys(redis, `replicant_${schema}_*`);
    const at = (await serverMs()) + 8000;
    assert.deepEqual(
      await run("time", `    start-timestamp: "${new Date(at).toISOString()}"\n`, async () => {
        await db.query(`INSERT INTO ${schema}.t VALUES (3, 'early')`);
        assert.ok((await serverMs()) < at, "the early row was committed before the start time");
        await sleep(Math.max(0, at - (await serverMs())) + 500);
        await db.query(`INSERT INTO ${schema}.t VALUES (4, 'late')`);
      }, 4),
      [4],
    );

    // A time already past, with no slot yet: the new slot cannot hold what came before.
    const past = home.write(
      "past.yaml",
      `realtime:\n  start-position:\n    start-timestamp: "${
        new Date((await serverMs()) - 60_000).toISOString()
      }"\n`,
    );
    const pastId = `start-pg-${tag}-past`;
    ids.push(pastId);
    const refused = await runReplicant([
      "realtime",
      home.pgConn,
      home.redisConn,
      "--extractor",
      past,
      "--filter",
      filter,
      "--id",
      pastId,
      "--home",
      home.dir,
    ]);
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(refused.stderr, /checkpoint: start-timestamp \S+ \(extractor realtime/);
    assert.match(refused.stderr, /the source can deliver: changes from now .*does not exist yet/);
  } finally {
    for (const id of ids) {
      await db.query(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
        [slotOf(id)],
      ).catch(() => {});
      await db.query(`DROP PUBLICATION IF EXISTS ${slotOf(id)}`).catch(() => {});
      await deleteKeys(redis, `replicate_io_*_default_${id}`);
    }
    await deleteKeys(redis, `replicant_${schema}_*`);
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
    redis.disconnect();
  }
});
