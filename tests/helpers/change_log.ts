/**
 * A generator of known source transactions (inserts, updates, primary-key changes, deletes,
 * multi-table transactions) that records every committed change in order, and the checks of
 * the end-to-end crash tests: positions per stream, exactly-once against the log, and replay
 * of the streams into tables.
 *
 * Tables are `(id int primary key, v text, n bigint)`; the generator only needs a way to run a
 * list of statements in one transaction and to name that transaction the way the entries do
 * (PostgreSQL `txId`, MariaDB `gtid`).
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { readStream } from "./clients.ts";
import type { RunningReplicant } from "./replicant.ts";
import { waitFor } from "./services.ts";
import { prng } from "./test_seed.ts";

export { prng };

export interface Row {
  id: number;
  v: string;
  n: number;
}

export type Op = "c" | "u" | "d";

export interface Change {
  table: string;
  op: Op;
  id: number;
  /** The row after the change; null for deletes. */
  after: Row | null;
}

export interface LoggedTx {
  /** Order of commit, from 0. */
  index: number;
  /** The transaction as entries name it: PostgreSQL `txId`, MariaDB `gtid`. */
  token: string;
  changes: Change[];
}

export interface Statement {
  sql: string;
  params: (string | number)[];
}

/** Runs statements in one transaction, commits, and returns the transaction's token. */
export type TxRunner = (statements: Statement[]) => Promise<string>;

/** Minimal query interfaces of a `pg` client and a `mysql2/promise` connection. */
interface PgQuery {
  query(sql: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}
interface MysqlQuery {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

/**
 * Statements in one transaction; the token is the PostgreSQL transaction id. `writer` may be
 * a function giving the current client (a test that reconnects after a restart).
 */
export function pgTxRunner(conn: PgQuery | (() => PgQuery)): TxRunner {
  return async (stmts) => {
    const writer = typeof conn === "function" ? conn() : conn;
    await writer.query("BEGIN");
    try {
      for (const s of stmts) await writer.query(s.sql, s.params);
      const r = await writer.query("SELECT (txid_current() % 4294967296)::text AS x");
      await writer.query("COMMIT");
      return String(r.rows[0].x);
    } catch (err) {
      await writer.query("ROLLBACK").catch(() => {});
      throw err;
    }
  };
}

/**
 * Statements in one transaction; the token is the MariaDB GTID it committed as. `writer`
 * may be a function giving the current connection (a test that reconnects after a restart).
 */
export function mysqlTxRunner(conn: MysqlQuery | (() => MysqlQuery)): TxRunner {
  return async (stmts) => {
    const writer = typeof conn === "function" ? conn() : conn;
    await writer.query("BEGIN");
    try {
      for (const s of stmts) await writer.query(s.sql, s.params);
      await writer.query("COMMIT");
      const [rows] = await writer.query("SELECT @@last_gtid AS g") as [{ g: string }[]];
      return String(rows[0].g);
    } catch (err) {
      await writer.query("ROLLBACK").catch(() => {});
      throw err;
    }
  };
}

/** The keys of one table with O(1) random pick and removal. */
class KeySet {
  readonly keys: number[] = [];
  readonly #at = new Map<number, number>();
  add(id: number) {
    this.#at.set(id, this.keys.length);
    this.keys.push(id);
  }
  remove(id: number) {
    const i = this.#at.get(id)!;
    const last = this.keys.pop()!;
    if (last !== id) {
      this.keys[i] = last;
      this.#at.set(last, i);
    }
    this.#at.delete(id);
  }
  pick(rand: () => number): number | undefined {
    return this.keys.length === 0 ? undefined : this.keys[Math.floor(rand() * this.keys.length)];
  }
}

export interface GeneratorOptions {
  /** Logical table name → SQL name (quoted/qualified as the dialect needs). */
  tables: Record<string, string>;
  /** `$n` (PostgreSQL) or `?` (MySQL) placeholders. */
  placeholders: "dollar" | "question";
  run: TxRunner;
  seed: number;
  /** Pause between two transactions, to keep the rate modest on a shared machine. */
  pauseMs?: number;
}

/** Writes random transactions until stopped and logs each committed change in commit order. */
export class ChangeGenerator {
  readonly log: LoggedTx[] = [];
  readonly #o: GeneratorOptions;
  readonly #rand: () => number;
  readonly #keys = new Map<string, KeySet>();
  #nextId = 10_000_000;
  #stopping = false;
  #running: Promise<void> | null = null;

