/**
 * `arcion-sm://` values fetched with the real AWS SDK from a small fake Secrets Manager (the
 * GetSecretValue call of its JSON protocol), reached through AWS_ENDPOINT_URL_SECRETS_MANAGER
 * with fake credentials from the environment.
 */
import assert from "node:assert/strict";
import process from "node:process";
import type { RedisConnection } from "../../src/config/mod.ts";
import { fetchSecretValues, loadConnectionWithSecrets } from "../../src/config/aws_secrets.ts";
import { problemsOf, writeConfig } from "./write_config.ts";
import { type FakeSecretsManager, fakeSecretsManager } from "../helpers/fake_secrets_manager.ts";

const AWS_ENV = {
  AWS_ACCESS_KEY_ID: "AKIDREPLICANTTEST",
  AWS_SECRET_ACCESS_KEY: "fake-secret-key",
  AWS_REGION: "us-east-1",
} as const;

async function withFake(
  secrets: Record<string, string>,
  fn: (fake: FakeSecretsManager) => Promise<void>,
): Promise<void> {
  const fake = fakeSecretsManager(secrets);
  const names = [...Object.keys(AWS_ENV), "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_PROFILE"];
  const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
  Object.assign(process.env, AWS_ENV, { AWS_ENDPOINT_URL_SECRETS_MANAGER: fake.url });
  delete process.env.AWS_PROFILE;
  try {
    await fn(fake);
  } finally {
    for (const [n, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[n];
      else process.env[n] = v;
    }
    await fake.close();
  }
}

Deno.test("secrets: arcion-sm:// values are fetched once per secret and validated", async () => {
  await withFake({
    redisCreds: JSON.stringify({ username: "app", password: "s3cret", port: 6390 }),
  }, async (fake) => {
    const file = writeConfig(
      "redis.yaml",
      "type: REDIS_STREAM\nhost: localhost\nport: arcion-sm://redisCreds/port\n" +
        "username: arcion-sm://redisCreds/username\npassword: arcion-sm://redisCreds/password\n",
    );
    const conn = await loadConnectionWithSecrets(file, { role: "target" }) as RedisConnection;
    assert.equal(conn.username, "app");
    assert.equal(conn.password, "s3cret");
    assert.equal(conn.port, 6390);
    assert.ok(conn.secretRefs.every((r) => r.resolved));
    assert.equal(fake.requests.length, 1);
    assert.equal(fake.requests[0].target, "secretsmanager.GetSecretValue");
    assert.equal(fake.requests[0].secretId, "redisCreds");
    // Signed with the credentials of the environment (standard chain).
    assert.match(fake.requests[0].authorization, /AWS4-HMAC-SHA256 Credential=AKIDREPLICANTTEST\//);
  });
});

Deno.test("secrets: unknown secret and unknown key name the file and key", async () => {
  await withFake({ conn: JSON.stringify({ user: "x" }) }, async () => {
    const file = writeConfig(
      "pg.yaml",
      "type: POSTGRESQL\nhost: db\ndatabase: d\nusername: arcion-sm://conn/username\n" +
        "password: arcion-sm://missing/password\n",
    );
    let problems;
    try {
      await loadConnectionWithSecrets(file, { role: "source" });
      assert.fail("expected a ConfigError");
    } catch (err) {
      problems = problemsOf(() => {
        throw err;
      });
    }
    const byKey = Object.fromEntries(problems.map((p) => [p.key, p]));
    assert.equal(byKey.username.file, file);
    assert.match(byKey.username.message, /secret "conn" has no key "username"/);
    assert.match(
      byKey.password.message,
      /cannot read AWS Secrets Manager secret "missing": ResourceNotFoundException/,
    );
  });
});

Deno.test("secrets: a file without arcion-sm:// values makes no request", async () => {
  await withFake({}, async (fake) => {
    const file = writeConfig("redis.yaml", "type: REDIS_STREAM\nhost: localhost\n");
    const conn = await loadConnectionWithSecrets(file);
    assert.equal(conn.host, "localhost");
    assert.equal(fake.requests.length, 0);
    assert.deepEqual(await fetchSecretValues(file, []), {});
  });
});
