/**
 * What Replicant needs from the target Redis, checked on an open connection: the version
 * (6.2+), the ACL rights on every command it sends (probed on a scratch key, so they hold
 * for this very user), the eviction policy and persistence.
 *
 * @module
 */

import type { Redis } from "ioredis";
import { failed, passed, type PrerequisiteCheck } from "../../core/prerequisite_check.ts";

/** Commands Replicant sends, each with a harmless probe on a scratch key. */
const PROBES: [string, (c: Redis, k: string) => Promise<unknown>][] = [
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
  ["DEL", (c, k) => c.del(k, k + ":h")],
  ["MULTI/EXEC", (c) => c.multi().ping().exec()],
];

function infoField(info: string, name: string): string | undefined {
  const m = new RegExp(`^${name}:(.*)$`, "m").exec(info);
  return m?.[1].trim();
}

function versionAtLeast(v: string, major: number, minor: number): boolean {
  const [a, b] = v.split(".").map(Number);
  return a > major || (a === major && b >= minor);
}

export async function checkRedisPrerequisites(client: Redis): Promise<PrerequisiteCheck[]> {
  const checks: PrerequisiteCheck[] = [];
  let info = "";
  try {
    info = await client.info();
  } catch (err) {
    checks.push(failed("INFO", `INFO is not allowed: ${(err as Error).message}`));
  }
  const version = infoField(info, "redis_version");
  if (version) {
    checks.push(
      versionAtLeast(version, 6, 2)
        ? passed("version", version)
        : failed("version", `Redis ${version}: Replicant needs Redis 6.2 or newer`),
    );
  }

  let user = "default";
  try {
    user = String(await client.call("ACL", "WHOAMI"));
  } catch { /* Redis before 6, or ACL WHOAMI denied: the name only decorates messages */ }
  const key = `replicate_io_test_connection_probe_${crypto.randomUUID()}`;
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
      if (/NOPERM|no permissions/i.test((err as Error).message)) denied.push(command);
    }
  }
  if (!denied.includes("DEL")) await client.del(key, key + ":h").catch(() => {});
  checks.push(
    denied.length === 0
      ? passed("ACL rights", `user ${user}: ${PROBES.map(([c]) => c).join(", ")} allowed`)
      : failed(
        "ACL rights",
        `user ${user} may not run ${denied.join(", ")}: run ACL SETUSER ${user} ${
          denied.flatMap((c) => c.split("/")).map((c) => "+" + c.toLowerCase()).join(" ")
        }` + (denied.includes("DEL") ? ` (probe key ${key} may remain)` : ""),
      ),
  );

  let policy: string | undefined;
  try {
    const res = await client.config("GET", "maxmemory-policy") as string[];
    policy = res[1];
  } catch {
    policy = infoField(info, "maxmemory_policy");
  }
  if (policy === undefined) {
    checks.push(failed("maxmemory-policy", "cannot read it (CONFIG GET and INFO denied)"));
  } else if (policy === "noeviction") {
    checks.push(passed("maxmemory-policy", "noeviction"));
  } else if (policy.startsWith("volatile")) {
    checks.push({
      name: "maxmemory-policy",
      status: "WARNING",
      detail: `${policy}: Replicant's keys have no TTL so they are not evicted, but noeviction ` +
        "is recommended (CONFIG SET maxmemory-policy noeviction)",
    });
  } else {
    checks.push(
      failed(
        "maxmemory-policy",
        `${policy}: Redis may evict streams and checkpoints under memory pressure, losing ` +
          "data; run CONFIG SET maxmemory-policy noeviction (and set it in redis.conf)",
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
  checks.push(
    aof || rdb ? passed("persistence", what) : {
      name: "persistence",
      status: "WARNING",
      detail: `${what}: a Redis restart loses the streams and checkpoints; enable ` +
        "appendonly yes (recommended) or RDB snapshots",
    },
  );
  return checks;
}
