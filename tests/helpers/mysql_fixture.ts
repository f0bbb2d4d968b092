/** A MariaDB database of its own, a scratch home and connection file for e2e tests. */
import mysql from "mysql2/promise";
import { deleteKeys, readStream, redisClient } from "./clients.ts";
import { type RunResult, type ScratchHome, scratchHome, startReplicant } from "./replicant.ts";
import { serviceEnv } from "./services.ts";

export const env = serviceEnv().mysql;

/** An admin connection that keeps values exact: dates, big numbers, decimals and JSON as text. */
export function connect(database?: string): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: env.host,
    port: env.port,
    user: env.user,
    password: env.password,
    database,
    charset: "utf8mb4_general_ci",
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    decimalNumbers: false,
    jsonStrings: true,
  });
}

/** A fresh database, a scratch home with a MariaDB connection file, and their cleanup. */
export async function mysqlFixture(prefix: string) {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const database = `${prefix}_${tag}`;
  const id = `${prefix.replaceAll("_", "-")}-${tag}`;
  const db = await connect();
  await db.query(`CREATE DATABASE ${database} CHARACTER SET utf8mb4`);
  await db.query(`USE ${database}`);
  const home = scratchHome();
  const serverId = 2000 + Math.floor(Math.random() * 60_000);
  const sourceConn = home.write(
    "mysql.yaml",
    `type: MARIADB\nhost: ${env.host}\nport: ${env.port}\nusername: ${env.user}\n` +
      `password: "${env.password}"\nslave-server-ids: [${serverId}]\nmax-connections: 4\n`,
  );
  const redis = redisClient();
  return {
    database,
    id,
    db,
    home,
    sourceConn,
    redis,
    args(mode: string, extra: string[] = []) {
      return [mode, sourceConn, home.redisConn, "--id", id, "--home", home.dir, ...extra];
    },
    async cleanup() {
      await db.query(`DROP DATABASE IF EXISTS ${database}`);
      await deleteKeys(redis, `${database}_*`);
      await deleteKeys(redis, `replicate_io_*_default_${id}`);
      await db.end();
      redis.disconnect();
    },
  };
}

export function filterFile(home: ScratchHome, text: string): string {
  return home.write("filter.yaml", text);
}

/** The `after` payloads of a compact stream's entries. */
export async function afters(redis: ReturnType<typeof redisClient>, stream: string) {
  const entries = await readStream(redis, stream);
  return entries.map(([, f]) => JSON.parse(f[1]).payload.after as Record<string, unknown>);
}

/**
 * Starts replicant with `args`, runs `body` while it runs (a replicant that exits meanwhile
 * fails it with its output), then stops it with SIGTERM and gives its result.
 */
export async function whileRunning(
  args: string[],
  body: (alive: () => Promise<void>) => Promise<void>,
): Promise<RunResult> {
  const run = startReplicant(args);
  let exited = false;
  run.done.then(() => (exited = true));
  const alive = async () => {
    if (exited) {
      const r = await run.done;
      throw new Error(`replicant exited with ${r.code}: ${r.stderr}`);
    }
  };
  try {
    await body(alive);
  } finally {
    if (!exited) run.kill("SIGTERM");
  }
  return await run.done;
}
