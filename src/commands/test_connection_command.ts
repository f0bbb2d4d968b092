import { ReplicantError } from "../core/errors.ts";
import type { CommonOptions } from "./common_options.ts";

/** `replicant test-connection`: connection checks and the report come with the schemas work. */
export function testConnection(_conns: string[], _opts: CommonOptions): Promise<number> {
  return Promise.reject(
    new ReplicantError("replicant test-connection is not available in this build yet"),
  );
}
