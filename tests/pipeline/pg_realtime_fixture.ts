/**
 * Shared set-up of the PostgreSQL realtime tests: unique tables, slot, publication and
 * streams per test on the private servers, a pipeline running in the background, and a
 * reader that turns a `_cdc_logs` stream back into changes.
 */
import type pg from "pg";
import type { Redis } from "ioredis";
import type { EntryOptions } from "../../src/core/entry_encoder.ts";
import { StreamNaming } from "../../src/core/stream_naming.ts";
import type { TableId } from "../../src/core/table_schema.ts";
import type { RealtimeOutcome } from "../../src/pipeline/realtime_pipeline.ts";
import type { TableSelection } from "../../src/ports/snapshot_source.ts";
import { RedisStreamSink } from "../../src/sink/redis/redis_stream_sink.ts";
import { openPg, type PgEndpoint } from "../../src/source/postgres/pg_endpoint.ts";
import {
  dropPublication,
  dropSlot,
  ensureSlot,
} from "../../src/source/postgres/pg_replication_slot.ts";
import { serviceEnv } from "../helpers/services.ts";
import { RedisCheckpointStore } from "../../src/sink/redis/checkpoint_store.ts";
import type { CheckpointStore } from "../../src/ports/checkpoint.ts";
import { type PgRealtimeSpec, runRealtime } from "./pg_realtime_run.ts";
import { PG_POSITION_FIELDS } from "../../src/source/postgres/pgoutput_position.ts";

export interface Fixture {
  prefix: string;
  endpoint: PgEndpoint;
  pg: pg.Client;
  sink: RedisStreamSink;
  redis: Redis;
  naming: StreamNaming;
  checkpoints: CheckpointStore;
  entry: EntryOptions;
  slot: string;
  selection: TableSelection;
  stream(table: string): string;
  spec(signal: AbortSignal, over?: Partial<PgRealtimeSpec>): PgRealtimeSpec;
  /** Stops of the runs started in the background; cleanup stops any still running. */
  runs: (() => Promise<unknown>)[];
  cleanup(): Promise<void>;
}

let counter = 0;

export function uniquePrefix(tag: string): string {
  return `${tag}_${Date.now().toString(36)}${(counter++).toString(36)}${
    Math.floor(Math.random() * 1296).toString(36)
  }`;
}

export async function fixture(
  tag: string,
  options: {
    redisPort?: number;
    pgPort?: number;
    createSlot?: boolean;
    entry?: Partial<EntryOptions>;
  } = {},
): Promise<Fixture> {
  const env = serviceEnv();
  const prefix = uniquePrefix(tag);
  const endpoint: PgEndpoint = {
    host: env.pg.host,
    port: options.pgPort ?? env.pg.port,
    database: env.pg.database,
    user: env.pg.user,
    origin: "test",
  };
  const client = await openPg(endpoint, "replicant-test");
  const sink = await RedisStreamSink.open({
    host: env.redis.host,
    port: options.redisPort ?? env.redis.port,
    poolSize: 2,
    origin: "test",
  }, { maxStreamLength: 0 });
  const naming = new StreamNaming(prefix, "test");
  const checkpoints = new RedisCheckpointStore(sink.client, naming.checkpointKey());
  const slot = prefix;
  if (options.createSlot !== false) {
    // Every change from the slot's creation on is published until the run replaces this
    // with its own publication of the selected tables (in one transaction): tests may write
    // before the run has started.
    await client.query(`CREATE PUBLICATION "${slot}" FOR ALL TABLES`);
    await ensureSlot(client, slot);
  }
  const selection: TableSelection = {
    table: (id: TableId) => id.schema === "public" && id.table.startsWith(prefix),
    columns: () => null,
  };
  const entry: EntryOptions = {
    format: "compact",
    includeSchema: false,
    tombstones: true,
    connector: "postgresql",
    positionFields: PG_POSITION_FIELDS,
    replicationId: prefix,
    version: "test",
    ...options.entry,
  };
  const fx: Fixture = {
    prefix,
    endpoint,
    pg: client,
    sink,
    redis: sink.client,
    naming,
    checkpoints,
    entry,
    slot,
    selection,
    stream: (table) => naming.cdcStream({ catalog: env.pg.database, schema: "public", table }),
    spec: (signal, over = {}) => ({
      endpoint,
      sink,
      naming,
      checkpoints,
      entry,
      selection,
      slotName: slot,
      publicationName: slot,
      threads: 4,
      batchRows: 500,
      retry: { maxRetries: 3, waitMs: 20 },
      resume: false,
      heartbeatMs: 200,
      signal,
      ...over,
    }),
    runs: [],
    cleanup: async () => {
      for (const stop of fx.runs) await stop().catch(() => {});
      await dropSlot(fx.pg, slot).catch(() => {});
      await dropPublication(fx.pg, slot).catch(() => {});
      const tables = await fx.pg.query({
        text: "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE $1",
        values: ["%" + prefix + "%"],
        rowMode: "array",
      });
      for (const [t] of tables.rows as string[][]) {
        await fx.pg.query(`DROP TABLE IF EXISTS public."${t}" CASCADE`);
        await sink.client.del(
          fx.stream(t),
          naming.snapshotStream({
            catalog: env.pg.database,
            schema: "public",
            table: t,
          }),
        );
      }
      await sink.client.del(naming.checkpointKey());
      await fx.pg.end().catch(() => {});
      await sink.close();
    },
  };
  return fx;
}

