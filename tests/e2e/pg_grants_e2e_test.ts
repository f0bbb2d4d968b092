/**
 * End-to-end through the binary: a PostgreSQL user with exactly the grants Arcion documents
 * (USAGE on the schema, SELECT on its tables, REPLICATION) cannot create the publication
 * that pgoutput needs. `test-connection` and `full` say the same: what is missing, the grant,
 * and the statement a DBA can run instead; once the DBA created it, both pass and changes
 * flow. Selected tables without a replica identity: same agreement.
 */
import assert from "node:assert/strict";
import { dropPublication, dropSlot } from "../../src/source/postgres/pg_replication_slot.ts";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import {
  type RunningReplicant,
  runReplicant,
  type ScratchHome,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";

interface Check {
  name: string;
  status: string;
  detail: string;
  hint: string | null;
}

/** `test-connection` in json: exit code and checks by name. */
async function testConnection(
  home: ScratchHome,
  conn: string,
  args: string[],
): Promise<{ code: number; checks: Map<string, Check> }> {
  const r = await runReplicant([
    "test-connection",
    conn,
    ...args,
    "--home",
    home.dir,
    "--log-format",
    "json",
  ]);
  const checks = new Map<string, Check>();
  for (const line of r.stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    const e = JSON.parse(line);
    if (e.event === "check") checks.set(e.name, e);
  }
  return { code: r.code, checks };
}

function setup(tag: string) {
  const schema = `grants_${tag}`;
  const role = `arc_${tag}`;
  const id = `grants-${tag}`;
  const slot = `replicant_default_${id}`.replace(/[^a-z0-9_]/g, "_");
  const home = scratchHome();
  const env = serviceEnv().pg;
  const conn = home.write(
    "arcion_user.yaml",
    `type: POSTGRESQL\nhost: ${env.host}\nport: ${env.port}\ndatabase: ${env.database}\n` +
      `username: ${role}\n`,
  );
  const filter = home.write(
    "filter.yaml",
    `allow:\n  - catalog: ${env.database}\n    schema: ${schema}\n    types: [TABLE]\n`,
  );
  const common = ["--filter", filter, "--id", id];
  return { schema, role, id, slot, home, conn, common, database: env.database };
}

Deno.test("grants (pg): Arcion's documented grants: test-connection and full agree, a DBA's publication works", async () => {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const s = setup(tag);
  const db = await pgClient();
  const redis = redisClient();
  let run: RunningReplicant | null = null;
  try {
    await db.query(`CREATE SCHEMA ${s.schema};
      CREATE TABLE ${s.schema}.customer (id int PRIMARY KEY, name text);
      CREATE TABLE ${s.schema}.payment (id int, d date, amount numeric(5,2), PRIMARY KEY (id, d))
        PARTITION BY RANGE (d);
      CREATE TABLE ${s.schema}.payment_2024 PARTITION OF ${s.schema}.payment
        FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
      INSERT INTO ${s.schema}.customer VALUES (1, 'a');
      INSERT INTO ${s.schema}.payment VALUES (1, '2024-05-01', 1.50);
      CREATE ROLE ${s.role} LOGIN;
      GRANT USAGE ON SCHEMA ${s.schema} TO ${s.role};
      GRANT SELECT ON ALL TABLES IN SCHEMA ${s.schema} TO ${s.role};
      ALTER ROLE ${s.role} WITH REPLICATION;`);
    const tc = await testConnection(s.home, s.conn, s.common);
    assert.equal(tc.code, 1, "test-connection fails");
    const pub = tc.checks.get("publication")!;
    assert.equal(pub.status, "failed");
    assert.match(pub.detail, /permission denied for database/);
    assert.ok(pub.hint!.includes(`GRANT CREATE ON DATABASE "${s.database}" TO "${s.role}"`));
    assert.ok(pub.hint!.includes(`ALTER TABLE … OWNER TO "${s.role}"`));
    // The DBA's statements record the replication that owns the publication, as Replicant's
    // own creation does: without that, the run would not use a publication it finds.
    const createOnly = `CREATE PUBLICATION "${s.slot}" FOR TABLE "${s.schema}"."customer", ` +
      `"${s.schema}"."payment" WITH (publish_via_partition_root = true);`;
    const claim = `COMMENT ON PUBLICATION "${s.slot}" IS 'replicant default/${s.id}';`;
    const create = `${createOnly} ${claim}`;
    assert.ok(pub.hint!.includes(create), pub.hint!);
    for (const name of ["select privilege", "replica identity", "replication privilege"]) {
      assert.equal(tc.checks.get(name)?.status, "ok", name);
    }

    const full = [
      "full",
      s.conn,
      s.home.redisConn,
      ...s.common,
      "--home",
      s.home.dir,
    ];
    const refused = await runReplicant(full);
    assert.equal(refused.code, 2, refused.stderr);
    assert.ok(refused.stderr.includes(create), refused.stderr);
    assert.match(refused.stderr, /permission denied for database/);
    const left = await db.query(
      "SELECT (SELECT count(*) FROM pg_publication WHERE pubname = $1)::int AS p, " +
        "(SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1)::int AS s",
      [s.slot],
    );
    assert.deepEqual(left.rows[0], { p: 0, s: 0 }, "nothing created");
    // Refused before anything changed: the id has no state either.
    assert.equal(await redis.exists(`replicate_io_checkpoint_default_${s.id}`), 0, "no state");

    // A publication made without the comment belongs to nobody Replicant knows: refused, and
    // the check says how to claim it.
    await db.query(createOnly);
    const unclaimed = await testConnection(s.home, s.conn, s.common);
    assert.equal(unclaimed.code, 1);
    const owner = unclaimed.checks.get("publication")!;
    assert.equal(owner.status, "failed");
    assert.match(owner.detail, /belongs to nobody Replicant knows/);
    assert.ok(owner.detail.includes(claim.slice(0, -1)), owner.detail);
    const notOwned = await runReplicant(full);
    assert.equal(notOwned.code, 2, notOwned.stderr);
    assert.ok(notOwned.stderr.includes(claim.slice(0, -1)), notOwned.stderr);

    // The DBA claims it for the id; the same user now passes and replicates.
    await db.query(claim);
    const again = await testConnection(s.home, s.conn, s.common);
    assert.equal(again.checks.get("publication")!.status, "ok");
    assert.equal(again.code, 0, JSON.stringify([...again.checks.values()]));
    run = startReplicant([...full, "--resume"]);
    const cdc = `replicant_${s.schema}_payment_cdc_logs`;
    await waitFor(async () => (await redis.xlen(`replicant_${s.schema}_payment`)) === 1, {
      what: "the snapshot",
      timeoutMs: 60_000,
    });
    await db.query(`INSERT INTO ${s.schema}.payment VALUES (2, '2024-06-01', 2.50)`);
    await waitFor(async () => (await redis.xlen(cdc)) === 1, { what: "the change" });
    run.kill("SIGTERM");
    const out = await run.done;
    run = null;
    assert.equal(out.code, 0, out.stderr);
  } finally {
    if (run) {
      run.kill("SIGKILL");
      await run.done;
    }
    await dropSlot(db, s.slot).catch(() => {});
    await dropPublication(db, s.slot).catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${s.schema} CASCADE`);
    await db.query(`DROP OWNED BY ${s.role}`).catch(() => {});
    await db.query(`DROP ROLE IF EXISTS ${s.role}`);
    await deleteKeys(redis, `replicant_${s.schema}_*`);
    await deleteKeys(redis, `replicate_io_*_default_${s.id}`);
    await db.end();
    redis.disconnect();
  }
});

Deno.test("grants (pg): SELECT missing and a table without replica identity: test-connection and runs agree", async () => {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const s = setup(tag);
  const db = await pgClient();
  const redis = redisClient();
  try {
    await db.query(`CREATE SCHEMA ${s.schema};
      CREATE TABLE ${s.schema}.film (id int PRIMARY KEY);
      CREATE TABLE ${s.schema}.log (at timestamptz, line text);
      CREATE ROLE ${s.role} LOGIN REPLICATION;
      GRANT USAGE ON SCHEMA ${s.schema} TO ${s.role};
      GRANT SELECT ON ${s.schema}.film TO ${s.role};`);
    const snapshotOnly = s.home.write("validate.yaml", "mode: SNAPSHOT\n");
    const tc = await testConnection(s.home, s.conn, [...s.common, "--validate", snapshotOnly]);
    assert.equal(tc.code, 1);
    const select = tc.checks.get("select privilege")!;
    assert.equal(select.status, "failed");
    assert.ok(select.hint!.includes(`GRANT SELECT ON "${s.schema}"."log" TO "${s.role}"`));
    assert.equal(tc.checks.get("publication"), undefined, "a snapshot needs no publication");
    const snapshot = await runReplicant([
      "snapshot",
      s.conn,
      s.home.redisConn,
      ...s.common,
      "--home",
      s.home.dir,
    ]);
    assert.notEqual(snapshot.code, 0, "the snapshot fails too");
    assert.match(snapshot.stderr + snapshot.stdout, /permission denied for table log/);

    // As superuser: everything readable, but log has no replica identity.
    const full = ["full", s.home.pgConn, s.home.redisConn, ...s.common, "--home", s.home.dir];
    const tcFull = await testConnection(s.home, s.home.pgConn, s.common);
    assert.equal(tcFull.code, 1);
    const ri = tcFull.checks.get("replica identity")!;
    assert.equal(ri.status, "failed");
    assert.match(ri.detail, new RegExp(`${s.schema}\\.log: no primary key and REPLICA IDENTITY`));
    const refused = await runReplicant([...full, "--overwrite"]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.ok(refused.stderr.includes(`ALTER TABLE "${s.schema}"."log" REPLICA IDENTITY FULL`));
    await db.query(`ALTER TABLE ${s.schema}.log REPLICA IDENTITY FULL`);
    const fixed = await testConnection(s.home, s.home.pgConn, s.common);
    assert.equal(fixed.checks.get("replica identity")!.status, "ok");
    assert.equal(fixed.checks.get("publication")!.status, "ok");
    assert.match(fixed.checks.get("publication")!.detail, /a run will create/);
  } finally {
    await dropSlot(db, s.slot).catch(() => {});
    await dropPublication(db, s.slot).catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${s.schema} CASCADE`);
    await db.query(`DROP OWNED BY ${s.role}`).catch(() => {});
    await db.query(`DROP ROLE IF EXISTS ${s.role}`);
    await deleteKeys(redis, `replicant_${s.schema}_*`);
    await deleteKeys(redis, `replicate_io_*_default_${s.id}`);
    await db.end();
    redis.disconnect();
  }
});
