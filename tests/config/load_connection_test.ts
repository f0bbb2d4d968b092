import assert from "node:assert/strict";
import {
  type ConfigProblem,
  loadConnection,
  type MysqlConnection,
  type PostgresConnection,
  type RedisConnection,
} from "../../src/config/mod.ts";
import { problemAt, problemsOf, writeConfig } from "./write_config.ts";

const load = (text: string, options = {}) =>
  loadConnection(writeConfig("conn.yaml", text), options);
const problems = (text: string, options = {}) => {
  const path = writeConfig("conn.yaml", text);
  const found = problemsOf(() => loadConnection(path, options));
  for (const p of found) assert.equal(p.file, path);
  return found;
};
const keys = (list: readonly ConfigProblem[]) => list.map((p) => p.key);

// ---------------------------------------------------------------------------------------
// Valid files

Deno.test("Redis: Arcion's sample with defaults filled in", () => {
  const conn = load(`
type: REDIS_STREAM
host: redis.local
port: 6380
username: 'app'
password: 'secret'
max-connections: 30
max-retries: 10
`) as RedisConnection;
  assert.equal(conn.type, "REDIS_STREAM");
  assert.equal(conn.host, "redis.local");
  assert.equal(conn.port, 6380);
  assert.equal(conn.username, "app");
  assert.equal(conn.password, "secret");
  assert.equal(conn.maxConnections, 30);
  assert.equal(conn.maxRetries, 10);
  assert.equal(conn.retryWaitDurationMs, 1000);
  assert.equal(conn.mode, "standalone");
  assert.deepEqual(conn.nodes, []);
  assert.equal(conn.ssl, undefined);
  assert.deepEqual(conn.warnings, []);
  assert.deepEqual(conn.secretRefs, []);
});

Deno.test("Redis: defaults", () => {
  const conn = load("type: redis_stream\nhost: h\n") as RedisConnection;
  assert.equal(conn.type, "REDIS_STREAM");
  assert.equal(conn.port, 6379);
  assert.equal(conn.maxConnections, 8);
});

Deno.test("Redis: SSL with trust and key stores", () => {
  const conn = load(`
type: REDIS_STREAM
host: h
ssl:
  enable: true
  trust-store:
    path: "/certs/ca.pem"
    ssl-store-type: pem
  key-store:
    path: "/certs/client.p12"
    password: "pw"
    ssl-store-type: 'PKCS12'
`) as RedisConnection;
  assert.deepEqual(conn.ssl, {
    enable: true,
    hostnameVerification: true,
    trustStore: { path: "/certs/ca.pem", sslStoreType: "PEM" },
    keyStore: { path: "/certs/client.p12", password: "pw", sslStoreType: "PKCS12" },
  });
});

Deno.test("Redis: the store type is guessed from the file name when absent", () => {
  const conn = load(
    "type: REDIS_STREAM\nhost: h\nssl:\n  trust-store: {path: /a/ca.crt}\n  key-store: {path: /a/k.jks}\n",
  ) as RedisConnection;
  assert.equal(conn.ssl?.enable, true);
  assert.equal(conn.ssl?.trustStore?.sslStoreType, "PEM");
  assert.equal(conn.ssl?.keyStore?.sslStoreType, "JKS");
});

Deno.test("Redis: cluster mode with seed nodes", () => {
  const conn = load(`
type: REDIS_STREAM
mode: CLUSTER
nodes: ["10.0.0.1:7000", "10.0.0.2:7001", "[::1]:7002"]
`) as RedisConnection;
  assert.equal(conn.mode, "cluster");
  assert.deepEqual(conn.nodes, [
    { host: "10.0.0.1", port: 7000 },
    { host: "10.0.0.2", port: 7001 },
    { host: "::1", port: 7002 },
  ]);
  assert.equal(conn.host, "10.0.0.1");
  assert.equal(conn.port, 7000);
});

