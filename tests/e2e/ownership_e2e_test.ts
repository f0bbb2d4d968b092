/**
 * End-to-end: a replication slot and its publication belong to one group/id. Another id
 * configured with the same slot name stops with exit 2 before it changes anything (slot,
 * publication, streams), so the owner's `--resume` still delivers every change made in
 * between; the owner's own `--overwrite` starts over completely, change streams included.
 */
import assert from "node:assert/strict";
import type pg from "pg";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import { readEntries } from "../helpers/change_log.ts";
import {
  replicationArgs,
  runReplicant,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";

interface SlotState {
  confirmed: string;
  restart: string;
}

async function slotState(db: pg.Client, slot: string): Promise<SlotState | null> {
  const r = await db.query(
    "SELECT confirmed_flush_lsn::text AS c, restart_lsn::text AS r FROM pg_replication_slots " +
      "WHERE slot_name = $1",
    [slot],
  );
  return r.rows.length === 0 ? null : { confirmed: r.rows[0].c, restart: r.rows[0].r };
}

async function publicationComment(db: pg.Client, name: string): Promise<string | null> {
  const r = await db.query(
    "SELECT obj_description(oid, 'pg_publication') AS c FROM pg_publication WHERE pubname = $1",
    [name],
  );
  return r.rows.length === 0 ? null : r.rows[0].c;
}

/** A schema with one table, a connection file whose slot name every id shares, and the args. */
async function setUp(tag: string) {
  const env = serviceEnv();
  const schema = `own_${tag}`;
  const slot = `own_${tag}`;
  const db = await pgClient();
  const redis = redisClient();
  await db.query(`CREATE SCHEMA ${schema}`);
  await db.query(`CREATE TABLE ${schema}.t (id int PRIMARY KEY, v text NOT NULL)`);
  await db.query(`INSERT INTO ${schema}.t SELECT g, 'v' || g FROM generate_series(1, 3) g`);
  const home = scratchHome();
  const conn = home.write(
    "shared_slot.yaml",
    `type: POSTGRESQL\nhost: ${env.pg.host}\nport: ${env.pg.port}\ndatabase: ${env.pg.database}\n` +
      `username: ${env.pg.user}\nreplication-slots:\n  ${slot}:\n    - pgoutput\n`,
  );
  const filter = home.write(
    "filter.yaml",
    `allow:\n  - catalog: ${env.pg.database}\n    schema: ${schema}\n    types: [TABLE]\n`,
  );
  const snapStream = `${env.pg.database}_${schema}_t`;
  const cdcStream = `${snapStream}_cdc_logs`;
  const args = (mode: string, id: string, ...extra: string[]) =>
    replicationArgs(mode, {
      source: conn,
      target: home.redisConn,
      filter,
      id,
      home: home.dir,
    }, ...extra);
  const cleanUp = async (ids: string[]) => {
    await db.query(
      "SELECT pg_drop_replication_slot($1) FROM pg_replication_slots " +
        "WHERE slot_name = $1 AND NOT active",
      [slot],
    ).catch(() => {});
    await db.query(`DROP PUBLICATION IF EXISTS ${slot}`);
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await redis.del(snapStream, cdcStream);
    for (const id of ids) await deleteKeys(redis, `replicate_io_*_default_${id}`);
    await db.end();
    redis.disconnect();
  };
  return { schema, slot, db, redis, args, snapStream, cdcStream, cleanUp };
}

function tagOf(): string {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
}

Deno.test("ownership: another id with the same slot name stops (exit 2) and changes nothing; the owner's --resume loses nothing", async () => {
  const tag = tagOf();
  const demo = `demo-${tag}`;
  const other = `other-${tag}`;
  const s = await setUp(tag);
  try {
    const first = await runReplicant(s.args("full", demo, "--terminate-post-snapshot"));
    assert.equal(first.code, 0, first.stderr);
    const before = await slotState(s.db, s.slot);
    assert.ok(before, "the first run created the slot");
    assert.equal(await publicationComment(s.db, s.slot), `replicant default/${demo}`);
    // A change the owner has not streamed yet.
    await s.db.query(`UPDATE ${s.schema}.t SET v = 'updated-in-between' WHERE id = 2`);

    // Another id, told to replace existing streams: ownership stops it before anything.
    const taken = await runReplicant(
      s.args("full", other, "--replace-existing", "--terminate-post-snapshot"),
    );
    assert.equal(taken.code, 2, taken.stderr + taken.stdout);
    assert.match(taken.stderr, new RegExp(`slot "${s.slot}"`));
    assert.match(taken.stderr, new RegExp(`default/${demo}`), "names the owner");
    assert.match(taken.stderr, /replication-slots/, "names the fix");
    assert.deepEqual(await slotState(s.db, s.slot), before, "the slot is untouched");
    assert.equal((await readEntries(s.redis, s.snapStream)).length, 3, "streams untouched");
    assert.equal(await publicationComment(s.db, s.slot), `replicant default/${demo}`);

    // Another id that would also stop on the existing streams: still nothing is dropped.
    const streams = await runReplicant(s.args("full", other, "--terminate-post-snapshot"));
    assert.equal(streams.code, 2, streams.stderr + streams.stdout);
    assert.deepEqual(await slotState(s.db, s.slot), before, "the slot is untouched");
    const realtimeOther = await runReplicant(s.args("realtime", other));
    assert.equal(realtimeOther.code, 2, realtimeOther.stderr + realtimeOther.stdout);
    assert.deepEqual(await slotState(s.db, s.slot), before, "the slot is untouched");

    // The owner continues and gets the change made in between.
    const resumed = startReplicant(s.args("realtime", demo, "--resume"));
    try {
      await waitFor(
        async () =>
          (await readEntries(s.redis, s.cdcStream)).some((e) =>
            e.after?.v === "updated-in-between"
          ),
        { timeoutMs: 20_000, what: "the update made in between in the cdc stream" },
      );
    } finally {
      resumed.kill("SIGTERM");
    }
    const out = await resumed.done;
    assert.equal(out.code, 0, out.stderr);
  } finally {
    await s.cleanUp([demo, other]);
  }
});

Deno.test("ownership: --overwrite with --replace-existing starts the id over: own slot recreated, change streams replaced", async () => {
  const tag = tagOf();
  const demo = `demo-${tag}`;
  const s = await setUp(tag);
  try {
    const first = await runReplicant(s.args("full", demo, "--terminate-post-snapshot"));
    assert.equal(first.code, 0, first.stderr);
    await s.db.query(`UPDATE ${s.schema}.t SET v = 'old-run' WHERE id = 1`);
    const resumed = startReplicant(s.args("full", demo, "--resume"));
    try {
      await waitFor(
        async () => (await readEntries(s.redis, s.cdcStream)).some((e) => e.after?.v === "old-run"),
        { timeoutMs: 20_000, what: "the old run's change in the cdc stream" },
      );
    } finally {
      resumed.kill("SIGTERM");
    }
    assert.equal((await resumed.done).code, 0);
    const before = await slotState(s.db, s.slot);

    // The id's state is gone (another Redis, deleted): its own slot is not dropped unasked.
    await s.redis.del(`replicate_io_checkpoint_default_${demo}`);
    const stateless = await runReplicant(
      s.args("full", demo, "--replace-existing", "--terminate-post-snapshot"),
    );
    assert.equal(stateless.code, 2, stateless.stderr + stateless.stdout);
    assert.match(stateless.stderr, /belongs to this id .* --overwrite/s);
    assert.deepEqual(await slotState(s.db, s.slot), before, "the slot is untouched");

    const again = await runReplicant(
      s.args("full", demo, "--overwrite", "--replace-existing", "--terminate-post-snapshot"),
    );
    assert.equal(again.code, 0, again.stderr);
    const after = await slotState(s.db, s.slot);
    assert.ok(after, "the slot exists again");
    assert.notDeepEqual(after, before, "the slot was created anew");
    assert.equal(await publicationComment(s.db, s.slot), `replicant default/${demo}`);
    assert.equal(await s.redis.exists(s.cdcStream), 0, "the old run's change stream is gone");
    const snap = await readEntries(s.redis, s.snapStream);
    assert.equal(snap.length, 3);
    assert.equal(snap.find((e) => e.key?.id === 1)?.after?.v, "old-run");
  } finally {
    await s.cleanUp([demo]);
  }
});
