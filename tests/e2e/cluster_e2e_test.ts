/**
 * End-to-end on Redis Cluster (`mode: cluster`): a private cluster of 3 masters and 3 replicas
 * (tests/helpers/redis_cluster.ts); the binary's snapshot and realtime (full) of several
 * PostgreSQL tables whose streams live on different nodes, read back through an ioredis Cluster
 * client; then a slot of one stream is resharded to another node while realtime runs
 * (MOVED/ASK): nothing lost, nothing duplicated, in order.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import type pg from "pg";
import type { Cluster } from "ioredis";
import { pgClient } from "../helpers/clients.ts";
import { type RedisClusterBed, startRedisCluster } from "../helpers/redis_cluster.ts";
import { runReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { TOMBSTONE_VALUE } from "../../src/core/entry_encoder.ts";
import { keySlot } from "../../src/sink/redis/key_slot.ts";
import {
  defaultSlotName,
  dropPublication,
  dropSlot,
} from "../../src/source/postgres/pg_replication_slot.ts";

const SCHEMA = "e2e_cluster";
const TABLES = ["t_a", "t_b", "t_c", "t_d", "t_e", "t_f"];

/** `id` of the key of every entry, and the op, in stream order. */
async function streamOps(cluster: Cluster, stream: string): Promise<string[]> {
  const entries = await cluster.xrange(stream, "-", "+") as [string, string[]][];
  return entries.map(([, f]) => {
    if (f[1] === TOMBSTONE_VALUE) return `tombstone:${JSON.parse(f[0]).payload.id}`;
    const v = JSON.parse(f[1]).payload;
    return `${v.op}:${JSON.parse(f[0]).payload.id}:${v.after?.v ?? ""}`;
  });
}

