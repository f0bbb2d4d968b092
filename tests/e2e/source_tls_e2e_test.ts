/**
 * End-to-end: sources that require TLS. A private PostgreSQL 15 (pg_hba `hostssl` only,
 * scram-sha-256, and certificate authentication for one user) and a private MariaDB 10.11
 * (users created `REQUIRE SSL` and `REQUIRE X509`), both with server certificates from a CA
 * made here. Through the binary: snapshot and test-connection with the CA checked and the
 * host name verified (libpq's verify-full) work; another CA, a host name the certificate does
 * not name, and no TLS at all are refused with a message naming the connection file; MariaDB
 * with a client certificate (mutual TLS) works.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { deleteKeys, redisClient } from "../helpers/clients.ts";
import { startPrivateMariadb } from "../helpers/private_mariadb.ts";
import { startPrivatePostgres } from "../helpers/private_postgres.ts";
import { runReplicant, type RunResult, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";
import { KEY_PASSWORD, makeTestCerts } from "../config/tls_certs.ts";

const ROWS = 12;
const PG_PASSWORD = "pg-tls-Pw-" + crypto.randomUUID().slice(0, 8);
const MY_PASSWORD = "my-tls-Pw-" + crypto.randomUUID().slice(0, 8);

/** Asserts a failed run: exit 1 and every pattern found in stderr. */
function assertRefused(r: RunResult, ...patterns: RegExp[]): void {
  assert.equal(r.code, 1, r.stdout + r.stderr);
  for (const p of patterns) assert.match(r.stderr, p);
}

