/**
 * Seeds of the randomised tests, so that a failure seen once can be replayed.
 *
 * Every random choice that changes what a test does (the transactions a generator writes,
 * when a process is killed, which rows change, a chaos schedule) comes from `prng(seed)`,
 * never from `Math.random()`. Names that only have to be unique (a database or stream tag,
 * a free port, a replica server id) may stay random: they do not change what happens.
 *
 * The run's seed is `REPLICANT_TEST_SEED` when that variable is set, else drawn at random
 * once per process. Each test derives its own seed from the run's seed and its name, so one
 * variable replays every test of a file the way it ran. A test wrapped by `seededTest` (or
 * its body by `reportSeed`) prints the run's seed when it fails:
 *
 *     seed 123456789: replay with REPLICANT_TEST_SEED=123456789
 *
 * and `REPLICANT_TEST_SEED=123456789 ./scripts/deno task test tests/…` runs it again with
 * the same choices (timing of real servers still varies; see `scripts/repeat_test`).
 */
import process from "node:process";

/** The environment variable that replays a run's random choices. */
export const SEED_VARIABLE = "REPLICANT_TEST_SEED";

let current: number | null = null;

/** The seed of this test process: `REPLICANT_TEST_SEED`, else a random one (kept). */
export function runSeed(): number {
  if (current !== null) return current;
  const given = process.env[SEED_VARIABLE];
  if (given !== undefined && given !== "") {
    const n = Number(given);
    if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32) {
      throw new Error(`${SEED_VARIABLE}=${JSON.stringify(given)} is not an integer in [0, 2^32)`);
    }
    current = n;
  } else current = Math.floor(Math.random() * 2 ** 32);
  return current;
}

/** A test's own seed: the run's seed mixed with a name (FNV-1a), stable across runs. */
export function seedFor(name: string): number {
  let h = (0x811c9dc5 ^ runSeed()) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** A name part unique to this moment (not from the seed: it changes nothing a test does). */
export function uniqueTag(): string {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
}

/** A small seeded PRNG (mulberry32) giving numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The line a failing test prints, which `scripts/repeat_test` looks for. */
export function seedLine(seed = runSeed()): string {
  return `seed ${seed}: replay with ${SEED_VARIABLE}=${seed}`;
}

/** Appends the seed line to an error's message (and stack), once. */
function annotate(err: unknown): unknown {
  const line = seedLine();
  if (err instanceof Error && !err.message.includes(line)) {
    const old = err.message;
    err.message = `${old}\n${line}`;
    if (typeof err.stack === "string") err.stack = err.stack.replace(old, err.message);
  }
  console.error(line);
  return err;
}

/** Runs a test body; when it throws, the error names the run's seed. */
export async function reportSeed<T>(body: () => Promise<T> | T): Promise<T> {
  try {
    return await body();
  } catch (err) {
    throw annotate(err);
  }
}

/**
 * `Deno.test` for a randomised test: the body gets its seed (`seedFor(name)`) and a PRNG
 * from it; a failure prints the run's seed.
 */
export function seededTest(
  name: string,
  body: (seed: number, rand: () => number) => Promise<void> | void,
  options: Omit<Deno.TestDefinition, "name" | "fn"> = {},
): void {
  Deno.test({
    ...options,
    name,
    fn: () => {
      const seed = seedFor(name);
      return reportSeed(() => body(seed, prng(seed)));
    },
  });
}
