/**
 * A consumer of Replicant's streams: keeps a copy of one table in a local map.
 *
 * It reads the table's snapshot stream once (`--snapshot`, optional), then its change
 * stream (`<…>_cdc_logs`) through a consumer group, decodes every entry with Replicant's
 * own `decodeEntry`, applies it to the map (`r`, `c`, `u` set the row, `d` removes it,
 * `t` (TRUNCATE) empties it, tombstones carry nothing), saves the map, and only then
 * acknowledges the entries (XACK). Killed at any moment, it loses nothing: entries it
 * read but did not acknowledge stay pending in the group, and the next run takes them
 * over (XAUTOCLAIM) before it reads new ones. The map file records the last entry
 * applied, so an entry applied but not yet acknowledged when the process died is not
 * applied twice.
 *
 * One consumer per group: a copy of a table needs its changes in order.
 *
 *   deno run -A examples/consumer.ts --redis redis://127.0.0.1:56379 \
 *       --snapshot replicant_shop_orders --stream replicant_shop_orders_cdc_logs \
 *       --group orders-copy --state orders.json
 *
 * It runs from a checkout of Replicant (it imports mod.ts). --redis defaults to the project's
 * private Redis (scripts/services): port 56379, or REPLICANT_REDIS_PORT. The streams must
 * exist: a table's `_cdc_logs` stream appears with its first change; a stream that is not
 * there is named and the consumer stops (exit 2) rather than create it and wait on a name
 * Replicant may never write. Redis unreachable or failing: one message, exit 1.
 *
 * Options: --consumer NAME (default `consumer-<pid>`), --format compact|extended|fields
 * (the applier's `message-format`, default compact), --count N (entries per read, default
 * 100), --work-ms N (pretend each batch takes that long to apply, to watch a kill in the
 * middle), --exit-when-idle (stop once nothing new arrives for a second).
 * The map file is JSON: `{"snapshotDone", "lastId", "rows": {"<key JSON>": {row}}}`.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
// Replicant's library entry point; outside this repository, the path to your copy of mod.ts.
import { decodeEntry } from "../mod.ts";

type Row = Record<string, unknown>;
type Format = "compact" | "extended" | "fields";
type StreamEntry = [id: string, fields: string[]];

interface MapFile {
  /** The snapshot stream was read whole into `rows`. */
  snapshotDone: boolean;
  /** The newest change-stream entry applied to `rows` ("0-0": none). */
  lastId: string;
  /** The rows, by the JSON of their key. */
  rows: Record<string, Row>;
}

const { values: opts } = parseArgs({
  options: {
    redis: {
      type: "string",
      default: `redis://127.0.0.1:${process.env.REPLICANT_REDIS_PORT || 56379}`,
    },
    stream: { type: "string" },
    snapshot: { type: "string" },
    group: { type: "string" },
    consumer: { type: "string", default: `consumer-${process.pid}` },
    state: { type: "string" },
    format: { type: "string", default: "compact" },
    count: { type: "string", default: "100" },
    "work-ms": { type: "string", default: "0" },
    "exit-when-idle": { type: "boolean", default: false },
  },
});
if (!opts.stream || !opts.group || !opts.state) {
  console.error("consumer: --stream, --group and --state are required (see the top of the file)");
  process.exit(2);
}
const stream = opts.stream;
const group = opts.group;
const consumer = opts.consumer!;
const stateFile = opts.state;
const format = opts.format as Format;
const count = Number(opts.count);
const workMs = Number(opts["work-ms"]);

const redisUrl = opts.redis!;
// ioredis reconnects forever and reports every failed attempt as an `error` event (a stack
// trace each, when nothing listens): here the first one is reported once and ends the run.
// The map file is always whole (saveState), so stopping at any point loses nothing.
const redis = new Redis(redisUrl, { maxRetriesPerRequest: 0, retryStrategy: () => null });
redis.on("error", (err: Error) => fail(1, `Redis at ${redisUrl}: ${err.message}`));
const state = loadState();

function fail(code: number, message: string): never {
  console.error(`consumer: ${message}`);
  redis.disconnect();
  process.exit(code);
}

/** Stops (exit 2) when `name` is not a stream there: a typo or the wrong server. */
async function requireStream(name: string, option: string): Promise<void> {
  const type = await redis.type(name);
  if (type === "stream") return;
  fail(
    2,
    type === "none"
      ? `${option} ${name}: no such stream in Redis at ${redisUrl} (a table's _cdc_logs stream ` +
        "appears with its first change; check the name and --redis)"
      : `${option} ${name}: a ${type}, not a stream, in Redis at ${redisUrl}`,
  );
}

