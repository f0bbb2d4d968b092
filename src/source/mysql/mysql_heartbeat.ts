/**
 * Arcion's heartbeat table on a MySQL/MariaDB source: a row written every `interval-ms`, so
 * the binlog (and the checkpoint) moves while the replicated tables are idle.
 *
 * Arcion's documented table is one column, `timestamp BIGINT NOT NULL PRIMARY KEY`: its row
 * is updated in place (inserted when the table is empty). With `replicantId-column-name`
 * the table has one row per replication id, keyed by that column. When the table does not
 * exist, Replicant creates it in Arcion's shape. Its rows are never replicated (the table
 * is left out of the selection). A failed write is logged once with the statement and what
 * to do, and again only when the failure changes; a write that works after failures is
 * logged too.
 *
 * @module
 */

import { type MysqlConnection, quoteIdent } from "./mysql_endpoint.ts";

export interface MysqlHeartbeat {
  database: string;
  table: string;
  /** The column that receives the current time in ms. */
  column: string;
  /** A key column holding `replicationId`: one row per replication id. */
  idColumn?: string;
  /** The replication id written into `idColumn`. */
  replicationId?: string;
  intervalMs: number;
  /** Create the table (Arcion's shape) when missing. */
  create: boolean;
  /** Where failures (and the recovery after them) are reported. */
  warn(message: string): void;
  info?(message: string): void;
}

type Query = (sql: string, values?: unknown[]) => Promise<unknown>;

/** Writes the heartbeat on a timer until stopped. */
export class MysqlHeartbeatWriter {
  #timer: ReturnType<typeof setInterval> | null = null;
  #ready: Promise<boolean> | null = null;
  #lastProblem: string | null = null;
  #busy = false;

  constructor(
    private readonly hb: MysqlHeartbeat,
    private readonly conn: () => MysqlConnection,
  ) {}

  get #name(): string {
    return `${quoteIdent(this.hb.database)}.${quoteIdent(this.hb.table)}`;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.beat(), Math.max(100, this.hb.intervalMs));
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** One heartbeat write (the timer's; tests call it directly). True when it landed. */
  async beat(): Promise<boolean> {
    if (this.#busy) return false;
    this.#busy = true;
    const query: Query = (sql, values) => this.conn().query(sql, values);
    try {
      this.#ready ??= this.#prepare(query);
      if (!(await this.#ready)) {
        this.#ready = null;
        return false;
      }
      await this.#write(query);
      if (this.#lastProblem !== null) {
        this.hb.info?.(`heartbeat table ${this.#name}: writes work again`);
        this.#lastProblem = null;
      }
      return true;
    } catch (err) {
      this.#report(`writing ${this.#name} failed: ${(err as Error).message}`, err);
      return false;
    } finally {
      this.#busy = false;
    }
  }

  /** Checks (or creates) the table; false after reporting what is wrong with it. */
  async #prepare(query: Query): Promise<boolean> {
    const columns = await this.#columns(query);
    if (columns.length === 0) {
      if (!this.hb.create) {
        this.#report(`table ${this.#name} does not exist`);
        return false;
      }
      const ts = quoteIdent(this.hb.column);
      const ddl = this.hb.idColumn
        ? `CREATE TABLE IF NOT EXISTS ${this.#name} (${
          quoteIdent(this.hb.idColumn)
        } VARCHAR(255) NOT NULL, ${ts} BIGINT NOT NULL, PRIMARY KEY(${
          quoteIdent(this.hb.idColumn)
        }))`
        : `CREATE TABLE IF NOT EXISTS ${this.#name} (${ts} BIGINT NOT NULL, PRIMARY KEY(${ts}))`;
      try {
        await query(ddl);
      } catch (err) {
        this.#report(`creating it failed: ${(err as Error).message} (${ddl})`, err);
        return false;
      }
      this.hb.info?.(`heartbeat table ${this.#name} created: ${ddl}`);
      return true;
    }
    const missing = [this.hb.column, ...(this.hb.idColumn ? [this.hb.idColumn] : [])]
      .filter((c) => !columns.some((have) => have.toLowerCase() === c.toLowerCase()));
    if (missing.length > 0) {
      this.#report(
        `table ${this.#name} has no column ${missing.join(", ")} (its columns: ${
          columns.join(", ")
        }); set realtime.heartbeat.column-name${
          this.hb.idColumn ? " / replicantId-column-name" : ""
        } to its columns`,
      );
      return false;
    }
    return true;
  }

  async #columns(query: Query): Promise<string[]> {
    const [rows] = await query(
      "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND " +
        "TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
      [this.hb.database, this.hb.table],
    ) as [{ COLUMN_NAME: string }[]];
    return rows.map((r) => String(r.COLUMN_NAME));
  }

  async #write(query: Query): Promise<void> {
    const ts = quoteIdent(this.hb.column);
    const now = Date.now();
    if (this.hb.idColumn) {
      await query(
        `INSERT INTO ${this.#name} (${
          quoteIdent(this.hb.idColumn)
        }, ${ts}) VALUES (?, ?) ON DUPLICATE KEY UPDATE ${ts} = VALUES(${ts})`,
        [this.hb.replicationId ?? "", now],
      );
      return;
    }
    // One row, moved forward in place; the newest when several ids share the table.
    const [updated] = await query(
      `UPDATE ${this.#name} SET ${ts} = ? ORDER BY ${ts} DESC LIMIT 1`,
      [now],
    ) as [{ affectedRows: number }];
    if (updated.affectedRows === 0) {
      await query(`INSERT IGNORE INTO ${this.#name} (${ts}) VALUES (?)`, [now]);
    }
  }

  #report(problem: string, err?: unknown): void {
    if (problem === this.#lastProblem) return;
    this.#lastProblem = problem;
    const denied = /denied|ER_TABLEACCESS|ER_COLUMNACCESS/i.test(
      String((err as { code?: string })?.code ?? "") + problem,
    );
    this.hb.warn(
      `heartbeat table ${this.#name}: ${problem}. Replicant's checkpoint moves only with other ` +
        `writes to the source until this is fixed${
          denied
            ? `; grant the user INSERT, UPDATE on ${this.#name}${
              this.hb.create ? " (and CREATE on the database to let Replicant create it)" : ""
            }`
            : ""
        }`,
    );
  }
}
