/**
 * Faults of the failure tests: a private redis-server per test on ports
 * 56500-56599 (the shared one is never touched), which the test may fill (maxmemory),
 * restrict (ACL users) or kill -9 and restart.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Redis } from "ioredis";
import { waitFor } from "../helpers/services.ts";

const redisServer = process.env.REPLICANT_REDIS_SERVER || "redis-server";

export interface PrivateRedis {
  port: number;
  dir: string;
  /** A client as the default (all-powerful) user. */
  admin(): Redis;
  start(): Promise<void>;
  kill(): Promise<void>;
  stop(): Promise<void>;
  /** A connection file for `user` (default user when omitted), for the binary. */
  connFile(
    dir: string,
    name: string,
    user?: { name: string; password: string },
    port?: number,
  ): string;
}

function portFree(port: number): Promise<boolean> {
  return Deno.connect({ hostname: "127.0.0.1", port }).then((c) => {
    c.close();
    return false;
  }, () => true);
}

/**
 * Starts a throwaway Redis (AOF fsync'd always, so kill -9 loses nothing acknowledged) on a
 * free port of `firstPort`..`firstPort`+99 (default 56500-56599); another port is tried when
 * one is taken meanwhile.
 */
export async function privateRedis(firstPort = 56500): Promise<PrivateRedis> {
  for (let attempt = 1;; attempt++) {
    let port = 0;
    for (let i = 0; i < 50 && port === 0; i++) {
      const p = firstPort + Math.floor(Math.random() * 100);
      if (await portFree(p)) port = p;
    }
    assert.ok(port > 0, `no free port in ${firstPort}-${firstPort + 99}`);
    const r = redisOn(port);
    try {
      await r.start();
      return r;
    } catch (err) {
      await r.stop();
      if (attempt >= 4) throw err;
    }
  }
}

function redisOn(port: number): PrivateRedis {
  const dir = mkdtempSync(join(tmpdir(), "replicant-fault-redis-"));
  const pid = () => Number(readFileSync(join(dir, "redis.pid"), "utf8").trim());
  const r: PrivateRedis = {
    port,
    dir,
    admin: () => {
      const c = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 3 });
      c.on("error", () => {}); // while the test has Redis down
      return c;
    },
    start: async () => {
      const out = await new Deno.Command(redisServer, {
        args: [
          "--port",
          String(port),
          "--bind",
          "127.0.0.1",
          "--save",
          "",
          "--appendonly",
          "yes",
          "--appendfsync",
          "always",
          "--dir",
          dir,
          "--daemonize",
          "yes",
          "--pidfile",
          join(dir, "redis.pid"),
          "--logfile",
          join(dir, "redis.log"),
        ],
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      await waitFor(async () => {
        const c = new Redis({
          host: "127.0.0.1",
          port,
          lazyConnect: true,
          retryStrategy: () => null,
        });
        c.on("error", () => {});
        try {
          await c.connect();
          return (await c.ping()) === "PONG";
        } finally {
          c.disconnect();
        }
      }, { what: `redis on ${port}`, timeoutMs: 5_000 });
    },
    kill: async () => {
      const p = pid();
      Deno.kill(p, "SIGKILL");
      await waitFor(() => {
        try {
          Deno.kill(p, "SIGCONT");
          return false;
        } catch {
          return true;
        }
      }, { what: "redis to die" });
    },
    stop: async () => {
      await r.kill().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
    connFile: (folder, name, user, viaPort) => {
      const file = join(folder, name);
      writeFileSync(
        file,
        `type: REDIS_STREAM\nhost: 127.0.0.1\nport: ${viaPort ?? port}\nmax-connections: 2\n` +
          (user ? `username: ${user.name}\npassword: ${user.password}\n` : ""),
      );
      return file;
    },
  };
  return r;
}

/** Count of OOM replies Redis gave so far (INFO errorstats). */
export async function oomReplies(admin: Redis): Promise<number> {
  const info = await admin.info("errorstats");
  return Number(/errorstat_OOM:count=(\d+)/.exec(info)?.[1] ?? 0);
}

/** Sets maxmemory a little above what Redis uses now, so the next writes run out of memory. */
export async function tightenMemory(admin: Redis, headroomBytes: number): Promise<void> {
  const info = await admin.info("memory");
  const used = Number(/used_memory:(\d+)/.exec(info)![1]);
  await admin.config("SET", "maxmemory", String(used + headroomBytes));
}

/** The RESP text that starts an XADD to `stream` (what the proxy counts to cut mid-batch). */
export function xaddMarker(stream: string): string {
  return `XADD\r\n$${new TextEncoder().encode(stream).length}\r\n${stream}\r\n`;
}