/** Entry ids compare as `ms-seq` pairs of numbers. */
function idAfter(a: string, b: string): boolean {
  const [am, as] = a.split("-").map(BigInt);
  const [bm, bs] = b.split("-").map(BigInt);
  return am > bm || (am === bm && as > bs);
}

function loadState(): MapFile {
  if (!existsSync(stateFile)) return { snapshotDone: false, lastId: "0-0", rows: {} };
  return JSON.parse(readFileSync(stateFile, "utf8"));
}

/** Written to a temporary file and renamed: a crash leaves the old map or the new one. */
function saveState(): void {
  writeFileSync(`${stateFile}.tmp`, JSON.stringify(state));
  renameSync(`${stateFile}.tmp`, stateFile);
}

/** Applies one entry to the map; false for an entry that is no change (a tombstone). */
function apply(fields: string[]): boolean {
  const e = decodeEntry(fields, format);
  if (e.tombstone) return false;
  if (e.op === "t") { // TRUNCATE: no key, every row goes
    state.rows = {};
    return true;
  }
  if (e.key === null) return false;
  const key = JSON.stringify(e.key);
  if (e.op === "d") delete state.rows[key];
  else if (e.after) state.rows[key] = e.after;
  return true;
}

/** The snapshot stream, read whole in pages, once: it is the table as of the snapshot. */
async function loadSnapshot(name: string): Promise<void> {
  let start = "-";
  for (;;) {
    const page = await redis.xrange(name, start, "+", "COUNT", 1000) as StreamEntry[];
    for (const [, fields] of page) apply(fields);
    if (page.length < 1000) break;
    start = "(" + page[page.length - 1][0];
  }
  state.snapshotDone = true;
  saveState();
  console.log(`snapshot: ${Object.keys(state.rows).length} rows from ${name}`);
}

/** Applies a batch in order, saves the map, then acknowledges: at least once, applied once. */
async function handle(entries: StreamEntry[]): Promise<void> {
  if (entries.length === 0) return;
  let changes = 0;
  for (const [id, fields] of entries) {
    // Applied before a crash, not acknowledged: delivered again, skipped here.
    if (!idAfter(id, state.lastId)) continue;
    if (apply(fields)) changes++;
    state.lastId = id;
  }
  if (workMs > 0) await new Promise((r) => setTimeout(r, workMs));
  saveState();
  await redis.xack(stream, group, ...entries.map(([id]) => id));
  console.log(
    `applied ${changes} change(s) up to ${state.lastId}; ` +
      `the copy has ${Object.keys(state.rows).length} rows`,
  );
}

/**
 * Entries the group delivered but nobody acknowledged (a consumer that died): taken over
 * with XAUTOCLAIM and applied first, oldest first, before anything new.
 */
async function recoverPending(): Promise<void> {
  let cursor = "0-0";
  do {
    const [next, entries, deleted] = await redis.call(
      "XAUTOCLAIM",
      stream,
      group,
      consumer,
      "0",
      cursor,
      "COUNT",
      String(count),
    ) as [string, StreamEntry[], string[]];
    if (entries.length > 0) console.log(`recovered ${entries.length} pending entries`);
    await handle(entries);
    // Pending entries trimmed from the stream meanwhile: nothing to apply.
    if (deleted?.length) await redis.xack(stream, group, ...deleted);
    cursor = next;
  } while (cursor !== "0-0");
}

let stopping = false;
process.on("SIGINT", () => (stopping = true));
process.on("SIGTERM", () => (stopping = true));

try {
  if (opts.snapshot && !state.snapshotDone) {
    await requireStream(opts.snapshot, "--snapshot");
    await loadSnapshot(opts.snapshot);
  }
  await requireStream(stream, "--stream");
  // From the stream's first entry; BUSYGROUP: the group exists from an earlier run.
  await redis.xgroup("CREATE", stream, group, "0").catch((err: Error) => {
    if (!err.message.startsWith("BUSYGROUP")) throw err;
  });
  await recoverPending();
  while (!stopping) {
    const reply = await redis.xreadgroup(
      "GROUP",
      group,
      consumer,
      "COUNT",
      count,
      "BLOCK",
      1000,
      "STREAMS",
      stream,
      ">",
    ) as [string, StreamEntry[]][] | null;
    const entries = reply?.[0]?.[1] ?? [];
    if (entries.length === 0 && opts["exit-when-idle"]) break;
    await handle(entries);
  }
} finally {
  redis.disconnect();
}
