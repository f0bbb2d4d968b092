/**
 * The chaos runner behind scripts/chaos (a soak, outside the default test run): random fault
 * schedules, each from its own seed, against `replicant full` on throwaway servers while a
 * generator writes known transactions (and another writer a table outside the selection).
 *
 *   ./scripts/deno run -A scripts/chaos.ts [--schedules N] [--source pg|mysql|both]
 *       [--consistency EVENTUAL|GLOBAL|both] [--faults kill,redis,source,cut-redis,cut-source,
 *       interference] [--seed S] [--replay SEED]
 *
 * A schedule: PostgreSQL or MariaDB, EVENTUAL or GLOBAL, 2-5 faults, each during the snapshot
 * or during realtime: kill -9 of replicant (then --resume), Redis killed and started again,
 * the source server restarted (cleanly or crashed), every TCP connection to Redis or to the
 * source cut for a while (through a proxy), or interference with what the source keeps for
 * replicant (PostgreSQL: its slot advanced by another consumer; MariaDB: binlogs purged) while
 * replicant is down, past its checkpoint or not. A replicant that exits on its own is started
 * again with --resume, as a supervisor would. Then the generator stops, the last change must
 * reach every stream, and the streams are compared with the tables: every column of every
 * row, no position twice, order kept, every logged change exactly once.
 *
 * Outcomes: ok; gap refused (exit 5 after interference that skipped changes: the only right
 * answer besides exactly-once, never exit 0 over a loss); lost, duplicated, out of order (what
 * the check found); error (the schedule itself could not finish; its message says why).
 * Every failing schedule prints its seed and the command that replays it. A table of faults
 * and outcomes ends the run; the exit status is 1 when any schedule was lost, duplicated,
 * out of order or in error.
 */
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import process from "node:process";
import { type PrivateRedis, privateRedis } from "../tests/pipeline/failure_fixture.ts";
import { type PrivatePg, startPrivatePostgres } from "../tests/helpers/private_postgres.ts";
import { type PrivateMariadb, startPrivateMariadb } from "../tests/helpers/private_mariadb.ts";
import { TcpProxy } from "../tests/helpers/tcp_proxy.ts";
import {
  type RunningReplicant,
  type ScratchHome,
  scratchHome,
  startReplicant,
} from "../tests/helpers/replicant.ts";
import { type SourceBed, sourceBed, type SourceServer } from "../tests/helpers/source_bed.ts";
import {
  checkPositions,
  checkReplicated,
  type Dialect,
  type Finding,
  NoiseWriter,
  readEntries,
  tailHas,
  totalLength,
} from "../tests/helpers/change_log.ts";
import { prng, runSeed, SEED_VARIABLE } from "../tests/helpers/test_seed.ts";
import { waitFor } from "../tests/helpers/services.ts";
import { StreamNaming } from "../src/core/stream_naming.ts";

const FAULTS = ["kill", "redis", "source", "cut-redis", "cut-source", "interference"] as const;
type FaultKind = typeof FAULTS[number];
const FAULT_LABEL: Record<FaultKind, string> = {
  kill: "kill -9",
  redis: "Redis restart",
  source: "source restart",
  "cut-redis": "cut to Redis",
  "cut-source": "cut to source",
  interference: "slot/binlog interference",
};
const OUTCOMES = ["ok", "gap refused", "lost", "duplicated", "out of order", "error"] as const;
type Outcome = typeof OUTCOMES[number];

/** Rows of the table whose snapshot lasts long enough for faults to land in it. */
const BIG_ROWS = 100_000;
const SMALL_ROWS = 500;
/** The exit code of "the source cannot deliver every change after the checkpoint". */
const EXIT_GAP = 5;

interface Fault {
  kind: FaultKind;
  phase: "snapshot" | "realtime";
  /** Snapshot rows (snapshot) or cdc entries (realtime) to wait for before the fault. */
  after: number;
  /** How long a server or link stays down (ms). */
  downMs: number;
  /** source: crash instead of a clean shutdown; interference: past the checkpoint. */
  hard: boolean;
}

interface Schedule {
  seed: number;
  dialect: Dialect;
  consistency: "EVENTUAL" | "GLOBAL";
  faults: Fault[];
}

