import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";

/**
 * The layers of src/, top to bottom (docs/architecture.md): a file imports only from its own
 * folder or from folders ranked lower. Folders of one rank are peers and do not import each
 * other (source/ and sink/ meet only through ports/).
 */
const RANK: Record<string, number> = {
  commands: 6,
  pipeline: 5,
  source: 4,
  sink: 4,
  ports: 3,
  schema: 2,
  observe: 2,
  config: 1,
  core: 0,
  "version.ts": 0,
};

const SRC = join(dirname(new URL(import.meta.url).pathname), "../../src");

Deno.test("a src/ folder imports only from folders below it", () => {
  const wrong: string[] = [];
  for (const file of readdirSync(SRC, { recursive: true }) as string[]) {
    if (!file.endsWith(".ts")) continue;
    const from = file.split("/")[0];
    const text = readFileSync(join(SRC, file), "utf8");
    for (const [, spec] of text.matchAll(/(?:from|import)\s*\(?\s*"(\.[^"]+)"/g)) {
      const to = relative(SRC, join(SRC, dirname(file), spec)).split("/")[0];
      if (to !== from && to !== ".." && !(RANK[to] < RANK[from])) wrong.push(`${file} -> ${to}`);
    }
  }
  assert.deepEqual(wrong, []);
});