Deno.test("Redis: in cluster mode a written host is one more seed", () => {
  const conn = load(
    "type: REDIS_STREAM\nhost: a\nport: 7000\nmode: cluster\nnodes: [a:7000, b:7000]\n",
  ) as RedisConnection;
  assert.deepEqual(conn.nodes, [{ host: "a", port: 7000 }, { host: "b", port: 7000 }]);
});

Deno.test("credential store: not read; a problem without username/password, else ignored", () => {
  const store = "credential-store:\n  type: JKS\n  path: /k.jks\n  key-prefix: redis_\n";
  assert.match(
    problemAt(problems(`type: REDIS_STREAM\nhost: h\n${store}`), "credential-store").message,
    /Java keystore are not supported: give them as `username`\/`password`, `password-file`/,
  );
  const conn = load(
    `type: REDIS_STREAM\nhost: h\nusername: u\npassword: p\n${store}`,
  ) as RedisConnection;
  assert.equal(conn.password, "p");
  assert.deepEqual(conn.warnings.map((w) => [w.key, w.message]), [
    ["credential-store", "is ignored: the credentials come from username/password"],
  ]);
});

Deno.test("PostgreSQL: Arcion's sample (wal2json, socket-timeout-s) loads with warnings", () => {
  const conn = load(`
type: POSTGRESQL
host: localhost
port: 5432
database: "postgres"
username: "replicant"
password: "Replicant#123"
max-connections: 30
socket-timeout-s: 60
max-retries: 10
retry-wait-duration-ms: 1000
replication-slots:
  io_replicate:
    - wal2json
log-reader-type: SQL
`) as PostgresConnection;
  assert.equal(conn.type, "POSTGRESQL");
  assert.equal(conn.database, "postgres");
  assert.equal(conn.username, "replicant");
  assert.equal(conn.password, "Replicant#123");
  assert.deepEqual(conn.replicationSlots, [{ name: "io_replicate", plugin: "pgoutput" }]);
  assert.deepEqual(keys(conn.warnings), [
    "socket-timeout-s",
    "log-reader-type",
    "replication-slots.io_replicate",
  ]);
  assert.match(conn.warnings[0].message, /^ignored: /);
  assert.match(conn.warnings[2].message, /wal2json is replaced by pgoutput/);
});

Deno.test("PostgreSQL: defaults, plugin as a single name, PEM ssl files", () => {
  const conn = load(`
type: POSTGRESQL
host: h
database: d
username: u
replication-slots: {s1: pgoutput}
ssl:
  root-cert: /ca.pem
  ssl-cert: /c.crt
  ssl-key: /c.key
`) as PostgresConnection;
  assert.equal(conn.port, 5432);
  assert.equal(conn.maxConnections, 10);
  assert.equal(conn.maxRetries, 10);
  assert.equal(conn.retryWaitDurationMs, 1000);
  assert.deepEqual(conn.replicationSlots, [{ name: "s1", plugin: "pgoutput" }]);
  assert.deepEqual(conn.ssl, {
    enable: true,
    hostnameVerification: true,
    rootCert: "/ca.pem",
    sslCert: "/c.crt",
    sslKey: "/c.key",
  });
  assert.deepEqual(conn.warnings, []);
});

Deno.test("PostgreSQL: a second slot is ignored with a warning", () => {
  const conn = load(
    "type: POSTGRESQL\nhost: h\ndatabase: d\nusername: u\nreplication-slots:\n  a: [pgoutput]\n  b: [pgoutput]\n",
  ) as PostgresConnection;
  assert.equal(conn.replicationSlots.length, 2);
  assert.deepEqual(keys(conn.warnings), ["replication-slots.b"]);
});

Deno.test("MySQL and MariaDB", () => {
  const mysql = load(`
type: MYSQL
host: 127.0.0.1
port: 3306
username: "replicant"
password: "Replicant#123"
slave-server-ids: [1]
max-connections: 30
`) as MysqlConnection;
  assert.equal(mysql.type, "MYSQL");
  assert.deepEqual(mysql.slaveServerIds, [1]);
  assert.equal(mysql.maxConnections, 30);
  const maria = load("type: MariaDB\nhost: h\nusername: root\n") as MysqlConnection;
  assert.equal(maria.type, "MARIADB");
  assert.equal(maria.port, 3306);
  assert.deepEqual(maria.slaveServerIds, []);
  assert.equal(maria.password, undefined);
});

