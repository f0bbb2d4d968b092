/**
 * Realtime (CDC) measurements for scripts/bench: writers, readers and a decode-only run of the
 * project's own streaming sources. Also runs alone:
 *
 *   ./scripts/deno run -A scripts/bench_cdc.ts COMMAND --source pg|mysql [options]
 *
 * Commands (each prints one JSON line on stdout; progress goes to stderr):
 *   sustained --stream S --seconds 60 [--tx-rows 100] [--writers 3]
 *       with `replicant realtime` already running: --writers writers, each on its own
 *       connection, insert rows into bench.cdc_rows in transactions of --tx-rows rows (one
 *       multi-row INSERT each; disjoint ids) as fast as the server takes them for --seconds,
 *       sampling the cdc stream every second; then waits until every committed row has landed
 *       (drain). Several writers, so the figure measures replicant rather than the round trips
 *       of a single connection. Counts use XINFO STREAM `entries-added`, so a stream capped
 *       with max-stream-length still counts every entry. Latency at this maximum rate: every
 *       50 ms the newest entry's row, its commit→visible time (when Redis added it, from its
 *       id, minus when its COMMIT returned), p50/p95/p99/max of those samples.
 *   latency --stream S --rate 1000 --seconds 20
 *       inserts --rate rows/s (100 transactions/s of rate/100 rows) and records Date.now()
 *       after each COMMIT returns, per row id; a reader does XREAD BLOCK on the cdc stream
 *       and records Date.now() when each id becomes visible. Prints p50/p95/p99/max of
 *       visible - committed.
 *   bigtx --stream S --rows 1000000
 *       one INSERT … SELECT of --rows rows in a single transaction; waits until they landed.
 *   decode --rows 1000000 [--tx-rows 10000]
 *       no Redis, no replicant: opens PgLogicalSource (fresh slot and publication) or
 *       MysqlBinlogSource (at the binlog's current end), writes --rows rows in transactions of
 *       --tx-rows, then starts the source and times how fast it hands out the decoded events.
 *
 * --pid PID (sustained, latency, bigtx): the replicant measured; waits give up when it exits.
 * sustained, latency and bigtx first make sure replicant is streaming: they insert a marker row
 * (negative id) every 300 ms until the stream receives one.
 * Connection settings come from the REPLICANT_* variables of `scripts/services env`.
 */
import { Redis } from "ioredis";
import pg from "pg";
import mysql from "mysql2/promise";
import { PgLogicalSource } from "../src/source/postgres/pg_logical_source.ts";
import { MysqlBinlogSource } from "../src/source/mysql/mysql_binlog_source.ts";
import type { TableId } from "../src/core/table_schema.ts";

const env = (k: string, d: string) => Deno.env.get(k) ?? d;
const log = (s: string) => console.error(`bench_cdc: ${s}`);

