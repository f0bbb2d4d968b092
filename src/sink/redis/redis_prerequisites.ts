/**
 * What Replicant needs from the target Redis, checked on an open connection: the version
 * (6.2+), the ACL rights on every command it sends (probed on a scratch key, so they hold
 * for this very user), the eviction policy and persistence. On a Redis Cluster: the cluster's
 * state, and version, eviction policy and persistence of every master.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { Cluster, type Redis } from "ioredis";
import { failed, passed, type PrerequisiteCheck, warning } from "../../core/prerequisite_check.ts";
import type { RETENTION_SCRIPT_COMMANDS } from "./redis_acl_rules.ts";
import type { RedisClient } from "./redis_connection.ts";

/** How the script probe runs each command of retention's trimming script on the scratch key. */
const SCRIPT_PROBE_CALLS: Record<(typeof RETENTION_SCRIPT_COMMANDS)[number], string> = {
  type: "'TYPE', KEYS[1]",
  time: "'TIME'",
  xlen: "'XLEN', KEYS[1]",
  xrange: "'XRANGE', KEYS[1], '-', '+', 'COUNT', 1",
  "xinfo|groups": "'XINFO', 'GROUPS', KEYS[1]",
  xpending: "'XPENDING', KEYS[1], 'probe'",
  xtrim: "'XTRIM', KEYS[1], 'MINID', '0-0'",
};

/**
 * Runs each command of retention's trimming script (pcall: a denied one does not stop the
 * others) and returns those Redis refused to run for this user.
 */
const SCRIPT_PROBE = `
local denied = {}
local calls = {
${Object.entries(SCRIPT_PROBE_CALLS).map(([name, call]) => `  {'${name}', ${call}},`).join("\n")}
}
for _, c in ipairs(calls) do
  local r = redis.pcall(unpack(c, 2))
  if type(r) == 'table' and r.err and (string.find(r.err, 'NOPERM') or
      string.find(r.err, "can't run this command")) then
    table.insert(denied, c[1])
  end
end
return denied
`;
const SCRIPT_PROBE_SHA = createHash("sha1").update(SCRIPT_PROBE).digest("hex");

/** Commands Replicant sends, each with a harmless probe on a scratch key. */
const PROBES: [string, (c: RedisClient, k: string) => Promise<unknown>][] = [
  ["XADD", (c, k) => c.xadd(k, "*", "probe", "1")],
  ["XRANGE", (c, k) => c.xrange(k, "-", "+", "COUNT", 1)],
  ["XREVRANGE", (c, k) => c.xrevrange(k, "+", "-", "COUNT", 1)],
  ["XLEN", (c, k) => c.xlen(k)],
  ["XDEL", (c, k) => c.xdel(k, "0-1")],
  ["XTRIM", (c, k) => c.xtrim(k, "MAXLEN", "~", 1000)],
  ["EXISTS", (c, k) => c.exists(k)],
  ["HSET", (c, k) => c.hset(k + ":h", "probe", "1")],
  ["HGET", (c, k) => c.hget(k + ":h", "probe")],
  ["HGETALL", (c, k) => c.hgetall(k + ":h")],
  ["HDEL", (c, k) => c.hdel(k + ":h", "probe")],
  ["XINFO|STREAM", (c, k) => c.call("XINFO", "STREAM", k)],
  ["EVAL", (c, k) => c.eval(SCRIPT_PROBE, 1, k).then(scriptDenied)],
  ["EVALSHA", (c, k) => c.evalsha(SCRIPT_PROBE_SHA, 1, k)],
  ["DEL", (c, k) => c.del(k, k + ":h")],
  ["MULTI/EXEC", (c, k) => c.multi().exists(k).exec()],
];

/** A right the script probe found missing: `command` is what to add. */
class ScriptDenied extends Error {
  constructor(readonly commands: string[]) {
    super(`NOPERM in script: ${commands.join(", ")}`);
  }
}

