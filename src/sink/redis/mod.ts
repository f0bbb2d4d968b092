export {
  openRedis,
  openRedisAdmin,
  openRedisCluster,
  type RedisClient,
  type RedisTarget,
} from "./redis_connection.ts";
export { keySlot } from "./key_slot.ts";
export { type AppendOptions, type BatchResult, RedisStreamSink } from "./redis_stream_sink.ts";
export { classifyRedisError, type RedisErrorClass } from "./redis_error_class.ts";
export { RedisCheckpointStore } from "./checkpoint_store.ts";
