/**
 * Source lag in bytes for PostgreSQL (metric `replicant_source_lag_bytes`): `pg_current_wal_lsn()` minus the slot's
 * `confirmed_flush_lsn`, on its own connection, opened at the first sample and reopened
 * after a failure.
 */
import type pg from "pg";
import { openPg, type PgEndpoint } from "./pg_endpoint.ts";

export class PgLagSampler {
  #client: pg.Client | null = null;

  constructor(private readonly endpoint: PgEndpoint, private readonly slot: string) {}

  /** Bytes of WAL the slot has not confirmed; null when the slot does not exist (yet). */
  async sample(): Promise<number | null> {
    try {
      this.#client ??= await openPg(this.endpoint, "replicant-metrics");
      const r = await this.#client.query(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag " +
          "FROM pg_replication_slots WHERE slot_name = $1",
        [this.slot],
      );
      const v = r.rows[0]?.lag;
      return v === undefined || v === null ? null : Math.max(0, Number(v));
    } catch (err) {
      const c = this.#client;
      this.#client = null;
      await c?.end().catch(() => {});
      throw err;
    }
  }

  async close(): Promise<void> {
    const c = this.#client;
    this.#client = null;
    await c?.end().catch(() => {});
  }
}
