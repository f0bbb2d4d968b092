/**
 * Runs `replicant` until a condition holds, then stops it with SIGTERM (a clean stop that
 * writes the checkpoint) and checks that it exited 0; and reads the recovery command a gap
 * error prints.
 */
import assert from "node:assert/strict";
import { type RunOptions, type RunResult, startReplicant } from "./replicant.ts";
import { waitFor } from "./services.ts";

export async function runUntil(
  args: string[],
  cond: () => Promise<boolean>,
  what: string,
  options: RunOptions = {},
): Promise<void> {
  const run = startReplicant(args, options);
  let exited = false;
  run.done.then(() => exited = true);
  try {
    await waitFor(async () => {
      if (exited) throw new Error(`replicant exited: ${(await run.done).stderr}`);
      return await cond();
    }, { timeoutMs: 30_000, what });
  } finally {
    if (!exited) run.kill("SIGTERM");
  }
  const out = await run.done;
  assert.equal(out.code, 0, out.stderr);
}

/** The arguments of the `replicant full … --overwrite --replace-existing` a gap message gives. */
export function recoveryArgs(stderr: string): string[] {
  const m = /^\s+replicant (full .*--overwrite --replace-existing)$/m.exec(stderr);
  assert.ok(m, `no recovery command in: ${stderr}`);
  return m[1].split(" ");
}

/**
 * Runs `replicant` and returns its result; one still running after `ms` (it went on
 * streaming instead of stopping) is stopped with SIGTERM and reported with `timedOut`.
 */
export async function runWithin(
  args: string[],
  ms = 30_000,
  options: RunOptions = {},
): Promise<RunResult & { timedOut: boolean }> {
  const run = startReplicant(args, options);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    run.kill("SIGTERM");
  }, ms);
  try {
    return { ...(await run.done), timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A run stopped on a gap: exit 5, the message with the checkpoint, what the source can
 * deliver, `detail`, the table affected and the recovery command, and no success summary.
 */
export function assertGapExit(out: RunResult, table: string, detail: RegExp): void {
  assert.equal(out.code, 5, out.stderr + out.stdout);
  assert.match(out.stderr, /Gap: the source can no longer deliver every change/);
  assert.match(out.stderr, /\n {2}checkpoint: \S/);
  assert.match(out.stderr, /\n {2}the source can deliver: \S/);
  assert.match(out.stderr, detail);
  assert.match(out.stderr, new RegExp(`tables affected: ${table.replaceAll(".", "\\.")}`));
  assert.match(out.stderr, /--overwrite --replace-existing/);
  assert.doesNotMatch(out.stdout, /transaction\(s\)/, "no success summary");
}
