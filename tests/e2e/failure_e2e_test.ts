/**
 * End-to-end failure semantics with the compiled binary and real faults
 * on a private Redis: WRONGTYPE and NOPERM tables skipped (exit 3) or fatal (exit 1), OOM
 * mid-batch, Redis killed mid-batch and a connection cut by a proxy (snapshot retries only
 * the rows that failed); a kill -9 while refused or cut-off rows are retried, then --resume
 * (no row skipped); GLOBAL in-doubt entries (exit 4), the --resume refusal,
 * `cleanup-indoubt` and a resume that completes every change exactly once, in order.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import type { Redis } from "ioredis";
import { indoubtPath } from "../../src/pipeline/indoubt_log.ts";
import {
  defaultSlotName,
  dropPublication,
  dropSlot,
} from "../../src/source/postgres/pg_replication_slot.ts";
import { createOwnedSlot } from "../helpers/owned_slot.ts";
import { pgClient, readStream } from "../helpers/clients.ts";
import {
  runReplicant,
  type ScratchHome,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { TcpProxy } from "../helpers/tcp_proxy.ts";
import {
  oomReplies,
  type PrivateRedis,
  privateRedis,
  tightenMemory,
  xaddMarker,
} from "../pipeline/failure_fixture.ts";

interface Env {
  db: pg.Client;
  redis: PrivateRedis;
  admin: Redis;
  home: ScratchHome;
  schema: string;
  id: string;
  filter: string;
  stream(table: string): string;
}

let seq = 0;

async function withEnv(tag: string, fn: (env: Env) => Promise<void>): Promise<void> {
  const schema = `fl_${tag}_${Date.now().toString(36)}${(seq++).toString(36)}`;
  const db = await pgClient();
  const redis = await privateRedis();
  const admin = redis.admin();
  const home = scratchHome();
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: replicant\n    schema: ${schema}\n    types: [TABLE]\n`,
    );
    await fn({
      db,
      redis,
      admin,
      home,
      schema,
      id: schema,
      filter,
      stream: (t) => `replicant_${schema}_${t}`,
    });
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await db.end();
    admin.disconnect();
    await redis.stop();
    rmSync(home.dir, { recursive: true, force: true });
  }
}

async function table(env: Env, name: string, rows: number, pad = 100): Promise<void> {
  await env.db.query(`CREATE TABLE ${env.schema}.${name} (id int PRIMARY KEY, v text)`);
  if (rows > 0) {
    await env.db.query(
      `INSERT INTO ${env.schema}.${name} SELECT i, rpad(i::text, ${pad}, 'x') FROM generate_series(1, ${rows}) i`,
    );
  }
}

/** Ids in a snapshot stream: exactly 1..n, each once. */
async function assertRows(admin: Redis, stream: string, n: number): Promise<void> {
  const entries = await readStream(admin, stream);
  const ids = entries.map(([, f]) => {
    const key = JSON.parse(f[0]);
    return (key.payload ?? key).id as number;
  });
  assert.equal(ids.length, n, `entries in ${stream}`);
  assert.equal(new Set(ids).size, n, `distinct keys in ${stream}`);
  ids.sort((a, b) => a - b);
  assert.ok(ids.every((id, i) => id === i + 1), `keys 1..${n} in ${stream}`);
}

function snapshotArgs(env: Env, conn: string, applier: string, extra: string[] = []): string[] {
  return [
    "snapshot",
    env.home.pgConn,
    conn,
    "--id",
    env.id,
    "--home",
    env.home.dir,
    "--filter",
    env.filter,
    "--applier",
    applier,
    ...extra,
  ];
}

const limitedUser = async (env: Env, writable: string[]) => {
  await env.admin.call(
    "ACL",
    "SETUSER",
    "limited",
    "on",
    ">pw",
    "resetkeys",
    "%R~*",
    ...writable.map((k) => `~${k}`),
    "~replicate_io_*",
    "&*",
    "+@all",
  );
  return env.redis.connFile(env.home.dir, "limited.yaml", { name: "limited", password: "pw" });
};

