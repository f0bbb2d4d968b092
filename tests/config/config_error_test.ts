import assert from "node:assert/strict";
import { ConfigError, formatProblem, formatProblems, fromOption } from "../../src/config/mod.ts";

Deno.test("ConfigError renders every problem as file: key: message, one per line", () => {
  const error = new ConfigError([
    { file: "conf/conn/pg.yaml", key: "port", message: "must be an integer" },
    { file: "conf/conn/pg.yaml", key: "", message: "cannot read the file: no such file (ENOENT)" },
    { file: "conf/src/pg.yaml", key: "snapshot.threads", message: "must be at least 1" },
  ]);
  assert.equal(
    error.message,
    [
      "conf/conn/pg.yaml: port: must be an integer",
      "conf/conn/pg.yaml: cannot read the file: no such file (ENOENT)",
      "conf/src/pg.yaml: snapshot.threads: must be at least 1",
    ].join("\n"),
  );
  assert.equal(error.exitCode, 2);
  assert.equal(error.name, "ConfigError");
  assert.equal(error.problems.length, 3);
  assert.ok(error instanceof Error);
});

Deno.test("formatProblem and formatProblems", () => {
  assert.equal(formatProblem({ file: "f.yaml", key: "a.b", message: "m" }), "f.yaml: a.b: m");
  assert.equal(formatProblems([]), "");
});

Deno.test("a problem names the option that gave its file", () => {
  assert.equal(
    formatProblem({
      file: "conf/filter/nope.yaml",
      key: "",
      message: "cannot read the file: no such file (ENOENT)",
      option: "--filter",
    }),
    "--filter conf/filter/nope.yaml: cannot read the file: no such file (ENOENT)",
  );
  assert.equal(
    formatProblem({ file: "f.yaml", key: "allow", message: "m", option: "SRC_CONN" }),
    "SRC_CONN f.yaml: allow: m",
  );
});

Deno.test("fromOption tags the problems of a load, sync or async, and passes the rest", async () => {
  const problem = { file: "x.yaml", key: "", message: "bad" };
  const sync = () => {
    throw new ConfigError([problem, { ...problem, option: "--kept" }]);
  };
  assert.throws(() => fromOption("--filter", sync), (err: ConfigError) => {
    assert.deepEqual(err.problems.map((p) => p.option), ["--filter", "--kept"]);
    assert.match(err.message, /^--filter x\.yaml: bad\n--kept x\.yaml: bad$/);
    return true;
  });
  await assert.rejects(
    fromOption("--applier", () => Promise.reject(new ConfigError([problem]))),
    (err: ConfigError) => err.problems[0].option === "--applier",
  );
  assert.equal(fromOption("--filter", () => 42), 42);
  assert.equal(await fromOption("--filter", () => Promise.resolve(7)), 7);
  assert.throws(() =>
    fromOption("--filter", () => {
      throw new TypeError("not a config problem");
    }), TypeError);
});
