/**
 * Source lag in bytes for MySQL/MariaDB (metric `replicant_source_lag_bytes`): the binlog bytes written after the
 * position saved in the checkpoint (`SHOW BINARY LOGS` sizes), on its own connection,
 * opened at the first sample and reopened after a failure.
 */
import { type MysqlConnection, type MysqlEndpoint, openMysql } from "./mysql_endpoint.ts";
import { type BinlogCoordinate, parseCheckpoint } from "./mysql_position.ts";

export interface BinaryLog {
  name: string;
  size: number;
}

/**
 * Bytes of the binlog after `at`: the rest of its file and every later file. Null when the
 * file is not among the server's binary logs (purged, or another server's position).
 */
export function binlogLagBytes(logs: BinaryLog[], at: BinlogCoordinate): number | null {
  const i = logs.findIndex((l) => l.name === at.file);
  if (i < 0) return null;
  let lag = Math.max(0, logs[i].size - at.pos);
  for (let j = i + 1; j < logs.length; j++) lag += logs[j].size;
  return lag;
}

export class MysqlLagSampler {
  #conn: MysqlConnection | null = null;

  constructor(
    private readonly endpoint: MysqlEndpoint,
    /** The checkpoint token saved last (null before the first). */
    private readonly checkpoint: () => Promise<string | null>,
  ) {}

  async sample(): Promise<number | null> {
    const token = await this.checkpoint();
    if (token === null) return null;
    try {
      this.#conn ??= await openMysql(this.endpoint);
      const [rows] = await this.#conn.query({
        sql: "SHOW BINARY LOGS",
        rowsAsArray: true,
      }) as unknown as [unknown[][]];
      return binlogLagBytes(
        rows.map((r) => ({ name: String(r[0]), size: Number(r[1]) })),
        parseCheckpoint(token),
      );
    } catch (err) {
      const c = this.#conn;
      this.#conn = null;
      c?.destroy();
      throw err;
    }
  }

  async close(): Promise<void> {
    const c = this.#conn;
    this.#conn = null;
    await c?.end().catch(() => c.destroy());
  }
}
