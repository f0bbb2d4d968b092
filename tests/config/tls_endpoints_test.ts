/**
 * The `ssl` section of each connection type as the options its driver gets: Redis (ioredis and
 * the RESP writer) and PostgreSQL take Node TLS options, MySQL/MariaDB mysql2's SslOptions.
 */
import assert from "node:assert/strict";
import {
  loadConnection,
  type MysqlConnection,
  type PostgresConnection,
  type RedisConnection,
} from "../../src/config/mod.ts";
import { redisTargetOf } from "../../src/commands/replication_setup.ts";
import { KEY_PASSWORD, makeTestCerts, TRUST_PASSWORD } from "./tls_certs.ts";
import { problemsOf, writeConfig } from "./write_config.ts";
import { pgEndpointOf } from "../../src/source/postgres/pg_endpoint.ts";
import { mysqlEndpointOf } from "../../src/source/mysql/mysql_endpoint.ts";

const certs = makeTestCerts();
const stores = `  trust-store:\n    path: ${certs.trustP12}\n    password: ${TRUST_PASSWORD}\n` +
  `  key-store:\n    path: ${certs.clientP12}\n    password: ${KEY_PASSWORD}\n`;

Deno.test("redis: stores become ca/cert/key; host name checked, SNI for names only", () => {
  const conn = loadConnection(
    writeConfig("redis.yaml", `type: REDIS_STREAM\nhost: localhost\nssl:\n${stores}`),
  ) as RedisConnection;
  const tls = redisTargetOf(conn).tls!;
  assert.equal((tls.ca as string[]).length, 1);
  assert.match(tls.cert as string, /BEGIN CERTIFICATE/);
  assert.match(tls.key as string, /PRIVATE KEY/);
  assert.equal(tls.rejectUnauthorized, true);
  assert.equal(tls.servername, "localhost");
  assert.equal(tls.checkServerIdentity, undefined);

  const ip = loadConnection(
    writeConfig(
      "redis.yaml",
      `type: REDIS_STREAM\nhost: 127.0.0.1\nssl:\n  hostname-verification: false\n${stores}`,
    ),
  ) as RedisConnection;
  const ipTls = redisTargetOf(ip).tls!;
  assert.equal(ipTls.servername, undefined);
  assert.equal(ipTls.rejectUnauthorized, true);
  assert.equal(typeof ipTls.checkServerIdentity, "function");
  const off = loadConnection(
    writeConfig("redis.yaml", `type: REDIS_STREAM\nhost: h\nssl:\n  enable: false\n${stores}`),
  ) as RedisConnection;
  assert.equal(redisTargetOf(off).tls, undefined);
});

Deno.test("postgresql: verify-full by default, verify-ca or require without host names", () => {
  const base = `type: POSTGRESQL\nhost: db.local\ndatabase: d\nusername: u\n`;
  const full = pgEndpointOf(
    loadConnection(
      writeConfig("pg.yaml", `${base}ssl:\n  root-cert: ${certs.caCert}\n`),
    ) as PostgresConnection,
  ).ssl as Record<string, unknown>;
  assert.equal(full.rejectUnauthorized, true);
  assert.equal(full.checkServerIdentity, undefined);
  assert.equal((full.ca as string[]).length, 1);
  const ca = pgEndpointOf(
    loadConnection(
      writeConfig(
        "pg.yaml",
        `${base}ssl:\n  hostname-verification: false\n  ssl-cert: ${certs.clientCert}\n` +
          `  ssl-key: ${certs.clientKey}\n  root-cert: ${certs.caCert}\n`,
      ),
    ) as PostgresConnection,
  ).ssl as Record<string, unknown>;
  assert.equal(ca.rejectUnauthorized, true);
  assert.equal(typeof ca.checkServerIdentity, "function");
  assert.match(ca.key as string, /PRIVATE KEY/);
  const require = pgEndpointOf(
    loadConnection(
      writeConfig("pg.yaml", `${base}ssl:\n  hostname-verification: false\n`),
    ) as PostgresConnection,
  ).ssl as Record<string, unknown>;
  assert.equal(require.rejectUnauthorized, false);
});

Deno.test("mysql: mysql2 options with verifyIdentity from hostname-verification", () => {
  const conn = loadConnection(
    writeConfig(
      "my.yaml",
      `type: MARIADB\nhost: db\nusername: u\nssl:\n  hostname-verification: false\n${stores}`,
    ),
  ) as MysqlConnection;
  const ssl = mysqlEndpointOf(conn).ssl as Record<string, unknown>;
  assert.equal(ssl.rejectUnauthorized, true);
  assert.equal(ssl.verifyIdentity, false);
  assert.match(ssl.cert as string, /BEGIN CERTIFICATE/);
});

Deno.test("a wrong store password while connecting is a ConfigError on the key", () => {
  const conn = loadConnection(
    writeConfig(
      "redis.yaml",
      `type: REDIS_STREAM\nhost: h\nssl:\n  key-store:\n    path: ${certs.clientP12}\n` +
        `    password: nope\n`,
    ),
  ) as RedisConnection;
  const problems = problemsOf(() => redisTargetOf(conn));
  assert.equal(problems[0].key, "ssl.key-store.password");
});
