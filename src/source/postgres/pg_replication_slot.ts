import pg from "pg";
import { SourceError } from "../../core/errors.ts";
import { type PgEndpoint, quoteIdent } from "./pg_endpoint.ts";
import { parseLsn } from "./pgoutput_position.ts";

/** Slot or publication name from free text: lower case, `[a-z0-9_]`, at most 63 bytes. */
export function sanitizeSlotName(text: string): string {
  const s = text.toLowerCase().replace(/[^a-z0-9_]/g, "_");
  return s.slice(0, 63);
}

/** Default slot (and publication) name of a replication: `replicant_<group>_<id>`. */
export function defaultSlotName(group: string, replicationId: string): string {
  return sanitizeSlotName(`replicant_${group}_${replicationId}`);
}

/**
 * The slot (and publication) a replication uses: the connection file's first
 * `replication-slots` entry, else its own default name.
 */
export function slotNameOf(
  conn: { replicationSlots: { name: string }[] },
  group: string,
  replicationId: string,
): string {
  return conn.replicationSlots[0]?.name ?? defaultSlotName(group, replicationId);
}

export interface SlotInfo {
  plugin: string;
  active: boolean;
  activePid: number | null;
  confirmedFlushLsn: bigint | null;
  restartLsn: bigint | null;
  /** `lost`: the server removed WAL the slot still needed (max_slot_wal_keep_size). */
  walStatus: string | null;
}

export async function readSlot(client: pg.Client, name: string): Promise<SlotInfo | null> {
  const res = await client.query({
    text: `SELECT plugin::text, active::text, active_pid::text, confirmed_flush_lsn::text,
                  restart_lsn::text, wal_status::text
             FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()`,
    values: [name],
    rowMode: "array",
  });
  if (res.rows.length === 0) return null;
  const [plugin, active, pid, confirmed, restart, walStatus] = res.rows[0] as (string | null)[];
  return {
    plugin: plugin ?? "",
    active: active === "true",
    activePid: pid ? Number(pid) : null,
    confirmedFlushLsn: confirmed ? parseLsn(confirmed) : null,
    restartLsn: restart ? parseLsn(restart) : null,
    walStatus,
  };
}

/** Creates the logical slot (pgoutput) when missing; returns whether it was created. */
export async function ensureSlot(client: pg.Client, name: string): Promise<boolean> {
  const slot = await readSlot(client, name);
  if (slot) {
    if (slot.plugin !== "pgoutput") {
      throw new SourceError(
        `Replication slot "${name}" uses plugin ${slot.plugin}; Replicant needs pgoutput`,
      );
    }
    return false;
  }
  try {
    await client.query({
      text: "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
      values: [name],
    });
  } catch (err) {
    throw new SourceError(
      `Cannot create replication slot "${name}": ${(err as Error).message}` +
        " (needs wal_level=logical, a free slot in max_replication_slots, REPLICATION rights)",
      undefined,
      { cause: err },
    );
  }
  return true;
}

/** Drops a slot, ending the session that holds it if any. */
export async function dropSlot(client: pg.Client, name: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const slot = await readSlot(client, name);
    if (!slot) return;
    if (slot.active && slot.activePid) {
      await client.query({ text: "SELECT pg_terminate_backend($1)", values: [slot.activePid] });
    }
    try {
      await client.query({ text: "SELECT pg_drop_replication_slot($1)", values: [name] });
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== "55006") throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new SourceError(`Cannot drop replication slot "${name}": it stays active`);
}

export async function dropPublication(client: pg.Client, name: string): Promise<void> {
  await client.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(name)}`);
}

/** Session settings of replication connections: the text forms our decoders expect. */
export const REPLICATION_SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,YMD " +
  "-c IntervalStyle=iso_8601 -c extra_float_digits=3 -c bytea_output=hex";

export function replicationClientConfig(endpoint: PgEndpoint, name: string): pg.ClientConfig {
  return {
    host: endpoint.host,
    port: endpoint.port,
    database: endpoint.database,
    user: endpoint.user,
    password: endpoint.password,
    ssl: endpoint.ssl,
    application_name: name,
    connectionTimeoutMillis: 10_000,
    options: REPLICATION_SESSION_OPTIONS,
  };
}

/** A slot created with `EXPORT_SNAPSHOT` on a replication connection that stays open. */
export interface ExportedSlot {
  slotName: string;
  consistentPoint: string;
  snapshotName: string;
  /** Keep open while the snapshot is read; `close()` ends the exported snapshot. */
  close(): Promise<void>;
}

/**
 * `CREATE_REPLICATION_SLOT name LOGICAL pgoutput EXPORT_SNAPSHOT` on a replication
 * connection: the snapshot id stays valid until `close()`. The snapshot holds exactly the
 * transactions that committed before the slot's consistent point. A `temporary` slot is
 * dropped by the server when the connection ends.
 */
export async function createSlotWithSnapshot(
  endpoint: PgEndpoint,
  name: string,
  { temporary = false }: { temporary?: boolean } = {},
): Promise<ExportedSlot> {
  const client = new pg.Client({
    ...replicationClientConfig(endpoint, "replicant-slot"),
    replication: "database",
  } as pg.ClientConfig);
  client.on("error", () => {/* surfaced by the query */});
  try {
    await client.connect();
    const res = await client.query(
      `CREATE_REPLICATION_SLOT ${quoteIdent(name)}${
        temporary ? " TEMPORARY" : ""
      } LOGICAL pgoutput EXPORT_SNAPSHOT`,
    );
    const row = res.rows[0] as Record<string, string>;
    return {
      slotName: row.slot_name,
      consistentPoint: row.consistent_point,
      snapshotName: row.snapshot_name,
      close: async () => {
        await client.end().catch(() => {});
      },
    };
  } catch (err) {
    await client.end().catch(() => {});
    throw new SourceError(
      `Cannot create replication slot "${name}" with an exported snapshot on ${endpoint.origin}: ${
        (err as Error).message
      }`,
      undefined,
      { cause: err },
    );
  }
}