Deno.test("failure e2e: snapshot skips WRONGTYPE and NOPERM tables (exit 3), or stops (exit 1)", async () => {
  await withEnv("skip", async (env) => {
    await table(env, "ok", 300);
    await table(env, "wrong", 50);
    await table(env, "denied", 50);
    await env.admin.set(env.stream("wrong"), "not a stream");
    // Writable for the user, but of the wrong type: WRONGTYPE; not writable: NOPERM.
    const conn = await limitedUser(env, [env.stream("ok"), env.stream("wrong")]);
    const applier = env.home.write(
      "applier.yaml",
      "snapshot:\n  batch-size-rows: 100\n  max-retries: 2\n  retry-wait-duration-ms: 10\n",
    );
    const r = await runReplicant(snapshotArgs(env, conn, applier, ["--append-existing"]));
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /2 table\(s\) skipped: .*(wrong.*denied|denied.*wrong)/);
    assert.match(r.stdout, /WRONGTYPE/);
    assert.match(r.stdout, /NOPERM/);
    await assertRows(env.admin, env.stream("ok"), 300);
    assert.equal(await env.admin.exists(env.stream("denied")), 0);
    const errors = readFileSync(join(env.home.dir, "data", env.id, "error.log"), "utf8");
    assert.match(errors, new RegExp(`${env.schema}\\.wrong.*skipped.*WRONGTYPE`));
    assert.match(errors, new RegExp(`${env.schema}\\.denied.*skipped.*NOPERM`));

    const strict = env.home.write(
      "strict.yaml",
      "snapshot:\n  max-retries: 1\n  retry-wait-duration-ms: 10\n  skip-tables-on-failures: false\n",
    );
    const r2 = await runReplicant(
      snapshotArgs(env, conn, strict, ["--append-existing", "--overwrite"]),
    );
    assert.equal(r2.code, 1, r2.stdout + r2.stderr);
    assert.match(r2.stderr, /WRONGTYPE|NOPERM/);
  });
});

Deno.test("failure e2e: snapshot waits out OOM mid-batch, retries only failed rows, logs them", async () => {
  await withEnv("oom", async (env) => {
    await table(env, "big", 20_000, 300);
    const conn = env.redis.connFile(env.home.dir, "admin.yaml");
    const applier = env.home.write(
      "applier.yaml",
      "snapshot:\n  batch-size-rows: 200\n  log-row-level-errors: true\n  max-retries: 3\n" +
        "  retry-wait-duration-ms: 50\n",
    );
    const run = startReplicant(snapshotArgs(env, conn, applier));
    // Once rows flow (the run's own start-up writes are done), Redis runs out of memory.
    await waitFor(async () => (await env.admin.xlen(env.stream("big"))) >= 500, {
      what: "500 rows",
      intervalMs: 5,
    });
    await tightenMemory(env.admin, 150_000);
    await waitFor(async () => (await oomReplies(env.admin)) > 0, { what: "an OOM reply" });
    await new Promise((r) => setTimeout(r, 300));
    await env.admin.config("SET", "maxmemory", "0");
    const r = await run.done;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await assertRows(env.admin, env.stream("big"), 20_000);
    const trace = readFileSync(join(env.home.dir, "data", env.id, "trace.log"), "utf8");
    assert.match(
      trace,
      new RegExp(`row of replicant\\.${env.schema}\\.big failed \\(OOM.*key \\{`),
    );
  });
});

Deno.test("failure e2e: snapshot survives Redis killed mid-batch and a cut connection, no duplicates", async () => {
  await withEnv("kill", async (env) => {
    await table(env, "killed", 30_000, 20);
    await table(env, "cut", 3000, 20);
    const proxy = await TcpProxy.start(env.redis.port);
    try {
      const conn = env.redis.connFile(env.home.dir, "proxied.yaml", undefined, proxy.port);
      const applier = env.home.write(
        "applier.yaml",
        "snapshot:\n  batch-size-rows: 500\n  max-retries: 30\n  retry-wait-duration-ms: 100\n",
      );
      const cut = proxy.cutAt(xaddMarker(env.stream("cut")), 700);
      const run = startReplicant(snapshotArgs(env, conn, applier));
      await waitFor(
        async () => (await env.admin.xlen(env.stream("killed")).catch(() => 0)) >= 2000,
        { what: "2000 rows written", intervalMs: 10 },
      );
      await env.redis.kill();
      await new Promise((r) => setTimeout(r, 300));
      await env.redis.start();
      await cut;
      const r = await run.done;
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(proxy.cuts, 1);
      await assertRows(env.admin, env.stream("killed"), 30_000);
      await assertRows(env.admin, env.stream("cut"), 3000);
    } finally {
      await proxy.close();
    }
  });
});

