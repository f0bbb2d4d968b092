/**
 * Conformance, every source connector: a private server that accepts TLS only (PostgreSQL:
 * pg_hba `hostssl` only, scram-sha-256, certificate authentication for one user; MariaDB:
 * users created `REQUIRE SSL` and `REQUIRE X509`), with server certificates from a CA made
 * here. Through the binary: snapshot, test-connection and full with the CA checked and the
 * host name verified (libpq's verify-full) work, by address and by name with a PEM trust
 * store; another CA, a host name the certificate does not name, no TLS at all, TLS asked of a
 * server without it and a wrong password are refused with a message naming the connection
 * file; the certificate user logs in with a client certificate (PEM files or PKCS12) and is
 * refused without one.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { KEY_PASSWORD, makeTestCerts, type TestCerts } from "../config/tls_certs.ts";
import { deleteKeys, redisClient } from "../helpers/clients.ts";
import { type Connector, CONNECTORS, plainServerConnection } from "../helpers/connector.ts";
import {
  replicationArgs,
  runReplicant,
  type RunResult,
  scratchHome,
  startReplicant,
} from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";

const ROWS = 12;

/** Asserts a failed run: exit 1 and every pattern found in stderr. */
function assertRefused(r: RunResult, ...patterns: RegExp[]): void {
  assert.equal(r.code, 1, r.stdout + r.stderr);
  for (const p of patterns) assert.match(r.stderr, p);
}

/**
 * The certificates, made once for every connector's test (each set takes a second of
 * openssl and keytool) and deleted when the test module ends.
 */
