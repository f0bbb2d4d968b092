/**
 * Raw XADD rate from Deno with ioredis: the ceiling a Deno sink can reach on this machine.
 * Used by scripts/bench; also runs alone:
 *
 *   ./scripts/deno run -A scripts/bench_xadd.ts [--port 56379] [--host 127.0.0.1]
 *       (--like STREAM | --size BYTES) [--n 300000] [--warmup 50000] [--rounds 2]
 *       [--pipeline 1000] [--stream KEY]
 *
 * --like STREAM copies the fields and values of STREAM's first entry, so each entry has exactly
 * the shape and size a replicant entry format produced; --size BYTES writes one field `f` with a
 * value of BYTES bytes. Entries go to --stream (default bench_xadd_<pid>) in pipelines of
 * --pipeline XADD commands, one pipeline in flight on one connection. An untimed --warmup
 * (JIT) comes first; then --rounds timed rounds of --n entries, the stream emptied between
 * them, and the best round counts (other processes share these 2 cores). The stream is
 * deleted afterwards. Prints one JSON line:
 *   {entries, seconds, entriesPerSec, rounds: [entries/s...], entryBytes, fields}
 */
import { Redis } from "ioredis";

function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf("=");
    if (eq > 0) out.set(a.slice(2, eq), a.slice(eq + 1));
    else {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      out.set(a.slice(2), argv[++i]);
    }
  }
  return out;
}

function positiveInt(args: Map<string, string>, name: string, fallback: number): number {
  const raw = args.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw.replaceAll("_", ""));
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
  return n;
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args);
  const known = ["host", "port", "like", "size", "n", "warmup", "rounds", "pipeline", "stream"];
  for (const k of args.keys()) if (!known.includes(k)) throw new Error(`unknown option --${k}`);
  const n = positiveInt(args, "n", 300_000);
  const warmup = args.get("warmup") === "0" ? 0 : positiveInt(args, "warmup", 50_000);
  const rounds = positiveInt(args, "rounds", 2);
  const pipelineSize = positiveInt(args, "pipeline", 1000);
  const key = args.get("stream") ?? `bench_xadd_${Deno.pid}`;
  const redis = new Redis({
    host: args.get("host") ?? "127.0.0.1",
    port: positiveInt(args, "port", 56379),
    lazyConnect: true,
    maxRetriesPerRequest: 1,
  });
  await redis.connect();
  try {
    let fieldValues: string[];
    const like = args.get("like");
    if (like !== undefined) {
      const first = await redis.xrange(like, "-", "+", "COUNT", 1) as [string, string[]][];
      if (first.length === 0) throw new Error(`stream ${like} is empty or missing`);
      fieldValues = first[0][1];
    } else if (args.has("size")) {
      fieldValues = ["f", "x".repeat(positiveInt(args, "size", 200))];
    } else {
      throw new Error("give --like STREAM or --size BYTES");
    }
    const entryBytes = fieldValues.reduce((sum, s) => sum + new TextEncoder().encode(s).length, 0);
    const write = async (total: number): Promise<void> => {
      for (let done = 0; done < total;) {
        const count = Math.min(pipelineSize, total - done);
        const p = redis.pipeline();
        for (let i = 0; i < count; i++) p.xadd(key, "*", ...fieldValues);
        const results = await p.exec() as [Error | null, unknown][] | null;
        if (results === null) throw new Error("pipeline was discarded");
        for (const [err] of results) if (err) throw err;
        done += count;
      }
    };
    await redis.unlink(key);
    if (warmup > 0) {
      await write(warmup);
      await redis.unlink(key);
    }

    let best = Infinity;
    const rates: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const t0 = performance.now();
      await write(n);
      const seconds = (performance.now() - t0) / 1000;
      const written = await redis.xlen(key);
      if (written !== n) throw new Error(`stream ${key} has ${written} entries, expected ${n}`);
      await redis.unlink(key);
      rates.push(Math.round(n / seconds));
      best = Math.min(best, seconds);
    }
    console.log(JSON.stringify({
      entries: n,
      seconds: Number(best.toFixed(3)),
      entriesPerSec: Math.round(n / best),
      rounds: rates,
      entryBytes,
      fields: fieldValues.length / 2,
    }));
  } finally {
    await redis.unlink(key).catch(() => {});
    redis.disconnect();
  }
}

try {
  await main();
} catch (e) {
  console.error(`bench_xadd: ${e instanceof Error ? e.message : e}`);
  Deno.exit(1);
}