Deno.test("camelCase keys, as in Arcion's Secrets Manager sample, are accepted", () => {
  const conn = load(`
type: MYSQL
host: h
username: u
slaveServerIds: [7]
maxConnections: 20
maxRetries: 3
retryWaitDurationMs: 500
`) as MysqlConnection;
  assert.deepEqual(conn.slaveServerIds, [7]);
  assert.equal(conn.maxConnections, 20);
  assert.equal(conn.maxRetries, 3);
  assert.equal(conn.retryWaitDurationMs, 500);
});

Deno.test("secret URLs are listed; unresolved ones defer their checks", () => {
  const text = `
type: MYSQL
host: arcion-sm://connectionConfig/host
port: arcion-sm://connectionConfig/port
username: arcion-sm://connectionConfig/username
password: arcion-sm://connectionConfig/password
`;
  const conn = load(text) as MysqlConnection;
  assert.equal(conn.host, "arcion-sm://connectionConfig/host");
  assert.equal(conn.port, 3306);
  assert.deepEqual(conn.secretRefs.map((r) => [r.key, r.secretName, r.secretKey, r.resolved]), [
    ["host", "connectionConfig", "host", false],
    ["port", "connectionConfig", "port", false],
    ["username", "connectionConfig", "username", false],
    ["password", "connectionConfig", "password", false],
  ]);
  const resolved = load(text, {
    secretValues: {
      "arcion-sm://connectionConfig/host": "db",
      "arcion-sm://connectionConfig/port": "3307",
      "arcion-sm://connectionConfig/username": "u",
      "arcion-sm://connectionConfig/password": "0123",
    },
  }) as MysqlConnection;
  assert.equal(resolved.host, "db");
  assert.equal(resolved.port, 3307);
  assert.equal(resolved.password, "0123");
  assert.ok(resolved.secretRefs.every((r) => r.resolved));
});

Deno.test("${ENV} in a connection", () => {
  const conn = load("type: REDIS_STREAM\nhost: ${RH}\nport: ${RP}\npassword: ${RPW}\n", {
    env: { RH: "cache", RP: "7001", RPW: "s3cr3t" },
  }) as RedisConnection;
  assert.equal(conn.host, "cache");
  assert.equal(conn.port, 7001);
  assert.equal(conn.password, "s3cr3t");
});

Deno.test("a plain password that YAML reads as a number keeps its text", () => {
  const conn = load("type: MYSQL\nhost: h\nusername: u\npassword: 0123\n") as MysqlConnection;
  assert.equal(conn.password, "0123");
});

// ---------------------------------------------------------------------------------------
// Malformed files

Deno.test("missing required keys", () => {
  const found = problems("type: POSTGRESQL\nhost: h\n");
  assert.deepEqual(keys(found), ["username", "database"]);
  assert.equal(problemAt(found, "database").message, "required key is missing");
});

Deno.test("Redis needs a host in standalone mode", () => {
  assert.equal(
    problemAt(problems("type: REDIS_STREAM\n"), "host").message,
    "required key is missing",
  );
});

Deno.test("a key with no value where one is required", () => {
  assert.equal(
    problemAt(problems("type: POSTGRESQL\nhost: h\ndatabase:\nusername: u\n"), "database").message,
    "required, but has no value",
  );
});

Deno.test("missing type lists the valid types", () => {
  const found = problems("host: h\n");
  assert.equal(
    problemAt(found, "type").message,
    "required: one of REDIS_STREAM, POSTGRESQL, MYSQL, MARIADB",
  );
});

