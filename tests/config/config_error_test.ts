import assert from "node:assert/strict";
import { ConfigError, formatProblem, formatProblems } from "../../src/config/mod.ts";

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
