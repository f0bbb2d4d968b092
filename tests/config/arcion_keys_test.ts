/**
 * Every key Arcion documents for these sources and this target (arcion_documented_keys.ts),
 * fed one at a time into a minimal file of its kind: each is used (no warning) or accepted
 * with exactly one warning naming it; none is rejected.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import {
  ConfigError,
  loadApplier,
  loadConnection,
  loadExtractor,
  loadFilter,
  type SourceType,
} from "../../src/config/mod.ts";
import { DOCUMENTED_KEYS, type FileKind } from "./arcion_documented_keys.ts";
import { writeConfig } from "./write_config.ts";

type Tree = Record<string, unknown> | unknown[];

/** Sets `path` (`a.b[0].c`) in `tree`, creating mappings and lists on the way. */
function setPath(tree: Tree, path: string, value: unknown): void {
  const parts = path.split(".").flatMap((p) => {
    const m = /^(.*?)((?:\[\d+\])*)$/.exec(p)!;
    const idx = [...m[2].matchAll(/\[(\d+)\]/g)].map((x) => Number(x[1]));
    return [m[1], ...idx].filter((x) => x !== "");
  });
  let node: Record<string | number, unknown> = tree as Record<string | number, unknown>;
  parts.forEach((part, i) => {
    if (i === parts.length - 1) {
      node[part] = value;
      return;
    }
    if (node[part] === undefined || node[part] === null) {
      node[part] = typeof parts[i + 1] === "number" ? [] : {};
    }
    node = node[part] as Record<string | number, unknown>;
  });
}

const BASES: Record<FileKind, Record<string, unknown>> = {
  "conn:MYSQL": { type: "MYSQL", host: "h", username: "u", password: "p" },
  "conn:MARIADB": { type: "MARIADB", host: "h", username: "u", password: "p" },
  "conn:POSTGRESQL": { type: "POSTGRESQL", host: "h", database: "d", username: "u", password: "p" },
  "conn:REDIS_STREAM": { type: "REDIS_STREAM", host: "h" },
  "extractor:MYSQL": {},
  "extractor:MARIADB": {},
  "extractor:POSTGRESQL": {},
  filter: { "allow[0].catalog": "tpch" },
  applier: {},
};

function load(kind: FileKind, file: string) {
  const [what, type] = kind.split(":");
  if (what === "conn") return loadConnection(file);
  if (what === "extractor") return loadExtractor(file, type as SourceType);
  if (what === "filter") return loadFilter(file);
  return loadApplier(file);
}

Deno.test("every key Arcion documents for MySQL, MariaDB, PostgreSQL and Redis Streams is used or warned, never rejected", () => {
  const failures: string[] = [];
  let fed = 0;
  for (const doc of DOCUMENTED_KEYS) {
    for (const kind of doc.files) {
      const tree: Tree = {};
      for (const [k, v] of Object.entries(BASES[kind])) setPath(tree, k, v);
      for (const [k, v] of Object.entries(doc.with ?? {})) setPath(tree, k, v);
      setPath(tree, doc.key, doc.value);
      const file = writeConfig(`${kind.replace(":", "_")}.yaml`, stringify(tree));
      const what = `${kind} ${doc.key}: ${JSON.stringify(doc.value)}`;
      fed++;
      try {
        const loaded = load(kind, file);
        const warnings = loaded.warnings.map((w) => `${w.key}: ${w.message}`);
        if (doc.outcome === "used" && warnings.length > 0) {
          failures.push(`${what}: expected no warning, got ${warnings.join(" | ")}`);
        }
        if (doc.outcome === "warned") {
          const at = doc.at ?? doc.key;
          const mine = loaded.warnings.filter((w) => w.key === at);
          if (mine.length !== 1 || loaded.warnings.length !== 1) {
            failures.push(
              `${what}: expected one warning at ${at}, got ${
                warnings.length === 0 ? "none" : warnings.join(" | ")
              }`,
            );
          }
        }
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        failures.push(`${what}: rejected: ${err.message}`);
      }
    }
  }
  assert.ok(fed > 200, `${fed} keys fed`);
  assert.deepEqual(failures, [], `${failures.length} of ${fed}:\n${failures.join("\n")}`);
});