/** A schedule from its seed; `dialect`/`consistency` fixed by the options when given. */
export function scheduleOf(
  seed: number,
  dialects: Dialect[],
  consistencies: ("EVENTUAL" | "GLOBAL")[],
  kinds: FaultKind[],
): Schedule {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
  const dialect = pick(dialects);
  const consistency = pick(consistencies);
  const count = 2 + Math.floor(rand() * 4);
  const faults: Fault[] = [];
  for (let i = 0; i < count; i++) {
    // Snapshot faults first: a schedule moves forward in time.
    const phase = faults.every((f) => f.phase === "snapshot") && rand() < 0.35
      ? "snapshot"
      : "realtime";
    faults.push({
      kind: pick(kinds),
      phase,
      after: phase === "snapshot"
        ? 2_000 + Math.floor(rand() * 40_000)
        : 20 + Math.floor(rand() * 400),
      downMs: 100 + Math.floor(rand() * 1400),
      hard: rand() < 0.5,
    });
  }
  return { seed, dialect, consistency, faults };
}

function describe(f: Fault): string {
  const extra = f.kind === "kill"
    ? ""
    : f.kind === "interference"
    ? f.hard ? " past the checkpoint" : " before the checkpoint"
    : f.kind === "source"
    ? ` ${f.hard ? "crash" : "clean"} ${f.downMs} ms`
    : ` ${f.downMs} ms`;
  return `${f.kind}${extra}@${f.phase}`;
}

/** The throwaway servers of a run, started once; each schedule gets its own database. */
interface Servers {
  redis: PrivateRedis;
  admin: Redis;
  pg?: PrivatePg;
  mysql?: PrivateMariadb;
}

async function startServers(dialects: Dialect[]): Promise<Servers> {
  const redis = await privateRedis();
  const servers: Servers = { redis, admin: redis.admin() };
  if (dialects.includes("pg")) {
    servers.pg = await startPrivatePostgres({
      hba: ["host all all 127.0.0.1/32 trust", "host replication all 127.0.0.1/32 trust"],
    });
  }
  if (dialects.includes("mysql")) servers.mysql = await startPrivateMariadb({ durable: true });
  return servers;
}

async function stopServers(s: Servers): Promise<void> {
  s.admin.disconnect();
  await s.redis.stop();
  await s.pg?.stop();
  await s.mysql?.stop();
}

function sourceServer(s: Servers, dialect: Dialect): SourceServer {
  return dialect === "pg"
    ? { host: "127.0.0.1", port: s.pg!.port, user: "postgres", password: "", database: "postgres" }
    : { host: "127.0.0.1", port: s.mysql!.port, user: "root", password: "", database: "" };
}

class GapRefused extends Error {}

/** After interference, replicant keeps refusing to run, but not with the gap exit code. */
class RefusedOtherwise extends Error {}

/** Runs replicant as a supervisor would: what exits on its own is started again (--resume). */
class Supervisor {
  run: RunningReplicant | null = null;
  /** The run that ended on its own, until `ensureRunning` handles it. */
  exited: { code: number; stderr: string } | null = null;
  /** Exit codes of runs that ended on their own. */
  readonly exits: number[] = [];
  /** The last line each of them wrote on stderr. */
  readonly reasons: string[] = [];
  /** Set once interference skipped changes: repeated refusals then end the schedule. */
  interfered = false;
  #restarts = 0;
  #refusals = 0;
  constructor(private readonly args: (mode: "--overwrite" | "--resume") => string[]) {}

  start(mode: "--overwrite" | "--resume"): void {
    this.run = startReplicant(this.args(mode));
    const current = this.run;
    current.done.then((r) => {
      if (this.run === current) this.exited = r;
    });
  }

  /** Restarts a run that ended on its own; exit 5 ends the schedule (GapRefused). */
  ensureRunning(): void {
    const r = this.exited;
    if (r === null) return;
    this.exited = null;
    this.exits.push(r.code);
    this.reasons.push(lastLine(r.stderr));
    if (r.code === EXIT_GAP) throw new GapRefused(lastLine(r.stderr));
    this.#refusals = r.code === 0 ? 0 : this.#refusals + 1;
    if (this.interfered && this.#refusals >= 3) {
      throw new RefusedOtherwise(
        `refused with exit ${r.code} (the gap exit code is ${EXIT_GAP}): ${lastLine(r.stderr)}`,
      );
    }
    if (++this.#restarts > 20) {
      throw new Error(`replicant keeps exiting (last: ${r.code}: ${lastLine(r.stderr)})`);
    }
    this.start("--resume");
  }

  async kill9(): Promise<void> {
    const current = this.run;
    if (!current) return;
    this.run = null;
    this.exited = null;
    current.kill("SIGKILL");
    await current.done;
  }

