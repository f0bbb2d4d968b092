/**
 * End-to-end: a Redis ACL user limited to exactly what Replicant needs (docs/redis.md,
 * redisAclRules) replicates a PostgreSQL table (snapshot, again over its streams, full with
 * live changes, realtime in GLOBAL mode, retention trimming a stream a consumer group reads,
 * verify of a stream under max-stream-length) and passes test-connection; a user missing one
 * right (the XADD command, XINFO STREAM, the table streams' or the checkpoint's key pattern)
 * fails with a message that names the file, the user and the right to add.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import type pg from "pg";
import type { Redis } from "ioredis";
import { redisAclRules } from "../../src/sink/redis/redis_acl_rules.ts";
import {
  defaultSlotName,
  dropPublication,
  dropSlot,
} from "../../src/source/postgres/pg_replication_slot.ts";
import { pgClient } from "../helpers/clients.ts";
import {
  runReplicant,
  type ScratchHome,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { type PrivateRedis, privateRedis } from "../pipeline/failure_fixture.ts";

const SCHEMA = `acl_${Date.now().toString(36)}`;
const ROWS = 30;
const stream = (table: string) => `replicant_${SCHEMA}_${table}`;

interface Env {
  db: pg.Client;
  redis: PrivateRedis;
  admin: Redis;
  home: ScratchHome;
  filter: string;
}

/** A connection file for a new ACL user with `rules` (plus its password). */
async function user(env: Env, name: string, rules: string[]): Promise<string> {
  await env.admin.call("ACL", "SETUSER", name, "reset", "on", ">acl-pw", ...rules);
  return env.redis.connFile(env.home.dir, `${name}.yaml`, { name, password: "acl-pw" });
}

function snapshotArgs(env: Env, conn: string, id: string): string[] {
  return [
    "snapshot",
    env.home.pgConn,
    conn,
    "--id",
    id,
    "--home",
    env.home.dir,
    "--filter",
    env.filter,
    "--replace-existing",
  ];
}