function parseArgs(argv: string[]): [string, Map<string, string>] {
  const out = new Map<string, string>();
  const [cmd, ...rest] = argv;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (!a.startsWith("--") || i + 1 >= rest.length) throw new Error(`bad argument ${a}`);
    out.set(a.slice(2), rest[++i]);
  }
  return [cmd ?? "", out];
}
const num = (a: Map<string, string>, k: string, d: number) => {
  const v = a.get(k);
  if (v === undefined) return d;
  const n = Number(v.replaceAll("_", ""));
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${k} must be a positive number`);
  return n;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** --pid of the replicant being measured: waits end early when it has exited. */
let watchedPid = 0;
function replicantAlive(): boolean {
  if (!watchedPid) return true;
  try {
    Deno.statSync(`/proc/${watchedPid}`);
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ sources (SQL side)

interface Db {
  kind: "pg" | "mysql";
  /** Inserts ids [from, to] in one transaction (one statement). */
  insertRange(from: number, to: number): Promise<void>;
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}

// Same row shape as bench.snapshot_rows (~200 bytes): bigint, text, numeric, timestamp, bool, text.
const PG_TABLE = `CREATE SCHEMA IF NOT EXISTS bench;
DROP TABLE IF EXISTS bench.cdc_rows;
CREATE TABLE bench.cdc_rows (id bigint PRIMARY KEY, name text NOT NULL,
  amount numeric(12,2) NOT NULL, created_at timestamptz NOT NULL, active boolean NOT NULL,
  padding text NOT NULL)`;
const MY_TABLE = [
  "CREATE DATABASE IF NOT EXISTS bench",
  "DROP TABLE IF EXISTS bench.cdc_rows",
  `CREATE TABLE bench.cdc_rows (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL,
    amount DECIMAL(12,2) NOT NULL, created_at DATETIME(6) NOT NULL, active BOOLEAN NOT NULL,
    padding VARCHAR(200) NOT NULL) DEFAULT CHARSET=utf8mb4`,
];

async function openDb(kind: string): Promise<Db> {
  if (kind === "pg") {
    const c = new pg.Client({
      host: env("REPLICANT_PG_HOST", "127.0.0.1"),
      port: Number(env("REPLICANT_PG_PORT", "55432")),
      user: env("REPLICANT_PG_USER", "postgres"),
      database: env("REPLICANT_PG_DATABASE", "replicant"),
    });
    await c.connect();
    return {
      kind: "pg",
      insertRange: async (from, to) => {
        await c.query(
          `INSERT INTO bench.cdc_rows SELECT i, 'customer-' || i, (i * 7919 % 10000000) / 100.0,
             timestamptz '2024-01-01 00:00:00+00' + (abs(i) % 100000000) * interval '1 second', i % 3 = 0,
             repeat(md5(i::text), 4) FROM generate_series(${from}::bigint, ${to}) AS i`,
        );
      },
      exec: async (sql) => void await c.query(sql),
      close: () => c.end(),
    };
  }
  if (kind === "mysql") {
    const c = await mysql.createConnection({
      host: env("REPLICANT_MYSQL_HOST", "127.0.0.1"),
      port: Number(env("REPLICANT_MYSQL_PORT", "53306")),
      user: env("REPLICANT_MYSQL_USER", "root"),
      password: env("REPLICANT_MYSQL_PASSWORD", "") || undefined,
      multipleStatements: false,
    });
    return {
      kind: "mysql",
      insertRange: async (from, to) => {
        // Negative ids (markers) cannot use the sequence engine directly.
        const n = to - from + 1;
        await c.query(
          `INSERT INTO bench.cdc_rows SELECT i, CONCAT('customer-', i), (i * 7919 % 10000000) / 100.0,
             TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (ABS(i) % 100000000) SECOND, i % 3 = 0, REPEAT(MD5(i), 4)
           FROM (SELECT CAST(seq AS SIGNED) + ${from - 1} AS i FROM bench.seq_1_to_${n}) AS s`,
        );
      },
      exec: async (sql) => void await c.query(sql),
      close: () => c.end(),
    };
  }
  throw new Error("--source must be pg or mysql");
}

// ------------------------------------------------------------------ Redis side

function redis(): Redis {
  return new Redis({
    host: env("REPLICANT_REDIS_HOST", "127.0.0.1"),
    port: Number(env("REPLICANT_REDIS_PORT", "56379")),
    maxRetriesPerRequest: 1,
  });
}

/** Entries ever added to the stream (survives MAXLEN trimming); 0 when missing. */
async function entriesAdded(r: Redis, stream: string): Promise<number> {
  try {
    const info = await r.call("XINFO", "STREAM", stream) as unknown[];
    for (let i = 0; i + 1 < info.length; i += 2) {
      if (info[i] === "entries-added") return Number(info[i + 1]);
    }
    return Number(await r.xlen(stream));
  } catch {
    return 0;
  }
}

/** Inserts marker rows (ids -1, -2, …) until one reaches the stream: replicant is streaming. */
async function waitStreaming(db: Db, r: Redis, stream: string, timeoutMs = 60_000) {
  const t0 = Date.now();
  const before = await entriesAdded(r, stream);
  // Marker ids: negative, different in each run against the same table.
  for (let id = -1 - Math.floor(Math.random() * 1e12);; id--) {
    await db.insertRange(id, id);
    for (let i = 0; i < 6; i++) {
      await sleep(50);
      if (await entriesAdded(r, stream) > before) return await entriesAdded(r, stream);
    }
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`nothing reached ${stream} in ${timeoutMs} ms`);
    }
    if (!replicantAlive()) throw new Error(`replicant (pid ${watchedPid}) is not running`);
  }
}

async function waitLanded(r: Redis, stream: string, target: number, timeoutMs: number) {
  const t0 = performance.now();
  let n = await entriesAdded(r, stream);
  while (n < target && performance.now() - t0 < timeoutMs && replicantAlive()) {
    await sleep(100);
    n = await entriesAdded(r, stream);
  }
  return { landed: n, seconds: (performance.now() - t0) / 1000 };
}

// ------------------------------------------------------------------ commands

async function sustained(a: Map<string, string>) {
  const stream = a.get("stream")!;
  const seconds = num(a, "seconds", 60), txRows = num(a, "tx-rows", 100);
  const writers = num(a, "writers", 3);
  const dbs: Db[] = [];
  const r = redis();
  try {
    for (let w = 0; w < writers; w++) dbs.push(await openDb(a.get("source")!));
    const base = await waitStreaming(dbs[0], r, stream);
    const samples: { t: number; committed: number; landed: number }[] = [];
    let committed = 0;
    const t0 = performance.now(), end = t0 + seconds * 1000;
    // Latency at this (the maximum) rate without reading every entry: every 50 ms the newest
    // entry's row and the time Redis added it (its `*` id's milliseconds); after the run,
    // minus when its transaction's COMMIT returned (blocks of txRows ids from 1).
    const commitAt = new Map<number, number>();
    const newest: { row: number; addedAt: number }[] = [];
    const prober = (async () => {
      while (performance.now() < end) {
        await sleep(50);
        const e = await r.xrevrange(stream, "+", "-", "COUNT", 1) as [string, string[]][];
        const row = e[0] ? entryRowId(e[0][1]) : NaN;
        if (row > 0) newest.push({ row, addedAt: Number(e[0][0].split("-")[0]) });
      }
    })();
    const sampler = (async () => {
      while (performance.now() < end) {
        await sleep(1000);
        const landed = (await entriesAdded(r, stream)) - base;
        samples.push({ t: (performance.now() - t0) / 1000, committed, landed });
        if (samples.length % 10 === 0) {
          log(`${samples.at(-1)!.t.toFixed(0)} s: committed ${committed}, landed ${landed}`);
        }
      }
    })();
    // Disjoint blocks of txRows ids, so writers never wait on each other's keys: writer w
    // takes blocks w, w + writers, w + 2·writers, …
    await Promise.all(dbs.map(async (db, w) => {
      for (let next = 1 + w * txRows; performance.now() < end; next += writers * txRows) {
        await db.insertRange(next, next + txRows - 1);
        commitAt.set(next, Date.now());
        committed += txRows;
      }
    }));
    const writeSeconds = (performance.now() - t0) / 1000;
    await sampler;
    await prober;
    const lat = newest.flatMap(({ row, addedAt }) => {
      const c = commitAt.get(row - ((row - 1) % txRows));
      return c === undefined ? [] : [addedAt - c];
    }).sort((x, y) => x - y);
    const landedAtEnd = (await entriesAdded(r, stream)) - base;
    const drain = await waitLanded(r, stream, base + committed, 600_000);
    const at = (f: number) => {
      const s =
        samples[Math.min(samples.length - 1, Math.max(0, Math.round(samples.length * f) - 1))];
      return s ? s.committed - s.landed : null;
    };
    // Steady-state rate: entries landed between 10% and 100% of the window (startup excluded).
    const s10 = samples[Math.max(0, Math.floor(samples.length * 0.1) - 1)];
    const sEnd = samples.at(-1)!;
    const steady = (sEnd.landed - s10.landed) / (sEnd.t - s10.t);
    console.log(JSON.stringify({
      writers,
      committed,
      writeSeconds: +writeSeconds.toFixed(2),
      writerRowsPerSec: Math.round(committed / writeSeconds),
      landedAtEnd,
      cdcPerSec: Math.round(landedAtEnd / writeSeconds),
      cdcSteadyPerSec: Math.round(steady),
      lag: { at25: at(0.25), at50: at(0.5), at75: at(0.75), atEnd: committed - landedAtEnd },
      latency: {
        samples: lat.length,
        latP50: percentile(lat, 0.5),
        latP95: percentile(lat, 0.95),
        latP99: percentile(lat, 0.99),
        latMax: lat.at(-1) ?? null,
      },
      drainSeconds: +drain.seconds.toFixed(2),
      allLanded: drain.landed - base >= committed,
      replicantAlive: replicantAlive(),
      samples,
    }));
  } finally {
    for (const db of dbs) await db.close();
    r.disconnect();
  }
}

/** The `id` in an entry's key (compact: first field; extended/fields: the `key` field), or NaN. */
function entryRowId(fields: string[]): number {
  const f = fields[0];
  const keyJson = !f || f === "key" ? fields[fields.indexOf("key") + 1] : f;
  try {
    const k = JSON.parse(keyJson);
    return Number((k.payload ?? k).id);
  } catch {
    return NaN;
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)];
}

async function latency(a: Map<string, string>) {
  const stream = a.get("stream")!;
  const rate = num(a, "rate", 1000), seconds = num(a, "seconds", 20);
  const startId = num(a, "start-id", 1);
  const txPerSec = Math.min(100, rate);
  const rowsPerTx = Math.max(1, Math.round(rate / txPerSec));
  const db = await openDb(a.get("source")!), r = redis(), reader = redis();
  const committedAt = new Map<number, number>();
  const visibleAt = new Map<number, number>();
  try {
    await waitStreaming(db, r, stream);
    const last = await r.xrevrange(stream, "+", "-", "COUNT", 1) as [string, string[]][];
    let lastId = last[0]?.[0] ?? "0-0";
    let reading = true;
    const readerDone = (async () => {
      while (reading) {
        const res = await reader.xread("COUNT", 5000, "BLOCK", 200, "STREAMS", stream, lastId) as
          | [string, [string, string[]][]][]
          | null;
        if (!res) continue;
        const now = Date.now();
        for (const [id, fields] of res[0][1]) {
          lastId = id;
          const row = entryRowId(fields);
          if (row > 0 && !visibleAt.has(row)) visibleAt.set(row, now);
        }
      }
    })();
    const t0 = performance.now();
    const total = Math.round(seconds * txPerSec);
    let next = startId, late = 0;
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / txPerSec;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      else if (wait < -50) late++;
      await db.insertRange(next, next + rowsPerTx - 1);
      const now = Date.now();
      for (let id = next; id < next + rowsPerTx; id++) committedAt.set(id, now);
      next += rowsPerTx;
    }
    const writeSeconds = (performance.now() - t0) / 1000;
    const deadline = Date.now() + 60_000;
    while (visibleAt.size < committedAt.size && Date.now() < deadline && replicantAlive()) {
      await sleep(100);
    }
    reading = false;
    await readerDone;
    const lat: number[] = [];
    for (const [id, c] of committedAt) {
      const v = visibleAt.get(id);
      if (v !== undefined) lat.push(v - c);
    }
    lat.sort((x, y) => x - y);
    console.log(JSON.stringify({
      targetRate: rate,
      achievedRate: Math.round(committedAt.size / writeSeconds),
      rowsPerTx,
      rows: committedAt.size,
      seen: lat.length,
      lateTx: late,
      p50: percentile(lat, 0.5),
      p95: percentile(lat, 0.95),
      p99: percentile(lat, 0.99),
      max: lat.at(-1) ?? NaN,
      replicantAlive: replicantAlive(),
      nextId: next,
    }));
  } finally {
    await db.close();
    r.disconnect();
    reader.disconnect();
  }
}

async function bigtx(a: Map<string, string>) {
  const stream = a.get("stream")!;
  const rows = num(a, "rows", 1_000_000), startId = num(a, "start-id", 1);
  const db = await openDb(a.get("source")!), r = redis();
  try {
    const base = await waitStreaming(db, r, stream);
    log(`one transaction of ${rows} rows`);
    const t0 = performance.now();
    await db.insertRange(startId, startId + rows - 1);
    const commitSeconds = (performance.now() - t0) / 1000;
    log(`committed in ${commitSeconds.toFixed(1)} s; waiting for the stream`);
    const done = await waitLanded(r, stream, base + rows, 900_000);
    console.log(JSON.stringify({
      rows,
      commitSeconds: +commitSeconds.toFixed(2),
      landed: done.landed - base,
      landSecondsAfterCommit: +done.seconds.toFixed(2),
      eventsPerSec: done.landed - base >= rows ? Math.round(rows / done.seconds) : 0,
      replicantAlive: replicantAlive(),
    }));
  } finally {
    await db.close();
    r.disconnect();
  }
}

async function decode(a: Map<string, string>) {
  const kind = a.get("source")!;
  const rows = num(a, "rows", 1_000_000);
  const chunk = num(a, "tx-rows", 10_000);
  const db = await openDb(kind);
  const isBench = (id: TableId) => id.table === "cdc_rows" && (id.schema ?? id.catalog) === "bench";
  const selection = { table: isBench, columns: () => null };
  const name = `bench_decode_${Deno.pid}`;
  let source: PgLogicalSource | MysqlBinlogSource;
  let from: string | null = null;
  try {
    if (kind === "pg") {
      await db.exec(PG_TABLE);
      source = await PgLogicalSource.open(
        {
          host: env("REPLICANT_PG_HOST", "127.0.0.1"),
          port: Number(env("REPLICANT_PG_PORT", "55432")),
          user: env("REPLICANT_PG_USER", "postgres"),
          database: env("REPLICANT_PG_DATABASE", "replicant"),
          origin: "bench_cdc",
        },
        selection,
        {
          slotName: name,
          publicationName: name,
          heartbeatMs: 0,
        },
      );
    } else {
      for (const s of MY_TABLE) await db.exec(s);
      const m = await MysqlBinlogSource.open({
        host: env("REPLICANT_MYSQL_HOST", "127.0.0.1"),
        port: Number(env("REPLICANT_MYSQL_PORT", "53306")),
        user: env("REPLICANT_MYSQL_USER", "root"),
        password: env("REPLICANT_MYSQL_PASSWORD", "") || undefined,
        serverIds: [59400 + (Deno.pid % 500)], // not 4242 (tests) nor 101 (conf/), nor 59311 (scripts/bench)
        origin: "bench_cdc",
      }, { selection });
      from = await m.currentPosition();
      source = m;
    }
    log(`writing ${rows} rows in transactions of ${chunk}`);
    const tw = performance.now();
    for (let i = 1; i <= rows; i += chunk) await db.insertRange(i, Math.min(rows, i + chunk - 1));
    const writeSeconds = (performance.now() - tw) / 1000;
    log(`written in ${writeSeconds.toFixed(1)} s; decoding`);
    const ac = new AbortController();
    let events = 0, txs = 0, firstAt = 0;
    let resolveDone: () => void = () => {};
    const done = new Promise<void>((r) => resolveDone = r);
    const t0 = performance.now();
    const running = source.start(from, (tx) => {
      if (tx.events.length > 0 && firstAt === 0) firstAt = performance.now();
      events += tx.events.length;
      txs++;
      if (events >= rows) resolveDone();
      return Promise.resolve();
    }, ac.signal);
    const timeout = setTimeout(() => resolveDone(), 600_000);
    await Promise.race([done, running]);
    const seconds = (performance.now() - t0) / 1000;
    clearTimeout(timeout);
    ac.abort();
    await running.catch(() => {});
    await source.close();
    console.log(JSON.stringify({
      source: kind,
      rows,
      events,
      deliveries: txs,
      writeSeconds: +writeSeconds.toFixed(2),
      seconds: +seconds.toFixed(2),
      eventsPerSec: Math.round(events / seconds),
      eventsPerSecAfterFirst: firstAt
        ? Math.round(events / ((performance.now() - firstAt) / 1000))
        : 0,
      firstEventSeconds: firstAt ? +((firstAt - t0) / 1000).toFixed(2) : null,
    }));
  } finally {
    if (kind === "pg") {
      await db.exec(
        `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${name}'`,
      ).catch((e) => log(`could not drop slot ${name}: ${e.message}`));
      await db.exec(`DROP PUBLICATION IF EXISTS ${name}`).catch(() => {});
    }
    await db.close();
  }
}

async function setup(a: Map<string, string>) {
  const db = await openDb(a.get("source")!);
  try {
    if (db.kind === "pg") await db.exec(PG_TABLE);
    else for (const s of MY_TABLE) await db.exec(s);
  } finally {
    await db.close();
  }
}

try {
  const [cmd, args] = parseArgs(Deno.args);
  watchedPid = Number(args.get("pid") ?? 0);
  args.delete("pid");
  const commands: Record<string, (a: Map<string, string>) => Promise<void>> = {
    setup,
    sustained,
    latency,
    bigtx,
    decode,
  };
  if (!commands[cmd]) throw new Error(`command must be one of ${Object.keys(commands).join(", ")}`);
  await commands[cmd](args);
  Deno.exit(0);
} catch (e) {
  console.error(`bench_cdc: ${e instanceof Error ? e.stack ?? e.message : e}`);
  Deno.exit(1);
}
