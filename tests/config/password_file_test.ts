/**
 * `password-file: PATH` instead of `password` in every connection type and every store: the
 * content minus one trailing newline; both keys, a missing, unreadable or empty file are
 * problems naming the connection file, the key and the path; loose permissions warn.
 */
import assert from "node:assert/strict";
import { chmodSync } from "node:fs";
import {
  loadConnection,
  type MysqlConnection,
  type PostgresConnection,
  type RedisConnection,
} from "../../src/config/mod.ts";
import { problemAt, problemsOf, writeConfig } from "./write_config.ts";

/** A password file with mode 600 (unless `mode` says otherwise). */
function secretFile(content: string, mode = 0o600): string {
  const file = writeConfig("password.txt", content);
  chmodSync(file, mode);
  return file;
}

Deno.test("password-file: every connection type reads the password, one trailing newline removed", () => {
  const redisPw = secretFile("r3dis pw\n");
  const redis = loadConnection(
    writeConfig("redis.yaml", `type: REDIS_STREAM\nhost: h\npassword-file: ${redisPw}\n`),
  ) as RedisConnection;
  assert.equal(redis.password, "r3dis pw");
  assert.deepEqual(redis.warnings, []);
  assert.ok(!("passwordFile" in redis));

  // Only one newline goes: a password may itself end with a newline or spaces.
  const pgPw = secretFile("pg pw \n\n");
  const pg = loadConnection(
    writeConfig(
      "pg.yaml",
      `type: POSTGRESQL\nhost: h\ndatabase: d\nusername: u\npassword-file: ${pgPw}\n`,
    ),
  ) as PostgresConnection;
  assert.equal(pg.password, "pg pw \n");

  for (const type of ["MYSQL", "MARIADB"]) {
    const myPw = secretFile("my\r\n");
    const my = loadConnection(
      writeConfig("my.yaml", `type: ${type}\nhost: h\nusername: u\npasswordFile: ${myPw}\n`),
    ) as MysqlConnection;
    assert.equal(my.password, "my");
  }
});

Deno.test("password-file: store passwords and ${ENV} in the path", () => {
  const trust = secretFile("trust-pw");
  const key = secretFile("key-pw\n");
  const cred = secretFile("cred-pw\n");
  const dir = trust.slice(0, trust.lastIndexOf("/"));
  const conn = loadConnection(
    writeConfig(
      "redis.yaml",
      `type: REDIS_STREAM\nhost: h\nusername: u\npassword: p\nssl:\n` +
        `  trust-store:\n    path: /t.p12\n    password-file: \${PW_DIR}${
          trust.slice(dir.length)
        }\n` +
        `  key-store:\n    path: /k.jks\n    password-file: ${key}\n` +
        `credential-store:\n  path: /c.p12\n  password-file: ${cred}\n`,
    ),
    { env: { PW_DIR: dir } },
  ) as RedisConnection;
  assert.deepEqual(conn.ssl?.trustStore, {
    path: "/t.p12",
    password: "trust-pw",
    sslStoreType: "PKCS12",
  });
  assert.deepEqual(conn.ssl?.keyStore, { path: "/k.jks", password: "key-pw", sslStoreType: "JKS" });
  assert.equal(conn.credentialStore?.password, "cred-pw");
});

Deno.test("password-file: both keys, missing, empty and unreadable files name file, key and path", () => {
  const pw = secretFile("x");
  const empty = secretFile("\n");
  const missing = `${pw}.nowhere`;
  const dir = pw.slice(0, pw.lastIndexOf("/"));
  const file = writeConfig(
    "pg.yaml",
    `type: POSTGRESQL\nhost: h\ndatabase: d\nusername: u\n` +
      `password: inline\npassword-file: ${pw}\n` +
      `ssl:\n  trust-store:\n    path: /t.p12\n    password-file: ${missing}\n` +
      `  key-store:\n    path: /k.p12\n    password-file: ${empty}\n` +
      `credential-store:\n  path: /c.p12\n  password-file: ${dir}\n`,
  );
  const problems = problemsOf(() => loadConnection(file));
  for (const p of problems) assert.equal(p.file, file);
  assert.match(
    problemAt(problems, "password-file").message,
    /either `password` or `password-file`/,
  );
  assert.equal(
    problemAt(problems, "ssl.trust-store.password-file").message,
    `cannot read password file ${missing}: file not found`,
  );
  assert.equal(
    problemAt(problems, "ssl.key-store.password-file").message,
    `password file ${empty} is empty`,
  );
  assert.match(
    problemAt(problems, "credential-store.password-file").message,
    new RegExp(`cannot read password file ${dir}: it is a folder`),
  );
  assert.equal(problems.length, 4);
});

Deno.test("password-file: a file readable by group or others is a warning, not an error", () => {
  const loose = secretFile("pw\n", 0o644);
  const conn = loadConnection(
    writeConfig("redis.yaml", `type: REDIS_STREAM\nhost: h\npassword-file: ${loose}\n`),
  );
  assert.equal(conn.password, "pw");
  assert.equal(conn.warnings.length, 1);
  assert.equal(conn.warnings[0].key, "password-file");
  assert.match(conn.warnings[0].message, /readable by others \(mode 644\): chmod 600 it/);
  assert.ok(conn.warnings[0].message.includes(loose));
  assert.ok(!conn.warnings[0].message.includes("pw\n"));
});