  async stop(): Promise<{ code: number; stderr: string }> {
    const current = this.run!;
    this.run = null;
    this.exited = null;
    try {
      current.kill("SIGTERM");
    } catch {
      // It has just exited by itself: its exit code tells.
    }
    return await current.done;
  }
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1) ?? "";
}

interface Result {
  schedule: Schedule;
  outcome: Outcome;
  findings: Finding[];
  notes: string[];
  faultsDone: Fault[];
  ms: number;
}

async function runSchedule(servers: Servers, schedule: Schedule, index: number): Promise<Result> {
  const t0 = Date.now();
  const { dialect, consistency } = schedule;
  const tag = `${index}_${(schedule.seed >>> 0).toString(36)}_${Date.now().toString(36)}`;
  const id = `chaos-${tag.replaceAll("_", "-")}`;
  const naming = new StreamNaming(id, "default");
  const admin = servers.admin;
  const server = sourceServer(servers, dialect);
  const bed: SourceBed = await sourceBed(dialect, {
    prefix: "chaos",
    tag,
    id,
    tables: ["big", "a", "b"],
    rows: (t) => t === "big" ? BIG_ROWS : SMALL_ROWS,
    server,
    serverId: 3000 + index % 1000,
  });
  const redisProxy = await TcpProxy.start(servers.redis.port);
  const sourceProxy = await TcpProxy.start(server.port);
  const home: ScratchHome = scratchHome();
  const cdcStreams = consistency === "GLOBAL"
    ? [naming.globalCdcStream()]
    : Object.keys(bed.tables).map(bed.cdcStream);
  const checkpointKey = naming.checkpointKey(false);
  const generator = bed.generator(schedule.seed);
  const noise = new NoiseWriter(bed.noise);
  const sourceConn = bed.connFile(home, {
    port: sourceProxy.port,
    extra: "max-retries: 30\nretry-wait-duration-ms: 200\n",
  });
  const supervisor = new Supervisor((mode) => [
    "full",
    sourceConn,
    servers.redis.connFile(home.dir, "redis.yaml", undefined, redisProxy.port),
    "--extractor",
    home.write("extractor.yaml", "snapshot:\n  threads: 2\n  fetch-size-rows: 1000\n"),
    "--applier",
    home.write(
      "applier.yaml",
      "snapshot:\n  batch-size-rows: 500\n  max-retries: 12\n  retry-wait-duration-ms: 200\n" +
        `realtime:\n  batch-size-rows: 50\n  replay-consistency: ${consistency}\n` +
        "  max-retries: 12\n  retry-wait-duration-ms: 200\ninclude-schema: false\n",
    ),
    "--filter",
    home.write("filter.yaml", bed.filter),
    "--id",
    id,
    "--home",
    home.dir,
    mode,
  ]);
  const notes: string[] = [];
  const faultsDone: Fault[] = [];
  let interfered = false;
  /** Waits for `cond`, keeping replicant running (restarted when it exits on its own). */
  const until = async (cond: () => Promise<boolean>, what: string, timeoutMs = 90_000) => {
    // waitFor takes an exception of its condition for "not yet": the supervisor's verdicts
    // (exit 5, repeated refusals) end the wait and are thrown here instead.
    let verdict: unknown = null;
    await waitFor(async () => {
      try {
        supervisor.ensureRunning();
      } catch (err) {
        verdict = err;
        return true;
      }
      return await cond();
    }, { what, timeoutMs, intervalMs: 20 });
    if (verdict !== null) throw verdict;
  };
  const snapshotDone = async () => (await admin.hget(checkpointKey, "snapshot:complete")) === "1";
  const pauseWriters = async () => {
    await generator.stop();
    await noise.stop();
  };
  const resumeWriters = () => {
    generator.start();
    noise.start();
  };

  const inject = async (f: Fault) => {
    switch (f.kind) {
      case "kill":
        await supervisor.kill9();
        supervisor.start("--resume");
        return;
      case "redis":
        await servers.redis.kill();
        await sleep(f.downMs);
        await servers.redis.start();
        return;
      case "cut-redis":
      case "cut-source": {
        const proxy = f.kind === "cut-redis" ? redisProxy : sourceProxy;
        proxy.down();
        await sleep(f.downMs);
        proxy.up();
        return;
      }
      case "source": {
        // The writers stop first: a commit cut off by the restart would be in doubt.
        await pauseWriters();
        if (dialect === "pg") await servers.pg!.shutdown(f.hard ? "immediate" : "fast");
        else await servers.mysql!.shutdown(f.hard ? "kill" : "clean");
        await sleep(f.downMs);
        if (dialect === "pg") await servers.pg!.start();
        else await servers.mysql!.start();
        await bed.reconnect();
        resumeWriters();
        return;
      }
      case "interference": {
        await supervisor.kill9();
        if (await interfere(bed, dialect, admin, checkpointKey, f.hard)) {
          interfered = supervisor.interfered = true;
        }
        supervisor.start("--resume");
        return;
      }
    }
  };

  let outcome: Outcome = "ok";
  let findings: Finding[] = [];
  try {
    resumeWriters();
    supervisor.start("--overwrite");
    for (const f of schedule.faults) {
      let phase = f.phase;
      if (phase === "snapshot") {
        const want = f.after;
        await until(
          async () => (await admin.xlen(bed.snapStream("big"))) >= want || await snapshotDone(),
          `snapshot progress before ${describe(f)}`,
        );
        if (await snapshotDone()) phase = "realtime";
      }
      if (phase === "realtime") {
        await until(snapshotDone, `snapshot complete before ${describe(f)}`, 180_000);
        const want = (await totalLength(admin, cdcStreams)) + f.after;
        await until(
          async () => (await totalLength(admin, cdcStreams)) >= want,
          `realtime progress before ${describe(f)}`,
        );
      }
      await inject(f);
      faultsDone.push({ ...f, phase });
    }
    await until(snapshotDone, "snapshot complete after the faults", 180_000);
    await pauseWriters();
    const last = await generator.marker();
    await until(
      async () => {
        for (const s of cdcStreams) {
          if (!(await tailHas(admin, s, last.token, dialect))) return false;
        }
        return true;
      },
      "the last change in every stream",
      120_000,
    );
    const stopped = await supervisor.stop();
    if (stopped.code !== 0) notes.push(`final stop: exit ${stopped.code}`);
    ({ findings } = await checkReplicated(
      admin,
      bed,
      generator.log,
      consistency === "GLOBAL" ? naming.globalCdcStream() : undefined,
    ));
    outcome = findings.some((x) => x.kind === "lost")
      ? "lost"
      : findings.some((x) => x.kind === "duplicated")
      ? "duplicated"
      : findings.some((x) => x.kind === "out of order")
      ? "out of order"
      : "ok";
  } catch (err) {
    if (err instanceof GapRefused) {
      // What reached the streams must still be in order and without duplicates.
      for (const s of cdcStreams) {
        findings.push(...checkPositions(await readEntries(admin, s), dialect, s));
      }
      outcome = findings.length > 0 ? findings[0].kind : interfered ? "gap refused" : "error";
      notes.push(`exit 5: ${err.message}`);
      if (!interfered) notes.push("a gap was reported although nothing was skipped");
    } else {
      outcome = "error";
      notes.push((err as Error).message);
      if (err instanceof RefusedOtherwise) notes.push("nothing was reported as delivered");
    }
  } finally {
    await supervisor.kill9().catch(() => {});
    if (!["ok", "gap refused"].includes(outcome)) {
      const dir = await keepEvidence(schedule, home, id, admin, checkpointKey, generator).catch(
        (err) => `(evidence not kept: ${err.message})`,
      );
      notes.push(`evidence in ${dir}`);
    }
    await generator.stop().catch((err) => notes.push(`generator: ${err.message}`));
    await noise.stop().catch(() => {});
    redisProxy.up();
    sourceProxy.up();
    await redisProxy.close();
    await sourceProxy.close();
    await ensureUp(servers, dialect);
    await bed.reconnect().catch(() => {});
    await bed.close().catch((err) => notes.push(`cleanup: ${err.message}`));
    await admin.flushall().catch(() => {});
    Deno.removeSync(home.dir, { recursive: true });
  }
  const exits = supervisor.exits.filter((c) => c !== EXIT_GAP);
  if (exits.length > 0) {
    notes.push(
      `replicant exited on its own ${exits.length}× (${exits}): ${
        [...new Set(supervisor.reasons)].map((r) => r.slice(0, 160)).join(" | ")
      }`,
    );
  }
  return { schedule, outcome, findings, notes, faultsDone, ms: Date.now() - t0 };
}