Deno.test("wrong type lists the valid types and the nearest", () => {
  const found = problems("type: REDIS_STREAMS\nhost: h\n");
  assert.equal(
    problemAt(found, "type").message,
    'must be one of REDIS_STREAM, POSTGRESQL, MYSQL, MARIADB, got "REDIS_STREAMS"; did you mean `REDIS_STREAM`?',
  );
  assert.match(problemAt(problems("type: ORACLE\nhost: h\n"), "type").message, /^must be one of/);
});

Deno.test("unknown key with a suggestion (typo)", () => {
  const found = problems("type: REDIS_STREAM\nhost: h\nmax-conections: 4\nhsot: x\n");
  assert.equal(
    problemAt(found, "max-conections").message,
    "unknown key; did you mean `max-connections`?",
  );
  assert.equal(problemAt(found, "hsot").message, "unknown key; did you mean `host`?");
});

Deno.test("unknown key without a near one lists the valid keys", () => {
  const found = problems("type: MYSQL\nhost: h\nusername: u\ndatabase: x\n");
  assert.match(
    problemAt(found, "database").message,
    /^unknown key; valid keys here: type, host, port/,
  );
});

Deno.test("wrong value types", () => {
  const found = problems(
    "type: REDIS_STREAM\nhost: [a, b]\nport: abc\nmax-connections: true\nusername: {a: 1}\n",
  );
  assert.equal(problemAt(found, "host").message, "must be a text value, got a list");
  assert.equal(
    problemAt(found, "port").message,
    'must be an integer between 1 and 65535, got "abc"',
  );
  assert.equal(
    problemAt(found, "max-connections").message,
    "must be an integer of at least 1, got true",
  );
  assert.equal(problemAt(found, "username").message, "must be a text value, got a mapping");
});

Deno.test("non-integer and out-of-range ports", () => {
  assert.equal(
    problemAt(problems("type: REDIS_STREAM\nhost: h\nport: 6379.5\n"), "port").message,
    "must be an integer between 1 and 65535, got 6379.5",
  );
  assert.equal(
    problemAt(problems("type: REDIS_STREAM\nhost: h\nport: 70000\n"), "port").message,
    "must be an integer between 1 and 65535, got 70000",
  );
  assert.equal(
    problemAt(problems("type: REDIS_STREAM\nhost: h\nport: 0\n"), "port").message,
    "must be an integer between 1 and 65535, got 0",
  );
});

Deno.test("zero or negative counts", () => {
  const found = problems("type: REDIS_STREAM\nhost: h\nmax-connections: 0\nmax-retries: -1\n");
  assert.equal(
    problemAt(found, "max-connections").message,
    "must be an integer of at least 1, got 0",
  );
  assert.equal(problemAt(found, "max-retries").message, "must be an integer of at least 0, got -1");
});

Deno.test("cluster mode without nodes", () => {
  const found = problems("type: REDIS_STREAM\nhost: h\nmode: cluster\n");
  assert.match(problemAt(found, "nodes").message, /^required with `mode: cluster`/);
});

Deno.test("bad cluster node addresses, bad mode", () => {
  const found = problems('type: REDIS_STREAM\nmode: cluster\nnodes: ["a:1", "b", "c:99999"]\n');
  assert.deepEqual(keys(found), ["nodes[1]", "nodes[2]"]);
  assert.match(problemAt(found, "nodes[1]").message, /must be "host:port"/);
  assert.match(
    problemAt(problems("type: REDIS_STREAM\nhost: h\nmode: sentinel\n"), "mode").message,
    /must be one of standalone, cluster/,
  );
});

Deno.test("nodes in standalone mode", () => {
  assert.match(
    problemAt(problems("type: REDIS_STREAM\nhost: h\nnodes: [a:1]\n"), "nodes").message,
    /only used with `mode: cluster`/,
  );
});

Deno.test("invalid ssl store type", () => {
  const found = problems(
    "type: REDIS_STREAM\nhost: h\nssl:\n  enable: true\n  trust-store:\n    path: /a\n    ssl-store-type: PKCS11\n",
  );
  assert.equal(
    problemAt(found, "ssl.trust-store.ssl-store-type").message,
    'must be one of PKCS12, JKS, PEM, got "PKCS11"; did you mean `PKCS12`?',
  );
});

