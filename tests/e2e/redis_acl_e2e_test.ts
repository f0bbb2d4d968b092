/**
 * End-to-end: a Redis ACL user limited to exactly what Replicant needs (docs/redis.md,
 * redisAclRules) replicates a PostgreSQL table (snapshot, full with live changes, realtime
 * in GLOBAL mode) and passes test-connection; a user missing one right (the XADD command, the table streams' or
 * the checkpoint's key pattern) fails with a message that names the file, the user and the
 * right to add.
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
      for (const name of [slot, globalSlot]) {
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
