import type { KeyPath } from "./key_path.ts";

/** Arcion's marker for a value kept in AWS Secrets Manager: `arcion-sm://<secret>/<key>`. */
export const SECRET_URL_PREFIX = "arcion-sm://";

/** A connection value to be fetched from AWS Secrets Manager before use. */
export interface SecretRef {
  /** Dotted key path of the value, e.g. `password`. */
  key: string;
  url: string;
  /** Name of the secret in Secrets Manager (`connectionConfig` in `arcion-sm://connectionConfig/password`). */
  secretName: string;
  /** Key inside the secret's JSON (`password` above). */
  secretKey: string;
  /** Whether a value was supplied for it (LoadOptions.secretValues) and used. */
  resolved: boolean;
}

export function isSecretUrl(value: unknown): value is string {
  return typeof value === "string" && value.startsWith(SECRET_URL_PREFIX);
}

/** `{secretName, secretKey}` of a secret URL, or undefined when it lacks either part. */
export function parseSecretUrl(url: string): { secretName: string; secretKey: string } | undefined {
  const rest = url.slice(SECRET_URL_PREFIX.length);
  const slash = rest.indexOf("/");
  if (slash <= 0 || slash === rest.length - 1) return undefined;
  return { secretName: rest.slice(0, slash), secretKey: rest.slice(slash + 1) };
}

/** Every secret URL in a document, with its path, in document order. */
export function findSecretUrls(
  data: unknown,
  path: KeyPath = [],
): { path: KeyPath; url: string }[] {
  if (isSecretUrl(data)) return [{ path, url: data }];
  if (Array.isArray(data)) return data.flatMap((item, i) => findSecretUrls(item, [...path, i]));
  if (typeof data === "object" && data !== null && !(data instanceof Date)) {
    return Object.entries(data).flatMap(([key, value]) => findSecretUrls(value, [...path, key]));
  }
  return [];
}
