import assert from "node:assert/strict";
import { SinkError } from "../../src/core/errors.ts";
import { permissionError } from "../../src/sink/redis/redis_permission_error.ts";

const target = { origin: "conf/conn/redis.yaml", username: "app" };

function replyError(message: string, name: string, args: unknown[]): Error {
  return Object.assign(new Error(message), { command: { name, args } });
}

Deno.test("NOPERM for a command names the file, the user and +command", () => {
  const err = permissionError(
    replyError("NOPERM this user has no permissions to run the 'xadd' command", "xadd", ["s"]),
    target,
  );
  assert.ok(err instanceof SinkError);
  assert.match(err.message, /^Redis user "app" \(conf\/conn\/redis\.yaml\) may not run XADD: /);
  assert.match(err.message, /ACL SETUSER app \+xadd/);
});

Deno.test("NOPERM for a key names the key and the pattern to allow", () => {
  const msg = "NOPERM this user has no permissions to access one of the keys used as arguments";
  const internal = permissionError(
    replyError(msg, "hset", ["replicate_io_checkpoint_default_x", "f", "v"]),
    target,
  );
  assert.match(internal!.message, /may not access key replicate_io_checkpoint_default_x \(HSET\)/);
  assert.match(internal!.message, /ACL SETUSER app ~replicate_io_\*/);
  const stream = permissionError(replyError(msg, "exists", ["db_public_t"]), {
    origin: "r.yaml",
  });
  assert.match(
    stream!.message,
    /Redis user "default" \(r\.yaml\).*ACL SETUSER default ~db_public_t/,
  );
});

Deno.test("EXECABORT caused by a denied queued command is named like it", () => {
  const abort = Object.assign(
    new Error("EXECABORT Transaction discarded because of previous errors."),
    {
      previousErrors: [
        replyError("NOPERM this user has no permissions to run the 'xadd' command", "xadd", ["s"]),
      ],
    },
  );
  assert.match(permissionError(abort, target)!.message, /may not run XADD/);
});

Deno.test("other errors are left alone", () => {
  assert.equal(permissionError(new Error("WRONGTYPE Operation against a key"), target), null);
  assert.equal(permissionError("NOPERM", target), null);
});

Deno.test("a command a script may not run (Redis 7.0) names the retention script's rights", () => {
  const err = permissionError(
    replyError(
      "ERR The user executing the script can't run this command or subcommand script: " +
        "5afb84be81de8a6b369cec37597ef66bc9f128e1, on @user_script:1.",
      "evalsha",
      ["5afb84be81de8a6b369cec37597ef66bc9f128e1", "1", "s"],
    ),
    target,
  );
  assert.ok(err instanceof SinkError);
  assert.match(err.message, /^Redis user "app" \(conf\/conn\/redis\.yaml\) may not run a command /);
  assert.match(
    err.message,
    /ACL SETUSER app \+type \+time \+xlen \+xrange \+xinfo\|groups \+xpending \+xtrim \(docs\/redis\.md/,
  );
});
