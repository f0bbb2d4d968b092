/**
 * Runs one PostgreSQL realtime pipeline in its own process, for the tests that kill it
 * (-9), bound its heap, or restart servers under it. Argument: JSON of `DriverConfig`.
 * Prints `READY` once streaming, then one JSON line with the outcome when it stops
 * (SIGTERM/SIGINT, or `stopAt` reached).
 */
import { readFileSync } from "node:fs";
import { StreamNaming } from "../../src/core/stream_naming.ts";
import { RedisStreamSink } from "../../src/sink/redis/redis_stream_sink.ts";
import { RedisCheckpointStore } from "../../src/sink/redis/checkpoint_store.ts";
import { runRealtime } from "./pg_realtime_run.ts";
import { PG_POSITION_FIELDS } from "../../src/source/postgres/pgoutput_position.ts";

export interface DriverConfig {
  pg: { host: string; port: number; user: string; database: string };
  redis: { host: string; port: number };
  prefix: string;
  resume: boolean;
  batchRows?: number;
  maxQueueBytes?: number;
  /** Stop once this stream holds this many entries. */
  stopAt?: { stream: string; length: number };
}

const config = JSON.parse(Deno.args[0]) as DriverConfig;
const ac = new AbortController();
for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(sig, () => ac.abort());
const sink = await RedisStreamSink.open(
  { ...config.redis, poolSize: 2, origin: "driver" },
  { maxStreamLength: 0 },
);
const naming = new StreamNaming(config.prefix, "test");
if (config.stopAt) {
  const { stream, length } = config.stopAt;
  const timer = setInterval(async () => {
    if ((await sink.client.xlen(stream).catch(() => 0)) >= length) {
      clearInterval(timer);
      ac.abort();
    }
  }, 100);
}
console.log("READY");
const outcome = await runRealtime({
  endpoint: { ...config.pg, origin: "driver" },
  sink,
  naming,
  checkpoints: new RedisCheckpointStore(sink.client, naming.checkpointKey()),
  entry: {
    format: "compact",
    includeSchema: false,
    tombstones: true,
    connector: "postgresql",
    positionFields: PG_POSITION_FIELDS,
    replicationId: config.prefix,
    version: "test",
  },
  selection: {
    table: (id) => id.schema === "public" && id.table.startsWith(config.prefix),
    columns: () => null,
  },
  slotName: config.prefix,
  publicationName: config.prefix,
  threads: 4,
  batchRows: config.batchRows ?? 500,
  retry: { maxRetries: 20, waitMs: 50 },
  resume: config.resume,
  heartbeatMs: 200,
  maxQueueBytes: config.maxQueueBytes,
  signal: ac.signal,
});
await sink.close();
const status = readFileSync("/proc/self/status", "utf8");
const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
console.log(JSON.stringify({ outcome, vmHWMKiB: hwm }));
Deno.exit(0);
