/**
 * End-to-end: passwords never leak. A PostgreSQL role (private server, TLS, scram-sha-256)
 * and a Redis ACL user (private server) get distinctive random passwords, delivered to the
 * binary three ways: `${ENV}`, `password-file` and AWS Secrets Manager (`arcion-sm://`, a fake
 * GetSecretValue endpoint). With each, every command that connects runs (snapshot, full
 * with live changes, test-connection, fetch-schemas, cleanup-indoubt) in text and JSON log
 * formats and with --verbose; then stdout, stderr, every file under the home (trace.log,
 * error.log, manifest, reports, bad_rows, schemas.yaml) and every key of the target Redis
 * (checkpoints, schema dump, streams) are searched for the passwords: they appear nowhere.
 * Wrong passwords and an unknown secret fail with messages naming the file, without them.
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Redis } from "ioredis";
import { makeTestCerts } from "../config/tls_certs.ts";
import { fakeSecretsManager } from "../helpers/fake_secrets_manager.ts";
import { startPrivatePostgres } from "../helpers/private_postgres.ts";
import { runReplicant, type RunResult, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { privateRedis } from "../pipeline/failure_fixture.ts";

const PG_SECRET = `pgS3cret-${crypto.randomUUID()}`;
const REDIS_SECRET = `rdS3cret-${crypto.randomUUID()}`;
const WRONG = `wr0ng-${crypto.randomUUID()}`;
const SECRETS = [PG_SECRET, REDIS_SECRET, WRONG];
const ROWS = 20;
const STREAM = "secdb_sec_items";

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : [p];
  });
}

/** Every key of the Redis as text: streams' entries, hashes, strings, with the key names. */
async function redisDump(admin: Redis): Promise<string> {
  const out: string[] = [];
  for (const key of await admin.keys("*")) {
    out.push(key);
    const type = await admin.type(key);
    if (type === "stream") out.push(JSON.stringify(await admin.xrange(key, "-", "+")));
    else if (type === "hash") out.push(JSON.stringify(await admin.hgetall(key)));
    else if (type === "string") out.push(String(await admin.get(key)));
    else out.push(`(${type})`);
  }
  return out.join("\n");
}

function assertNoSecret(where: string, text: string): void {
  for (const secret of SECRETS) {
    assert.ok(!text.includes(secret), `a password appears in ${where}:\n${text}`);
  }
}