let made: { certs: TestCerts; otherCa: TestCerts } | null = null;
function testCerts(): { certs: TestCerts; otherCa: TestCerts } {
  if (made) return made;
  made = { certs: makeTestCerts(), otherCa: makeTestCerts() };
  const dirs = [made.certs.dir, made.otherCa.dir];
  globalThis.addEventListener("unload", () => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  return made;
}

async function tlsConformance(c: Connector, t: Deno.TestContext): Promise<void> {
  const { certs, otherCa } = testCerts();
  const home = scratchHome();
  const redis = redisClient();
  const server = await c.tlsServer(certs, ROWS);
  const { stream, port } = server;
  const refused = c.refusals;
  try {
    const filter = home.write("filter.yaml", server.filter);
    let n = 0;
    const conn = (
      ssl: string,
      {
        host = "127.0.0.1",
        user = server.passwordUser,
        password = server.password as string | null,
      } = {},
    ) => home.write(`${c.name}_tls_${++n}.yaml`, server.connection(host, user, password) + ssl);
    const file = () => `${c.name}_tls_${n}.yaml`;
    const files = (source: string) => ({
      source,
      target: home.redisConn,
      filter,
      id: `srctls_${c.name}_${n}`,
      home: home.dir,
    });
    const snapshot = async (connFile: string) => {
      await redis.del(stream);
      return runReplicant(replicationArgs("snapshot", files(connFile), "--replace-existing"));
    };
    const assertSnapshot = async (connFile: string) => {
      const r = await snapshot(connFile);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(await redis.xlen(stream), ROWS);
    };
    const ca = `ssl:\n  root-cert: ${certs.caCert}\n`;

    await t.step("the CA checked, host name verified: snapshot and test-connection", async () => {
      const connFile = conn(ca);
      await assertSnapshot(connFile);
      const v = home.write("validate.yaml", "end-point-type: SRC\nmode: SNAPSHOT\n");
      const tc = await runReplicant([
        "test-connection",
        connFile,
        "--validate",
        v,
        "--home",
        home.dir,
        "--id",
        "srctls_tc",
      ]);
      assert.equal(tc.code, 0, tc.stdout + tc.stderr);
      assert.match(tc.stdout, /credentials\s+PASSED\s+logged in as tls_user/);
    });

    await t.step("the same through localhost, with a PKCS12-free PEM trust store", async () => {
      await assertSnapshot(conn(`ssl:\n  trust-store:\n    path: ${certs.caCert}\n`, {
        host: "localhost",
      }));
    });

    await t.step("full: the snapshot, then the source's log over TLS", async () => {
      const connFile = conn(ca);
      await redis.del(stream, `${stream}_cdc_logs`);
      const run = startReplicant(replicationArgs("full", files(connFile)));
      try {
        await waitFor(async () => (await redis.xlen(stream)) === ROWS, {
          timeoutMs: 30_000,
          what: "the snapshot",
        });
        // Realtime reads from the snapshot's position on: a row written after it is streamed.
        await server.write();
        await waitFor(async () => (await redis.xlen(`${stream}_cdc_logs`)) === 1, {
          timeoutMs: 30_000,
          what: "the change streamed over TLS",
        });
      } finally {
        run.kill("SIGTERM");
      }
      const r = await run.done;
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await server.write(true);
    });

    await t.step("without TLS the server refuses, and the message says TLS is needed", async () => {
      assertRefused(
        await snapshot(conn("")),
        refused.located("127.0.0.1", port, file()),
        ...refused.noTls,
      );
    });

    await t.step("TLS asked of a server without TLS is refused, saying so", async () => {
      const plain = home.write(`${c.name}_plain_${++n}.yaml`, plainServerConnection(c) + ca);
      assertRefused(
        await snapshot(plain),
        new RegExp(`${c.name}_plain_${n}\\.yaml\\): .*the server does not accept TLS`),
      );
    });

    await t.step("a certificate from another CA is refused, naming the file", async () => {
      assertRefused(
        await snapshot(conn(`ssl:\n  root-cert: ${otherCa.caCert}\n`)),
        refused.located("127.0.0.1", port, file()),
        /not trusted|self.signed|unable to (verify|get)/i,
      );
    });

    await t.step("a host name the certificate does not name is refused", async () => {
      assertRefused(
        await snapshot(conn(ca, { host: "127.0.0.2" })),
        refused.located("127.0.0.2", port, file()),
        ...refused.hostName,
      );
      // verify-ca: the chain is checked, the name is not.
      await assertSnapshot(conn(ca + "  hostname-verification: false\n", { host: "127.0.0.2" }));
    });

    await t.step("a wrong password: authentication failed, naming the file", async () => {
      const r = await snapshot(conn(ca, { password: "not-it" }));
      assertRefused(r, new RegExp(`${file()}\\): authentication failed`));
      assert.ok(!r.stderr.includes(server.password) && !r.stderr.includes("not-it"), r.stderr);
    });

    const certUser = { user: server.certUser, password: server.certPassword };
    await t.step("the certificate user with a client certificate (PEM files, PKCS12)", async () => {
      await assertSnapshot(conn(
        ca + `  ssl-cert: ${certs.clientCert}\n  ssl-key: ${certs.clientKey}\n`,
        certUser,
      ));
      await assertSnapshot(conn(
        `ssl:\n  trust-store:\n    path: ${certs.caCert}\n  key-store:\n` +
          `    path: ${certs.clientP12}\n    password: ${KEY_PASSWORD}\n`,
        certUser,
      ));
    });

    await t.step("the certificate user without a client certificate is refused", async () => {
      assertRefused(
        await snapshot(conn(ca, certUser)),
        refused.located("127.0.0.1", port, file()),
        ...refused.noClientCert(file()),
      );
    });
  } finally {
    await deleteKeys(redis, `${stream}*`);
    await deleteKeys(redis, `replicate_io_*srctls_${c.name}_*`);
    await deleteKeys(redis, "replicate_io_*srctls_tc*");
    redis.disconnect();
    await server.stop();
    rmSync(home.dir, { recursive: true, force: true });
  }
}

for (const c of CONNECTORS) {
  Deno.test({
    name: `source TLS (${c.name}): TLS required (CA, host name, client certificate)`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: (t) => tlsConformance(c, t),
  });
}
