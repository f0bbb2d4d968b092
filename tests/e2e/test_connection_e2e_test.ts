/**
 * End-to-end: `replicant test-connection` against the correctly configured test servers
 * (every check passes) and against private, deliberately misconfigured ones started here:
 * PostgreSQL with wal_level=replica, MariaDB with binlog_format=STATEMENT, Redis with
 * maxmemory-policy allkeys-lru and an ACL user without XADD. Each problem must be named in
 * the printed table and in the JSON report, and the exit code must be 1.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import mysql from "mysql2/promise";
import { Redis } from "ioredis";
import { pgClient } from "../helpers/clients.ts";
import { runReplicant, scratchHome } from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";

interface Report {
  hostPortReachable: string;
  credentialCheck: string;
  readAccessToCdcLogs: string;
  missingPermissions: Record<string, string>;
  errorMessages: Record<string, string>;
  checks: { name: string; status: string; detail: string }[];
}

function report(home: string, name: string, id = "default"): Report {
  return JSON.parse(readFileSync(join(home, "data", id, `test_connection_${name}.json`), "utf8"));
}

/**
 * The printed table with each wrapped detail joined back onto its row: continuation lines
 * are indented to the detail column, table rows start with the connection file.
 */
function unwrapped(stdout: string): string {
  return stdout.replace(/\n {4,}(?=\S)/g, " ");
}