async function withEnv(
  fn: (db: pg.Client, tc: RedisClusterBed, cluster: Cluster, conn: string) => Promise<void>,
): Promise<void> {
  const tc = await startRedisCluster();
  const db = await pgClient();
  const cluster = tc.client();
  try {
    await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE; CREATE SCHEMA ${SCHEMA}`);
    for (const [i, t] of TABLES.entries()) {
      await db.query(`CREATE TABLE ${SCHEMA}.${t} (id int PRIMARY KEY, v text NOT NULL)`);
      await db.query(
        `INSERT INTO ${SCHEMA}.${t} SELECT g, 's' || g FROM generate_series(1, ${
          (i + 1) * 1000
        }) g`,
      );
    }
    const home = scratchHome();
    const conn = home.write("redis_cluster.yaml", tc.connYaml());
    await fn(db, tc, cluster, conn);
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => {});
    await db.end();
    cluster.disconnect();
    tc.stop();
  }
}

function filterFile(home: ReturnType<typeof scratchHome>): string {
  return home.write(
    "filter.yaml",
    `allow:\n  - catalog: replicant\n    schema: ${SCHEMA}\n    types: [TABLE]\n`,
  );
}

const streamOf = (t: string) => `replicant_${SCHEMA}_${t}`;
/** Realtime changes go to their own stream (`…_cdc_logs`). */
const cdcOf = (t: string) => `${streamOf(t)}_cdc_logs`;

Deno.test("cluster: snapshot of 6 tables lands on all 3 masters, complete and in order", async () => {
  await withEnv(async (_db, tc, cluster, conn) => {
    const owners = new Set<number>();
    for (const t of TABLES) {
      const slot = keySlot(streamOf(t));
      assert.equal(Number(tc.cli(tc.ports[0], "cluster", "keyslot", streamOf(t))), slot);
      owners.add(tc.ownerOf(slot));
    }
    assert.equal(owners.size, 3, "the streams are spread over the three masters");
    const home = scratchHome();
    const res = await runReplicant([
      "snapshot",
      home.pgConn,
      conn,
      "--filter",
      filterFile(home),
      "--extractor",
      home.write("extractor.yaml", "snapshot:\n  threads: 3\n  fetch-size-rows: 700\n"),
      "--applier",
      home.write("applier.yaml", "snapshot:\n  batch-size-rows: 250\n"),
      "--id",
      "e2e-cluster-snap",
      "--home",
      home.dir,
      "--overwrite",
    ]);
    assert.equal(res.code, 0, res.stderr + res.stdout);
    for (const [i, t] of TABLES.entries()) {
      const ops = await streamOps(cluster, streamOf(t));
      const n = (i + 1) * 1000;
      assert.deepEqual(ops, Array.from({ length: n }, (_, j) => `r:${j + 1}:s${j + 1}`), t);
    }
  });
});

Deno.test("cluster: full (snapshot + realtime), then a stream's slot resharded while running", async () => {
  await withEnv(async (db, tc, cluster, conn) => {
    const home = scratchHome();
    const id = "e2e-cluster-full";
    const slotName = defaultSlotName("default", id);
    const run = startReplicant([
      "full",
      home.pgConn,
      conn,
      "--filter",
      filterFile(home),
      "--applier",
      home.write("applier.yaml", "realtime:\n  batch-size-rows: 20\n"),
      "--id",
      id,
      "--home",
      home.dir,
      "--overwrite",
    ]);
    try {
      /** Expected content of every stream, snapshot and cdc ones. */
      const expected = new Map<string, string[]>();
      for (const [i, t] of TABLES.entries()) {
        const n = (i + 1) * 1000;
        expected.set(streamOf(t), Array.from({ length: n }, (_, j) => `r:${j + 1}:s${j + 1}`));
        expected.set(cdcOf(t), []);
      }
      const streams = [...expected.keys()];
      const slots = new Set(streams.map(keySlot));
      assert.equal(slots.size, streams.length, "every stream in a slot of its own");
      const settle = async (what: string) => {
        for (const stream of streams) {
          const want = expected.get(stream)!;
          await waitFor(async () => (await cluster.xlen(stream)) >= want.length, {
            what: `${what}: ${want.length} entries in ${stream}`,
            timeoutMs: 30_000,
          });
        }
        // A moment for anything extra (a duplicate) to show up.
        await new Promise((r) => setTimeout(r, 300));
        for (const stream of streams) {
          assert.deepEqual(
            await streamOps(cluster, stream),
            expected.get(stream),
            `${what}: ${stream}`,
          );
        }
      };
      /** Some changes on every table: updates, inserts, a delete (with its tombstone). */
      const change = async (round: number) => {
        for (const t of TABLES) {
          const want = expected.get(cdcOf(t))!;
          for (let k = 1; k <= 30; k++) {
            const key = 100_000 * round + k;
            await db.query(`INSERT INTO ${SCHEMA}.${t} VALUES ($1, $2)`, [key, `n${key}`]);
            want.push(`c:${key}:n${key}`);
          }
          await db.query(`UPDATE ${SCHEMA}.${t} SET v = $1 WHERE id = 1`, [`u${round}`]);
          want.push(`u:1:u${round}`);
          const gone = 100_000 * round + 1;
          await db.query(`DELETE FROM ${SCHEMA}.${t} WHERE id = $1`, [gone]);
          want.push(`d:${gone}:`, `tombstone:${gone}`);
        }
      };
      await settle("snapshot");
      await change(1);
      await settle("realtime");

      const moved = cdcOf(TABLES[2]);
      const slot = keySlot(moved);
      const nodeId = (port: number) => tc.cli(port, "cluster", "myid").trim();
      const errorstat = (port: number, kind: string) =>
        Number(
          new RegExp(`errorstat_${kind}:count=(\\d+)`).exec(tc.cli(port, "info", "errorstats"))
            ?.[1] ?? 0,
        );
      /** Slot states of a move: importing on `to`, migrating on `from`, the key migrated. */
      const startMove = (from: number, to: number) => {
        tc.cli(to, "cluster", "setslot", String(slot), "importing", nodeId(from));
        tc.cli(from, "cluster", "setslot", String(slot), "migrating", nodeId(to));
        const out = tc.cli(
          from,
          "migrate",
          "127.0.0.1",
          String(to),
          "",
          "0",
          "5000",
          "KEYS",
          moved,
        );
        assert.match(out, /OK/);
      };
      const endMove = (to: number) => {
        for (const p of tc.masters()) {
          tc.cli(p, "cluster", "setslot", String(slot), "node", nodeId(to));
        }
      };
      /** Length of `moved` read on `to` itself (ASKING while importing): no redirection. */
      const lengthOn = (port: number) => {
        const out = execFileSync("redis-cli", ["-p", String(port)], {
          input: `ASKING\nXLEN ${moved}\n`,
          encoding: "utf8",
        });
        return Number(out.trim().split("\n").at(-1));
      };

      // ASK: the key is on `to`, the slot still `from`'s; Replicant's writer only knows `from`.
      const from = tc.ownerOf(slot);
      const to = tc.masters().find((p) => p !== from)!;
      startMove(from, to);
      const asks = errorstat(from, "ASK");
      await change(2);
      const want2 = expected.get(moved)!.length;
      await waitFor(() => lengthOn(to) >= want2, { what: "changes on the importing node" });
      assert.ok(errorstat(from, "ASK") > asks, "the writer was sent ASK and followed it");

      // MOVED: the move made final; the writer's slot map still says `from`.
      endMove(to);
      const moves = errorstat(from, "MOVED");
      await change(3);
      const want3 = expected.get(moved)!.length;
      await waitFor(() => lengthOn(to) >= want3, { what: "changes on the new owner" });
      assert.ok(errorstat(from, "MOVED") > moves, "the writer was sent MOVED and followed it");
      await settle("after resharding");

      // And back while changes are being written.
      const writing = change(4);
      startMove(to, from);
      await new Promise((r) => setTimeout(r, 100));
      endMove(from);
      await writing;
      await change(5);
      await settle("after moving back");
      assert.equal(tc.ownerOf(slot), from);
    } finally {
      Deno.kill(run.pid, "SIGTERM");
      const done = await run.done;
      await dropSlot(db, slotName).catch(() => {});
      await dropPublication(db, slotName).catch(() => {});
      assert.equal(done.code, 0, done.stdout + done.stderr);
    }
  });
});