/**
 * What a failed schedule leaves to look at, before its data is dropped: replicant's logs, the
 * checkpoint hash, every stream's entries and the generator's log, in
 * `.state/chaos/<seed>/` (the repository's state folder, or REPLICANT_STATE).
 */
async function keepEvidence(
  schedule: Schedule,
  home: ScratchHome,
  id: string,
  admin: Redis,
  checkpointKey: string,
  generator: { log: unknown[] },
): Promise<string> {
  const state = process.env.REPLICANT_STATE ?? new URL("../.state", import.meta.url).pathname;
  const dir = `${state}/chaos/${schedule.seed}`;
  await Deno.mkdir(dir, { recursive: true });
  for (const f of ["trace.log", "error.log"]) {
    await Deno.copyFile(`${home.dir}/data/${id}/${f}`, `${dir}/${f}`).catch(() => {});
  }
  const streams: Record<string, unknown> = {};
  for (const key of await admin.keys("*")) {
    if ((await admin.type(key)) === "stream") streams[key] = await admin.xrange(key, "-", "+");
  }
  await Deno.writeTextFile(
    `${dir}/redis.json`,
    JSON.stringify({ checkpoint: await admin.hgetall(checkpointKey), streams }),
  );
  await Deno.writeTextFile(
    `${dir}/generator.jsonl`,
    generator.log.map((t) => JSON.stringify(t)).join("\n") + "\n",
  );
  await Deno.writeTextFile(`${dir}/schedule.json`, JSON.stringify(schedule));
  return dir;
}

