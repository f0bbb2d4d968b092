/**
 * End-to-end: the admin commands with a `mode: cluster` Redis connection (3 masters, 3
 * replicas): test-connection checks the cluster and every master, fetch-schemas reads the
 * schema dump written by a snapshot into the cluster, cleanup-indoubt deletes listed entries
 * of streams living on different masters.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pgClient } from "../helpers/clients.ts";
import { startRedisCluster } from "../helpers/redis_cluster.ts";
import { runReplicant, scratchHome } from "../helpers/replicant.ts";
import { keySlot } from "../../src/sink/redis/key_slot.ts";

const SCHEMA = "e2e_cluster_cmds";

Deno.test("cluster: test-connection, fetch-schemas and cleanup-indoubt", async () => {
  const tc = await startRedisCluster();
  const cluster = tc.client();
  const db = await pgClient();
  try {
    const home = scratchHome();
    const conn = home.write("redis_cluster.yaml", tc.connYaml());
    const id = "e2e-cluster-cmds";

    // test-connection: the cluster's state, then version/policy/persistence of each master.
    const tested = await runReplicant(["test-connection", conn, "--home", home.dir, "--id", id]);
    assert.equal(tested.code, 0, tested.stdout + tested.stderr);
    assert.match(
      tested.stdout,
      /cluster +PASSED +cluster_state:ok, 16384 of 16384 slots ok, 3 master\(s\), 3 replica\(s\)/,
    );
    for (const port of tc.masters()) {
      assert.match(tested.stdout, new RegExp(`version \\(127\\.0\\.0\\.1:${port}\\) +PASSED`));
    }
    assert.match(tested.stdout, /ACL rights +PASSED/);
    // No check failed; the cluster's masters run without persistence: counted as warnings.
    assert.match(tested.stdout, /No check failed: \d+ passed, \d+ warnings?\. Read the WARNING/);

    // fetch-schemas: a snapshot writes the schema dump stream; read back from the cluster.
    await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE; CREATE SCHEMA ${SCHEMA}`);
    await db.query(`CREATE TABLE ${SCHEMA}.orders (id int PRIMARY KEY, note text NOT NULL)`);
    await db.query(`INSERT INTO ${SCHEMA}.orders SELECT g, 'n' || g FROM generate_series(1, 50) g`);
    const snap = await runReplicant([
      "snapshot",
      home.pgConn,
      conn,
      "--filter",
      home.write(
        "filter.yaml",
        `allow:\n  - catalog: replicant\n    schema: ${SCHEMA}\n    types: [TABLE]\n`,
      ),
      "--id",
      id,
      "--home",
      home.dir,
      "--overwrite",
    ]);
    assert.equal(snap.code, 0, snap.stdout + snap.stderr);
    const out = path.join(home.dir, "schemas.yaml");
    const fetched = await runReplicant([
      "fetch-schemas",
      conn,
      "--id",
      id,
      "--home",
      home.dir,
      "--output-file",
      out,
    ]);
    assert.equal(fetched.code, 0, fetched.stdout + fetched.stderr);
    assert.match(fetched.stdout, /Wrote 1 table\(s\)/);
    const yaml = readFileSync(out, "utf8");
    assert.match(yaml, /orders/);
    assert.match(yaml, /note/);

    // cleanup-indoubt: entries of two streams on two different masters.
    const streams = ["e2e_cluster_cmds_a", "e2e_cluster_cmds_b", "e2e_cluster_cmds_c"];
    const owners = new Set(streams.map((s) => tc.ownerOf(keySlot(s))));
    assert.ok(owners.size >= 2, "the streams live on more than one master");
    const listed: string[] = [];
    for (const s of streams) {
      await cluster.xadd(s, "*", "keep", "1");
      for (let i = 0; i < 2; i++) listed.push(`${s} ${await cluster.xadd(s, "*", "bad", "1")}`);
    }
    listed.push(`${streams[0]} 1-1`); // never there
    const file = path.join(home.dir, "data", id, "bad_rows", "replicate_io_indoubt_txn_log");
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, listed.join("\n") + "\n");
    const dry = await runReplicant([
      "cleanup-indoubt",
      conn,
      "--id",
      id,
      "--home",
      home.dir,
      "--dry-run",
    ]);
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    assert.match(dry.stdout, /dry run: 6 to delete, 1 already absent, 0 failed/);
    const cleaned = await runReplicant(["cleanup-indoubt", conn, "--id", id, "--home", home.dir]);
    assert.equal(cleaned.code, 0, cleaned.stdout + cleaned.stderr);
    assert.match(cleaned.stdout, /6 deleted, 1 already absent, 0 failed/);
    for (const s of streams) assert.equal(await cluster.xlen(s), 1, s);
    assert.equal(readFileSync(file, "utf8"), "");
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => {});
    await db.end();
    cluster.disconnect();
    tc.stop();
  }
});
