import { ReplicantError } from "../core/errors.ts";
import type { CommonOptions } from "./common_options.ts";

/** `replicant cleanup-indoubt`: GLOBAL in-doubt entries arrive with the failure-semantics work. */
export function cleanupIndoubt(_conn: string | undefined, _opts: CommonOptions): Promise<number> {
  return Promise.reject(
    new ReplicantError("replicant cleanup-indoubt is not available in this build yet"),
  );
}