/** Servers stopped by a failed schedule are started again for the next one. */
async function ensureUp(s: Servers, dialect: Dialect): Promise<void> {
  try {
    await s.admin.ping();
  } catch {
    await s.redis.start().catch(() => {});
  }
  if (dialect === "pg") await s.pg!.start().catch(() => {});
  else await s.mysql!.start().catch(() => {});
}

/**
 * With replicant down: PostgreSQL, another consumer advances its slot (to the WAL's end: the
 * changes since the checkpoint are gone; or to where it already is: nothing is); MariaDB,
 * the binlogs are purged (up to a new file: the checkpoint's file is gone; or up to the
 * checkpoint's own file: nothing it needs is). True when changes were skipped.
 */
async function interfere(
  bed: SourceBed,
  dialect: Dialect,
  admin: Redis,
  checkpointKey: string,
  past: boolean,
): Promise<boolean> {
  if (dialect === "pg") {
    // The walsender of the killed run goes away once it notices.
    await waitFor(async () => {
      const rows = await bed.query(
        `SELECT active FROM pg_replication_slots WHERE slot_name = '${bed.slot}'`,
      ) as { active: boolean }[];
      return rows.length === 0 || !rows[0].active;
    }, { what: "the slot to be released", timeoutMs: 30_000 });
    const rows = await bed.query(
      `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = '${bed.slot}'`,
    ) as { lsn: string }[];
    if (rows.length === 0) return false;
    const to = past ? "pg_current_wal_lsn()" : `'${rows[0].lsn}'::pg_lsn`;
    await bed.query(`SELECT pg_replication_slot_advance('${bed.slot}', ${to})`);
    return past;
  }
  const token = await admin.hget(checkpointKey, "realtime:checkpoint");
  if (!token) return false;
  const file = (JSON.parse(token) as { file: string }).file;
  // A binlog a dump thread still reads (the killed run's, until the server notices) is kept.
  await waitFor(async () => {
    const threads = await bed.query(
      "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
    ) as { n: number }[];
    return Number(threads[0].n) === 0;
  }, { what: "the binlog dump thread of the killed run to end", timeoutMs: 30_000 });
  if (past) {
    await bed.query("FLUSH BINARY LOGS");
    const logs = await bed.query("SHOW BINARY LOGS") as { Log_name: string }[];
    await bed.query(`PURGE BINARY LOGS TO '${logs.at(-1)!.Log_name}'`);
  } else {
    await bed.query(`PURGE BINARY LOGS TO '${file}'`);
  }
  const left = await bed.query("SHOW BINARY LOGS") as { Log_name: string }[];
  return !left.some((l) => l.Log_name === file);
}