/** A realtime run in the background; `stop()` aborts it and returns its outcome. */
export function startRealtime(fx: Fixture, over: Partial<PgRealtimeSpec> = {}) {
  const ac = new AbortController();
  const done = runRealtime(fx.spec(ac.signal, over));
  done.catch(() => {});
  fx.runs.push(() => {
    ac.abort();
    return done;
  });
  return {
    done,
    stop: async (): Promise<RealtimeOutcome> => {
      ac.abort();
      return await done;
    },
  };
}

export interface CdcEntry {
  id: string;
  tombstone: boolean;
  key: Record<string, unknown> | null;
  op?: string;
  before?: Record<string, unknown> | null;
  after?: Record<string, unknown> | null;
  source?: Record<string, unknown>;
}

/** Entries of a compact-format stream, with the value's payload parsed. */
export async function readCdc(redis: Redis, stream: string): Promise<CdcEntry[]> {
  const out: CdcEntry[] = [];
  let start = "-";
  for (;;) {
    const page = await redis.xrange(stream, start, "+", "COUNT", 10_000) as [string, string[]][];
    for (const [id, fields] of page) {
      const unwrap = (t: string) => {
        const v = JSON.parse(t);
        return v && typeof v === "object" && "payload" in v && "schema" in v ? v.payload : v;
      };
      const key = fields[0] === "default" ? null : unwrap(fields[0]);
      if (fields[1] === "default") out.push({ id, tombstone: true, key });
      else {
        const v = unwrap(fields[1]);
        out.push({
          id,
          tombstone: false,
          key,
          op: v.op,
          before: v.before,
          after: v.after,
          source: v.source,
        });
      }
    }
    if (page.length < 10_000) return out;
    start = "(" + page[page.length - 1][0];
  }
}

/** Positions of the entries (tombstones excluded) as `[lsn, sequence]`, to check order. */
export function positions(entries: CdcEntry[]): [number, number][] {
  return entries.filter((e) => !e.tombstone).map((
    e,
  ) => [e.source!.lsn as number, e.source!.sequence as number]);
}

export function assertStrictlyIncreasing(entries: CdcEntry[]): void {
  const p = positions(entries);
  for (let i = 1; i < p.length; i++) {
    const [a, b] = [p[i - 1], p[i]];
    if (!(a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]))) {
      throw new Error(`positions not increasing at ${i}: ${a} then ${b}`);
    }
  }
}