Deno.test({
  name: "source TLS: PostgreSQL with TLS required (verify-full, CA, host name, client cert)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const certs = makeTestCerts();
    const otherCa = makeTestCerts();
    const server = await startPrivatePostgres({
      certs,
      hba: [
        "hostssl all replicant 127.0.0.0/8 cert",
        "hostssl all all 127.0.0.0/8 scram-sha-256",
        "hostssl replication all 127.0.0.0/8 scram-sha-256",
      ],
    });
    const home = scratchHome();
    const redis = redisClient();
    const stream = "srctls_e2e_srctls_items";
    try {
      const admin = await server.admin();
      await admin.query("CREATE DATABASE srctls");
      await admin.query(`CREATE ROLE tls_user LOGIN REPLICATION PASSWORD '${PG_PASSWORD}'`);
      await admin.query("CREATE ROLE replicant LOGIN");
      await admin.end();
      const db = await server.admin("srctls");
      await db.query("CREATE SCHEMA e2e_srctls");
      await db.query("CREATE TABLE e2e_srctls.items (id int PRIMARY KEY, v text)");
      await db.query(
        `INSERT INTO e2e_srctls.items SELECT g, 'v' || g FROM generate_series(1, ${ROWS}) g`,
      );
      await db.query("GRANT USAGE ON SCHEMA e2e_srctls TO tls_user, replicant");
      await db.query("GRANT SELECT ON ALL TABLES IN SCHEMA e2e_srctls TO tls_user, replicant");
      await db.end();
      const filter = home.write(
        "pg_filter.yaml",
        "allow:\n  - catalog: srctls\n    schema: e2e_srctls\n    types: [TABLE]\n",
      );
      let n = 0;
      const conn = (yaml: string, host = "127.0.0.1", user = "tls_user") =>
        home.write(
          `pg_tls_${++n}.yaml`,
          `type: POSTGRESQL\nhost: ${host}\nport: ${server.port}\ndatabase: srctls\n` +
            `username: ${user}\n${yaml}`,
        );
      const snapshot = async (file: string) => {
        await redis.del(stream);
        return runReplicant([
          "snapshot",
          file,
          home.redisConn,
          "--filter",
          filter,
          "--id",
          `srctls_pg_${n}`,
          "--home",
          home.dir,
          "--replace-existing",
        ]);
      };
      const password = `password: ${PG_PASSWORD}\n`;

      await t.step(
        "verify-full with the root certificate: snapshot and test-connection",
        async () => {
          const file = conn(password + `ssl:\n  root-cert: ${certs.caCert}\n`);
          const r = await snapshot(file);
          assert.equal(r.code, 0, r.stdout + r.stderr);
          assert.equal(await redis.xlen(stream), ROWS);
          const v = home.write("validate.yaml", "end-point-type: SRC\nmode: SNAPSHOT\n");
          const tc = await runReplicant([
            "test-connection",
            file,
            "--validate",
            v,
            "--home",
            home.dir,
            "--id",
            "srctls_tc",
          ]);
          assert.equal(tc.code, 0, tc.stdout + tc.stderr);
          assert.match(tc.stdout, /credentials\s+PASSED\s+logged in as tls_user/);
        },
      );

      await t.step("the same through localhost, with a PKCS12-free PEM trust store", async () => {
        const file = conn(
          password + `ssl:\n  trust-store:\n    path: ${certs.caCert}\n`,
          "localhost",
        );
        const r = await snapshot(file);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(await redis.xlen(stream), ROWS);
      });

      await t.step("a certificate from another CA is refused, naming the file", async () => {
        const file = conn(password + `ssl:\n  root-cert: ${otherCa.caCert}\n`);
        assertRefused(
          await snapshot(file),
          new RegExp(`PostgreSQL at 127\\.0\\.0\\.1:${server.port}.*pg_tls_${n}\\.yaml`),
          /not trusted|self.signed|unable to (verify|get)/i,
        );
      });

      await t.step(
        "a host name the certificate does not name is refused under verify-full",
        async () => {
          const file = conn(password + `ssl:\n  root-cert: ${certs.caCert}\n`, "127.0.0.2");
          assertRefused(
            await snapshot(file),
            new RegExp(`pg_tls_${n}\\.yaml`),
            /127\.0\.0\.2/,
            /does not name|altnames|not in the cert/i,
          );
          // verify-ca: the chain is checked, the name is not.
          const ca = conn(
            password + `ssl:\n  root-cert: ${certs.caCert}\n  hostname-verification: false\n`,
            "127.0.0.2",
          );
          const r = await snapshot(ca);
          assert.equal(r.code, 0, r.stdout + r.stderr);
        },
      );

      await t.step(
        "without TLS the server refuses, and the message says TLS is needed",
        async () => {
          const file = conn(password);
          assertRefused(
            await snapshot(file),
            new RegExp(`PostgreSQL at 127\\.0\\.0\\.1:${server.port}.*pg_tls_${n}\\.yaml`),
            /no encryption/,
            /`ssl`/,
          );
        },
      );

      await t.step("TLS asked of a server without TLS is refused, saying so", async () => {
        const plain = serviceEnv().pg;
        const file = home.write(
          `pg_plain_${++n}.yaml`,
          `type: POSTGRESQL\nhost: ${plain.host}\nport: ${plain.port}\n` +
            `database: ${plain.database}\nusername: ${plain.user}\n` +
            `ssl:\n  root-cert: ${certs.caCert}\n`,
        );
        assertRefused(
          await snapshot(file),
          /pg_plain_\d+\.yaml\): .*the server does not accept TLS/,
        );
      });

      await t.step("certificate authentication with ssl-cert and ssl-key", async () => {
        const file = conn(
          `ssl:\n  root-cert: ${certs.caCert}\n  ssl-cert: ${certs.clientCert}\n` +
            `  ssl-key: ${certs.clientKey}\n`,
          "127.0.0.1",
          "replicant",
        );
        const r = await snapshot(file);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(await redis.xlen(stream), ROWS);
        // The same user without its certificate has no way in.
        const bare = conn(`ssl:\n  root-cert: ${certs.caCert}\n`, "127.0.0.1", "replicant");
        assertRefused(
          await snapshot(bare),
          new RegExp(`pg_tls_${n}\\.yaml\\): .*valid client certificate`),
          /set ssl\.ssl-cert and ssl\.ssl-key, or ssl\.key-store/,
        );
      });
    } finally {
      await deleteKeys(redis, "srctls_*");
      await deleteKeys(redis, "replicate_io_*srctls_pg_*");
      redis.disconnect();
      await server.stop();
      for (const dir of [certs.dir, otherCa.dir, home.dir]) {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  },
});

