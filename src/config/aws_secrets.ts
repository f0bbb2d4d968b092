/**
 * `arcion-sm://<secret-name>/<key>` values, as in Arcion's "Retrieve credentials from AWS
 * Secrets Manager": the secret is a JSON object (Secrets Manager's key/value secret) and the
 * value is its `<key>`. Fetched with the AWS SDK, so credentials, region and endpoint come
 * from the standard chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and
 * ~/.aws/{config,credentials}, SSO, web identity, ECS/EC2 roles; AWS_REGION (or the profile's
 * region); AWS_ENDPOINT_URL_SECRETS_MANAGER or AWS_ENDPOINT_URL for an endpoint override
 * (a VPC endpoint, LocalStack).
 *
 * @module
 */
import process from "node:process";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { ConfigError, type ConfigProblem } from "./config_error.ts";
import { type Connection, type ConnectionLoadOptions, loadConnection } from "./load_connection.ts";
import type { SecretRef } from "./secret_ref.ts";

export interface SecretsOptions {
  /** Endpoint override; default AWS_ENDPOINT_URL_SECRETS_MANAGER, then the SDK's choice. */
  endpoint?: string;
  /** Region; default AWS_REGION / AWS_DEFAULT_REGION / the profile's region. */
  region?: string;
  /** A client to use instead (tests). */
  client?: Pick<SecretsManagerClient, "send">;
}

/** A fetcher of whole secrets by name: the SecretString, parsed. */
type FetchSecret = (name: string) => Promise<unknown>;

function clientOf(options: SecretsOptions): Pick<SecretsManagerClient, "send"> {
  if (options.client) return options.client;
  const env = process.env;
  const endpoint = options.endpoint ?? env.AWS_ENDPOINT_URL_SECRETS_MANAGER ??
    env.AWS_ENDPOINT_URL;
  const region = options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  return new SecretsManagerClient({
    ...(endpoint ? { endpoint } : {}),
    ...(region ? { region } : {}),
    maxAttempts: 3,
  });
}

function fetcherOf(options: SecretsOptions): FetchSecret {
  let client: Pick<SecretsManagerClient, "send"> | undefined;
  return async (name) => {
    client ??= clientOf(options);
    const out = await client.send(new GetSecretValueCommand({ SecretId: name }));
    if (out.SecretString === undefined) {
      throw new Error("the secret has no SecretString (binary secrets are not supported)");
    }
    try {
      return JSON.parse(out.SecretString);
    } catch {
      throw new Error("the secret is not a JSON object of key/value pairs");
    }
  };
}

function reasonOf(err: unknown): string {
  const e = err as { name?: string; message?: string };
  const name = e?.name && e.name !== "Error" ? `${e.name}: ` : "";
  let message = e?.message ?? String(err);
  if (/Region is missing/i.test(message)) {
    message += " (set AWS_REGION or a region in the AWS profile)";
  } else if (/Could not load credentials/i.test(message)) {
    message += " (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a role)";
  }
  return `${name}${message}`;
}

/**
 * Fetches every unresolved secret of `refs` (each secret once) and returns the values keyed by
 * URL, for `loadConnection(…, { secretValues })`. Throws ConfigError naming the file and key
 * of every value that could not be had.
 */
export async function fetchSecretValues(
  file: string,
  refs: readonly SecretRef[],
  options: SecretsOptions = {},
): Promise<Record<string, string>> {
  const pending = refs.filter((r) => !r.resolved);
  const fetch = fetcherOf(options);
  const secrets = new Map<string, Promise<unknown>>();
  for (const ref of pending) {
    if (!secrets.has(ref.secretName)) secrets.set(ref.secretName, fetch(ref.secretName));
  }
  const values: Record<string, string> = {};
  const problems: ConfigProblem[] = [];
  for (const ref of pending) {
    const where = `AWS Secrets Manager secret ${JSON.stringify(ref.secretName)}`;
    let secret: unknown;
    try {
      secret = await secrets.get(ref.secretName);
    } catch (err) {
      problems.push({ file, key: ref.key, message: `cannot read ${where}: ${reasonOf(err)}` });
      continue;
    }
    const value = typeof secret === "object" && secret !== null
      ? (secret as Record<string, unknown>)[ref.secretKey]
      : undefined;
    if (value === undefined || value === null) {
      problems.push({
        file,
        key: ref.key,
        message: `${where} has no key ${JSON.stringify(ref.secretKey)}`,
      });
      continue;
    }
    values[ref.url] = typeof value === "string" ? value : JSON.stringify(value);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return values;
}

/**
 * loadConnection, then, when the file has `arcion-sm://` values, fetches them and loads
 * again with the values in place (so they are validated like written ones).
 */
export async function loadConnectionWithSecrets(
  path: string,
  options: ConnectionLoadOptions = {},
  secrets: SecretsOptions = {},
): Promise<Connection> {
  const first = loadConnection(path, options);
  if (first.secretRefs.every((r) => r.resolved)) return first;
  const secretValues = await fetchSecretValues(first.file ?? path, first.secretRefs, secrets);
  return loadConnection(path, {
    ...options,
    secretValues: { ...options.secretValues, ...secretValues },
  });
}
