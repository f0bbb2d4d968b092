/** The pure parts of the failure rules: the in-doubt file and the one classification of Redis errors. */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  appendIndoubt,
  cleanupCommand,
  formatIndoubt,
  indoubtPath,
  parseIndoubt,
  readIndoubt,
  rewriteIndoubt,
} from "../../src/pipeline/indoubt_log.ts";
import { classifyRedisError } from "../../src/sink/redis/redis_error_class.ts";

Deno.test("in-doubt file: path, append (fsynced), read, atomic rewrite", () => {
  const home = mkdtempSync(join(tmpdir(), "replicant-indoubt-unit-"));
  try {
    const file = indoubtPath(home, "r1");
    assert.equal(file, join(home, "data", "r1", "bad_rows", "replicate_io_indoubt_txn_log"));
    assert.deepEqual(readIndoubt(file), []);
    appendIndoubt(file, [{ stream: "s1", id: "1-0" }, { stream: "s1", id: "1-1" }]);
    appendIndoubt(file, [{ stream: "s 2", id: "2-0" }]);
    assert.equal(readFileSync(file, "utf8"), "s1 1-0\ns1 1-1\ns 2 2-0\n");
    assert.deepEqual(readIndoubt(file), [
      { stream: "s1", id: "1-0" },
      { stream: "s1", id: "1-1" },
      { stream: "s 2", id: "2-0" },
    ]);
    rewriteIndoubt(file, [{ stream: "s1", id: "1-1" }]);
    assert.equal(readFileSync(file, "utf8"), "s1 1-1\n");
    rewriteIndoubt(file, []);
    assert.equal(readFileSync(file, "utf8"), "");
    assert.deepEqual(readIndoubt(file), []);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

Deno.test("in-doubt file: parsing skips blanks, comments and repeats; rejects damage", () => {
  assert.deepEqual(parseIndoubt("\n# note\ns 5-1\ns 5-1\r\n  t 6-0  \n"), [
    { stream: "s", id: "5-1" },
    { stream: "t", id: "6-0" },
  ]);
  assert.throws(() => parseIndoubt("s 5-1\nbroken\n", "f"), /f:2: expected/);
  assert.throws(() => parseIndoubt("s notanid\n"), /expected "<stream> <entry id>"/);
  assert.equal(formatIndoubt([{ stream: "a", id: "1-2" }]), "a 1-2\n");
  assert.equal(cleanupCommand("x", "default"), "replicant cleanup-indoubt --id x");
  assert.equal(
    cleanupCommand("x", "g"),
    "replicant cleanup-indoubt --id x --replication-group g",
  );
});

Deno.test("errors are classified once: retriable, OOM (backpressure), permanent", () => {
  const reply = (m: string) => new Error(m);
  const retriable = [
    reply("LOADING Redis is loading the dataset in memory"),
    reply("BUSY Redis is busy running a script"),
    reply("TRYAGAIN Multiple keys request during rehashing of slot"),
    Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }),
    Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }),
    reply("Connection is closed."),
    reply("Command timed out"),
  ];
  for (const e of retriable) assert.equal(classifyRedisError(e), "retriable", e.message);
  assert.equal(
    classifyRedisError(reply("OOM command not allowed when used memory > 'maxmemory'.")),
    "oom",
  );
  const permanent = [
    reply("WRONGTYPE Operation against a key holding the wrong kind of value"),
    reply("NOPERM this user has no permissions to run the 'xdel' command"),
    reply("WRONGPASS invalid username-password pair or user is disabled."),
    reply("NOAUTH Authentication required."),
    reply("ERR syntax error"),
  ];
  for (const e of permanent) assert.equal(classifyRedisError(e), "permanent", e.message);
});
