/**
 * A private Redis Cluster on loopback for tests: 3 masters (and by default one replica each),
 * created with `redis-cli --cluster create`, ready once every node reports
 * `cluster_state:ok`, agrees on the slot map and every replica is in sync; plus the moves the
 * tests make on it (manual failover) and teardown.
 *
 * Ports come from 56900-57100 (this test area's range); a node's cluster bus port is its port
 * minus 10000 (port + 10000 would be above 65535), both checked free.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import { Cluster } from "ioredis";
import { waitFor } from "./services.ts";

const FIRST_PORT = 56900;
const LAST_PORT = 57100;

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** `n` free ports (from a random start, so parallel test files rarely collide). */
async function freePorts(n: number): Promise<number[]> {
  const span = LAST_PORT - FIRST_PORT + 1;
  const offset = Math.floor(Math.random() * span);
  const found: number[] = [];
  for (let i = 0; i < span && found.length < n; i++) {
    const p = FIRST_PORT + (offset + i) % span;
    if ((await portFree(p)) && (await portFree(p - 10000))) found.push(p);
  }
  if (found.length < n) throw new Error(`no ${n} free ports in ${FIRST_PORT}-${LAST_PORT}`);
  return found;
}

export interface ClusterNode {
  port: number;
  id: string;
  role: "master" | "replica";
  /** Port of the master (replicas). */
  masterPort?: number;
}

export interface RedisClusterBed {
  /** Every node's port (masters and replicas, in start order). */
  readonly ports: number[];
  /** redis-cli against one node; returns its output. */
  cli(port: number, ...args: string[]): string;
  /** Ports of the masters now. */
  masters(): number[];
  /** The nodes as node `port` sees them now (CLUSTER NODES). */
  nodes(port?: number): ClusterNode[];
  /** Port of the master owning `slot` now. */
  ownerOf(slot: number): number;
  /** A new ioredis Cluster client on all nodes (the caller disconnects it). */
  client(): Cluster;
  /** `nodes:` lines of a `mode: cluster` connection file. */
  connYaml(extra?: string): string;
  /**
   * `CLUSTER FAILOVER` on the replica of master `port`; resolves with the replica's port once
   * it is master, the old master its replica in sync, and every node agrees.
   */
  failover(port: number): Promise<number>;
  /**
   * SIGKILL of master `port` (no handover: what it had not sent to its replica is lost), then
   * `CLUSTER FAILOVER FORCE` on its replica; once that took over, the node is started again and
   * rejoins as that replica's replica.
   * Resolves with the promoted replica's port when the cluster is settled again.
   */
  crash(port: number): Promise<number>;
  /** Resolves once the cluster is ok, settled and every replica is in sync. */
  ready(): Promise<void>;
  stop(): void;
}

function parseNodes(text: string): ClusterNode[] {
  const rows = text.trim().split("\n").map((l) => l.split(" "));
  const portOf = new Map(rows.map((r) => [r[0], Number(r[1].split("@")[0].split(":").at(-1))]));
  const up = rows.filter((r) => {
    const flags = r[2].split(",");
    return !["fail", "fail?", "handshake", "noaddr"].some((f) => flags.includes(f));
  });
  return up.map((r) => {
    const replica = r[2].split(",").includes("slave");
    return {
      port: portOf.get(r[0])!,
      id: r[0],
      role: replica ? "replica" : "master",
      ...(replica ? { masterPort: portOf.get(r[3]) } : {}),
    };
  });
}

function infoField(info: string, name: string): string | undefined {
  return new RegExp(`^${name}:(.*)$`, "m").exec(info)?.[1].trim();
}