/**
 * Whether the snapshot stream of keys 1..n has a hole: its newest entry's key is above its
 * length (keys go in order, each once), so a resume after that tail would skip rows.
 */
async function hasHole(admin: Redis, stream: string): Promise<boolean> {
  const out = await admin.multi().xlen(stream).xrevrange(stream, "+", "-", "COUNT", 1).exec();
  const length = out![0][1] as number;
  const tail = out![1][1] as [string, string[]][];
  if (tail.length === 0) return false;
  const key = JSON.parse(tail[0][1][0]);
  return (key.payload ?? key).id > length;
}

/**
 * Rows refused (OOM) or cut off (lost connection) are retried while later batches of the
 * table wait; the process is killed -9 as soon as the stream's tail sits above a row that
 * has not landed (or once the retries are under way), and --resume must still copy every row.
 */
for (const fault of ["oom", "cut"] as const) {
  Deno.test(`failure e2e: snapshot killed -9 after ${fault === "oom" ? "refused rows (OOM)" : "a cut connection"}, --resume skips no row`, async () => {
    await withEnv(`hole${fault}`, async (env) => {
      const rows = 60_000;
      await table(env, "big", rows, 300);
      const proxy = await TcpProxy.start(env.redis.port);
      try {
        const conn = env.redis.connFile(env.home.dir, "proxied.yaml", undefined, proxy.port);
        const applier = env.home.write(
          "applier.yaml",
          "snapshot:\n  batch-size-rows: 200\n  max-retries: 30\n  retry-wait-duration-ms: 1000\n",
        );
        const stream = env.stream("big");
        const run = startReplicant(snapshotArgs(env, conn, applier));
        await waitFor(async () => (await env.admin.xlen(stream)) >= 2000, {
          what: "2000 rows",
          intervalMs: 5,
        });
        if (fault === "oom") {
          await tightenMemory(env.admin, 150_000);
          await waitFor(async () => (await oomReplies(env.admin)) > 0, { what: "an OOM reply" });
          // Every batch in flight is refused and waits to be retried; then memory frees.
          await new Promise((r) => setTimeout(r, 300));
          await env.admin.config("SET", "maxmemory", "0");
        } else {
          proxy.down();
          await new Promise((r) => setTimeout(r, 1000));
          proxy.up();
        }
        let exited = false;
        run.done.then(() => exited = true);
        let hole = false;
        const until = Date.now() + 4000;
        while (!hole && !exited && Date.now() < until) hole = await hasHole(env.admin, stream);
        if (!exited) run.kill("SIGKILL");
        const first = await run.done;
        const at = `first run ${first.code === 137 ? "killed" : `exit ${first.code}`} at ${await env
          .admin.xlen(stream)} rows, ${hole ? "with" : "without"} a hole seen`;
        const admin = env.redis.connFile(env.home.dir, "admin.yaml");
        const r = await runReplicant(snapshotArgs(env, admin, applier, ["--resume"]));
        assert.equal(r.code, 0, r.stdout + r.stderr);
        await assertRows(env.admin, stream, rows).catch((err) => {
          throw new Error(`${err.message} (${at})`);
        });
      } finally {
        await proxy.close();
      }
    });
  });
}