  constructor(options: GeneratorOptions) {
    this.#o = options;
    this.#rand = prng(options.seed);
    for (const t of Object.keys(options.tables)) this.#keys.set(t, new KeySet());
  }

  /** Declares rows that exist before the generator starts (ids only). */
  seed(table: string, ids: Iterable<number>) {
    const ks = this.#keys.get(table)!;
    for (const id of ids) ks.add(id);
  }

  get changeCount(): number {
    return this.log.reduce((s, t) => s + t.changes.length, 0);
  }

  #p(i: number): string {
    return this.#o.placeholders === "dollar" ? `$${i}` : "?";
  }

  #row(id: number): Row {
    const r = this.#rand;
    return {
      id,
      v: `v${Math.floor(r() * 1e9).toString(36)}`,
      n: Math.floor(r() * 2 ** 45) - 2 ** 44,
    };
  }

  /** One random operation on `table`, appended to `stmts` and `changes`. */
  #op(table: string, stmts: Statement[], changes: Change[]) {
    const ks = this.#keys.get(table)!;
    const sqlName = this.#o.tables[table];
    const p = (i: number) => this.#p(i);
    const dice = this.#rand();
    const existing = ks.pick(this.#rand);
    if (existing === undefined || dice < 0.4) {
      const row = this.#row(this.#nextId++);
      stmts.push({
        sql: `INSERT INTO ${sqlName} (id, v, n) VALUES (${p(1)}, ${p(2)}, ${p(3)})`,
        params: [row.id, row.v, row.n],
      });
      changes.push({ table, op: "c", id: row.id, after: row });
      ks.add(row.id);
    } else if (dice < 0.7) {
      const row = this.#row(existing);
      stmts.push({
        sql: `UPDATE ${sqlName} SET v = ${p(1)}, n = ${p(2)} WHERE id = ${p(3)}`,
        params: [row.v, row.n, row.id],
      });
      changes.push({ table, op: "u", id: row.id, after: row });
    } else if (dice < 0.85) {
      // A primary-key change: a delete of the old key, then an insert of the new one.
      const row = this.#row(this.#nextId++);
      stmts.push({
        sql: `UPDATE ${sqlName} SET id = ${p(1)}, v = ${p(2)}, n = ${p(3)} WHERE id = ${p(4)}`,
        params: [row.id, row.v, row.n, existing],
      });
      changes.push({ table, op: "d", id: existing, after: null });
      changes.push({ table, op: "c", id: row.id, after: row });
      ks.remove(existing);
      ks.add(row.id);
    } else {
      stmts.push({ sql: `DELETE FROM ${sqlName} WHERE id = ${p(1)}`, params: [existing] });
      changes.push({ table, op: "d", id: existing, after: null });
      ks.remove(existing);
    }
  }