/** A port nothing listens on right now (the kernel picks it). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("test-connection: the configured servers pass every check (exit 0)", async () => {
  const home = scratchHome();
  const my = serviceEnv().mysql;
  const myConn = home.write(
    "mysql.yaml",
    `type: MARIADB\nhost: ${my.host}\nport: ${my.port}\nusername: ${my.user}\n` +
      `password: "${my.password}"\nslave-server-ids: [9102]\n`,
  );
  const args = [
    "test-connection",
    home.pgConn,
    myConn,
    home.redisConn,
    "--home",
    home.dir,
    "--id",
    "tc_ok",
  ];
  // Piped, as here, the rows stay whole (for grep); COLUMNS, as a terminal's width, wraps
  // the detail column: rows fit, or the detail keeps 30 columns of its own.
  const piped = await runReplicant(args, { env: { COLUMNS: undefined } });
  assert.equal(piped.code, 0, piped.stdout + piped.stderr);
  assert.doesNotMatch(piped.stdout, /\n {4,}\S/);
  const wrapped = await runReplicant(args, { env: { COLUMNS: "80" } });
  assert.equal(wrapped.code, 0, wrapped.stdout + wrapped.stderr);
  const lines = wrapped.stdout.split("\n");
  const header = lines.findIndex((l) => /^connection +check +status +detail$/.test(l));
  assert.ok(header >= 0, wrapped.stdout);
  const detailAt = lines[header].indexOf("detail");
  const table = lines.slice(header + 2).filter((l) => l.startsWith(home.dir) || /^ {4,}\S/.test(l));
  assert.ok(table.some((l) => /^ {4,}\S/.test(l)), `no detail wrapped:\n${wrapped.stdout}`);
  for (const l of table) assert.ok(l.length <= Math.max(80, detailAt + 30), l);
  // The same rows, only wrapped (the rule under the header is as wide as its column).
  const rule = /^[- ]+$/m;
  assert.equal(unwrapped(wrapped.stdout).replace(rule, ""), piped.stdout.replace(rule, ""));
  const r = wrapped;
  // The private Redis runs without persistence: a warning, which the verdict counts rather
  // than calling everything passed.
  assert.match(unwrapped(r.stdout), /persistence\s+WARNING\s+appendonly no/);
  const rows = (status: string) => r.stdout.split("\n").filter((l) => l.includes(`  ${status}  `));
  assert.equal(rows("FAILED").length, 0, r.stdout);
  const warnings = rows("WARNING").length;
  assert.doesNotMatch(r.stdout, /All .*checks passed/);
  assert.match(
    r.stdout,
    new RegExp(
      `No check failed: ${rows("PASSED").length} passed, ${warnings} warnings?\\. Read the WARNING`,
    ),
  );
  for (const check of ["wal_level", "binlog_format", "ACL rights", "maxmemory-policy"]) {
    assert.match(r.stdout, new RegExp(`${check}\\s+PASSED`), check);
  }
  for (const name of ["postgresql", "mysql", "redis_stream"]) {
    const rep = report(home.dir, name, "tc_ok");
    assert.equal(rep.hostPortReachable, "PASSED", name);
    assert.equal(rep.credentialCheck, "PASSED", name);
    assert.deepEqual(rep.missingPermissions, {}, name);
    assert.deepEqual(rep.errorMessages, {}, name);
    assert.ok(rep.checks.every((c) => c.status !== "FAILED"), name);
  }
  assert.equal(report(home.dir, "postgresql", "tc_ok").readAccessToCdcLogs, "PASSED");
});

Deno.test("test-connection: a PostgreSQL user without REPLICATION is named (exit 1)", async () => {
  const role = `tc_norepl_${Date.now().toString(36)}`;
  const db = await pgClient();
  await db.query(`CREATE ROLE ${role} LOGIN`);
  try {
    const home = scratchHome();
    const pg = serviceEnv().pg;
    const conn = home.write(
      "pg_norepl.yaml",
      `type: POSTGRESQL\nhost: ${pg.host}\nport: ${pg.port}\ndatabase: ${pg.database}\n` +
        `username: ${role}\n`,
    );
    const r = await runReplicant(["test-connection", conn, "--home", home.dir]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `replication privilege\\s+FAILED\\s+user "${role}" may not stream changes: run ALTER ROLE "${role}" WITH REPLICATION`,
      ),
    );
    assert.match(r.stdout, /wal_level\s+PASSED/);
  } finally {
    await db.query(`DROP ROLE ${role}`);
    await db.end();
  }
});

Deno.test("test-connection: unreachable server and --validate SNAPSHOT", async () => {
  const home = scratchHome();
  const dead = home.write(
    "dead.yaml",
    `type: POSTGRESQL\nhost: 127.0.0.1\nport: 1\ndatabase: x\nusername: u\n`,
  );
  const validate = home.write("validate.yaml", "end-point-type: SRC\nmode: SNAPSHOT\n");
  const r = await runReplicant([
    "test-connection",
    dead,
    home.pgConn,
    "--home",
    home.dir,
    "--validate",
    validate,
  ]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.equal(report(home.dir, "dead").hostPortReachable, "FAILED");
  const pg = report(home.dir, "postgresql");
  assert.equal(pg.readAccessToCdcLogs, "SKIPPED");
  assert.ok(!pg.checks.some((c) => c.name === "wal_level"));
});

const pgBin = process.env.REPLICANT_PG_BIN || "/usr/lib/postgresql/15/bin";

Deno.test("test-connection: PostgreSQL with wal_level=replica is named (exit 1)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "replicant-tc-pg-"));
  const port = freePort();
  const asPostgres = async (cmd: string) => {
    const out = await new Deno.Command("su", { args: ["postgres", "-s", "/bin/bash", "-c", cmd] })
      .output();
    if (out.code !== 0) throw new Error(`${cmd}: ${new TextDecoder().decode(out.stderr)}`);
  };
  await new Deno.Command("chown", { args: ["postgres", dir] }).output();
  try {
    await asPostgres(`${pgBin}/initdb -D ${dir}/data --auth=trust -U postgres >/dev/null`);
    await asPostgres(
      `${pgBin}/pg_ctl -D ${dir}/data -l ${dir}/log -w -o "-p ${port} -c wal_level=replica ` +
        `-c listen_addresses=127.0.0.1 -k ${dir}" start >/dev/null`,
    );
    const home = scratchHome();
    const conn = home.write(
      "pg_replica.yaml",
      `type: POSTGRESQL\nhost: 127.0.0.1\nport: ${port}\ndatabase: postgres\nusername: postgres\n`,
    );
    const r = await runReplicant(["test-connection", conn, "--home", home.dir]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /wal_level\s+FAILED\s+wal_level is replica/);
    const rep = report(home.dir, "pg_replica");
    assert.match(rep.errorMessages.wal_level, /wal_level = logical/);
    assert.equal(rep.readAccessToCdcLogs, "FAILED");
    assert.equal(rep.credentialCheck, "PASSED");
  } finally {
    await asPostgres(`${pgBin}/pg_ctl -D ${dir}/data -m immediate -w stop >/dev/null`).catch(
      () => {},
    );
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("test-connection: Redis with allkeys-lru and a user without XADD (exit 1)", async () => {
  const port = freePort();
  const server = new Deno.Command("redis-server", {
    args: [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--maxmemory-policy",
      "allkeys-lru",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const admin = new Redis({
      port,
      host: "127.0.0.1",
      lazyConnect: true,
      retryStrategy: () => 100,
    });
    admin.on("error", () => {/* refused until the server listens */});
    await waitFor(async () => (await admin.ping()) === "PONG", { what: "private redis" });
    await admin.call("ACL", "SETUSER", "noxadd", "on", ">secret", "~*", "+@all", "-xadd");
    admin.disconnect();
    const home = scratchHome();
    const conn = home.write(
      "redis_bad.yaml",
      `type: REDIS_STREAM\nhost: 127.0.0.1\nport: ${port}\nusername: noxadd\npassword: secret\n`,
    );
    const r = await runReplicant(["test-connection", conn, "--home", home.dir]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /ACL rights\s+FAILED\s+user noxadd may not run XADD/);
    assert.match(r.stdout, /maxmemory-policy\s+FAILED\s+allkeys-lru/);
    assert.match(r.stdout, /persistence\s+WARNING/);
    const rep = report(home.dir, "redis_bad");
    assert.match(rep.missingPermissions["ACL rights"], /XADD/);
    assert.doesNotMatch(rep.missingPermissions["ACL rights"], /XDEL/);
    assert.match(rep.errorMessages["maxmemory-policy"], /noeviction/);
    assert.equal(rep.credentialCheck, "PASSED");

    // A wrong password is a failed credential check, not a crash.
    const wrong = home.write(
      "redis_wrong.yaml",
      `type: REDIS_STREAM\nhost: 127.0.0.1\nport: ${port}\nusername: noxadd\npassword: nope\n`,
    );
    const w = await runReplicant(["test-connection", wrong, "--home", home.dir]);
    assert.equal(w.code, 1, w.stdout + w.stderr);
    assert.equal(report(home.dir, "redis_wrong").credentialCheck, "FAILED");
  } finally {
    server.kill("SIGTERM");
    await server.status;
  }
});

