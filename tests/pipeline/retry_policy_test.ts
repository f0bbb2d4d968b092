import assert from "node:assert/strict";
import { backoffMs, boundedAfterStop, sleep } from "../../src/pipeline/retry_policy.ts";
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

Deno.test("a call gives up a grace period after the stop, not before", async () => {
  const never = new Promise<string>(() => {});
  const ctrl = new AbortController();
  let late = 0;
  // Not stopped: a call that answers goes through, however long it takes.
  assert.equal(
    await boundedAfterStop(sleep(30).then(() => "ok"), ctrl.signal, 10, () => late++),
    "ok",
  );
  // In flight at the stop: it gets the grace period from the stop on.
  const inFlight = boundedAfterStop(never, ctrl.signal, 50, () => late++);
  await sleep(30);
  const t0 = performance.now();
  ctrl.abort();
  await assert.rejects(inFlight, /no answer within 50 ms of the stop/);
  assert.ok(performance.now() - t0 >= 45, "not before the grace period");
  // Started after the stop: its own grace period; a failure after the stop is counted too.
  await assert.rejects(boundedAfterStop(never, ctrl.signal, 20, () => late++), /20 ms/);
  await assert.rejects(
    boundedAfterStop(Promise.reject(new Error("down")), ctrl.signal, 20, () => late++),
    /down/,
  );
  assert.equal(late, 3);
});