function scriptDenied(reply: unknown): void {
  const denied = (reply as string[]).map(String);
  if (denied.length > 0) throw new ScriptDenied(denied);
}

function infoField(info: string, name: string): string | undefined {
  const m = new RegExp(`^${name}:(.*)$`, "m").exec(info);
  return m?.[1].trim();
}

function versionAtLeast(v: string, major: number, minor: number): boolean {
  const [a, b] = v.split(".").map(Number);
  return a > major || (a === major && b >= minor);
}

export async function checkRedisPrerequisites(client: RedisClient): Promise<PrerequisiteCheck[]> {
  if (!(client instanceof Cluster)) {
    const [version, policy, persistence] = await serverChecks(client, "");
    return [...version, await aclCheck(client), ...policy, ...persistence];
  }
  // Each master answers for itself; the ACL probes go through the cluster (one slot).
  const masters = client.nodes("master");
  const perNode = await Promise.all(
    masters.map((n) => serverChecks(n, ` (${n.options.host}:${n.options.port})`)),
  );
  return [
    await clusterCheck(client),
    ...perNode.flatMap((c) => c[0]),
    await aclCheck(client),
    ...perNode.flatMap((c) => c[1]),
    ...perNode.flatMap((c) => c[2]),
  ];
}

/** `cluster_state`, slots covered, and masters with their replicas (failover needs them). */
async function clusterCheck(client: Cluster): Promise<PrerequisiteCheck> {
  let info: string;
  let nodes: string[][];
  try {
    info = String(await client.call("CLUSTER", "INFO"));
    nodes = String(await client.call("CLUSTER", "NODES")).trim().split("\n").map((l) =>
      l.split(" ")
    );
  } catch (err) {
    return failed("cluster", `CLUSTER INFO/NODES is not allowed: ${(err as Error).message}`);
  }
  const state = infoField(info, "cluster_state");
  const slots = infoField(info, "cluster_slots_ok");
  const flags = (n: string[]) => n[2].split(",");
  const up = nodes.filter((n) => !flags(n).some((f) => /^(fail\??|handshake|noaddr)$/.test(f)));
  // Masters serving slots (a master without slots, e.g. just added, holds no data).
  const masters = up.filter((n) => flags(n).includes("master") && n.length > 8);
  const replicas = up.filter((n) => flags(n).includes("slave"));
  const detail = `cluster_state:${state}, ${slots} of 16384 slots ok, ${masters.length} ` +
    `master(s), ${replicas.length} replica(s)`;
  if (state !== "ok" || slots !== "16384") return failed("cluster", detail);
  const alone = masters.filter((m) => !replicas.some((r) => r[3] === m[0]));
  if (alone.length > 0) {
    return {
      name: "cluster",
      status: "WARNING",
      detail: `${detail}: ${alone.map((m) => m[1].split("@")[0]).join(", ")} without replica; ` +
        "a failed master loses its streams and checkpoints",
    };
  }
  return passed("cluster", detail);
}

