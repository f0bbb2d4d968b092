import assert from "node:assert/strict";
import { backoffMs } from "../../src/pipeline/retry_policy.ts";
import { classifyRedisError } from "../../src/sink/redis/redis_error_class.ts";

Deno.test("backoff doubles from the configured wait, with bounded jitter and a cap", () => {
  assert.equal(backoffMs(1, 100, () => 0.5), 100);
  assert.equal(backoffMs(3, 100, () => 0.5), 400);
  assert.equal(backoffMs(3, 100, () => 0), 300);
  assert.equal(backoffMs(3, 100, () => 1), 500);
  assert.equal(backoffMs(30, 1000, () => 0.5), 30_000);
});

Deno.test("Redis errors are classified once", () => {
  assert.equal(
    classifyRedisError(new Error("OOM command not allowed when used memory > 'maxmemory'.")),
    "oom",
  );
  assert.equal(
    classifyRedisError(new Error("LOADING Redis is loading the dataset in memory")),
    "retriable",
  );
  assert.equal(
    classifyRedisError(Object.assign(new Error("x"), { code: "ECONNRESET" })),
    "retriable",
  );
  assert.equal(classifyRedisError(new Error("Connection is closed.")), "retriable");
  // A Cluster failover: a dead master's slots, ioredis giving up, Replicant's short WAIT.
  for (
    const message of [
      "CLUSTERDOWN The cluster is down",
      "Too many Cluster redirections. Last error: Error: Connection is closed.",
      "Failed to refresh slots cache.",
    ]
  ) assert.equal(classifyRedisError(new Error(message)), "retriable", message);
  assert.equal(
    classifyRedisError(Object.assign(new Error("short"), { retriable: true })),
    "retriable",
  );
  assert.equal(
    classifyRedisError(
      new Error("WRONGTYPE Operation against a key holding the wrong kind of value"),
    ),
    "permanent",
  );
  assert.equal(
    classifyRedisError(new Error("NOPERM User x has no permissions to run the 'xadd' command")),
    "permanent",
  );
});
