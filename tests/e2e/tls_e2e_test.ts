/**
 * End-to-end: the compiled binary snapshots a PostgreSQL table into real Redis servers that
 * speak only TLS, started here with certificates made here: one that accepts any client, one
 * that requires a client certificate (mutual TLS) and a password. Trust stores are PEM,
 * PKCS12 and JKS; key stores PKCS12 and JKS. A certificate that does not name the host fails
 * unless `hostname-verification: false` (which, without a trust store, also skips the chain
 * check, like libpq's sslmode=require); a wrong store password is a configuration error
 * (exit 2) naming the key.
 */
import assert from "node:assert/strict";
import { chmodSync, rmSync } from "node:fs";
import { pgClient } from "../helpers/clients.ts";
import { runReplicant, type RunResult, scratchHome } from "../helpers/replicant.ts";
import { startTlsRedis, stopTlsRedis, type TlsRedis } from "../helpers/tls_redis.ts";
import { KEY_PASSWORD, makeTestCerts, TRUST_PASSWORD } from "../config/tls_certs.ts";

const SCHEMA = "e2e_tls";
const STREAM = `replicant_${SCHEMA}_items`;
const ROWS = 25;
const REDIS_PASSWORD = "tls-secret";

Deno.test({
  name: "TLS Redis: PEM, PKCS12 and JKS stores, mutual TLS, host names, store passwords",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const certs = makeTestCerts();
    const db = await pgClient();
    const plain = await startTlsRedis(certs);
    const mtls = await startTlsRedis(certs, { clientCerts: true, password: REDIS_PASSWORD });
    const home = scratchHome();
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: replicant\n    schema: ${SCHEMA}\n    types: [TABLE]\n`,
    );
    let run = 0;
    const snapshot = async (redis: TlsRedis, yaml: string): Promise<RunResult> => {
      run++;
      const conn = home.write(`redis_tls_${run}.yaml`, `type: REDIS_STREAM\n${yaml}`);
      await redis.client.del(STREAM);
      return runReplicant([
        "snapshot",
        home.pgConn,
        conn,
        "--filter",
        filter,
        "--id",
        `tls_${run}`,
        "--home",
        home.dir,
        "--replace-existing",
      ]);
    };
    const assertCopied = async (redis: TlsRedis, r: RunResult) => {
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(await redis.client.xlen(STREAM), ROWS);
    };
    const at = (redis: TlsRedis, host = "127.0.0.1") => `host: ${host}\nport: ${redis.port}\n`;
    try {
      await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE; CREATE SCHEMA ${SCHEMA}`);
      await db.query(`CREATE TABLE ${SCHEMA}.items (id int PRIMARY KEY, v text)`);
      await db.query(
        `INSERT INTO ${SCHEMA}.items SELECT g, 'v' || g FROM generate_series(1, ${ROWS}) g`,
      );

      await t.step("PEM trust store", async () => {
        const r = await snapshot(
          plain,
          at(plain) +
            `ssl:\n  trust-store:\n    path: ${certs.caCert}\n    ssl-store-type: PEM\n`,
        );
        await assertCopied(plain, r);
      });

      await t.step("PKCS12 trust store, host name localhost", async () => {
        const r = await snapshot(
          plain,
          at(plain, "localhost") +
            `ssl:\n  trust-store:\n    path: ${certs.trustP12}\n    password: ${TRUST_PASSWORD}\n` +
            `    ssl-store-type: PKCS12\n`,
        );
        await assertCopied(plain, r);
      });

      await t.step("JKS trust store", async () => {
        assert.ok(certs.trustJks, "keytool made no JKS store");
        const r = await snapshot(
          plain,
          at(plain) +
            `ssl:\n  trust-store:\n    path: ${certs.trustJks}\n    password: ${TRUST_PASSWORD}\n` +
            `    ssl-store-type: JKS\n`,
        );
        await assertCopied(plain, r);
      });

      await t.step("a server certificate not signed by the trust store fails", async () => {
        const r = await snapshot(plain, at(plain) + "ssl:\n  enable: true\n");
        assert.equal(r.code, 1, r.stderr + r.stdout);
        assert.match(
          r.stderr,
          new RegExp(`${plain.port}.*(self.signed|unable to (get|verify))`, "i"),
        );
        // hostname-verification: false and no CA: encrypted, server unverified (sslmode=require).
        const unverified = await snapshot(
          plain,
          at(plain) + "ssl:\n  hostname-verification: false\n",
        );
        await assertCopied(plain, unverified);
      });

      await t.step("a host name the certificate does not name fails", async () => {
        const trust = `ssl:\n  trust-store:\n    path: ${certs.caCert}\n`;
        const r = await snapshot(plain, at(plain, "127.0.0.2") + trust);
        assert.equal(r.code, 1, r.stderr + r.stdout);
        assert.match(r.stderr, /127\.0\.0\.2/);
        assert.match(r.stderr, /IP: 127\.0\.0\.2 is not in the cert's list|altnames|host ?name/i);
        const off = await snapshot(
          plain,
          at(plain, "127.0.0.2") + trust + "  hostname-verification: false\n",
        );
        await assertCopied(plain, off);
      });

      await t.step("mutual TLS with a PKCS12 key store and a password", async () => {
        const r = await snapshot(
          mtls,
          at(mtls) + `password: ${REDIS_PASSWORD}\n` +
            `ssl:\n  trust-store:\n    path: ${certs.trustP12}\n    password: ${TRUST_PASSWORD}\n` +
            `  key-store:\n    path: ${certs.clientP12}\n    password: ${KEY_PASSWORD}\n` +
            `    ssl-store-type: PKCS12\n`,
        );
        await assertCopied(mtls, r);
      });

      await t.step("store and connection passwords from password files", async () => {
        const pw = (name: string, text: string) => {
          const file = home.write(name, text + "\n");
          chmodSync(file, 0o600);
          return file;
        };
        const r = await snapshot(
          mtls,
          at(mtls) + `password-file: ${pw("redis.pw", REDIS_PASSWORD)}\n` +
            `ssl:\n  trust-store:\n    path: ${certs.trustP12}\n` +
            `    password-file: ${pw("trust.pw", TRUST_PASSWORD)}\n` +
            `  key-store:\n    path: ${certs.clientP12}\n` +
            `    password-file: ${pw("key.pw", KEY_PASSWORD)}\n`,
        );
        await assertCopied(mtls, r);
        assert.doesNotMatch(r.stderr, /warning/);
      });

      await t.step("mutual TLS with a JKS key store", async () => {
        assert.ok(certs.clientJks, "keytool made no JKS store");
        const r = await snapshot(
          mtls,
          at(mtls) + `password: ${REDIS_PASSWORD}\n` +
            `ssl:\n  trust-store:\n    path: ${certs.trustJks}\n    password: ${TRUST_PASSWORD}\n` +
            `  key-store:\n    path: ${certs.clientJks}\n    password: ${KEY_PASSWORD}\n`,
        );
        await assertCopied(mtls, r);
      });

      await t.step("mutual TLS without a client certificate fails", async () => {
        const r = await snapshot(
          mtls,
          at(mtls) +
            `password: ${REDIS_PASSWORD}\nssl:\n  trust-store:\n    path: ${certs.caCert}\n`,
        );
        assert.equal(r.code, 1, r.stderr + r.stdout);
        assert.match(
          r.stderr,
          new RegExp(`Cannot connect to Redis at 127\\.0\\.0\\.1:${mtls.port}`),
        );
      });

      await t.step("a wrong store password is a configuration error naming the key", async () => {
        const r = await snapshot(
          mtls,
          at(mtls) +
            `ssl:\n  trust-store:\n    path: ${certs.trustP12}\n    password: wrong\n` +
            `  key-store:\n    path: ${certs.clientJks ?? certs.clientP12}\n    password: wrong\n`,
        );
        assert.equal(r.code, 2, r.stderr + r.stdout);
        assert.match(
          r.stderr,
          /redis_tls_\d+\.yaml: ssl\.trust-store\.password: wrong password for PKCS12 store .*trust\.p12/,
        );
        assert.match(r.stderr, /ssl\.key-store\.password: wrong password for (JKS|PKCS12) store/);
      });
    } finally {
      await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
      await db.end();
      await stopTlsRedis(plain);
      await stopTlsRedis(mtls);
      rmSync(certs.dir, { recursive: true, force: true });
    }
  },
});