Deno.test({
  name: "Redis ACL: the documented minimal user replicates; one right less is named",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const db = await pgClient();
    const redis = await privateRedis(56800);
    const admin = redis.admin();
    const home = scratchHome();
    const env: Env = {
      db,
      redis,
      admin,
      home,
      filter: home.write(
        "filter.yaml",
        `allow:\n  - catalog: replicant\n    schema: ${SCHEMA}\n    types: [TABLE]\n`,
      ),
    };
    const rules = redisAclRules([`replicant_${SCHEMA}_*`]);
    const slot = defaultSlotName("default", "acl_full");
    const globalSlot = defaultSlotName("default", "acl_global");
    const retentionSlot = defaultSlotName("default", "acl_ret");
    try {
      await db.query(`CREATE SCHEMA ${SCHEMA}`);
      await db.query(`CREATE TABLE ${SCHEMA}.items (id int PRIMARY KEY, v text)`);
      await db.query(
        `INSERT INTO ${SCHEMA}.items SELECT g, 'v' || g FROM generate_series(1, ${ROWS}) g`,
      );

      await t.step(
        "the minimal user: snapshot, full with live changes, test-connection",
        async () => {
          const conn = await user(env, "acl_ok", rules);
          const snap = await runReplicant(snapshotArgs(env, conn, "acl_snap"));
          assert.equal(snap.code, 0, snap.stdout + snap.stderr);
          assert.equal(await admin.xlen(stream("items")), ROWS);
          // Again over its own streams (--overwrite, --replace-existing): it deletes them first.
          const again = await runReplicant([...snapshotArgs(env, conn, "acl_snap"), "--overwrite"]);
          assert.equal(again.code, 0, again.stdout + again.stderr);
          assert.equal(await admin.xlen(stream("items")), ROWS);

          await admin.del(stream("items"));
          const full = startReplicant([
            "full",
            env.home.pgConn,
            conn,
            "--id",
            "acl_full",
            "--home",
            home.dir,
            "--filter",
            env.filter,
          ]);
          try {
            await waitFor(async () => (await admin.xlen(stream("items"))) === ROWS, {
              timeoutMs: 30_000,
              what: "the snapshot of full",
            });
            await db.query(
              `BEGIN; INSERT INTO ${SCHEMA}.items VALUES (1000, 'a'); ` +
                `UPDATE ${SCHEMA}.items SET v = 'b' WHERE id = 1; ` +
                `DELETE FROM ${SCHEMA}.items WHERE id = 2; COMMIT`,
            );
            // insert, update, delete and its tombstone.
            await waitFor(async () => (await admin.xlen(`${stream("items")}_cdc_logs`)) === 4, {
              timeoutMs: 30_000,
              what: "the live changes",
            });
          } finally {
            full.kill("SIGTERM");
          }
          const r = await full.done;
          assert.equal(r.code, 0, r.stdout + r.stderr);
          const checkpoint = await admin.hgetall("replicate_io_checkpoint_default_acl_full");
          assert.ok(Object.keys(checkpoint).length > 0, "checkpoint written");

          const tc = await runReplicant(["test-connection", conn, "--home", home.dir]);
          assert.match(tc.stdout, /ACL rights\s+PASSED\s+user acl_ok/);
          assert.doesNotMatch(tc.stdout, /FAILED/);
        },
      );

      await t.step("the minimal user in GLOBAL mode (one stream of its own)", async () => {
        const conn = await user(env, "acl_global", rules);
        const applier = home.write("global.yaml", "realtime:\n  replay-consistency: GLOBAL\n");
        const global = "replicate_io_cdc_log_default_acl_global";
        const run = startReplicant([
          "realtime",
          env.home.pgConn,
          conn,
          "--id",
          "acl_global",
          "--home",
          home.dir,
          "--filter",
          env.filter,
          "--applier",
          applier,
        ]);
        try {
          // The slot exists once the checkpoint says where realtime starts.
          await waitFor(
            async () => (await admin.exists("replicate_io_checkpoint_default_acl_global")) === 1,
            {
              timeoutMs: 30_000,
              what: "realtime to start",
            },
          );
          await waitFor(async () => {
            const r = await db.query(
              "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
              [globalSlot],
            );
            return r.rowCount === 1;
          }, { timeoutMs: 30_000, what: "the slot to be active" });
          await db.query(`INSERT INTO ${SCHEMA}.items VALUES (2000, 'g')`);
          await waitFor(async () => (await admin.xlen(global)) === 1, {
            timeoutMs: 30_000,
            what: "the change in the GLOBAL stream",
          });
        } finally {
          run.kill("SIGTERM");
        }
        const r = await run.done;
        assert.equal(r.code, 0, r.stdout + r.stderr);
      });

      await t.step(
        "the minimal user: retention trims a stream a group reads; verify reads XINFO STREAM",
        async () => {
          const conn = await user(env, "acl_ret", rules);
          const cdc = `${stream("items")}_cdc_logs`;
          await admin.del(stream("items"), cdc);
          const applier = home.write(
            "retention.yaml",
            "max-stream-length: 100_000\nretention:\n  interval-ms: 200\n  min-age-ms: 1\n" +
              "  max-length: 16\n  snapshot-streams: false\n",
          );
          const run = startReplicant([
            "full",
            env.home.pgConn,
            conn,
            "--id",
            "acl_ret",
            "--home",
            home.dir,
            "--filter",
            env.filter,
            "--applier",
            applier,
          ]);
          let verify: Awaited<ReturnType<typeof runReplicant>> | null = null;
          try {
            const rows = Number(
              (await db.query(`SELECT count(*) AS n FROM ${SCHEMA}.items`)).rows[0].n,
            );
            await waitFor(async () => (await admin.xlen(stream("items"))) === rows, {
              timeoutMs: 30_000,
              what: "the snapshot",
            });
            // A group that has read the first change and not acknowledged it: the script
            // reads its pending entries (XINFO GROUPS, XPENDING) and the clock (TIME).
            await db.query(`INSERT INTO ${SCHEMA}.items VALUES (3000, 'r')`);
            await waitFor(async () => (await admin.exists(cdc)) === 1, {
              timeoutMs: 30_000,
              what: "the first change",
            });
            await admin.xgroup("CREATE", cdc, "readers", "0");
            await admin.xreadgroup("GROUP", "readers", "r1", "COUNT", 1, "STREAMS", cdc, ">");
            await db.query(
              `INSERT INTO ${SCHEMA}.items SELECT g, 'r' FROM generate_series(3001, 3040) g`,
            );
            await waitFor(async () => (await admin.xlen(cdc)) === 16, {
              timeoutMs: 30_000,
              what: "retention to trim the change stream to its hard cap (16)",
            });
            verify = await runReplicant([
              "verify",
              env.home.pgConn,
              conn,
              "--id",
              "acl_ret",
              "--home",
              home.dir,
              "--wait-timeout",
              "60",
            ]);
          } finally {
            run.kill("SIGTERM");
          }
          const r = await run.done;
          assert.equal(r.code, 0, r.stdout + r.stderr);
          assert.doesNotMatch(r.stdout + r.stderr, /retention pass failed/);
          assert.match(r.stderr, /consumer group "readers" had not acknowledged/);
          // The change stream was trimmed by retention: not verified (exit 3), the rest read.
          assert.ok(verify);
          assert.equal(verify.code, 3, verify.stdout + verify.stderr);
          assert.match(verify.stdout, /NOT VERIFIED +stream .*_cdc_logs: trimmed by retention/);
        },
      );

      await t.step("without XINFO STREAM: verify names the right, hides nothing", async () => {
        const conn = await user(env, "acl_noxinfo", [...rules, "-xinfo|stream"]);
        const applier = home.write("capped.yaml", "max-stream-length: 100_000\n");
        const run = startReplicant([
          "realtime",
          env.home.pgConn,
          conn,
          "--id",
          "acl_ret",
          "--resume",
          "--home",
          home.dir,
          "--applier",
          applier,
        ]);
        let verify: Awaited<ReturnType<typeof runReplicant>> | null = null;
        try {
          verify = await runReplicant([
            "verify",
            env.home.pgConn,
            conn,
            "--id",
            "acl_ret",
            "--home",
            home.dir,
            "--wait-timeout",
            "60",
          ]);
        } finally {
          run.kill("SIGTERM");
        }
        const r = await run.done;
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.ok(verify);
        assert.equal(verify.code, 1, verify.stdout + verify.stderr);
        assert.match(verify.stderr, /Redis user "acl_noxinfo" .* may not run XINFO\|STREAM/);
        assert.match(verify.stderr, /ACL SETUSER acl_noxinfo \+xinfo\|stream/);
      });

      await t.step("test-connection names a right retention's script lacks", async () => {
        const conn = await user(env, "acl_noxpending", [...rules, "-xpending"]);
        const tc = await runReplicant(["test-connection", conn, "--home", home.dir]);
        assert.match(tc.stdout, /ACL rights\s+FAILED\s+user acl_noxpending may not run XPENDING/);
        assert.match(tc.stdout, /ACL SETUSER acl_noxpending \+xpending/);
      });

      await t.step("without XADD: the message names the command", async () => {
        const conn = await user(env, "acl_noxadd", [...rules, "-xadd"]);
        const r = await runReplicant(snapshotArgs(env, conn, "acl_noxadd"));
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stderr, /Redis user "acl_noxadd" \(.*acl_noxadd\.yaml\) may not run XADD/);
        assert.match(r.stderr, /ACL SETUSER acl_noxadd \+xadd/);
      });

      await t.step(
        "without the table streams' key pattern: the message names the stream",
        async () => {
          const conn = await user(env, "acl_nostreams", redisAclRules([]));
          const r = await runReplicant(snapshotArgs(env, conn, "acl_nostreams"));
          assert.equal(r.code, 1, r.stdout + r.stderr);
          assert.match(r.stderr, /acl_nostreams\.yaml\) may not access key /);
          assert.match(r.stderr, new RegExp(`ACL SETUSER acl_nostreams ~${stream("items")}`));
        },
      );

      await t.step("without the checkpoint's key pattern: the message names the key", async () => {
        const conn = await user(env, "acl_nokeys", redisAclRules([`replicant_${SCHEMA}_*`], []));
        const r = await runReplicant(snapshotArgs(env, conn, "acl_nokeys"));
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stderr, /acl_nokeys\.yaml/);
        assert.match(r.stderr, /replicate_io_checkpoint_default_acl_nokeys/);
        assert.match(r.stderr, /ACL SETUSER acl_nokeys ~replicate_io_\*/);
      });
    } finally {
      for (const name of [slot, globalSlot, retentionSlot]) {
        await dropSlot(db, name).catch(() => {});
        await dropPublication(db, name).catch(() => {});
      }
      await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
      await db.end();
      admin.disconnect();
      await redis.stop();
      rmSync(home.dir, { recursive: true, force: true });
    }
  },
});
