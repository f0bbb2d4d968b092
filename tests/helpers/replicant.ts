/**
 * Runs the compiled `replicant` binary (REPLICANT_BIN, else dist/replicant) the way a user
 * does, and gives the test exit code and output; plus a scratch home with connection files
 * pointing at the private test servers.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { serviceEnv } from "./services.ts";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export function replicantBin(): string {
  return process.env.REPLICANT_BIN ?? path.join(repoRoot, "dist", "replicant");
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunningReplicant {
  pid: number;
  done: Promise<RunResult>;
  kill(signal?: NodeJS.Signals): void;
}

export interface RunOptions {
  cwd?: string;
  /** Variables added to (or, when undefined, removed from) the inherited environment. */
  env?: Record<string, string | undefined>;
}

export function startReplicant(args: string[], options: RunOptions = {}): RunningReplicant {
  const env = options.env ? { ...process.env, ...options.env } : undefined;
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env![name];
  }
  const child = spawn(replicantBin(), args, {
    cwd: options.cwd,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on("error", reject);
    child.on(
      "close",
      (code, signal) =>
        resolve({ code: code ?? (signal === "SIGKILL" ? 137 : 128), stdout, stderr }),
    );
  });
  // process.kill, not child.kill: with the latter Deno reports a clean exit as 128.
  return { pid: child.pid!, done, kill: (s = "SIGTERM") => process.kill(child.pid!, s) };
}

export function runReplicant(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return startReplicant(args, options).done;
}

/** A fresh folder with conf files for the private servers; `home` for --home. */
export interface ScratchHome {
  dir: string;
  pgConn: string;
  redisConn: string;
  write(name: string, text: string): string;
}

export function scratchHome(): ScratchHome {
  const env = serviceEnv();
  const dir = mkdtempSync(path.join(tmpdir(), "replicant-test-"));
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  return {
    dir,
    write,
    pgConn: write(
      "postgresql.yaml",
      `type: POSTGRESQL\nhost: ${env.pg.host}\nport: ${env.pg.port}\ndatabase: ${env.pg.database}\nusername: ${env.pg.user}\nmax-connections: 10\n`,
    ),
    redisConn: write(
      "redis_stream.yaml",
      `type: REDIS_STREAM\nhost: ${env.redis.host}\nport: ${env.redis.port}\nmax-connections: 4\n`,
    ),
  };
}

/** `<mode> SRC DST --filter F --id ID --home DIR …extra`: a test's usual replication command. */
export function replicationArgs(
  mode: string,
  files: { source: string; target: string; filter: string; id: string; home: string },
  ...extra: string[]
): string[] {
  const { source, target, filter, id, home } = files;
  return [mode, source, target, "--filter", filter, "--id", id, "--home", home, ...extra];
}
