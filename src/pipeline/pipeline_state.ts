import { ByteArena } from "../core/byte_arena.ts";
import { ReplicantMetrics } from "../observe/replicant_metrics.ts";

/**
 * The state a pipeline run counts in and allocates from, handed in rather than reached as a
 * global: the metrics it reports, the arena encoded changes are written into. The command
 * layer builds one per run, so two runs in one process keep apart; a test gives a run its own.
 * (The memory budget is not part of it: it watches the process's RSS, see memory_budget.ts.)
 */
export interface PipelineState {
  metrics: ReplicantMetrics;
  /** Where entries are encoded; a realtime block is held until the sink accepted them. */
  arena: ByteArena;
}

/** A run's own state: `metrics` when the caller keeps them, else new ones. */
export function newPipelineState(
  metrics: ReplicantMetrics = new ReplicantMetrics(),
): PipelineState {
  return { metrics, arena: new ByteArena() };
}
