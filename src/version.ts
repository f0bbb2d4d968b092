import meta from "../deno.json" with { type: "json" };

/** Filled in by scripts/build for release binaries; "dev" when run from source. */
export const BUILD_INFO = {
  version: meta.version,
  commit: "dev",
  date: "",
  compiler: "deno run",
};

export const VERSION: string = meta.version;

export function versionText(): string {
  const b = BUILD_INFO;
  return `replicant ${b.version} (commit ${b.commit}${
    b.date ? `, built ${b.date}` : ""
  }, ${b.compiler})`;
}
