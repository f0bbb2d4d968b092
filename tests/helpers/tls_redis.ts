/**
 * A private Redis server that speaks only TLS, on 127.0.0.1 and 127.0.0.2 (an address its
 * certificate does not name), with the server certificate of `certs` (tests/config/tls_certs.ts);
 * optionally requiring client certificates (mutual TLS) and a password. `client` is a trusted
 * ioredis client of it for the test's own reads.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";
import type { TestCerts } from "../config/tls_certs.ts";
import { freePort } from "./free_port.ts";
import { waitFor } from "./services.ts";

export interface TlsRedis {
  port: number;
  proc: ChildProcess;
  client: Redis;
}

export async function startTlsRedis(
  certs: TestCerts,
  { clientCerts = false, password }: { clientCerts?: boolean; password?: string } = {},
): Promise<TlsRedis> {
  const port = freePort();
  const args = [
    "--port",
    "0",
    "--tls-port",
    String(port),
    "--bind",
    "127.0.0.1",
    "127.0.0.2",
    "--tls-cert-file",
    certs.serverCert,
    "--tls-key-file",
    certs.serverKey,
    "--tls-ca-cert-file",
    certs.caCert,
    "--tls-auth-clients",
    clientCerts ? "yes" : "no",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    certs.dir,
    "--logfile",
    path.join(certs.dir, `redis-${port}.log`),
  ];
  if (password) args.push("--requirepass", password);
  const proc = spawn("redis-server", args, { stdio: "ignore" });
  const client = new Redis({
    host: "127.0.0.1",
    port,
    password,
    tls: {
      ca: readFileSync(certs.caCert),
      cert: readFileSync(certs.clientCert),
      key: readFileSync(certs.clientKey),
    },
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on("error", () => {});
  await waitFor(async () => {
    try {
      if (client.status !== "ready") {
        client.disconnect();
        await client.connect();
      }
      return (await client.ping()) === "PONG";
    } catch {
      return false;
    }
  }, { timeoutMs: 10_000, what: `TLS redis on ${port}` });
  return { port, proc, client };
}

export async function stopTlsRedis(r: TlsRedis): Promise<void> {
  r.client.disconnect();
  const exited = new Promise((resolve) => r.proc.once("exit", resolve));
  r.proc.kill("SIGKILL");
  await exited;
}