Deno.test("failure e2e: GLOBAL in-doubt → exit 4, --resume refused, cleanup-indoubt, resume exactly once", async () => {
  await withEnv("glob", async (env) => {
    const tables = ["t1", "t2", "t3"];
    for (const t of tables) await table(env, t, 0);
    const slot = defaultSlotName("default", env.id);
    await createOwnedSlot(env.db, env.id, env.schema);
    const proxy = await TcpProxy.start(env.redis.port);
    try {
      // Transactions interleaved over the tables; the GLOBAL stream must hold this order.
      const expected: string[] = [];
      for (let i = 1; i <= 40; i++) {
        const sql: string[] = [];
        for (const t of i % 2 ? tables : [...tables].reverse()) {
          sql.push(`INSERT INTO ${env.schema}.${t} VALUES (${i}, 'v${i}')`);
          expected.push(`${t}:c:${i}`);
        }
        if (i > 1) {
          sql.push(`UPDATE ${env.schema}.t2 SET v = 'u' WHERE id = ${i - 1}`);
          expected.push(`t2:u:${i - 1}`);
        }
        await env.db.query(`BEGIN; ${sql.join("; ")}; COMMIT`);
      }
      await env.admin.call("ACL", "SETUSER", "nodel", "on", ">pw", "~*", "&*", "+@all", "-xdel");
      const conn = env.redis.connFile(
        env.home.dir,
        "nodel.yaml",
        { name: "nodel", password: "pw" },
        proxy.port,
      );
      const adminConn = env.redis.connFile(env.home.dir, "admin.yaml");
      const applier = env.home.write(
        "applier.yaml",
        "realtime:\n  replay-consistency: GLOBAL\n  batch-size-rows: 50\n  max-retries: 2\n" +
          "  retry-wait-duration-ms: 20\n",
      );
      const stream = `replicate_io_cdc_log_default_${env.id}`;
      const file = indoubtPath(env.home.dir, env.id);
      const common = ["--id", env.id, "--home", env.home.dir];
      const cut = proxy.cutAt(xaddMarker(stream), 30);
      const r = await runReplicant([
        "realtime",
        env.home.pgConn,
        conn,
        ...common,
        "--applier",
        applier,
        "--filter",
        env.filter,
      ]);
      await cut;
      assert.equal(r.code, 4, r.stdout + r.stderr);
      assert.ok(r.stderr.includes(file), r.stderr);
      assert.ok(r.stderr.includes(`replicant cleanup-indoubt --id ${env.id}`), r.stderr);
      // 29 landed: accepted batches, then the failed batch's first entries (in doubt).
      const landed = (await env.admin.xrange(stream, "-", "+")).map(([id]) => id);
      assert.equal(landed.length, 29);
      const text = readFileSync(file, "utf8");
      const n = text.split("\n").filter((l) => l !== "").length;
      assert.ok(n > 0, "in-doubt entries listed");
      const doubtful = landed.slice(landed.length - n);
      const listing = doubtful.map((id) => `${stream} ${id}\n`).join("");
      assert.equal(
        readFileSync(file, "utf8"),
        listing,
        readFileSync(join(env.home.dir, "data", env.id, "trace.log"), "utf8"),
      );

      const refused = await runReplicant(["realtime", conn, ...common, "--resume"]);
      assert.equal(refused.code, 4, refused.stdout + refused.stderr);
      assert.match(refused.stderr, new RegExp(`Cannot resume.*lists ${n} in-doubt entr`, "s"));
      assert.ok(refused.stderr.includes("cleanup-indoubt"));

      // DST_CONN from the manifest: the user without XDEL cannot delete; the file stays.
      const denied = await runReplicant(["cleanup-indoubt", ...common]);
      assert.equal(denied.code, 4, denied.stdout + denied.stderr);
      assert.equal(denied.stdout.split("\n").filter((l) => l.startsWith("failed ")).length, n);
      assert.match(denied.stdout, /NOPERM/);
      assert.equal(readFileSync(file, "utf8"), listing);

      const dry = await runReplicant(["cleanup-indoubt", adminConn, ...common, "--dry-run"]);
      assert.equal(dry.code, 0, dry.stdout + dry.stderr);
      assert.equal(dry.stdout.split("\n").filter((l) => l.startsWith("would delete ")).length, n);
      assert.equal(await env.admin.xlen(stream), 29);
      assert.equal(readFileSync(file, "utf8"), listing);

      const clean = await runReplicant(["cleanup-indoubt", adminConn, ...common]);
      assert.equal(clean.code, 0, clean.stdout + clean.stderr);
      assert.deepEqual(
        clean.stdout.split("\n").filter((l) => l.startsWith("deleted ")),
        doubtful.map((id) => `deleted ${stream} ${id}`),
      );
      assert.equal(await env.admin.xlen(stream), 29 - n);
      assert.equal(existsSync(file) ? readFileSync(file, "utf8") : "", "");

      const resumed = startReplicant(["realtime", conn, ...common, "--resume"]);
      await waitFor(async () => (await env.admin.xlen(stream)) >= expected.length, {
        what: `${expected.length} entries`,
        timeoutMs: 20_000,
      });
      // Deno's child.kill() reports the signal as the exit cause even after a clean exit 0.
      Deno.kill(resumed.pid, "SIGTERM");
      const done = await resumed.done;
      assert.equal(done.code, 0, done.stdout + done.stderr);
      const entries = await readStream(env.admin, stream);
      const got = entries.map(([, f]) => {
        const v = JSON.parse(f[1]).payload;
        return `${v.source.table}:${v.op}:${JSON.parse(f[0]).payload.id}`;
      });
      assert.deepEqual(got, expected);
      const pos = entries.map(([, f]) => JSON.parse(f[1]).payload.source);
      for (let i = 1; i < pos.length; i++) {
        const [a, b] = [pos[i - 1], pos[i]];
        assert.ok(a.lsn < b.lsn || (a.lsn === b.lsn && a.sequence < b.sequence), `order at ${i}`);
      }
    } finally {
      await proxy.close();
      await dropSlot(env.db, slot).catch(() => {});
      await dropPublication(env.db, slot).catch(() => {});
    }
  });
});

