import type { CheckpointStore } from "../../ports/checkpoint.ts";
import type { RedisClient } from "./redis_connection.ts";

/**
 * Replication state of one id, kept in the target Redis next to the data it
 * describes: a hash of small string fields (snapshot progress, source positions).
 */
export class RedisCheckpointStore implements CheckpointStore {
  constructor(private readonly client: RedisClient, readonly key: string) {}

  async exists(): Promise<boolean> {
    return (await this.client.exists(this.key)) > 0;
  }

  async read(): Promise<Record<string, string>> {
    return await this.client.hgetall(this.key);
  }

  async get(field: string): Promise<string | null> {
    return await this.client.hget(this.key, field);
  }

  /** Written only after the data it describes has been accepted by Redis. */
  async write(fields: Record<string, string>): Promise<void> {
    await this.client.hset(this.key, fields);
  }

  /** Removes some fields (state that described something now gone). */
  async forget(fields: string[]): Promise<void> {
    if (fields.length > 0) await this.client.hdel(this.key, ...fields);
  }

  async clear(): Promise<void> {
    await this.client.del(this.key);
  }
}