  /** Runs one transaction of 1–4 operations on random tables (or given ones) and logs it. */
  async step(onlyTables?: string[]): Promise<LoggedTx> {
    const names = onlyTables ?? Object.keys(this.#o.tables);
    const count = onlyTables ? onlyTables.length : 1 + Math.floor(this.#rand() * 4);
    const stmts: Statement[] = [];
    const changes: Change[] = [];
    for (let i = 0; i < count; i++) {
      const t = onlyTables ? names[i] : names[Math.floor(this.#rand() * names.length)];
      this.#op(t, stmts, changes);
    }
    const token = await this.#o.run(stmts);
    const tx = { index: this.log.length, token, changes };
    this.log.push(tx);
    return tx;
  }

  /** Inserts one row into each table in one transaction: the last change of every table. */
  async marker(): Promise<LoggedTx> {
    const stmts: Statement[] = [];
    const changes: Change[] = [];
    for (const t of Object.keys(this.#o.tables)) {
      const row = this.#row(this.#nextId++);
      stmts.push({
        sql: `INSERT INTO ${this.#o.tables[t]} (id, v, n) VALUES (${this.#p(1)}, ${this.#p(2)}, ${
          this.#p(3)
        })`,
        params: [row.id, row.v, row.n],
      });
      changes.push({ table: t, op: "c", id: row.id, after: row });
      this.#keys.get(t)!.add(row.id);
    }
    const token = await this.#o.run(stmts);
    const tx = { index: this.log.length, token, changes };
    this.log.push(tx);
    return tx;
  }

  /** Starts (or starts again) writing in the background until `stop()`. */
  start(): void {
    this.#stopping = false;
    this.#running = (async () => {
      while (!this.#stopping) {
        await this.step();
        if (this.#o.pauseMs) await sleep(this.#o.pauseMs);
      }
    })();
  }

  /** Stops after the transaction in flight; rejects if the generator failed. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#running;
  }
}

/**
 * Writes to a table outside the replicated selection until stopped. A real source's log
 * interleaves other tables' transactions with the selected ones; a connector must pass over
 * them (they move its checkpoint without delivering a change) without losing its place.
 */
export class NoiseWriter {
  /** Statements run so far. */
  count = 0;
  #stopping = false;
  #running: Promise<void> | null = null;

  constructor(private readonly write: () => Promise<unknown>, private readonly pauseMs = 5) {}

  start(): void {
    this.#stopping = false;
    this.#running = (async () => {
      while (!this.#stopping) {
        await this.write();
        this.count++;
        await sleep(this.pauseMs);
      }
    })();
  }

  /** Stops after the statement in flight; rejects if a write failed. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#running;
  }
}

// ------------------------------------------------------------------ reading the streams

export interface Entry {
  id: string;
  op: string;
  /** The key payload (`{"id":…}`). */
  key: Record<string, unknown> | null;
  after: Row | null;
  source: Record<string, unknown> | null;
  tombstone: boolean;
}

function payload(json: string): Record<string, unknown> {
  const v = JSON.parse(json);
  return v !== null && typeof v === "object" && "payload" in v ? v.payload : v;
}

/** One entry of a compact-format stream (with or without the schema halves). */
export function entryOf(id: string, fields: string[]): Entry {
  const key = fields[0] === "default" ? null : payload(fields[0]) as Record<string, unknown>;
  if (fields[1] === "default") {
    return { id, op: "tombstone", key, after: null, source: null, tombstone: true };
  }
  const v = payload(fields[1]);
  return {
    id,
    op: String(v.op),
    key,
    after: (v.after ?? null) as Row | null,
    source: (v.source ?? null) as Record<string, unknown> | null,
    tombstone: false,
  };
}

/** Entries of a compact-format stream (with or without the schema halves). */
export async function readEntries(redis: Redis, stream: string): Promise<Entry[]> {
  return (await readStream(redis, stream)).map(([id, fields]) => entryOf(id, fields));
}

export type Dialect = "pg" | "mysql";

/** The sortable position of a change entry, as a tuple. */
function positionOf(e: Entry, dialect: Dialect): (string | number)[] {
  const s = e.source!;
  return dialect === "pg"
    ? [Number(s.lsn), Number(s.sequence)]
    : [String(s.file), Number(s.pos), Number(s.row)];
}

function compare(a: (string | number)[], b: (string | number)[]): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] < b[i]) return -1;
    if (a[i] > b[i]) return 1;
  }
  return 0;
}

/** The transaction token of a change entry: PostgreSQL `txId`, MariaDB `gtid`. */
export function tokenOf(e: Entry, dialect: Dialect): string {
  return dialect === "pg" ? String(e.source!.txId) : String(e.source!.gtid);
}

/** What a check found wrong, by kind (the chaos runner counts them). */
export interface Finding {
  kind: "lost" | "duplicated" | "out of order";
  detail: string;
}

