import assert from "node:assert/strict";
import {
  bool,
  check,
  Checker,
  int,
  INVALID,
  listOf,
  mapOf,
  obj,
  oneOf,
  str,
} from "../../src/config/schema.ts";
import { formatKeyPath, keyPathId } from "../../src/config/key_path.ts";

const section = obj({
  threads: int({ min: 1, default: 8 }),
  "fetch-size-rows": int({ min: 1, default: 5000 }),
  name: str({ required: true }),
  enable: bool({ default: false }),
  mode: oneOf(["GLOBAL", "EVENTUAL"], { default: "EVENTUAL" }),
  tags: listOf(str({ required: true }), { single: true }),
  slots: mapOf(int({ required: true })),
}, { ignored: { "bulk-load": "", "socket-timeout-s": "a custom reason" } });

function run(value: unknown, raw: Record<string, string> = {}) {
  const rawMap = new Map(Object.entries(raw).map(([k, v]) => [keyPathId(k.split(".")), v]));
  const c = new Checker(rawMap);
  const out = check(section, value, [], c);
  const show = (list: typeof c.problems) =>
    list.map((p) => `${formatKeyPath(p.path)}: ${p.message}`);
  return { out, problems: show(c.problems), warnings: show(c.warnings) };
}

Deno.test("defaults apply and keys come out camelCase", () => {
  const { out, problems } = run({ name: "x" });
  assert.deepEqual(problems, []);
  assert.deepEqual(out, {
    threads: 8,
    fetchSizeRows: 5000,
    name: "x",
    enable: false,
    mode: "EVENTUAL",
    tags: [],
    slots: {},
  });
});

Deno.test("a key with no value takes the default", () => {
  const { out } = run({ name: "x", threads: null });
  assert.equal((out as { threads: number }).threads, 8);
});

Deno.test("enums ignore case and come out canonical", () => {
  const { out } = run({ name: "x", mode: "global" });
  assert.equal((out as { mode: string }).mode, "GLOBAL");
});

Deno.test("camelCase spellings of keys are the same keys", () => {
  const { out, problems } = run({ name: "x", fetchSizeRows: 7 });
  assert.deepEqual(problems, []);
  assert.equal((out as { fetchSizeRows: number }).fetchSizeRows, 7);
  assert.deepEqual(run({ name: "x", fetchSizeRows: 7, "fetch-size-rows": 8 }).problems, [
    "fetch-size-rows: same setting as `fetchSizeRows`; keep only one",
  ]);
});

Deno.test("a single item may stand for a one-item list", () => {
  const { out } = run({ name: "x", tags: "solo" });
  assert.deepEqual((out as { tags: string[] }).tags, ["solo"]);
});

Deno.test("numbers in text settings keep the text as written", () => {
  const { out } = run({ name: 83 }, { name: "0123" });
  assert.equal((out as { name: string }).name, "0123");
});

Deno.test("integers written as text are read (as Jackson does); other text is not", () => {
  assert.equal((run({ name: "x", threads: "16" }).out as { threads: number }).threads, 16);
  assert.deepEqual(run({ name: "x", threads: "sixteen" }).problems, [
    'threads: must be an integer of at least 1, got "sixteen"',
  ]);
});

Deno.test("ignored Arcion keys give one warning each, not a problem", () => {
  const { out, problems, warnings } = run({
    name: "x",
    "bulk-load": { enable: true, type: "FILE" },
    "socket-timeout-s": 60,
    _traceDBTasks: true,
  });
  assert.notEqual(out, INVALID);
  assert.deepEqual(problems, []);
  assert.deepEqual(warnings, [
    "bulk-load: ignored: Arcion option that Replicant does not use",
    "socket-timeout-s: ignored: a custom reason",
    "_traceDBTasks: ignored: Arcion internal option",
  ]);
});

Deno.test("every problem is collected, not only the first", () => {
  const { out, problems } = run({
    thread: 4,
    "fetch-size-rows": 1.5,
    enable: "yes please",
    mode: "GLOBL",
    tags: [1, { a: 1 }],
    slots: { a: "x" },
    colour: "blue",
  });
  assert.equal(out, INVALID);
  assert.deepEqual(problems, [
    "thread: unknown key; did you mean `threads`?",
    "colour: unknown key; valid keys here: threads, fetch-size-rows, name, enable, mode, tags, slots",
    "fetch-size-rows: must be an integer of at least 1, got 1.5",
    "name: required key is missing",
    'enable: must be true or false, got "yes please"',
    'mode: must be one of GLOBAL, EVENTUAL, got "GLOBL"; did you mean `GLOBAL`?',
    "tags[1]: must be a text value, got a mapping",
    'slots.a: must be an integer, got "x"',
  ]);
});

Deno.test("booleans must be booleans", () => {
  assert.deepEqual(run({ name: "x", enable: "true" }).problems, [
    'enable: must be true or false, got "true" (written in quotes: remove them)',
  ]);
  assert.deepEqual(run({ name: "x", enable: 1 }).problems, [
    "enable: must be true or false, got 1",
  ]);
});

Deno.test("a section that is not a mapping", () => {
  assert.deepEqual(run(["a"]).problems, [": must be a mapping (key: value), got a list"]);
});

Deno.test("cross-field checks run when the fields are valid", () => {
  const schema = obj({ a: int({ default: 1 }), b: int({ default: 2 }) }, {
    check(out, path, c) {
      if (out.a > out.b) c.problem([...path, "a"], "must not exceed b");
    },
  });
  const c = new Checker();
  assert.equal(check(schema, { a: 3 }, ["x"], c), INVALID);
  assert.deepEqual(c.problems, [{ path: ["x", "a"], message: "must not exceed b" }]);
});

Deno.test("paths render with list indexes and quoted odd keys", () => {
  assert.equal(
    formatKeyPath(["snapshot", "per-table-config", 0, "tables", "a.b"]),
    'snapshot.per-table-config[0].tables."a.b"',
  );
  assert.equal(formatKeyPath([]), "");
});