Deno.test("test-connection: MariaDB binlog_format=STATEMENT, missing privileges, wrong password, binlog off", async () => {
  const dir = mkdtempSync(join(tmpdir(), "replicant-tc-my-"));
  const port = freePort();
  const run = async (cmd: string, args: string[]) => {
    const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
    if (out.code !== 0) throw new Error(`${cmd}: ${new TextDecoder().decode(out.stderr)}`);
  };
  await run("mariadb-install-db", [
    "--no-defaults",
    "--user=root",
    `--datadir=${dir}/data`,
    "--auth-root-authentication-method=normal",
    "--skip-test-db",
  ]);
  const start = async (binlog: boolean) => {
    const server = new Deno.Command("/usr/sbin/mariadbd", {
      args: [
        "--no-defaults",
        "--user=root",
        `--datadir=${dir}/data`,
        `--port=${port}`,
        "--bind-address=127.0.0.1",
        `--socket=${dir}/sock`,
        `--pid-file=${dir}/pid`,
        ...(binlog ? [`--log-bin=${dir}/data/binlog`] : []),
        "--binlog-format=ROW",
        "--server-id=1",
        `--log-error=${dir}/err`,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    let db: mysql.Connection | null = null;
    await waitFor(async () => {
      db = await mysql.createConnection({ host: "127.0.0.1", port, user: "root" });
      return true;
    }, { what: "private mariadbd", timeoutMs: 30_000, intervalMs: 200 }).catch((err) => {
      let log = "";
      try {
        log = readFileSync(`${dir}/err`, "utf8").slice(-2000);
      } catch { /* no log yet */ }
      throw new Error(`${(err as Error).message}\n${log}`);
    });
    return { server, db: db! as mysql.Connection };
  };
  let { server, db } = await start(true);
  try {
    await db.query("SET GLOBAL binlog_format = 'STATEMENT'");
    await db.query("CREATE USER plain@'%' IDENTIFIED BY 'plainpw'");
    await db.query("GRANT SELECT ON *.* TO plain@'%'");
    const home = scratchHome();
    const conn = home.write(
      "mariadb_stmt.yaml",
      `type: MARIADB\nhost: 127.0.0.1\nport: ${port}\nusername: root\npassword: ""\n` +
        `slave-server-ids: [1]\n`,
    );
    const r = await runReplicant(["test-connection", conn, "--home", home.dir]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /binlog_format\s+FAILED\s+binlog_format is STATEMENT/);
    const rep = report(home.dir, "mariadb_stmt");
    assert.match(rep.errorMessages.binlog_format, /SET GLOBAL binlog_format = 'ROW'/);
    // slave-server-ids lists only the server's own id 1 (with another id it is a warning).
    assert.match(rep.errorMessages["slave-server-ids"], /has no usable id/);
    assert.equal(rep.readAccessToCdcLogs, "FAILED");
    await db.query("SET GLOBAL binlog_format = 'ROW'");

    // A user without the replication privileges: the check names them and the GRANT.
    const userConn = (password: string) =>
      home.write(
        "mariadb_plain.yaml",
        `type: MARIADB\nhost: 127.0.0.1\nport: ${port}\nusername: plain\n` +
          `password: "${password}"\nslave-server-ids: [2]\n`,
      );
    const plain = await runReplicant(["test-connection", userConn("plainpw"), "--home", home.dir]);
    assert.equal(plain.code, 1, plain.stdout + plain.stderr);
    assert.match(
      plain.stdout,
      /replication privileges\s+FAILED\s+user "plain" lacks REPLICATION SLAVE, BINLOG MONITOR/,
    );
    assert.match(plain.stdout, /binlog_format\s+PASSED/);
    // A wrong password: the credentials check fails, the rest is not tried.
    const wrong = await runReplicant(["test-connection", userConn("nope"), "--home", home.dir]);
    assert.equal(wrong.code, 1, wrong.stdout + wrong.stderr);
    assert.match(
      wrong.stdout,
      /credentials\s+FAILED\s+.*mariadb_plain\.yaml\): authentication failed: access denied for user "plain"/,
    );
    assert.doesNotMatch(wrong.stdout + wrong.stderr, /nope/);

    // The binary log off (server started without log-bin).
    await db.end();
    server.kill("SIGTERM");
    await server.status;
    ({ server, db } = await start(false));
    const off = await runReplicant(["test-connection", conn, "--home", home.dir]);
    assert.equal(off.code, 1, off.stdout + off.stderr);
    assert.match(
      off.stdout,
      /log_bin\s+FAILED\s+the binary log is off: start the server with `log-bin`/,
    );
  } finally {
    await db.end().catch(() => {});
    server.kill("SIGTERM");
    await server.status;
    rmSync(dir, { recursive: true, force: true });
  }
});