/** Throws one assertion error listing the findings, if any. */
export function assertNoFindings(findings: Finding[]): void {
  assert.ok(
    findings.length === 0,
    findings.map((f) => `${f.kind}: ${f.detail}`).join("\n"),
  );
}

/**
 * Positions grow strictly along a cdc stream (a position seen twice is a duplicate, a
 * smaller one is out of order), and every delete is followed by its tombstone.
 */
export function checkPositions(entries: Entry[], dialect: Dialect, stream: string): Finding[] {
  const findings: Finding[] = [];
  let prev: (string | number)[] | null = null;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (e.tombstone) {
      if (entries[i - 1]?.op !== "d") {
        findings.push({
          kind: "duplicated",
          detail: `${stream}: tombstone ${e.id} not after a delete`,
        });
      }
      continue;
    }
    if (entries[i - 1]?.op === "d") {
      findings.push({
        kind: "lost",
        detail: `${stream}: the delete before ${e.id} has no tombstone`,
      });
    }
    const pos = positionOf(e, dialect);
    if (prev !== null && compare(prev, pos) >= 0) {
      findings.push({
        kind: compare(prev, pos) === 0 ? "duplicated" : "out of order",
        detail: `${stream}: entry ${e.id} at ${JSON.stringify(pos)} does not follow ${
          JSON.stringify(prev)
        }`,
      });
    }
    prev = pos;
  }
  return findings;
}

/** `checkPositions` as an assertion. */
export function assertPositions(entries: Entry[], dialect: Dialect, stream: string): void {
  assertNoFindings(checkPositions(entries, dialect, stream));
}

