/**
 * Reading `--log-format json` output in tests: every line one JSON object with the common
 * fields (`ts`, `level`, `event`, and the run's `id`).
 */
import assert from "node:assert/strict";

// deno-lint-ignore no-explicit-any
export type Event = Record<string, any>;

const LEVELS = new Set(["info", "warn", "error"]);

/**
 * Every line of a run's output as a JSON object with the common fields; a line that is not
 * JSON fails the test with the line in the message.
 */
export function eventsOf(output: string, what: string, id?: string): Event[] {
  const lines = output.split("\n");
  assert.equal(lines.pop(), "", `${what}: output ends with a newline`);
  return lines.map((line) => {
    let e: Event;
    try {
      e = JSON.parse(line);
    } catch {
      throw new assert.AssertionError({ message: `${what}: not a JSON line: ${line}` });
    }
    assert.ok(e !== null && typeof e === "object" && !Array.isArray(e), `${what}: ${line}`);
    assert.ok(!Number.isNaN(Date.parse(e.ts)), `${what}: ts of ${line}`);
    assert.ok(LEVELS.has(e.level), `${what}: level of ${line}`);
    assert.equal(typeof e.event, "string", `${what}: event of ${line}`);
    if (id !== undefined) assert.equal(e.id, id, `${what}: id of ${line}`);
    return e;
  });
}

/** The events named `name`. */
export const ofEvent = (events: Event[], name: string): Event[] =>
  events.filter((e) => e.event === name);
