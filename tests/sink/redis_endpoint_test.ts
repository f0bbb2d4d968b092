/**
 * One connection layer for both Redis stacks: against a real TLS-only Redis started here
 * (password required), every connect fault gives the raw XADD writer (RespPipeline) and the
 * admin client (ioredis) the same message with the same hint: a wrong password, no password,
 * a certificate signed by another CA, an address the certificate does not name, a port
 * nobody listens on, a server that never answers. A Cluster client meets the same hints, and its own on a single server.
 * Targets are built from connection files, as a run builds them.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import net from "node:net";
import { loadConnection, type RedisConnection } from "../../src/config/mod.ts";
import { redisTargetOf } from "../../src/commands/replication_setup.ts";
import { SinkError } from "../../src/core/errors.ts";
import { openRedis, openRedisCluster } from "../../src/sink/redis/redis_connection.ts";
import { endpointOf, type RedisTarget } from "../../src/sink/redis/redis_endpoint.ts";
import { RespPipeline } from "../../src/sink/redis/resp_pipeline.ts";
import { makeTestCerts } from "../config/tls_certs.ts";
import { writeConfig } from "../config/write_config.ts";
import { freePort } from "../helpers/free_port.ts";
import { startTlsRedis, stopTlsRedis } from "../helpers/tls_redis.ts";

const PASSWORD = "endpoint-secret";

/** The error a promise rejects with (failing when it resolves). */
async function failure(p: Promise<{ close?(): Promise<void>; disconnect?(): void }>) {
  try {
    const opened = await p;
    opened.disconnect?.();
    await opened.close?.();
  } catch (err) {
    return err as Error & { code?: string };
  }
  assert.fail("connected, but should have failed");
}

/** Both stacks fail to connect to `target`; returns the one message they share. */
async function sameFailure(target: RedisTarget, hint: RegExp): Promise<string> {
  const [admin, raw] = await Promise.all([
    failure(openRedis(target, "endpoint-test")),
    failure(RespPipeline.open(endpointOf(target, "endpoint-test-writer"))),
  ]);
  assert.ok(admin instanceof SinkError, String(admin));
  assert.ok(raw instanceof SinkError, String(raw));
  assert.equal(raw.message, admin.message);
  assert.equal((raw as { code?: string }).code, (admin as { code?: string }).code);
  assert.match(admin.message, /^Cannot connect to Redis at 127\.0\.0\.\d:\d+ \(.*\.yaml\): /);
  assert.match(admin.message, hint);
  return admin.message;
}

Deno.test({
  name: "redis endpoint: the raw writer and the admin client fail a connect with one message",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const certs = makeTestCerts();
    const otherCa = makeTestCerts();
    const server = await startTlsRedis(certs, { password: PASSWORD });
    const target = (yaml: string, host = "127.0.0.1", port = server.port) =>
      redisTargetOf(
        loadConnection(
          writeConfig("redis.yaml", `type: REDIS_STREAM\nhost: ${host}\nport: ${port}\n${yaml}`),
        ) as RedisConnection,
      );
    const trusted = `ssl:\n  root-cert: ${certs.caCert}\n`;
    try {
      await t.step("the right password and CA: both connect", async () => {
        const good = target(`password: ${PASSWORD}\n${trusted}`);
        const admin = await openRedis(good, "endpoint-test");
        const raw = await RespPipeline.open(endpointOf(good, "endpoint-test-writer"));
        assert.equal(await raw.command("CLIENT", "GETNAME"), "endpoint-test-writer");
        assert.equal(await admin.client("GETNAME"), "endpoint-test");
        await raw.close();
        await admin.quit();
      });

      await t.step("a wrong password", async () => {
        const message = await sameFailure(
          target(`password: wrong\n${trusted}`),
          / \(authentication failed: check `username` and `password` or `password-file`\)$/,
        );
        assert.match(message, /WRONGPASS|invalid username-password/);
      });

      await t.step("no password where the server requires one", async () => {
        await sameFailure(target(trusted), /NOAUTH.*\(authentication failed: /);
      });

      await t.step("a certificate signed by a CA the trust store does not hold", async () => {
        await sameFailure(
          target(`password: ${PASSWORD}\nssl:\n  root-cert: ${otherCa.caCert}\n`),
          / \(the server certificate is not trusted: set ssl\.root-cert or ssl\.trust-store to its CA\)$/,
        );
        await sameFailure(
          target(`password: ${PASSWORD}\nssl:\n  enable: true\n`),
          /\(the server certificate is not trusted: /,
        );
      });

      await t.step("an address the certificate does not name", async () => {
        await sameFailure(
          target(`password: ${PASSWORD}\n${trusted}`, "127.0.0.2"),
          / \(the server certificate does not name this host: connect by a name it lists, or set ssl\.hostname-verification: false\)$/,
        );
      });

      await t.step("a port nobody listens on", async () => {
        await sameFailure(
          target(`password: ${PASSWORD}\n${trusted}`, "127.0.0.1", freePort()),
          /ECONNREFUSED.* \(connection refused: is the server running, and are `host` and `port` right\?\)$/,
        );
      });

      await t.step("a server that never answers", async () => {
        const sockets: net.Socket[] = [];
        const silent = net.createServer((s) => sockets.push(s));
        await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
        try {
          const port = (silent.address() as net.AddressInfo).port;
          await sameFailure(
            target(`password: ${PASSWORD}\n${trusted}`, "127.0.0.1", port),
            /: connect ETIMEDOUT \(connection timed out: check `host`, `port` and firewalls\)$/,
          );
        } finally {
          for (const s of sockets) s.destroy();
          await new Promise((resolve) => silent.close(resolve));
        }
      });

      await t.step(
        "a Cluster client: the same hints, and its own for a single server",
        async () => {
          const cluster = (yaml: string) => ({ ...target(yaml), mode: "cluster" as const });
          const wrong = await failure(openRedisCluster(cluster(`password: wrong\n${trusted}`)));
          assert.ok(wrong instanceof SinkError);
          assert.match(wrong.message, /^Cannot connect to Redis Cluster at 127\.0\.0\.1:\d+ /);
          assert.match(wrong.message, /\(authentication failed: check `username` and `password`/);
          const untrusted = await failure(
            openRedisCluster(
              cluster(`password: ${PASSWORD}\nssl:\n  root-cert: ${otherCa.caCert}\n`),
            ),
          );
          assert.match(untrusted.message, /\(the server certificate is not trusted: /);
          const single = await failure(
            openRedisCluster(cluster(`password: ${PASSWORD}\n${trusted}`)),
          );
          assert.match(
            single.message,
            /cluster support disabled\) \(not a Redis Cluster: for a single server set `mode: standalone`\)$/,
          );
        },
      );
    } finally {
      await stopTlsRedis(server);
      rmSync(certs.dir, { recursive: true, force: true });
      rmSync(otherCa.dir, { recursive: true, force: true });
    }
  },
});
