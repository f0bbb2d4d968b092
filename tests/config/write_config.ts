import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, type ConfigProblem } from "../../src/config/mod.ts";

let dir: string | undefined;

/** Writes `text` to a fresh file in this run's temp folder and returns its path. */
export function writeConfig(name: string, text: string): string {
  dir ??= mkdtempSync(join(tmpdir(), "replicant-config-test-"));
  const path = join(dir, `${crypto.randomUUID().slice(0, 8)}_${name}`);
  writeFileSync(path, text);
  return path;
}

/** Runs `load`, which must throw a ConfigError, and returns its problems. */
export function problemsOf(load: () => unknown): readonly ConfigProblem[] {
  try {
    load();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    assert.equal(error.exitCode, 2);
    return error.problems;
  }
  assert.fail("expected a ConfigError");
}

/** The single problem of `key`, failing when there is none. */
export function problemAt(problems: readonly ConfigProblem[], key: string): ConfigProblem {
  const found = problems.filter((p) => p.key === key);
  assert.equal(
    found.length,
    1,
    `expected one problem at ${key}, got:\n${JSON.stringify(problems, null, 2)}`,
  );
  return found[0];
}