/** Version, eviction policy and persistence of one server; `where` names it in the checks. */
async function serverChecks(
  client: Redis,
  where: string,
): Promise<[PrerequisiteCheck[], PrerequisiteCheck[], PrerequisiteCheck[]]> {
  const versionChecks: PrerequisiteCheck[] = [];
  let info = "";
  try {
    info = await client.info();
  } catch (err) {
    versionChecks.push(failed(`INFO${where}`, `INFO is not allowed: ${(err as Error).message}`));
  }
  const version = infoField(info, "redis_version");
  if (version) {
    versionChecks.push(
      versionAtLeast(version, 6, 2)
        ? passed(`version${where}`, version)
        : failed(`version${where}`, `Redis ${version}: Replicant needs Redis 6.2 or newer`),
    );
  }
  const policyChecks: PrerequisiteCheck[] = [];
  let policy: string | undefined;
  try {
    const res = await client.config("GET", "maxmemory-policy") as string[];
    policy = res[1];
  } catch {
    policy = infoField(info, "maxmemory_policy");
  }
  if (policy === undefined) {
    policyChecks.push(
      failed(`maxmemory-policy${where}`, "cannot read it (CONFIG GET and INFO denied)"),
    );
  } else if (policy === "noeviction") {
    policyChecks.push(passed(`maxmemory-policy${where}`, "noeviction"));
  } else if (policy.startsWith("volatile")) {
    const fix = "CONFIG SET maxmemory-policy noeviction";
    policyChecks.push(
      warning(
        `maxmemory-policy${where}`,
        `${policy}: Replicant's keys have no TTL so they are not evicted, but noeviction ` +
          `is recommended (${fix})`,
        fix,
      ),
    );
  } else {
    const fix = "run CONFIG SET maxmemory-policy noeviction (and set it in redis.conf)";
    policyChecks.push(
      failed(
        `maxmemory-policy${where}`,
        `${policy}: Redis may evict streams and checkpoints under memory pressure, losing ` +
          `data; ${fix}`,
        fix,
      ),
    );
  }

  const aof = infoField(info, "aof_enabled") === "1";
  let save: string | undefined;
  try {
    save = (await client.config("GET", "save") as string[])[1];
  } catch { /* CONFIG denied: AOF from INFO is all we know */ }
  const rdb = save !== undefined && save.trim() !== "";
  const what = [aof ? "appendonly yes" : "appendonly no", `save "${save ?? "?"}"`].join(", ");
  const persistenceFix = "enable appendonly yes (recommended) or RDB snapshots";
  const persistence: PrerequisiteCheck = aof || rdb ? passed(`persistence${where}`, what) : warning(
    `persistence${where}`,
    `${what}: a Redis restart loses the streams and checkpoints; ${persistenceFix}`,
    persistenceFix,
  );
  return [versionChecks, policyChecks, [persistence]];
}

/** The ACL rights of this user on every command Replicant sends, probed on a scratch key. */
async function aclCheck(client: RedisClient): Promise<PrerequisiteCheck> {
  let user = "default";
  try {
    user = String(await client.call("ACL", "WHOAMI"));
  } catch { /* Redis before 6, or ACL WHOAMI denied: the name only decorates messages */ }
  // The hash tag keeps `key` and `key:h` in one slot (a Cluster refuses DEL across slots).
  const key = `replicate_io_test_connection_probe_{${crypto.randomUUID()}}`;
  const denied: string[] = [];
  for (const [command, probe] of PROBES) {
    try {
      const res = await probe(client, key);
      // MULTI/EXEC reports a denied queued command inside its result.
      if (Array.isArray(res)) {
        for (const item of res) {
          if (Array.isArray(item) && item[0] instanceof Error && /NOPERM/.test(item[0].message)) {
            throw item[0];
          }
        }
      }
    } catch (err) {
      if (err instanceof ScriptDenied) {
        denied.push(...err.commands.map((c) => `${c.toUpperCase()} (in EVAL)`));
      } else if (/NOPERM|no permissions/i.test((err as Error).message)) denied.push(command);
    }
  }
  if (!denied.includes("DEL")) await client.del(key, key + ":h").catch(() => {});
  if (denied.length === 0) {
    return passed("ACL rights", `user ${user}: ${PROBES.map(([c]) => c).join(", ")} allowed`);
  }
  const rights = denied.flatMap((c) => c.replace(" (in EVAL)", "").split("/"));
  const fix =
    `run ACL SETUSER ${user} ${[...new Set(rights)].map((c) => "+" + c.toLowerCase()).join(" ")}` +
    (denied.includes("DEL") ? ` (probe key ${key} may remain)` : "");
  return failed("ACL rights", `user ${user} may not run ${denied.join(", ")}: ${fix}`, fix);
}
