import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseYaml, readYaml } from "../../src/config/mod.ts";
import { keyPathId } from "../../src/config/key_path.ts";
import { problemsOf, writeConfig } from "./write_config.ts";

Deno.test("YAML 1.1: 10_000 is the number 10000", () => {
  const doc = parseYaml("a: 10_000\nb: 1_000_000\nc: '10_000'\n", "f.yaml", {});
  assert.deepEqual(doc.data, { a: 10000, b: 1000000, c: "10_000" });
});

Deno.test("a plain `y` or `on` key stays the key as written", () => {
  const doc = parseYaml("y: 1\non: 2\n", "f.yaml", {});
  assert.deepEqual(doc.data, { y: 1, on: 2 });
});

Deno.test("plain scalars that are not text keep their source text on the side", () => {
  const doc = parseYaml("password: 0123\nwhen: 2024-01-02\nport: 5432\nname: x\n", "f.yaml", {});
  assert.equal((doc.data as Record<string, unknown>).password, 83);
  assert.equal(doc.rawScalars.get(keyPathId(["password"])), "0123");
  assert.equal(doc.rawScalars.get(keyPathId(["when"])), "2024-01-02");
  assert.equal(doc.rawScalars.get(keyPathId(["name"])), undefined);
});

Deno.test("${VAR} is replaced in values; plain numbers and booleans become typed", () => {
  const env = { HOST: "db.local", PORT: "6380", TLS: "true", PW: "0123" };
  const doc = parseYaml(
    'host: ${HOST}\nport: ${PORT}\nquoted: "${PORT}"\nssl: ${TLS}\nurl: "redis://${HOST}:${PORT}"\npassword: ${PW}\nlist:\n  - ${HOST}\n',
    "f.yaml",
    env,
  );
  assert.deepEqual(doc.problems, []);
  assert.deepEqual(doc.data, {
    host: "db.local",
    port: 6380,
    quoted: "6380",
    ssl: true,
    url: "redis://db.local:6380",
    password: 83,
    list: ["db.local"],
  });
  // The text as substituted is kept for settings that are text.
  assert.equal(doc.rawScalars.get(keyPathId(["password"])), "0123");
});

Deno.test("an unset variable is a problem naming the key and the variable", () => {
  const doc = parseYaml("a:\n  b: ${NOPE_NOT_SET}\n  c: ${ALSO_NOT}-x\n", "f.yaml", {});
  assert.deepEqual(doc.problems, [
    { path: ["a", "b"], message: "environment variable NOPE_NOT_SET is not set" },
    { path: ["a", "c"], message: "environment variable ALSO_NOT is not set" },
  ]);
});

Deno.test("${VAR:-default} is not supported and says so", () => {
  const doc = parseYaml("a: ${X:-1}\n", "f.yaml", { X: "2" });
  assert.equal(doc.problems.length, 1);
  assert.match(doc.problems[0].message, /not supported/);
});

Deno.test("the process environment is the default", () => {
  process.env.REPLICANT_CONFIG_TEST_VAR = "from-env";
  try {
    const path = writeConfig("env.yaml", "a: ${REPLICANT_CONFIG_TEST_VAR}\n");
    assert.deepEqual(readYaml(path).data, { a: "from-env" });
  } finally {
    delete process.env.REPLICANT_CONFIG_TEST_VAR;
  }
});

Deno.test("anchors, aliases and merge keys", () => {
  const doc = parseYaml(
    "base: &b\n  threads: 4\n  fetch-size-rows: 10\nsnapshot:\n  <<: *b\n  threads: 8\nrealtime: *b\n",
    "f.yaml",
    {},
  );
  assert.deepEqual(doc.data, {
    base: { threads: 4, "fetch-size-rows": 10 },
    snapshot: { threads: 8, "fetch-size-rows": 10 },
    realtime: { threads: 4, "fetch-size-rows": 10 },
  });
});

Deno.test("an empty file or one with only comments is null", () => {
  assert.equal(parseYaml("", "f.yaml", {}).data, null);
  assert.equal(parseYaml("# nothing\n", "f.yaml", {}).data, null);
});

Deno.test("bad YAML is one problem with line and column", () => {
  const problems = problemsOf(() => parseYaml("a: 1\nb: [1, 2\nc: 3\n", "bad.yaml", {}));
  assert.equal(problems.length, 1);
  assert.equal(problems[0].file, "bad.yaml");
  assert.equal(problems[0].key, "");
  assert.match(problems[0].message, /^invalid YAML at line \d+, column \d+: /);
});

Deno.test("a duplicate key is a YAML problem", () => {
  const problems = problemsOf(() => parseYaml("port: 1\nport: 2\n", "dup.yaml", {}));
  assert.match(problems[0].message, /line 2, column 1: Map keys must be unique/);
});

Deno.test("the top level must be a mapping", () => {
  const list = problemsOf(() => parseYaml("- a\n- b\n", "list.yaml", {}));
  assert.match(list[0].message, /mapping .* found a list/);
  const scalar = problemsOf(() => parseYaml("just text\n", "text.yaml", {}));
  assert.match(scalar[0].message, /found the single value "just text"/);
});

Deno.test("a missing file names the file and the reason", () => {
  const problems = problemsOf(() => readYaml("/nonexistent/dir/conn.yaml", {}));
  assert.deepEqual(problems, [{
    file: "/nonexistent/dir/conn.yaml",
    key: "",
    message: "cannot read the file: no such file (ENOENT)",
  }]);
});

Deno.test("a directory instead of a file", () => {
  const dir = mkdtempSync(join(tmpdir(), "replicant-config-dir-"));
  const problems = problemsOf(() => readYaml(dir, {}));
  assert.equal(problems[0].file, dir);
  assert.match(problems[0].message, /^cannot read the file: /);
});

Deno.test({
  name: "an unreadable file names the OS reason",
  ignore: process.getuid?.() === 0, // root reads anything
  fn() {
    const path = writeConfig("secret.yaml", "a: 1\n");
    Deno.chmodSync(path, 0o000);
    const problems = problemsOf(() => readYaml(path, {}));
    assert.match(problems[0].message, /permission denied \(EACCES\)/);
  },
});
