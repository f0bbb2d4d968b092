import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { redisAclRules, RETENTION_SCRIPT_COMMANDS } from "../../src/sink/redis/redis_acl_rules.ts";
import { TRIM_SCRIPT } from "../../src/sink/redis/stream_retention.ts";
import { repoRoot } from "../helpers/replicant.ts";

Deno.test("the recommended ACL rules: internal keys, streams, no channels, only listed commands", () => {
  const rules = redisAclRules(["shop_*"]);
  assert.deepEqual(rules.slice(0, 5), [
    "resetkeys",
    "~replicate_io_*",
    "~shop_*",
    "resetchannels",
    "-@all",
  ]);
  for (const c of ["+xadd", "+xdel", "+hset", "+hgetall", "+multi", "+exec", "+client|id"]) {
    assert.ok(rules.includes(c), c);
  }
  assert.ok(!rules.some((r) => /^\+(config|flushall|keys)/.test(r)));
});

Deno.test("docs/redis.md's recommended ACL line is exactly redisAclRules", () => {
  const doc = readFileSync(path.join(repoRoot, "docs", "redis.md"), "utf8");
  const line = doc.split("\n").find((l) => l.startsWith("ACL SETUSER replicant on >PASSWORD "));
  assert.ok(line, "the ACL line in docs/redis.md");
  const rules = line.split(" ").slice(5);
  assert.deepEqual(rules, redisAclRules(["mydb_*"]));
});

Deno.test("the rules allow what retention, its script, verify and write modes send", () => {
  const rules = redisAclRules(["shop_*"]);
  // Every command the retention script calls (Redis checks each against the caller's rights).
  const inScript = [...TRIM_SCRIPT.matchAll(/redis\.p?call\('([A-Z]+)'(?:, '([A-Z]+)')?/g)]
    .map(([, cmd, sub]) => cmd === "XINFO" ? `${cmd}|${sub}` : cmd);
  assert.deepEqual(
    [...new Set(inScript.map((c) => c.toLowerCase()))].sort(),
    [...RETENTION_SCRIPT_COMMANDS].sort(),
  );
  for (const c of RETENTION_SCRIPT_COMMANDS) assert.ok(rules.includes(`+${c}`), c);
  // The script itself, verify's stream length check, forgetting retention records.
  for (const c of ["+eval", "+evalsha", "+xinfo|stream", "+hdel"]) assert.ok(rules.includes(c), c);
});