Deno.test("ssl problems: store without path, enable not boolean, key without cert", () => {
  const found = problems(
    'type: POSTGRESQL\nhost: h\ndatabase: d\nusername: u\nssl:\n  enable: "yes"\n  key-store:\n    password: p\n  ssl-key: /k\n',
  );
  assert.deepEqual(keys(found), ["ssl.enable", "ssl.key-store.path"]);
  const cert = problems(
    "type: POSTGRESQL\nhost: h\ndatabase: d\nusername: u\nssl:\n  ssl-key: /k\n",
  );
  assert.match(problemAt(cert, "ssl.ssl-key").message, /needs `ssl-cert`/);
});

Deno.test("replication slots: bad name, unknown plugin", () => {
  const found = problems(
    "type: POSTGRESQL\nhost: h\ndatabase: d\nusername: u\nreplication-slots:\n  Bad-Slot: [pgoutput]\n  ok: [decoderbufs]\n",
  );
  assert.match(problemAt(found, "replication-slots.Bad-Slot").message, /invalid slot name/);
  assert.match(problemAt(found, "replication-slots.ok[0]").message, /unknown plugin "decoderbufs"/);
});

Deno.test("slave-server-ids must be positive and distinct", () => {
  const found = problems("type: MYSQL\nhost: h\nusername: u\nslave-server-ids: [0, 5, 5]\n");
  assert.deepEqual(keys(found), ["slave-server-ids[0]"]);
  const dup = problems("type: MYSQL\nhost: h\nusername: u\nslave-server-ids: [5, 5]\n");
  assert.equal(problemAt(dup, "slave-server-ids[1]").message, "server id 5 is listed twice");
});

Deno.test("malformed secret reference", () => {
  const found = problems("type: REDIS_STREAM\nhost: h\npassword: arcion-sm://nokey\n");
  assert.match(problemAt(found, "password").message, /malformed secret reference/);
});

Deno.test("unset environment variable names the key", () => {
  const found = problems("type: REDIS_STREAM\nhost: h\npassword: ${REPLICANT_TEST_UNSET_PW}\n", {
    env: {},
  });
  assert.equal(
    problemAt(found, "password").message,
    "environment variable REPLICANT_TEST_UNSET_PW is not set",
  );
});

Deno.test("the source or target role is checked", () => {
  const asSource = problems("type: REDIS_STREAM\nhost: h\n", { role: "source" });
  assert.match(problemAt(asSource, "type").message, /REDIS_STREAM is a target/);
  const asTarget = problems("type: MYSQL\nhost: h\nusername: u\n", { role: "target" });
  assert.match(problemAt(asTarget, "type").message, /MYSQL is a source/);
});

Deno.test("an ignored Arcion key is a warning, not an error", () => {
  const conn = load(
    "type: POSTGRESQL\nhost: h\ndatabase: d\nusername: u\nsocket-timeout-s: 60\n",
  );
  assert.deepEqual(conn.warnings, [{
    file: conn.file,
    key: "socket-timeout-s",
    message: "ignored: Arcion option that Replicant does not use",
  }]);
});

Deno.test("every problem of the file is reported at once", () => {
  const found = problems(
    `
type: POSTGRESQL
hots: h
port: 5432.5
username: 12
max-connections: 0
ssl:
  trust-store:
    ssl-store-type: P12
password: \${REPLICANT_TEST_UNSET_PW}
`,
    { env: {} },
  );
  assert.deepEqual(keys(found), [
    "password",
    "hots",
    "host",
    "port",
    "max-connections",
    "ssl.trust-store.path",
    "ssl.trust-store.ssl-store-type",
    "database",
  ]);
  assert.equal(problemAt(found, "hots").message, "unknown key; did you mean `host`?");
});

Deno.test("empty connection file", () => {
  assert.deepEqual(keys(problems("# nothing here\n")), ["type"]);
});
