/**
 * A throwaway MariaDB 10.11 for one test file: mariadb-install-db in a temporary folder, on a
 * free port, with ROW binlogs (like scripts/services) and optionally TLS (`ssl-ca`,
 * `ssl-cert`, `ssl-key` from tests/config/tls_certs.ts). The test administers it as root over
 * its Unix socket. As root, mariadbd needs `--user=root`.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import mysql from "mysql2/promise";
import type { TestCerts } from "../config/tls_certs.ts";
import { freePort } from "./free_port.ts";
import { waitFor } from "./services.ts";

export interface PrivateMariadbOptions {
  /** Turns on TLS with the server certificate and key of these, and their CA for client certificates. */
  certs?: TestCerts;
  /** `--server-id` (default 1). */
  serverId?: number;
  /** More server options, e.g. `--log-slave-updates` for a replica. */
  args?: string[];
  /**
   * Every commit reaches the operating system before it is acknowledged, so a server killed
   * with SIGKILL keeps what it acknowledged (default: InnoDB writes its log once a second).
   */
  durable?: boolean;
}

export interface PrivateMariadb {
  host: string;
  port: number;
  dir: string;
  /** A root connection over the Unix socket. */
  admin(): Promise<mysql.Connection>;
  /** Stops the server: a clean shutdown, or SIGKILL (a crash). Its data stays. */
  shutdown(how?: "clean" | "kill"): Promise<void>;
  /** Starts the stopped server again on the same port and data. */
  start(): Promise<void>;
  /** Stops the server and deletes its data. */
  stop(): Promise<void>;
}

const MARIADBD = process.env.REPLICANT_MARIADBD || "/usr/sbin/mariadbd";
const userOption = process.getuid?.() === 0 ? ["--user=root"] : [];

export async function startPrivateMariadb(
  options: PrivateMariadbOptions = {},
): Promise<PrivateMariadb> {
  const dir = mkdtempSync(path.join(tmpdir(), "replicant-mariadb-"));
  const data = path.join(dir, "data");
  const socketPath = path.join(dir, "mariadb.sock");
  const host = "127.0.0.1";
  const port = freePort();
  let proc: ChildProcess | null = null;
  const running = () => proc !== null && proc.exitCode === null && proc.signalCode === null;
  const shutdown = async (how: "clean" | "kill" = "clean") => {
    if (!running()) return;
    const exited = new Promise((resolve) => proc!.once("exit", resolve));
    proc!.kill(how === "clean" ? "SIGTERM" : "SIGKILL");
    await exited;
    proc = null;
  };
  const stop = async () => {
    await shutdown("kill");
    rmSync(dir, { recursive: true, force: true });
  };
  const admin = () => mysql.createConnection({ socketPath, user: "root" });
  const tls = options.certs
    ? [
      `--ssl-ca=${options.certs.caCert}`,
      `--ssl-cert=${options.certs.serverCert}`,
      `--ssl-key=${options.certs.serverKey}`,
    ]
    : [];
  const start = async () => {
    if (running()) return;
    proc = spawn(MARIADBD, [
      "--no-defaults",
      ...userOption,
      `--datadir=${data}`,
      `--port=${port}`,
      // 127.0.0.2 too, to reach the server by an address its certificate does not name.
      "--bind-address=127.0.0.1,127.0.0.2",
      `--socket=${socketPath}`,
      `--pid-file=${path.join(dir, "mariadbd.pid")}`,
      `--log-bin=${path.join(data, "binlog")}`,
      "--binlog-format=ROW",
      `--server-id=${options.serverId ?? 1}`,
      "--binlog-row-image=FULL",
      `--log-error=${path.join(dir, "mariadbd.err")}`,
      // Its own temporary directory: files in a shared /tmp may be cleaned by others.
      `--tmpdir=${dir}`,
      `--innodb-flush-log-at-trx-commit=${options.durable ? 2 : 0}`,
      ...tls,
      ...(options.args ?? []),
    ], { stdio: "ignore" });
    const started = proc;
    await waitFor(async () => {
      if (started.exitCode !== null) throw new Error(`mariadbd exited (see ${dir}/mariadbd.err)`);
      const c = await admin();
      await c.end();
      return true;
    }, { timeoutMs: 30_000, intervalMs: 100, what: `MariaDB on ${port}` });
  };
  try {
    execFileSync("mariadb-install-db", [
      "--no-defaults",
      ...userOption,
      `--datadir=${data}`,
      "--auth-root-authentication-method=normal",
      "--skip-test-db",
    ], { stdio: ["ignore", "pipe", "pipe"] });
    await start();
  } catch (err) {
    await stop();
    throw err;
  }
  return { host, port, dir, admin, shutdown, start, stop };
}
