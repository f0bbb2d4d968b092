/**
 * End-to-end: `replicant realtime` from a private MariaDB while the binlog rotates twice
 * (`FLUSH BINARY LOGS`) and the server is shut down and started again under it. Replicant
 * reconnects by itself (connection `max-retries` / `retry-wait-duration-ms`) and every committed
 * change lands in its stream exactly once, in commit order.
 */
import assert from "node:assert/strict";
import { deleteKeys, redisClient } from "../helpers/clients.ts";
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { startPrivateMariadb } from "../helpers/private_mariadb.ts";
import { seededTest, uniqueTag } from "../helpers/test_seed.ts";
import {
  assertExactlyOnce,
  assertPositions,
  ChangeGenerator,
  mysqlTxRunner,
  readEntries,
  tailHas,
  totalLength,
} from "../helpers/change_log.ts";

/**
 * Realtime against a private MariaDB; binlog rotations, then a server restart. With
 * `mustReconnect`, replicant must ride out the restart by itself; otherwise a replicant that
 * exits is started again with `--resume` (what an operator or supervisor does).
 */
async function restartRun(mustReconnect: boolean, seed: number): Promise<void> {
  const server = await startPrivateMariadb();
  const tag = uniqueTag();
  const database = `rs_${tag}`;
  const id = `restart-my-${tag}`;
  const redis = redisClient();
  const tables = { a: `${database}.a`, b: `${database}.b` };
  const cdcStream = (t: string) => `${database}_${t}_cdc_logs`;
  const cdcStreams = Object.keys(tables).map(cdcStream);
  let writer = await server.admin();
  let run: RunningReplicant | null = null;
  const generator = new ChangeGenerator({
    tables,
    placeholders: "question",
    seed,
    pauseMs: 3,
    run: mysqlTxRunner(() => writer),
  });
  try {
    await writer.query(`CREATE DATABASE ${database}`);
    await writer.query(`USE ${database}`);
    for (const [name, sql] of Object.entries(tables)) {
      await writer.query(`CREATE TABLE ${sql} (id int PRIMARY KEY, v varchar(64), n bigint)`);
      await writer.query(`INSERT INTO ${sql} SELECT seq, md5(seq), seq FROM seq_1_to_50`);
      generator.seed(name, Array.from({ length: 50 }, (_, i) => i + 1));
    }
    const home = scratchHome();
    const args = (mode: "--overwrite" | "--resume") => [
      "realtime",
      home.write(
        "mysql.yaml",
        `type: MARIADB\nhost: 127.0.0.1\nport: ${server.port}\nusername: root\n` +
          `slave-server-ids: [77]\nmax-connections: 4\nmax-retries: 100\n` +
          `retry-wait-duration-ms: 100\n`,
      ),
      home.redisConn,
      "--applier",
      home.write(
        "applier.yaml",
        "realtime:\n  batch-size-rows: 50\n  txn-size-rows: 50\ninclude-schema: false\n",
      ),
      "--filter",
      home.write("filter.yaml", `allow:\n  - catalog: ${database}\n    types: [TABLE]\n`),
      "--id",
      id,
      "--home",
      home.dir,
      mode,
    ];
    let exited = false;
    const launch = (mode: "--overwrite" | "--resume") => {
      const r = startReplicant(args(mode));
      exited = false;
      r.done.then(() => (exited = true));
      run = r;
      return r;
    };
    let current = launch("--overwrite");
    let resumes = 0;
    const alive = async () => {
      if (!exited) return;
      const res = await current.done;
      if (mustReconnect || resumes >= 3) {
        throw new Error(`replicant exited (${res.code}): ${res.stderr}`);
      }
      assert.equal(res.code, 1, res.stderr);
      resumes++;
      current = launch("--resume");
    };
    // Realtime starts "from now": write one marker at a time until one reaches a stream.
    await waitFor(async () => {
      await alive();
      if ((await totalLength(redis, cdcStreams)) > 0) return true;
      await generator.marker();
      return false;
    }, { what: "realtime streaming", timeoutMs: 30_000, intervalMs: 200 });
    generator.start();
    const progress = async (n: number, what: string) => {
      const want = (await totalLength(redis, cdcStreams)) + n;
      await waitFor(async () => {
        await alive();
        return (await totalLength(redis, cdcStreams)) >= want;
      }, { what, timeoutMs: 30_000 });
    };
    await progress(300, "changes before the first rotation");
    // Its own connection: FLUSH commits implicitly, it must not land inside a generator's
    // transaction.
    const admin = await server.admin();
    await admin.query("FLUSH BINARY LOGS");
    await progress(300, "changes after the first rotation");
    await admin.query("FLUSH BINARY LOGS");
    await admin.end();
    await progress(300, "changes after the second rotation");
    // Stop the server under replicant, write again once it is back.
    await generator.stop();
    await writer.end();
    await server.shutdown();
    await server.start();
    writer = await server.admin();
    generator.start();
    await progress(300, "changes after the server restart");
    await generator.stop();
    const last = await generator.marker();
    await waitFor(async () => {
      await alive();
      for (const t of Object.keys(tables)) {
        if (!(await tailHas(redis, cdcStream(t), last.token, "mysql"))) return false;
      }
      return true;
    }, { what: "the last change in every cdc stream", timeoutMs: 60_000, intervalMs: 100 });
    // Deno's child.kill() reports the signal as the exit cause even after a clean exit 0.
    Deno.kill(current.pid, "SIGTERM");
    const res = await current.done;
    run = null;
    assert.equal(res.code, 0, res.stderr);

    const starts: number[] = [];
    if (mustReconnect) assert.equal(resumes, 0);
    for (const t of Object.keys(tables)) {
      const cdc = await readEntries(redis, cdcStream(t));
      assertPositions(cdc, "mysql", cdcStream(t));
      starts.push(assertExactlyOnce(generator.log, t, cdc, "mysql"));
    }
    // From the first marker seen on, every logged change of every table is there.
    const first = Math.min(...starts);
    for (const t of Object.keys(tables)) {
      assertExactlyOnce(generator.log, t, await readEntries(redis, cdcStream(t)), "mysql", first);
    }
    assert.ok(generator.log.length - first > 200, `${generator.log.length - first} transactions`);
  } finally {
    const left = run as RunningReplicant | null;
    if (left) {
      left.kill("SIGKILL");
      await left.done;
    }
    await generator.stop().catch(() => {});
    await writer.end().catch(() => {});
    await server.stop();
    await deleteKeys(redis, `${database}_*`);
    await deleteKeys(redis, `replicate_io_*_default_${id}`);
    redis.disconnect();
  }
}

seededTest(
  "restart (mariadb): binlog rotated twice, server restarted, replicant reconnects itself",
  (seed) => restartRun(true, seed),
);

seededTest(
  "restart (mariadb): binlog rotated twice, server restarted, --resume, exactly once",
  (seed) => restartRun(false, seed),
);