Deno.test("failure e2e: realtime EVENTUAL skips a NOPERM table, others go on, exit 3", async () => {
  await withEnv("rtskip", async (env) => {
    await table(env, "ok", 0);
    await table(env, "denied", 0);
    const slot = defaultSlotName("default", env.id);
    await createOwnedSlot(env.db, env.id, env.schema);
    try {
      for (let i = 1; i <= 20; i++) {
        await env.db.query(
          `BEGIN; INSERT INTO ${env.schema}.ok VALUES (${i}, 'x'); ` +
            `INSERT INTO ${env.schema}.denied VALUES (${i}, 'y'); COMMIT`,
        );
      }
      const conn = await limitedUser(env, [`${env.stream("ok")}_cdc_logs`]);
      const applier = env.home.write(
        "applier.yaml",
        "realtime:\n  max-retries: 2\n  retry-wait-duration-ms: 20\n",
      );
      const run = startReplicant([
        "realtime",
        env.home.pgConn,
        conn,
        "--id",
        env.id,
        "--home",
        env.home.dir,
        "--applier",
        applier,
        "--filter",
        env.filter,
      ]);
      await waitFor(async () => (await env.admin.xlen(`${env.stream("ok")}_cdc_logs`)) >= 20, {
        what: "20 changes of ok",
        timeoutMs: 20_000,
      });
      // The denied table is skipped once its retries are spent, which may come after the
      // other table's changes landed: a stop before that is a clean stop (exit 0).
      const errorLog = join(env.home.dir, "data", env.id, "error.log");
      await waitFor(() => {
        try {
          return / skipped: .*NOPERM/.test(readFileSync(errorLog, "utf8"));
        } catch {
          return false;
        }
      }, { what: "the denied table's error in error.log", timeoutMs: 20_000 });
      // Deno's child.kill() reports the signal as the exit cause even after a clean exit.
      Deno.kill(run.pid, "SIGTERM");
      const r = await run.done;
      assert.equal(r.code, 3, r.stdout + r.stderr);
      assert.match(
        r.stdout,
        new RegExp(`1 table\\(s\\) skipped: replicant\\.${env.schema}\\.denied`),
      );
      assert.match(r.stdout, /NOPERM/);
      const errors = readFileSync(errorLog, "utf8");
      assert.match(
        errors,
        new RegExp(`${env.schema}\\.denied .*skipped: .*at position [0-9A-F]+ .*NOPERM`),
      );
      assert.equal(await env.admin.exists(`${env.stream("denied")}_cdc_logs`), 0);
    } finally {
      await dropSlot(env.db, slot).catch(() => {});
      await dropPublication(env.db, slot).catch(() => {});
    }
  });
});
