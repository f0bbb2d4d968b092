/**
 * Connection settings of the private test servers started by `scripts/services start`, read
 * from the `REPLICANT_*` variables that `eval "$(scripts/services env)"` exports, with the
 * script's defaults when a variable is unset; and a polling helper for tests.
 */
import process from "node:process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

export interface ServiceEnv {
  pg: { host: string; port: number; user: string; database: string };
  mysql: { host: string; port: number; user: string; password: string; database: string };
  redis: { host: string; port: number };
  /** The state directory (data, logs, pid files) of the private servers. */
  state: string;
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

function str(name: string, fallback: string): string {
  const v = process.env[name];
  return v === undefined || v === "" ? fallback : v;
}

function port(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new Error(`${name}=${JSON.stringify(v)} is not a valid port`);
  }
  return n;
}

/** Settings of the private PostgreSQL, MariaDB and Redis (see scripts/services). */
export function serviceEnv(): ServiceEnv {
  return {
    pg: {
      host: str("REPLICANT_PG_HOST", "127.0.0.1"),
      port: port("REPLICANT_PG_PORT", 55432),
      user: str("REPLICANT_PG_USER", "postgres"),
      database: str("REPLICANT_PG_DATABASE", "replicant"),
    },
    mysql: {
      host: str("REPLICANT_MYSQL_HOST", "127.0.0.1"),
      port: port("REPLICANT_MYSQL_PORT", 53306),
      user: str("REPLICANT_MYSQL_USER", "root"),
      // An empty password is a valid value here, so only an unset variable takes the default.
      password: process.env.REPLICANT_MYSQL_PASSWORD ?? "",
      database: str("REPLICANT_MYSQL_DATABASE", "replicant"),
    },
    redis: {
      host: str("REPLICANT_REDIS_HOST", "127.0.0.1"),
      port: port("REPLICANT_REDIS_PORT", 56379),
    },
    state: path.resolve(str("REPLICANT_STATE", path.join(repoRoot, ".state"))),
  };
}

export interface WaitForOptions {
  /** Give up after this long (default 10 000 ms). */
  timeoutMs?: number;
  /** Pause between two checks (default 50 ms). */
  intervalMs?: number;
  /** What is awaited, for the error message (default "condition"). */
  what?: string;
}

/**
 * Calls `cond` until it returns true, pausing `intervalMs` between calls; throws an Error
 * naming `what` when `timeoutMs` passes first. An exception thrown by `cond` counts as "not
 * yet"; the last one is attached as the timeout error's `cause`.
 */
export async function waitFor(
  cond: () => Promise<boolean> | boolean,
  { timeoutMs = 10_000, intervalMs = 50, what = "condition" }: WaitForOptions = {},
): Promise<void> {
  const start = Date.now();
  const deadline = start + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await cond()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const now = Date.now();
    if (now >= deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(
        `timed out after ${now - start} ms waiting for ${what}${detail}`,
        lastError === undefined ? undefined : { cause: lastError },
      );
    }
    await sleep(Math.min(intervalMs, deadline - now));
  }
}