Deno.test({
  name: "source TLS: MariaDB with REQUIRE SSL and REQUIRE X509 users (CA check, mutual TLS)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const certs = makeTestCerts();
    const otherCa = makeTestCerts();
    const server = await startPrivateMariadb({ certs });
    const home = scratchHome();
    const redis = redisClient();
    const stream = "srctls_my_items";
    try {
      const admin = await server.admin();
      for (
        const sql of [
          "CREATE DATABASE srctls_my",
          "CREATE TABLE srctls_my.items (id int PRIMARY KEY, v varchar(20))",
          `INSERT INTO srctls_my.items SELECT seq, CONCAT('v', seq) FROM srctls_my.seq_1_to_${ROWS}`,
          `CREATE USER 'tls_user'@'%' IDENTIFIED BY '${MY_PASSWORD}' REQUIRE SSL`,
          `CREATE USER 'x509_user'@'%' IDENTIFIED BY '${MY_PASSWORD}' REQUIRE X509`,
          "GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'tls_user'@'%', 'x509_user'@'%'",
        ]
      ) await admin.query(sql);
      await admin.end();
      const filter = home.write(
        "my_filter.yaml",
        "allow:\n  - catalog: srctls_my\n    types: [TABLE]\n",
      );
      let n = 0;
      const conn = (yaml: string, user = "tls_user", host = "127.0.0.1", pw = MY_PASSWORD) =>
        home.write(
          `my_tls_${++n}.yaml`,
          `type: MARIADB\nhost: ${host}\nport: ${server.port}\nusername: ${user}\n` +
            `password: ${pw}\nslave-server-ids: [5151]\n${yaml}`,
        );
      const snapshot = async (file: string) => {
        await redis.del(stream);
        return runReplicant([
          "snapshot",
          file,
          home.redisConn,
          "--filter",
          filter,
          "--id",
          `srctls_my_${n}`,
          "--home",
          home.dir,
          "--replace-existing",
        ]);
      };

      await t.step(
        "REQUIRE SSL user with the CA checked: snapshot and test-connection",
        async () => {
          const file = conn(`ssl:\n  root-cert: ${certs.caCert}\n`);
          const r = await snapshot(file);
          assert.equal(r.code, 0, r.stdout + r.stderr);
          assert.equal(await redis.xlen(stream), ROWS);
          const v = home.write("validate.yaml", "end-point-type: SRC\nmode: SNAPSHOT\n");
          const tc = await runReplicant([
            "test-connection",
            file,
            "--validate",
            v,
            "--home",
            home.dir,
            "--id",
            "srctls_tc",
          ]);
          assert.equal(tc.code, 0, tc.stdout + tc.stderr);
          assert.match(tc.stdout, /credentials\s+PASSED\s+logged in as tls_user/);
        },
      );

      await t.step("REQUIRE SSL user: full (snapshot, then the binlog over TLS)", async () => {
        const file = conn(`ssl:\n  root-cert: ${certs.caCert}\n`);
        await redis.del(stream, `${stream}_cdc_logs`);
        const run = startReplicant([
          "full",
          file,
          home.redisConn,
          "--filter",
          filter,
          "--id",
          `srctls_my_${n}`,
          "--home",
          home.dir,
        ]);
        try {
          await waitFor(async () => (await redis.xlen(stream)) === ROWS, {
            timeoutMs: 30_000,
            what: "the snapshot",
          });
          const db = await server.admin();
          await db.query("INSERT INTO srctls_my.items VALUES (1000, 'live')");
          await db.end();
          await waitFor(async () => (await redis.xlen(`${stream}_cdc_logs`)) === 1, {
            timeoutMs: 30_000,
            what: "the change streamed over TLS",
          });
        } finally {
          run.kill("SIGTERM");
        }
        const r = await run.done;
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const db = await server.admin();
        await db.query("DELETE FROM srctls_my.items WHERE id = 1000");
        await db.end();
      });

      await t.step("REQUIRE SSL user without TLS is refused, naming the file", async () => {
        assertRefused(
          await snapshot(conn("")),
          new RegExp(`MySQL at 127\\.0\\.0\\.1:${server.port} \\(.*my_tls_${n}\\.yaml\\)`),
          /access denied for user "tls_user"/i,
          /`ssl`/,
        );
      });

      await t.step("a server certificate from another CA is refused, naming the file", async () => {
        assertRefused(
          await snapshot(conn(`ssl:\n  root-cert: ${otherCa.caCert}\n`)),
          new RegExp(`MySQL at 127\\.0\\.0\\.1:${server.port} \\(.*my_tls_${n}\\.yaml\\)`),
          /not trusted|self.signed|unable to (verify|get)/i,
        );
      });

      await t.step("a host name the certificate does not name is refused", async () => {
        const ca = `ssl:\n  root-cert: ${certs.caCert}\n`;
        assertRefused(
          await snapshot(conn(ca, "tls_user", "127.0.0.2")),
          new RegExp(`MySQL at 127\\.0\\.0\\.2:${server.port} \\(.*my_tls_${n}\\.yaml\\)`),
          /does not name this host/,
        );
        const r = await snapshot(
          conn(ca + "  hostname-verification: false\n", "tls_user", "127.0.0.2"),
        );
        assert.equal(r.code, 0, r.stdout + r.stderr);
      });

      await t.step("a wrong password: authentication failed, naming the file", async () => {
        const r = await snapshot(
          conn(`ssl:\n  root-cert: ${certs.caCert}\n`, "tls_user", "127.0.0.1", "not-it"),
        );
        assertRefused(r, new RegExp(`my_tls_${n}\\.yaml\\): authentication failed`));
        assert.ok(!r.stderr.includes(MY_PASSWORD) && !r.stderr.includes("not-it"));
      });

      await t.step("REQUIRE X509 user with a client certificate (PEM files, PKCS12)", async () => {
        const pem = conn(
          `ssl:\n  root-cert: ${certs.caCert}\n  ssl-cert: ${certs.clientCert}\n` +
            `  ssl-key: ${certs.clientKey}\n`,
          "x509_user",
        );
        const r = await snapshot(pem);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(await redis.xlen(stream), ROWS);
        const p12 = conn(
          `ssl:\n  trust-store:\n    path: ${certs.caCert}\n  key-store:\n` +
            `    path: ${certs.clientP12}\n    password: ${KEY_PASSWORD}\n`,
          "x509_user",
        );
        const r2 = await snapshot(p12);
        assert.equal(r2.code, 0, r2.stdout + r2.stderr);
        assert.equal(await redis.xlen(stream), ROWS);
      });

      await t.step("REQUIRE X509 user without a client certificate is refused", async () => {
        assertRefused(
          await snapshot(conn(`ssl:\n  root-cert: ${certs.caCert}\n`, "x509_user")),
          new RegExp(`my_tls_${n}\\.yaml`),
          /access denied for user "x509_user"/i,
          /REQUIRE X509 also needs a client certificate/,
        );
      });
    } finally {
      await deleteKeys(redis, "srctls_my_*");
      await deleteKeys(redis, "replicate_io_*srctls_my_*");
      redis.disconnect();
      await server.stop();
      for (const dir of [certs.dir, otherCa.dir, home.dir]) {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  },
});