/** Starts the cluster: `replicas` per master (0 or 1), 3 masters. */
export async function startRedisCluster(
  { replicas = 1 }: { replicas?: number } = {},
): Promise<RedisClusterBed> {
  const ports = await freePorts(3 * (1 + replicas));
  const dir = mkdtempSync(path.join(tmpdir(), "replicant-cluster-"));
  const cli = (port: number, ...args: string[]) =>
    execFileSync("redis-cli", ["-p", String(port), ...args], { encoding: "utf8" });
  const stop = () => {
    for (const p of ports) {
      try {
        execFileSync("redis-cli", ["-p", String(p), "shutdown", "nosave"], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  /** Starts (or starts again, with its nodes.conf) the node on `p`. */
  const startNode = (p: number) => {
    const settings: Record<string, string> = {
      port: String(p),
      bind: "127.0.0.1",
      "cluster-port": String(p - 10000),
      "cluster-enabled": "yes",
      "cluster-config-file": `nodes-${p}.conf`,
      "cluster-node-timeout": "3000",
      // No failover unless a test asks for one: a busy machine must not start its own.
      "cluster-replica-no-failover": "yes",
      save: "",
      appendonly: "no",
      "repl-diskless-sync": "yes",
      "repl-diskless-sync-delay": "0",
      daemonize: "yes",
      dir,
      pidfile: path.join(dir, `${p}.pid`),
      logfile: path.join(dir, `${p}.log`),
    };
    execFileSync("redis-server", Object.entries(settings).flatMap(([k, v]) => [`--${k}`, v]));
  };
  const nodes = (port = ports[0]) => parseNodes(cli(port, "cluster", "nodes"));
  const masterPorts = () => nodes().filter((n) => n.role === "master").map((n) => n.port);

  /**
   * Every node up with `cluster_state:ok`, one slot map and one view of every node's role,
   * every replica linked and synced.
   */
  const settled = () => {
    const maps = ports.map((p) => {
      if (!cli(p, "cluster", "info").includes("cluster_state:ok")) return null;
      const roles = nodes(p).map((n) => `${n.port}:${n.role}:${n.masterPort ?? ""}`).sort();
      return cli(p, "cluster", "slots") + roles.join(" "); // ranges, masters and replicas
    });
    if (maps.some((m) => m === null) || new Set(maps).size !== 1) return false;
    const view = nodes();
    if (view.length !== ports.length) return false;
    for (const n of view.filter((v) => v.role === "replica")) {
      const info = cli(n.port, "info", "replication");
      if (infoField(info, "master_link_status") !== "up") return false;
      if (infoField(info, "master_sync_in_progress") !== "0") return false;
      const master = cli(n.masterPort!, "info", "replication");
      const offset = infoField(master, "master_repl_offset");
      if (offset !== infoField(info, "slave_repl_offset")) return false;
    }
    return view.filter((v) => v.role === "master").length === 3;
  };
  const ready = () =>
    waitFor(settled, {
      what: "cluster_state:ok, one slot map on all nodes and replicas in sync",
      timeoutMs: 30_000,
      intervalMs: 100,
    });

  try {
    for (const p of ports) startNode(p);
    await waitFor(() => ports.every((p) => cli(p, "ping").trim() === "PONG"), { what: "nodes up" });
    execFileSync("redis-cli", [
      "--cluster",
      "create",
      ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes",
    ], { stdio: "ignore" }); // deno-fmt-ignore
    await ready();
  } catch (err) {
    stop();
    throw err;
  }

  return {
    ports,
    cli,
    nodes,
    masters: masterPorts,
    ownerOf(slot: number): number {
      // CLUSTER NODES lists each master's slot ranges from its 9th field on.
      for (const line of cli(ports[0], "cluster", "nodes").trim().split("\n")) {
        const f = line.split(" ");
        if (!f[2].includes("master")) continue;
        for (const r of f.slice(8)) {
          if (r.startsWith("[")) continue;
          const [a, b] = r.split("-").map(Number);
          if (slot >= a && slot <= (b ?? a)) return Number(f[1].split("@")[0].split(":").at(-1));
        }
      }
      throw new Error(`slot ${slot} unassigned`);
    },
    client: () => new Cluster(masterPorts().map((port) => ({ host: "127.0.0.1", port }))),
    connYaml: (extra = "") =>
      `type: REDIS_STREAM\nmode: cluster\nnodes:\n${
        ports.map((p) => `  - 127.0.0.1:${p}\n`).join("")
      }max-connections: 4\n${extra}`,
    async failover(port: number): Promise<number> {
      const replica = nodes(port).find((n) => n.role === "replica" && n.masterPort === port);
      if (!replica) throw new Error(`master ${port} has no replica`);
      cli(replica.port, "cluster", "failover");
      await waitFor(
        () =>
          infoField(cli(replica.port, "info", "replication"), "role") === "master" &&
          nodes(port).find((n) => n.port === port)?.masterPort === replica.port,
        { what: `replica ${replica.port} promoted in place of ${port}`, timeoutMs: 20_000 },
      );
      await ready();
      return replica.port;
    },
    async crash(port: number): Promise<number> {
      const replica = nodes(port).find((n) => n.role === "replica" && n.masterPort === port);
      if (!replica) throw new Error(`master ${port} has no replica`);
      process.kill(Number(readFileSync(path.join(dir, `${port}.pid`), "utf8")), "SIGKILL");
      // Automatic failover is off (cluster-replica-no-failover): FORCE promotes the replica
      // without its dead master, as the cluster would after cluster-node-timeout.
      cli(replica.port, "cluster", "failover", "force");
      await waitFor(
        () => infoField(cli(replica.port, "info", "replication"), "role") === "master",
        { what: `replica ${replica.port} promoted after ${port} died`, timeoutMs: 30_000 },
      );
      startNode(port);
      await ready();
      return replica.port;
    },
    ready,
    stop,
  };
}
