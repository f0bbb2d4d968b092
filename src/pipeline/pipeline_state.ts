import type { ByteArena } from "../core/byte_arena.ts";
import { streamArena } from "../core/entry_encoder.ts";
import { metrics, type ReplicantMetrics } from "../observe/replicant_metrics.ts";
import { type MemoryBudget, processMemoryBudget } from "./memory_budget.ts";

/**
 * The state a pipeline run counts in and allocates from, handed in rather than reached as a
 * global: the metrics it reports, the arena encoded changes are written into, the memory
 * budget that asks for collections. A test gives a run its own.
 */
export interface PipelineState {
  metrics: ReplicantMetrics;
  /** Where realtime entries are encoded; a block is held until the sink accepted them. */
  arena: ByteArena;
  memory: MemoryBudget;
}

/** The process's state: what the commands run with. */
export const processPipelineState: PipelineState = {
  metrics,
  arena: streamArena,
  memory: processMemoryBudget,
};
