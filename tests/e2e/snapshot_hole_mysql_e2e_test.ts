/**
 * End-to-end: MariaDB `full` with GLOBAL replay consistency, every connection to Redis cut
 * for a second during the snapshot, replicant killed -9 while the cut-off batches are retried,
 * then `--resume` through the snapshot into realtime. Every row of the snapshot is in its
 * stream once, and a row written after the handoff reaches the GLOBAL stream.
 */
import assert from "node:assert/strict";
import type { Redis } from "ioredis";
import { StreamNaming } from "../../src/core/stream_naming.ts";
import { readStream } from "../helpers/clients.ts";
import { filterFile, mysqlFixture } from "../helpers/mysql_fixture.ts";
import { startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { TcpProxy } from "../helpers/tcp_proxy.ts";
import { serviceEnv } from "../helpers/services.ts";

const ROWS = 60_000;

/** Keys of the snapshot stream: its newest one above its length means a row is missing. */
async function hasHole(redis: Redis, stream: string): Promise<boolean> {
  const out = await redis.multi().xlen(stream).xrevrange(stream, "+", "-", "COUNT", 1).exec();
  const tail = out![1][1] as [string, string[]][];
  if (tail.length === 0) return false;
  const key = JSON.parse(tail[0][1][0]);
  return (key.payload ?? key).id > (out![0][1] as number);
}

Deno.test("snapshot hole (mariadb, GLOBAL): kill -9 after a cut to Redis, --resume copies every row", async () => {
  const f = await mysqlFixture("hole_my");
  const redisEnv = serviceEnv().redis;
  const proxy = await TcpProxy.start(redisEnv.port, redisEnv.host);
  try {
    await f.db.query("CREATE TABLE big (id int PRIMARY KEY, v varchar(300))");
    await f.db.query(
      `INSERT INTO big SELECT seq, RPAD(seq, 300, 'x') FROM seq_1_to_${ROWS}`,
    );
    const redisConn = f.home.write(
      "proxied.yaml",
      `type: REDIS_STREAM\nhost: 127.0.0.1\nport: ${proxy.port}\nmax-connections: 4\n`,
    );
    const args = (mode: string) => [
      "full",
      f.sourceConn,
      redisConn,
      "--filter",
      filterFile(f.home, `allow:\n  - catalog: ${f.database}\n    types: [TABLE]\n`),
      "--applier",
      f.home.write(
        "applier.yaml",
        "snapshot:\n  batch-size-rows: 200\n  max-retries: 30\n  retry-wait-duration-ms: 1000\n" +
          "realtime:\n  replay-consistency: GLOBAL\n",
      ),
      "--id",
      f.id,
      "--home",
      f.home.dir,
      mode,
    ];
    const naming = new StreamNaming(f.id, "default");
    const stream = naming.snapshotStream({ catalog: f.database, schema: null, table: "big" });
    const run = startReplicant(args("--overwrite"));
    let exited = false;
    run.done.then(() => exited = true);
    await waitFor(async () => (await f.redis.xlen(stream)) >= 2000, {
      what: "2000 rows",
      intervalMs: 5,
    });
    proxy.down();
    await new Promise((r) => setTimeout(r, 1000));
    proxy.up();
    // The cut-off batches are retried now: the kill lands as soon as a later one is in before
    // an earlier one, or after a few seconds of retries.
    let hole = false;
    const until = Date.now() + 4000;
    while (!hole && !exited && Date.now() < until) hole = await hasHole(f.redis, stream);
    if (!exited) run.kill("SIGKILL");
    const first = await run.done;
    const at = `first run ${first.code === 137 ? "killed" : `exit ${first.code}`} at ${await f
      .redis.xlen(stream)} rows, ${hole ? "with" : "without"} a hole seen`;

    const resumed = startReplicant(args("--resume"));
    try {
      const checkpoint = naming.checkpointKey();
      await waitFor(async () => (await f.redis.hget(checkpoint, "snapshot:complete")) === "1", {
        what: "the resumed snapshot to complete",
        timeoutMs: 120_000,
      });
      await f.db.query("INSERT INTO big VALUES (?, 'after the handoff')", [ROWS + 1]);
      const global = naming.globalCdcStream();
      await waitFor(
        async () =>
          (await readStream(f.redis, global)).some(([, fields]) =>
            JSON.parse(fields[0]).payload?.id === ROWS + 1 || JSON.parse(fields[0]).id === ROWS + 1
          ),
        { what: "the row written after the handoff in the GLOBAL stream", timeoutMs: 60_000 },
      );
    } finally {
      resumed.kill("SIGTERM");
    }
    const r = await resumed.done;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const ids = (await readStream(f.redis, stream)).map(([, fields]) => {
      const key = JSON.parse(fields[0]);
      return (key.payload ?? key).id as number;
    });
    const missing = ROWS - new Set(ids).size;
    assert.equal(missing, 0, `${missing} of ${ROWS} rows missing from ${stream} (${at})`);
    assert.equal(ids.length, ROWS, `entries in ${stream} (${at})`);
  } finally {
    await proxy.close();
    await f.cleanup();
  }
});