function table(headers: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(" | ")} |`;
  return [line(headers), line(headers.map(() => "---")), ...rows.map(line)].join("\n");
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      schedules: { type: "string", default: "10" },
      source: { type: "string", default: "both" },
      consistency: { type: "string", default: "both" },
      faults: { type: "string", default: FAULTS.join(",") },
      seed: { type: "string" },
      replay: { type: "string" },
    },
  });
  const dialects: Dialect[] = values.source === "both"
    ? ["pg", "mysql"]
    : values.source === "pg"
    ? ["pg"]
    : values.source === "mysql" || values.source === "mariadb"
    ? ["mysql"]
    : usage(`--source ${values.source}: pg, mysql or both`);
  const consistencies: ("EVENTUAL" | "GLOBAL")[] = values.consistency === "both"
    ? ["EVENTUAL", "GLOBAL"]
    : values.consistency === "EVENTUAL" || values.consistency === "GLOBAL"
    ? [values.consistency]
    : usage(`--consistency ${values.consistency}: EVENTUAL, GLOBAL or both`);
  const kinds = values.faults.split(",").map((k) => k.trim()) as FaultKind[];
  for (const k of kinds) {
    if (!FAULTS.includes(k)) usage(`--faults: unknown fault ${k} (${FAULTS.join(", ")})`);
  }
  if (values.seed !== undefined) process.env[SEED_VARIABLE] = values.seed;
  const seeds: number[] = [];
  if (values.replay !== undefined) seeds.push(Number(values.replay) >>> 0);
  else {
    const rand = prng(runSeed());
    const n = Number(values.schedules);
    if (!Number.isInteger(n) || n < 1) usage(`--schedules ${values.schedules}: a count ≥ 1`);
    for (let i = 0; i < n; i++) seeds.push(Math.floor(rand() * 2 ** 32));
    console.log(`chaos: run seed ${runSeed()} (--seed ${runSeed()} repeats this run)`);
  }
  const schedules = seeds.map((s) => scheduleOf(s, dialects, consistencies, kinds));
  const servers = await startServers([...new Set(schedules.map((s) => s.dialect))]);
  const results: Result[] = [];
  const onStop = () => {
    console.log("chaos: interrupted; stopping after this schedule");
    stopping = true;
  };
  let stopping = false;
  Deno.addSignalListener("SIGINT", onStop);
  try {
    for (let i = 0; i < schedules.length && !stopping; i++) {
      const s = schedules[i];
      const r = await runSchedule(servers, s, i);
      results.push(r);
      const head = `#${i + 1} seed ${s.seed} ${s.dialect} ${s.consistency} [${
        r.faultsDone.map(describe).join(", ")
      }] → ${r.outcome} (${(r.ms / 1000).toFixed(1)} s)`;
      console.log(head + (r.notes.length ? `; ${r.notes.join("; ")}` : ""));
      if (!["ok", "gap refused"].includes(r.outcome)) {
        for (const f of r.findings.slice(0, 5)) {
          console.log(
            `    ${f.kind}: ${f.detail.length > 400 ? f.detail.slice(0, 400) + "…" : f.detail}`,
          );
        }
        console.log(
          `    replay: scripts/chaos --replay ${s.seed} --source ${s.dialect} ` +
            `--consistency ${s.consistency} --faults ${kinds.join(",")}`,
        );
      }
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onStop);
    await stopServers(servers);
  }
  console.log("\n" + summary(results));
  return results.some((r) => !["ok", "gap refused"].includes(r.outcome)) ? 1 : 0;
}

/** The table of a run: per source and consistency, faults injected and outcomes. */
export function summary(results: Result[]): string {
  const groups = new Map<string, Result[]>();
  for (const r of results) {
    const key = `${
      r.schedule.dialect === "pg" ? "PostgreSQL" : "MariaDB"
    } ${r.schedule.consistency}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  groups.set("all", results);
  const faultCount = (rs: Result[], k: FaultKind, phase?: string) =>
    rs.flatMap((r) => r.faultsDone).filter((f) => f.kind === k && (!phase || f.phase === phase))
      .length;
  const faults = table(
    ["schedules", ...FAULTS.map((k) => `${FAULT_LABEL[k]} (snapshot/realtime)`)],
    [...groups].map(([g, rs]) => [
      `${g}: ${rs.length}`,
      ...FAULTS.map((k) =>
        `${faultCount(rs, k)} (${faultCount(rs, k, "snapshot")}/${faultCount(rs, k, "realtime")})`
      ),
    ]),
  );
  const outcomes = table(
    ["schedules", ...OUTCOMES],
    [...groups].map(([g, rs]) => [
      `${g}: ${rs.length}`,
      ...OUTCOMES.map((o) => rs.filter((r) => r.outcome === o).length),
    ]),
  );
  return `Faults injected\n\n${faults}\n\nOutcomes\n\n${outcomes}`;
}

function usage(message: string): never {
  console.error(`chaos: ${message}`);
  Deno.exit(2);
}

if (import.meta.main) Deno.exit(await main());
