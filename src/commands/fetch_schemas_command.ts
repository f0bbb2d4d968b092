import { ReplicantError } from "../core/errors.ts";
import type { CommonOptions } from "./common_options.ts";

/** `replicant fetch-schemas`: needs the schema dump stream, which is not written yet. */
export function fetchSchemas(_conn: string | undefined, _opts: CommonOptions): Promise<number> {
  return Promise.reject(
    new ReplicantError("replicant fetch-schemas is not available in this build yet"),
  );
}