Deno.test({
  name: "secrets e2e: passwords from ${ENV}, password-file and Secrets Manager never leak",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const certs = makeTestCerts();
    const pgServer = await startPrivatePostgres({ certs });
    const redis = await privateRedis(56800);
    const admin = redis.admin();
    const sm = fakeSecretsManager({
      replicantSecrets: JSON.stringify({ pg_password: PG_SECRET, redis_password: REDIS_SECRET }),
    });
    const conf = mkdtempSync(path.join(tmpdir(), "replicant-secrets-conf-"));
    const home = mkdtempSync(path.join(tmpdir(), "replicant-secrets-home-"));
    const env = {
      SEC_PG_PASSWORD: PG_SECRET,
      SEC_REDIS_PASSWORD: REDIS_SECRET,
      AWS_ACCESS_KEY_ID: "AKIDREPLICANTTEST",
      AWS_SECRET_ACCESS_KEY: "fake-secret-key",
      AWS_REGION: "us-east-1",
      AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.url,
      AWS_PROFILE: undefined,
    };
    const outputs: [string, RunResult][] = [];
    const run = async (label: string, args: string[]) => {
      const r = await runReplicant([...args, "--home", home], { env });
      outputs.push([label, r]);
      return r;
    };
    const write = (name: string, text: string, mode = 0o600) => {
      const file = path.join(conf, name);
      writeFileSync(file, text);
      chmodSync(file, mode);
      return file;
    };
    try {
      const pgAdmin = await pgServer.admin();
      await pgAdmin.query("CREATE DATABASE secdb");
      await pgAdmin.query(
        `CREATE ROLE sec_user LOGIN SUPERUSER REPLICATION PASSWORD '${PG_SECRET}'`,
      );
      await pgAdmin.end();
      const db = await pgServer.admin("secdb");
      await db.query("CREATE SCHEMA sec; CREATE TABLE sec.items (id int PRIMARY KEY, v text)");
      await db.query(`INSERT INTO sec.items SELECT g, 'v' || g FROM generate_series(1, ${ROWS}) g`);
      await admin.call(
        "ACL",
        "SETUSER",
        "sec_redis",
        "on",
        `>${REDIS_SECRET}`,
        "~*",
        "&*",
        "+@all",
      );
      const filter = write("filter.yaml", "allow:\n  - catalog: secdb\n    schema: sec\n");
      const pgFile = write("pg.pw", PG_SECRET + "\n");
      const redisFile = write("redis.pw", REDIS_SECRET + "\n");
      const pgConn = (name: string, password: string) =>
        write(
          `${name}.yaml`,
          `type: POSTGRESQL\nhost: 127.0.0.1\nport: ${pgServer.port}\ndatabase: secdb\n` +
            `username: sec_user\n${password}\nssl:\n  root-cert: ${certs.caCert}\n`,
        );
      const redisConn = (name: string, password: string) =>
        write(
          `${name}.yaml`,
          `type: REDIS_STREAM\nhost: 127.0.0.1\nport: ${redis.port}\nusername: sec_redis\n` +
            `${password}\nmax-connections: 2\n`,
        );
      const ways = [
        {
          id: "sec_env",
          pg: pgConn("pg_env", "password: ${SEC_PG_PASSWORD}"),
          redis: redisConn("redis_env", "password: ${SEC_REDIS_PASSWORD}"),
          flags: ["--log-format", "json"],
        },
        {
          id: "sec_file",
          pg: pgConn("pg_file", `password-file: ${pgFile}`),
          redis: redisConn("redis_file", `password-file: ${redisFile}`),
          flags: ["--verbose"],
        },
        {
          id: "sec_sm",
          pg: pgConn("pg_sm", "password: arcion-sm://replicantSecrets/pg_password"),
          redis: redisConn("redis_sm", "password: arcion-sm://replicantSecrets/redis_password"),
          flags: ["--verbose", "--log-format", "json"],
        },
      ];
      let live = ROWS;
      for (const way of ways) {
        await t.step(
          `${way.id}: snapshot, full, test-connection, fetch-schemas, cleanup`,
          async () => {
            const common = ["--filter", filter, "--replace-existing", ...way.flags];
            const snap = await run(`${way.id} snapshot`, [
              "snapshot",
              way.pg,
              way.redis,
              "--id",
              way.id,
              ...common,
            ]);
            assert.equal(snap.code, 0, snap.stdout + snap.stderr);
            assert.equal(await admin.xlen(STREAM), live);

            // full: the snapshot again, then one live change through the replication connection.
            await admin.del(STREAM, `${STREAM}_cdc_logs`);
            const full = startReplicant(
              ["full", way.pg, way.redis, "--id", `${way.id}_full`, ...common, "--home", home],
              { env },
            );
            try {
              await waitFor(async () => (await admin.xlen(STREAM)) === live, {
                timeoutMs: 30_000,
                what: "the snapshot of full",
              });
              await db.query(`INSERT INTO sec.items VALUES (${++live}, 'live')`);
              await waitFor(async () => (await admin.xlen(`${STREAM}_cdc_logs`)) === 1, {
                timeoutMs: 30_000,
                what: "the live change",
              });
            } finally {
              full.kill("SIGTERM");
            }
            const fullResult = await full.done;
            outputs.push([`${way.id} full`, fullResult]);
            assert.equal(fullResult.code, 0, fullResult.stdout + fullResult.stderr);

            const tc = await run(`${way.id} test-connection`, [
              "test-connection",
              way.pg,
              way.redis,
              "--id",
              way.id,
            ]);
            assert.match(tc.stdout, /credentials\s+PASSED\s+logged in as sec_user/);
            assert.match(tc.stdout, /credentials\s+PASSED\s+logged in as sec_redis/);

            const fs = await run(`${way.id} fetch-schemas`, [
              "fetch-schemas",
              way.redis,
              "--id",
              way.id,
              "--output-file",
              path.join(home, `schemas_${way.id}.yaml`),
            ]);
            assert.equal(fs.code, 0, fs.stdout + fs.stderr);
            assert.match(fs.stdout, /Wrote 1 table/);
            const fsSource = await run(`${way.id} fetch-schemas (source)`, [
              "fetch-schemas",
              way.pg,
              "--filter",
              filter,
              "--output-file",
              path.join(home, `source_schemas_${way.id}.yaml`),
            ]);
            assert.equal(fsSource.code, 0, fsSource.stdout + fsSource.stderr);
            assert.match(fsSource.stdout, /Wrote 1 table/);

            const indoubt = path.join(home, "data", way.id, "bad_rows");
            mkdirSync(indoubt, { recursive: true });
            writeFileSync(path.join(indoubt, "replicate_io_indoubt_txn_log"), "gone_stream 1-1\n");
            const cl = await run(`${way.id} cleanup-indoubt`, [
              "cleanup-indoubt",
              way.redis,
              "--id",
              way.id,
            ]);
            assert.equal(cl.code, 0, cl.stdout + cl.stderr);
            assert.match(cl.stdout, /already absent gone_stream 1-1/);
          },
        );
      }

      await t.step("wrong passwords: authentication failed, naming the file", async () => {
        const badPg = pgConn("pg_wrong", "password: ${SEC_WRONG}");
        const okRedis = ways[0].redis;
        const r = await runReplicant(
          ["snapshot", badPg, okRedis, "--id", "sec_wrong", "--home", home, "--verbose"],
          { env: { ...env, SEC_WRONG: WRONG } },
        );
        outputs.push(["wrong pg", r]);
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stderr, /pg_wrong\.yaml\): authentication failed for user "sec_user"/);

        const badRedisFile = write("redis_wrong.pw", WRONG);
        const badRedis = redisConn("redis_wrong", `password-file: ${badRedisFile}`);
        const r2 = await run("wrong redis", [
          "snapshot",
          ways[0].pg,
          badRedis,
          "--id",
          "sec_wrong",
          "--log-format",
          "json",
        ]);
        assert.equal(r2.code, 1, r2.stdout + r2.stderr);
        assert.match(r2.stderr, /redis_wrong\.yaml\): WRONGPASS/);
        assert.match(r2.stderr, /authentication failed/);
      });

      await t.step("an unknown secret is a configuration error naming file and key", async () => {
        const missing = redisConn("redis_nosecret", "password: arcion-sm://noSuchSecret/password");
        const r = await run("unknown secret", [
          "snapshot",
          ways[0].pg,
          missing,
          "--id",
          "sec_nosecret",
        ]);
        assert.equal(r.code, 2, r.stdout + r.stderr);
        assert.match(
          r.stderr,
          /redis_nosecret\.yaml: password: cannot read AWS Secrets Manager secret "noSuchSecret": ResourceNotFoundException/,
        );
        const tc = await run("unknown secret, test-connection", ["test-connection", missing]);
        assert.equal(tc.code, 2, tc.stdout + tc.stderr);
        assert.match(tc.stderr, /redis_nosecret\.yaml: password: cannot read/);
      });

      await t.step("no password anywhere in the outputs, the home or Redis", async () => {
        for (const [label, r] of outputs) {
          assertNoSecret(`stdout of ${label}`, r.stdout);
          assertNoSecret(`stderr of ${label}`, r.stderr);
        }
        const files = filesUnder(home);
        for (const name of ["manifest.json", "trace.log"]) {
          assert.ok(files.some((f) => f.endsWith(`/sec_sm/${name}`)), `${name} in ${files}`);
        }
        // The failed run's reason is in error.log: searched too.
        const errors = readFileSync(path.join(home, "data", "sec_wrong", "error.log"), "utf8");
        assert.match(errors, /authentication failed for user "sec_user"/);
        assert.ok(files.some((f) => f.includes("test_connection_")));
        for (const file of files) assertNoSecret(file, readFileSync(file, "latin1"));
        const dump = await redisDump(admin);
        assert.match(dump, /replicate_io_checkpoint_default_sec_sm_full/);
        assertNoSecret("the target Redis", dump);
        // Every secret was fetched from the fake Secrets Manager (not a leftover variable).
        assert.ok(sm.requests.some((q) => q.secretId === "replicantSecrets"));
      });
      await db.end();
    } finally {
      admin.disconnect();
      await redis.stop();
      await pgServer.stop();
      await sm.close();
      for (const dir of [certs.dir, conf, home]) rmSync(dir, { recursive: true, force: true });
    }
  },
});
