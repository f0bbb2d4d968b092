/** Where a value sits in a YAML document: mapping keys as written, list positions as numbers. */
export type KeyPath = readonly (string | number)[];

const PLAIN_SEGMENT = /^[A-Za-z0-9_$-]+$/;

/**
 * Renders a path the way users read it: `snapshot.per-table-config[0].tables.orders`. Keys that
 * would be ambiguous in that form (a table named `a.b`) are quoted.
 */
export function formatKeyPath(path: KeyPath): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") {
      out += `[${part}]`;
      continue;
    }
    const segment = PLAIN_SEGMENT.test(part) ? part : JSON.stringify(part);
    out += out === "" ? segment : `.${segment}`;
  }
  return out;
}

/** A stable map key for a path (keys may contain any character, so no separator is safe). */
export function keyPathId(path: KeyPath): string {
  return JSON.stringify(path);
}
