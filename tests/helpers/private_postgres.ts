/**
 * A throwaway PostgreSQL 15 for one test file: initdb in a temporary folder, on a free port,
 * optionally with TLS (server certificate from tests/config/tls_certs.ts) and with the
 * pg_hba.conf lines the test wants for TCP clients. The test administers it as `postgres`
 * over its Unix socket (trust), so TCP rules can be as strict as the test needs. PostgreSQL
 * refuses to run as root: as root, every server command runs as the `postgres` OS user (like
 * scripts/services).
 */
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import {
  appendFileSync,
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import pg from "pg";
import type { TestCerts } from "../config/tls_certs.ts";
import { freePort } from "./free_port.ts";

export interface PrivatePgOptions {
  /** Turns on `ssl` with the server certificate and key of these (and their CA for client certificates). */
  certs?: TestCerts;
  /**
   * pg_hba.conf lines for TCP clients (the socket is always `local all all trust`). Default:
   * TLS only, passwords checked (`hostssl all all 127.0.0.0/8 scram-sha-256` and the same
   * for `replication`).
   */
  hba?: string[];
}

export interface PrivatePg {
  host: string;
  port: number;
  dir: string;
  /** A superuser client over the Unix socket. */
  admin(database?: string): Promise<pg.Client>;
  /**
   * Stops the server (`pg_ctl stop -m fast`, or `immediate`: a crash), failing when it has
   * not stopped within `timeoutSeconds` (default 60). Its data stays.
   */
  shutdown(mode?: "fast" | "immediate", timeoutSeconds?: number): Promise<void>;
  /** Starts the stopped server again on the same port and data. */
  start(): Promise<void>;
  /** Stops the server and deletes its data. */
  stop(): Promise<void>;
}

const PG_BIN = process.env.REPLICANT_PG_BIN || "/usr/lib/postgresql/15/bin";
const isRoot = process.getuid?.() === 0;

function pgUid(): { uid: number; gid: number } {
  const text = execFileSync("id", ["postgres"], { encoding: "utf8" });
  return { uid: Number(/uid=(\d+)/.exec(text)![1]), gid: Number(/gid=(\d+)/.exec(text)![1]) };
}

/** Runs a PostgreSQL program, as the postgres user when we are root. */
async function asPg(program: string, args: string[]): Promise<void> {
  const [cmd, argv] = isRoot
    ? ["runuser", ["-u", "postgres", "--", path.join(PG_BIN, program), ...args]]
    : [path.join(PG_BIN, program), args];
  await promisify(execFile)(cmd, argv, { cwd: "/" });
}

export async function startPrivatePostgres(options: PrivatePgOptions = {}): Promise<PrivatePg> {
  const dir = mkdtempSync(path.join(tmpdir(), "replicant-pg-"));
  const data = path.join(dir, "data");
  const owner = isRoot ? pgUid() : null;
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const port = freePort();
  const host = "127.0.0.1";
  const log = path.join(dir, "postgres.log");
  // pg_ctl only says "examine the log output": a failed start carries the log's tail.
  const start = () =>
    asPg("pg_ctl", ["-D", data, "-l", log, "-w", "-t", "30", "start"]).catch((err) => {
      const tail = existsSync(log)
        ? readFileSync(log, "utf8").split("\n").slice(-20).join("\n")
        : "";
      throw new Error(`PostgreSQL on port ${port} did not start: ${err.message}\n${tail}`);
    });
  const shutdown = (mode: "fast" | "immediate" = "fast", timeoutSeconds = 60) =>
    asPg("pg_ctl", ["-D", data, "-m", mode, "-w", "-t", String(timeoutSeconds), "stop"]);
  try {
    await asPg("initdb", [
      "-D",
      data,
      "--auth=trust",
      "-U",
      "postgres",
      "-E",
      "UTF8",
      "--locale=C",
      "-N",
    ]);
    const conf = [
      "",
      `port = ${port}`,
      // 127.0.0.2 too, to reach the server by an address its certificate does not name.
      "listen_addresses = '127.0.0.1,127.0.0.2'",
      `unix_socket_directories = '${dir}'`,
      "wal_level = logical",
      "max_replication_slots = 10",
      "max_wal_senders = 10",
      "fsync = off",
      "password_encryption = 'scram-sha-256'",
    ];
    if (options.certs) {
      // The server refuses a key that others can read: copy both into the data folder.
      for (
        const [from, to] of [
          [options.certs.serverCert, "server.crt"],
          [options.certs.serverKey, "server.key"],
          [options.certs.caCert, "ca.crt"],
        ]
      ) {
        const file = path.join(data, to);
        copyFileSync(from, file);
        chmodSync(file, 0o600);
        if (owner) chownSync(file, owner.uid, owner.gid);
      }
      conf.push("ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'");
      conf.push("ssl_ca_file = 'ca.crt'");
    }
    appendFileSync(path.join(data, "postgresql.conf"), conf.join("\n") + "\n");
    const hba = options.hba ?? [
      "hostssl all all 127.0.0.0/8 scram-sha-256",
      "hostssl replication all 127.0.0.0/8 scram-sha-256",
    ];
    writeFileSync(
      path.join(data, "pg_hba.conf"),
      ["local all all trust", ...hba].join("\n") + "\n",
    );
    await start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    host,
    port,
    dir,
    admin: async (database = "postgres") => {
      const client = new pg.Client({ host: dir, port, user: "postgres", database });
      await client.connect();
      return client;
    },
    shutdown,
    start,
    stop: async () => {
      try {
        // A server already shut down by the test has nothing to stop.
        await shutdown("immediate").catch(() => {});
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