/** `JSON.stringify` with sorted keys, for comparing rows whatever their key order. */
export function canonical(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${
    Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(",")
  }}`;
}

/**
 * Replays a snapshot stream then a cdc stream by key: `r`/`c`/`u` upsert `after`, `d`
 * deletes, `t` clears, tombstones are skipped. Returns id → canonical row JSON.
 */
export function replay(snapshot: Entry[], cdc: Entry[]): Map<number, string> {
  const table = new Map<number, string>();
  for (const e of [...snapshot, ...cdc]) {
    if (e.tombstone) continue;
    if (e.op === "t") table.clear();
    else if (e.op === "d") table.delete(Number(e.key!.id));
    else if (e.op === "r" || e.op === "c" || e.op === "u") {
      if (e.op === "u" && Number(e.key!.id) !== e.after!.id) {
        throw new Error(`update ${e.id} changes the key: ${JSON.stringify(e)}`);
      }
      table.set(e.after!.id, canonical(e.after));
    } else throw new Error(`unexpected op ${e.op} in entry ${e.id}`);
  }
  return table;
}

/**
 * A replayed table against the source rows (id → canonical JSON of every column): any
 * difference is a change that did not land (a stale, missing or extra row).
 */
export function checkSameTable(
  replayed: Map<number, string>,
  source: Map<number, string>,
  what: string,
): Finding[] {
  const diffs: string[] = [];
  for (const [id, row] of source) {
    const got = replayed.get(id);
    if (got !== row) diffs.push(`id ${id}: source ${row}, streams ${got ?? "missing"}`);
  }
  for (const [id, row] of replayed) {
    if (!source.has(id)) diffs.push(`id ${id}: not in source, streams ${row}`);
  }
  if (diffs.length === 0) return [];
  return [{
    kind: "lost",
    detail:
      `${what}: ${diffs.length} difference(s) (${replayed.size} replayed, ${source.size} in source): ${
        diffs.slice(0, 5).join("; ")
      }`,
  }];
}

/** `checkSameTable` as an assertion. */
export function assertSameTable(
  replayed: Map<number, string>,
  source: Map<number, string>,
  what: string,
): void {
  assertNoFindings(checkSameTable(replayed, source, what));
}

/**
 * Checks a table's cdc stream against the generator's log: from the first logged transaction
 * that the stream holds (or from `fromIndex` when given), every change the generator made to
 * the table is in the stream exactly once and in commit order, and the stream holds nothing
 * else. Gives the index of the first logged transaction found in the stream (the log's
 * length when the stream is empty) and what differs.
 */
export function checkExactlyOnce(
  log: LoggedTx[],
  table: string,
  cdc: Entry[],
  dialect: Dialect,
  fromIndex?: number,
): { first: number; findings: Finding[] } {
  const changes = cdc.filter((e) => !e.tombstone);
  const indexOfToken = new Map(log.map((t) => [t.token, t.index]));
  let start = fromIndex;
  if (start === undefined) {
    if (changes.length === 0) start = log.length;
    else {
      const first = indexOfToken.get(tokenOf(changes[0], dialect));
      if (first === undefined) {
        return {
          first: log.length,
          findings: [{
            kind: "duplicated",
            detail: `${table}: first cdc entry ${changes[0].id} (${
              tokenOf(changes[0], dialect)
            }) is not a logged transaction`,
          }],
        };
      }
      start = first;
    }
  }
  const expected = log.slice(start).flatMap((t) =>
    t.changes.filter((c) => c.table === table).map((c) =>
      `${t.token} ${c.op} ${c.id} ${c.after === null ? "null" : canonical(c.after)}`
    )
  );
  const actual = changes.map((e) =>
    `${tokenOf(e, dialect)} ${e.op} ${e.op === "d" ? Number(e.key!.id) : e.after!.id} ${
      e.after === null ? "null" : canonical(e.after)
    }`
  );
  const bad = actual.findIndex((a, i) => a !== expected[i]);
  if (bad === -1 && actual.length === expected.length) return { first: start, findings: [] };
  const at = bad === -1 ? Math.min(actual.length, expected.length) : bad;
  const where =
    `${table}: cdc has ${actual.length} changes, the log ${expected.length} from tx ${start}; ` +
    `first difference at ${at}: stream ${actual[at] ?? "(end)"} vs log ${
      expected[at] ?? "(end)"
    }; before it: ${actual.slice(Math.max(0, at - 2), at).join(" | ")}`;
  // Counted: a change missing or extra; the same changes in another order.
  const count = new Map<string, number>();
  for (const e of expected) count.set(e, (count.get(e) ?? 0) + 1);
  for (const a of actual) count.set(a, (count.get(a) ?? 0) - 1);
  const missing = [...count.values()].filter((n) => n > 0).length;
  const extra = [...count.values()].filter((n) => n < 0).length;
  const findings: Finding[] = [];
  if (missing > 0) {
    findings.push({ kind: "lost", detail: `${missing} change(s) missing; ${where}` });
  }
  if (extra > 0) {
    findings.push({ kind: "duplicated", detail: `${extra} change(s) extra; ${where}` });
  }
  if (findings.length === 0) findings.push({ kind: "out of order", detail: where });
  return { first: start, findings };
}

/** `checkExactlyOnce` as an assertion; returns the first logged transaction in the stream. */
export function assertExactlyOnce(
  log: LoggedTx[],
  table: string,
  cdc: Entry[],
  dialect: Dialect,
  fromIndex?: number,
): number {
  const { first, findings } = checkExactlyOnce(log, table, cdc, dialect, fromIndex);
  assertNoFindings(findings);
  return first;
}

/** The streams of replicated tables, as the end checks need them (a SourceBed fits). */
export interface ReplicatedTables {
  dialect: Dialect;
  /** Logical name → SQL name (only the names are used). */
  tables: Record<string, string>;
  snapStream(table: string): string;
  cdcStream(table: string): string;
  /** The table's rows now: id → canonical JSON of every column. */
  rows(table: string): Promise<Map<number, string>>;
}

/**
 * The end check of the crash tests and the chaos runner, once the last change is in every
 * stream: each snapshot stream holds only reads; positions grow along each cdc stream (each
 * table's own, or the GLOBAL `globalStream`); from the first logged transaction a table's
 * changes hold, every change of the table is there exactly once and in commit order; and the
 * streams replay into the table as it is now. PostgreSQL: one slot feeds every table, so from
 * the first logged transaction of any table on, every table has all of its changes (MariaDB:
 * each table starts at the position of the snapshot that read it). `firsts` holds each
 * table's first logged transaction in realtime, `first` the smallest of them.
 */
export async function checkReplicated(
  redis: Redis,
  bed: ReplicatedTables,
  log: LoggedTx[],
  globalStream?: string,
): Promise<{ first: number; firsts: Record<string, number>; findings: Finding[] }> {
  const findings: Finding[] = [];
  const names = Object.keys(bed.tables);
  const cdcOf = new Map<string, Entry[]>();
  if (globalStream) {
    const all = await readEntries(redis, globalStream);
    findings.push(...checkPositions(all, bed.dialect, globalStream));
    for (const t of names) {
      cdcOf.set(t, all.filter((e) => !e.tombstone && e.source?.table === t));
    }
  } else {
    for (const t of names) {
      const entries = await readEntries(redis, bed.cdcStream(t));
      findings.push(...checkPositions(entries, bed.dialect, bed.cdcStream(t)));
      cdcOf.set(t, entries);
    }
  }
  let first = log.length;
  const firsts: Record<string, number> = {};
  for (const t of names) {
    const snap = await readEntries(redis, bed.snapStream(t));
    if (!snap.every((e) => e.op === "r")) {
      findings.push({ kind: "duplicated", detail: `${t}: the snapshot stream holds changes` });
    }
    const cdc = cdcOf.get(t)!;
    findings.push(...checkSameTable(replay(snap, cdc), await bed.rows(t), t));
    const once = checkExactlyOnce(log, t, cdc, bed.dialect);
    if (bed.dialect === "mysql") findings.push(...once.findings);
    firsts[t] = once.first;
    first = Math.min(first, once.first);
  }
  if (bed.dialect === "pg") {
    for (const t of names) {
      findings.push(...checkExactlyOnce(log, t, cdcOf.get(t)!, "pg", first).findings);
    }
  }
  return { first, firsts, findings };
}

/**
 * `checkReplicated` as an assertion; also that realtime of every table saw more than
 * `minTransactions` of the log (so the test exercised what it meant to) and, with
 * `startedBefore`, began before that transaction of the log (so the exactly-once check of
 * every table covers what the test did from there on). Returns `first`.
 */
export async function assertReplicated(
  redis: Redis,
  bed: ReplicatedTables,
  log: LoggedTx[],
  { globalStream, minTransactions = 0, startedBefore }: {
    globalStream?: string;
    minTransactions?: number;
    startedBefore?: number;
  } = {},
): Promise<number> {
  const { first, firsts, findings } = await checkReplicated(redis, bed, log, globalStream);
  assertNoFindings(findings);
  for (const [t, from] of Object.entries(firsts)) {
    assert.ok(
      log.length - from > minTransactions,
      `${t}: realtime saw ${log.length - from} of ${log.length} transactions`,
    );
    if (startedBefore !== undefined) {
      assert.ok(
        from < startedBefore,
        `${t}: realtime began at transaction ${from}, not before ${startedBefore}`,
      );
    }
  }
  return first;
}

/** Sum of the lengths of some streams (0 for missing ones). */
export async function totalLength(redis: Redis, streams: string[]): Promise<number> {
  let n = 0;
  for (const s of streams) n += await redis.xlen(s);
  return n;
}

/** True when the last few entries of `stream` include the transaction `token`. */
export async function tailHas(
  redis: Redis,
  stream: string,
  token: string,
  dialect: Dialect,
): Promise<boolean> {
  const tail = await redis.xrevrange(stream, "+", "-", "COUNT", 3);
  return tail.some(([, f]) => {
    if (f[1] === "default") return false;
    const v = payload(f[1]);
    const s = v.source as Record<string, unknown>;
    return String(dialect === "pg" ? s.txId : s.gtid) === token;
  });
}

export interface KillAndResumeOptions {
  redis: Redis;
  /** Writes while replicant is killed and resumed; its marker is every stream's last change. */
  generator: Pick<ChangeGenerator, "start" | "stop"> & { marker(): Promise<{ token: string }> };
  dialect: Dialect;
  seed: number;
  /** kill -9 this many times in all, the first `snapshotKills` during the snapshot. */
  kills: number;
  snapshotKills: number;
  /** The big table's snapshot stream, whose growth times the snapshot kills. */
  snapshotStream: string;
  checkpointKey: string;
  cdcStreams: string[];
  /** Starts replicant (the caller keeps the handle to stop it if the test fails). */
  start(mode: "--overwrite" | "--resume"): RunningReplicant;
  /** Runs after the generator stopped, before its marker (other writers stop here). */
  beforeMarker?(): Promise<void>;
}

/**
 * The crash loop of the end-to-end tests: with the generator writing, kill -9 replicant at
 * random points of snapshot and realtime progress and start it again with --resume; then stop
 * the generator, wait until every cdc stream holds its last change, and stop replicant cleanly.
 */
export async function killAndResume(o: KillAndResumeOptions): Promise<void> {
  const rand = prng(o.seed);
  o.generator.start();
  let run = o.start("--overwrite");
  let snapshotKills = 0;
  for (let kill = 0; kill < o.kills; kill++) {
    const current: RunningReplicant = run;
    let exited = false;
    current.done.then(() => (exited = true));
    if (kill < o.snapshotKills) {
      // Some snapshot progress of this run, then kill it mid-snapshot.
      const from = await o.redis.xlen(o.snapshotStream);
      const want = from + 500 + Math.floor(rand() * 12_000);
      await waitFor(
        async () => {
          if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
          return (await o.redis.xlen(o.snapshotStream)) >= want ||
            (await o.redis.hget(o.checkpointKey, "snapshot:complete")) === "1";
        },
        { what: `snapshot progress (kill ${kill})`, timeoutMs: 30_000, intervalMs: 10 },
      );
    } else {
      // Realtime: some cdc progress of this run (at least the snapshot must be done).
      await waitFor(
        async () => (await o.redis.hget(o.checkpointKey, "snapshot:complete")) === "1",
        {
          what: `snapshot complete (kill ${kill})`,
          timeoutMs: 60_000,
        },
      );
      const from = await totalLength(o.redis, o.cdcStreams);
      const want = from + 1 + Math.floor(rand() * 500);
      await waitFor(
        async () => {
          if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
          return (await totalLength(o.redis, o.cdcStreams)) >= want;
        },
        { what: `realtime progress (kill ${kill})`, timeoutMs: 30_000, intervalMs: 10 },
      );
    }
    current.kill("SIGKILL");
    const res = await current.done;
    assert.equal(res.code, 137, `kill ${kill}: ${res.stderr}`);
    if ((await o.redis.hget(o.checkpointKey, "snapshot:complete")) !== "1") snapshotKills++;
    run = o.start("--resume");
  }
  assert.ok(snapshotKills >= o.snapshotKills, `${snapshotKills} kill(s) during the snapshot`);
  await lastChangeThenStop({ ...o, run });
}

/**
 * The end of a run under test: stops the generator, writes one last change into every table,
 * waits until every cdc stream holds it, then stops replicant with SIGTERM (exit 0).
 */
export async function lastChangeThenStop(o: {
  redis: Redis;
  generator: Pick<ChangeGenerator, "stop"> & { marker(): Promise<{ token: string }> };
  dialect: Dialect;
  cdcStreams: string[];
  run: RunningReplicant;
  /** Runs after the generator stopped, before its marker (other writers stop here). */
  beforeMarker?(): Promise<void>;
}): Promise<void> {
  await o.generator.stop();
  await o.beforeMarker?.();
  const last = await o.generator.marker();
  let exited = false;
  o.run.done.then(() => (exited = true));
  await waitFor(async () => {
    if (exited) throw new Error(`replicant exited: ${(await o.run.done).stderr}`);
    for (const stream of o.cdcStreams) {
      if (!(await tailHas(o.redis, stream, last.token, o.dialect))) return false;
    }
    return true;
  }, { what: "the last change in every cdc stream", timeoutMs: 60_000, intervalMs: 100 });
  o.run.kill("SIGTERM");
  const res = await o.run.done;
  assert.equal(res.code, 0, res.stderr);
}
