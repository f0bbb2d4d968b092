import { formatKeyPath, type KeyPath } from "./key_path.ts";
import { failLoad, finishLoad, type Loaded, type LoadOptions } from "./load_config.ts";
import { isPlainMapping, readYaml } from "./read_yaml.ts";
import {
  bool,
  check,
  Checker,
  custom,
  describeValue,
  int,
  INVALID,
  listOf,
  mapOf,
  obj,
  type ObjectOf,
  oneOf,
  str,
} from "./schema.ts";
import { applyPasswordFile } from "./password_file.ts";
import { findSecretUrls, parseSecretUrl, type SecretRef } from "./secret_ref.ts";

export const CONNECTION_TYPES = ["REDIS_STREAM", "POSTGRESQL", "MYSQL", "MARIADB"] as const;
export type ConnectionType = typeof CONNECTION_TYPES[number];
export const SOURCE_TYPES = ["POSTGRESQL", "MYSQL", "MARIADB"] as const;
export type SourceType = typeof SOURCE_TYPES[number];

export type SslStoreType = "PKCS12" | "JKS" | "PEM";

export interface StoreConfig {
  path: string;
  password?: string;
  /** From `ssl-store-type`; when absent, guessed from the file extension (.pem/.crt/.key: PEM, .jks: JKS, else PKCS12). */
  sslStoreType: SslStoreType;
}

export interface SslConfig {
  /** A present `ssl` section means TLS unless it says `enable: false`. */
  enable: boolean;
  /** Check the server certificate's host name (default true). */
  hostnameVerification: boolean;
  trustStore?: StoreConfig;
  keyStore?: StoreConfig;
  /** PEM/DER files, as Arcion's PostgreSQL connection writes them. */
  rootCert?: string;
  sslCert?: string;
  sslKey?: string;
}

/** Arcion's keystore holding `<key-prefix>username` / `<key-prefix>password` entries. */
export interface CredentialStore {
  type: "PKCS12" | "JKS" | "JCEKS";
  path: string;
  keyPrefix?: string;
  password?: string;
}

export interface HostPort {
  host: string;
  port: number;
}

interface ConnectionBase extends Loaded {
  host: string;
  port: number;
  username?: string;
  password?: string;
  maxConnections: number;
  maxRetries: number;
  retryWaitDurationMs: number;
  ssl?: SslConfig;
  credentialStore?: CredentialStore;
  /**
   * `arcion-sm://` values. Unresolved ones keep the URL in text settings and the default in
   * others: fetch them and load again with `secretValues` before connecting.
   */
  secretRefs: SecretRef[];
}

export interface RedisConnection extends ConnectionBase {
  type: "REDIS_STREAM";
  mode: "standalone" | "cluster";
  /**
   * Cluster seed nodes: `host:port` first when `host` is written, then `nodes`. Empty in
   * standalone mode. In cluster mode without `host`, host/port are those of the first node.
   */
  nodes: HostPort[];
}

export interface ReplicationSlot {
  name: string;
  /** Always pgoutput: Replicant decodes nothing else (other plugins in the file give a warning). */
  plugin: "pgoutput";
}

export interface PostgresConnection extends ConnectionBase {
  type: "POSTGRESQL";
  database: string;
  username: string;
  /** In file order; Replicant streams from the first (more give a warning). */
  replicationSlots: ReplicationSlot[];
}

export interface MysqlConnection extends ConnectionBase {
  type: "MYSQL" | "MARIADB";
  username: string;
  /** Replica server ids Replicant may use on the binlog connection. */
  slaveServerIds: number[];
}

export type Connection = RedisConnection | PostgresConnection | MysqlConnection;

export interface ConnectionLoadOptions extends LoadOptions {
  /** Which end this file must describe; the wrong kind is a problem on `type`. */
  role?: "source" | "target";
  /** Values for `arcion-sm://` URLs, keyed by URL, fetched by the caller. */
  secretValues?: Readonly<Record<string, string>>;
}

// ---------------------------------------------------------------------------------------

export const DEFAULT_PORTS: Readonly<Record<ConnectionType, number>> = {
  REDIS_STREAM: 6379,
  POSTGRESQL: 5432,
  MYSQL: 3306,
  MARIADB: 3306,
};

const port = (type: ConnectionType) => int({ min: 1, max: 65535, default: DEFAULT_PORTS[type] });

const storeSchema = obj({
  path: str({ required: true, nonEmpty: true }),
  password: str(),
  "password-file": str({ nonEmpty: true }),
  "ssl-store-type": oneOf(["PKCS12", "JKS", "PEM"]),
}, { optional: true });

const sslSchema = obj({
  enable: bool({ default: true }),
  "hostname-verification": bool({ default: true }),
  "trust-store": storeSchema,
  "key-store": storeSchema,
  "root-cert": str({ nonEmpty: true }),
  "ssl-cert": str({ nonEmpty: true }),
  "ssl-key": str({ nonEmpty: true }),
}, {
  optional: true,
  check(out, path, c) {
    if (out.sslKey !== undefined && out.sslCert === undefined) {
      c.problem([...path, "ssl-key"], "needs `ssl-cert` too (the client certificate of this key)");
    }
    if (out.sslCert !== undefined && out.sslKey === undefined) {
      c.problem([...path, "ssl-cert"], "needs `ssl-key` too (the private key of this certificate)");
    }
  },
});

const credentialStoreSchema = obj({
  type: oneOf(["PKCS12", "JKS", "JCEKS"], { default: "PKCS12" }),
  path: str({ required: true, nonEmpty: true }),
  "key-prefix": str(),
  password: str(),
  "password-file": str({ nonEmpty: true }),
}, { optional: true });

function commonFields(type: ConnectionType) {
  return {
    type: oneOf(CONNECTION_TYPES, { required: true }),
    host: str({ required: true, nonEmpty: true }),
    port: port(type),
    username: str(),
    password: str(),
    "password-file": str({ nonEmpty: true }),
    "max-connections": int({ min: 1, default: type === "REDIS_STREAM" ? 8 : 10 }),
    "max-retries": int({ min: 0, default: 10 }),
    "retry-wait-duration-ms": int({ min: 0, default: 1000 }),
    ssl: sslSchema,
    "credential-store": credentialStoreSchema,
  };
}

const HOST_PORT = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d+)$/;

const hostPort = custom<HostPort>((value, path, c) => {
  const text = typeof value === "string" ? value.trim() : undefined;
  const match = text === undefined ? null : HOST_PORT.exec(text);
  const portNumber = match ? Number(match[3]) : NaN;
  if (!match || portNumber < 1 || portNumber > 65535) {
    return c.problem(path, `must be "host:port" (port 1-65535), got ${describeValue(value)}`);
  }
  return { host: match[1] ?? match[2], port: portNumber };
}, { required: true });

const redisSchema = obj({
  ...commonFields("REDIS_STREAM"),
  host: str({ nonEmpty: true }),
  mode: oneOf(["standalone", "cluster"], { default: "standalone" }),
  nodes: listOf(hostPort),
}, {
  check(out, path, c) {
    if (out.mode === "cluster" && out.nodes.length === 0) {
      c.problem(
        [...path, "nodes"],
        'required with `mode: cluster`: list the seed nodes as "host:port"',
      );
    }
    if (out.mode === "standalone" && out.host === undefined) {
      c.problem([...path, "host"], "required key is missing");
    }
    if (out.mode === "standalone" && out.nodes.length > 0) {
      c.problem(
        [...path, "nodes"],
        "only used with `mode: cluster`; remove it or set `mode: cluster`",
      );
    }
  },
});

const SLOT_NAME = /^[a-z0-9_]{1,63}$/;
const KNOWN_PLUGINS = ["pgoutput", "wal2json", "test_decoding"];

const pluginSchema = custom<string>((value, path, c) => {
  if (typeof value !== "string") {
    return c.problem(path, `must be a plugin name, got ${describeValue(value)}`);
  }
  const name = value.trim().toLowerCase();
  if (!KNOWN_PLUGINS.includes(name)) {
    const supported = "Replicant decodes with pgoutput (wal2json and test_decoding are accepted " +
      "and replaced by pgoutput)";
    return c.problem(path, `unknown plugin ${describeValue(value)}; ${supported}`);
  }
  return name;
}, { required: true });

const postgresSchema = obj({
  ...commonFields("POSTGRESQL"),
  database: str({ required: true, nonEmpty: true }),
  username: str({ required: true, nonEmpty: true }),
  "replication-slots": mapOf(listOf(pluginSchema, { single: true }), {
    checkKey: (key) =>
      SLOT_NAME.test(key)
        ? undefined
        : "invalid slot name: PostgreSQL allows only lower-case letters, digits and _ (at most 63)",
  }),
}, {
  ignored: {
    "socket-timeout-s": "",
    "log-reader-type": "Replicant always streams changes (pgoutput over a replication connection)",
  },
});

const mysqlSchema = obj({
  ...commonFields("MYSQL"),
  username: str({ required: true, nonEmpty: true }),
  "slave-server-ids": listOf(int({ required: true, min: 1, max: 4294967295 }), { single: true }),
}, {
  check(out, path, c) {
    const seen = new Set<number>();
    out.slaveServerIds.forEach((id, i) => {
      if (seen.has(id)) {
        c.problem([...path, "slave-server-ids", i], `server id ${id} is listed twice`);
      }
      seen.add(id);
    });
  },
});

/**
 * Reads a connection file (conf/conn/*.yaml) and returns it typed by its `type`. Throws
 * ConfigError listing every problem.
 */
export function loadConnection(path: string, options: ConnectionLoadOptions = {}): Connection {
  const doc = readYaml(path, options.env);
  const readProblems = [...doc.problems];
  const data = doc.data ?? {};
  const checker = new Checker(doc.rawScalars, { deferSecrets: true });

  const secretRefs: SecretRef[] = [];
  for (const { path: at, url } of findSecretUrls(data)) {
    const parts = parseSecretUrl(url);
    if (!parts) {
      const expected = "expected arcion-sm://<secret-name>/<key>";
      readProblems.push({
        path: at,
        message: `malformed secret reference ${describeValue(url)}; ${expected}`,
      });
      continue;
    }
    const resolved = options.secretValues?.[url];
    if (resolved !== undefined) setAt(data, at, resolved);
    secretRefs.push({ key: formatKeyPath(at), url, ...parts, resolved: resolved !== undefined });
  }

  const typeSchema = oneOf(CONNECTION_TYPES, { required: true });
  if (data.type === undefined || data.type === null) {
    checker.problem(["type"], `required: one of ${CONNECTION_TYPES.join(", ")}`);
    failLoad(path, readProblems, checker);
  }
  const type = check(typeSchema, data.type, ["type"], checker);
  if (type === INVALID) failLoad(path, readProblems, checker);
  if (options.role === "source" && type === "REDIS_STREAM") {
    checker.problem(
      ["type"],
      `REDIS_STREAM is a target; a source connection must be one of ${SOURCE_TYPES.join(", ")}`,
    );
  }
  if (options.role === "target" && type !== "REDIS_STREAM") {
    checker.problem(["type"], `${type} is a source; the target connection must be REDIS_STREAM`);
  }

  if (type === "REDIS_STREAM") {
    const out = check(redisSchema, data, [], checker);
    if (out === INVALID) failLoad(path, readProblems, checker);
    const seeds: HostPort[] = [];
    if (out.mode === "cluster") {
      if (out.host !== undefined) seeds.push({ host: out.host, port: out.port });
      for (const node of out.nodes) {
        if (!seeds.some((s) => s.host === node.host && s.port === node.port)) seeds.push(node);
      }
    }
    const first = out.host === undefined ? out.nodes[0] : { host: out.host, port: out.port };
    const conn: Omit<RedisConnection, keyof Loaded> = {
      ...base(out, secretRefs, checker),
      type: "REDIS_STREAM",
      host: first.host,
      port: first.port,
      mode: out.mode,
      nodes: seeds,
    };
    return finishLoad(path, readProblems, checker, conn);
  }

  if (type === "POSTGRESQL") {
    const out = check(postgresSchema, data, [], checker);
    if (out === INVALID) failLoad(path, readProblems, checker);
    const slots: ReplicationSlot[] = [];
    for (const [name, plugins] of Object.entries(out.replicationSlots)) {
      const other = plugins.find((p) => p !== "pgoutput");
      if (other !== undefined) {
        checker.warn(
          ["replication-slots", name],
          `plugin ${other} is replaced by pgoutput, the only one Replicant decodes; an existing slot made with ${other} must be dropped first`,
        );
      }
      if (slots.length > 0) {
        checker.warn(
          ["replication-slots", name],
          `ignored: Replicant streams from one slot, \`${slots[0].name}\``,
        );
      }
      slots.push({ name, plugin: "pgoutput" });
    }
    const conn: Omit<PostgresConnection, keyof Loaded> = {
      ...base(out, secretRefs, checker),
      type: "POSTGRESQL",
      database: out.database,
      username: out.username,
      replicationSlots: slots,
    };
    return finishLoad(path, readProblems, checker, conn);
  }

  const out = check(mysqlSchema, data, [], checker);
  if (out === INVALID) failLoad(path, readProblems, checker);
  const conn: Omit<MysqlConnection, keyof Loaded> = {
    ...base(out, secretRefs, checker),
    type,
    username: out.username,
    slaveServerIds: out.slaveServerIds,
  };
  return finishLoad(path, readProblems, checker, conn);
}

type CommonOut = ObjectOf<ReturnType<typeof commonFields>>;

function base(
  out: Omit<CommonOut, "host"> & { host?: string },
  secretRefs: SecretRef[],
  checker: Checker,
) {
  // `password-file` becomes `password` (problems and warnings go to the checker).
  applyPasswordFile(out, [], checker);
  applyPasswordFile(out.ssl?.trustStore, ["ssl", "trust-store"], checker);
  applyPasswordFile(out.ssl?.keyStore, ["ssl", "key-store"], checker);
  applyPasswordFile(out.credentialStore, ["credential-store"], checker);
  if (out.credentialStore !== undefined) {
    // Java keystores of secret entries (keytool -importpass) are not read: say so rather
    // than connect without the credentials the user expects from them.
    const how = "give them as `username`/`password`, `password-file`, `${ENV}` values or " +
      "`arcion-sm://` Secrets Manager references";
    if (out.username === undefined || out.password === undefined) {
      checker.problem(
        ["credential-store"],
        `credentials from a Java keystore are not supported: ${how}`,
      );
    } else {
      checker.warn(["credential-store"], `is ignored: the credentials come from username/password`);
    }
  }
  const result: Omit<ConnectionBase, keyof Loaded> = {
    host: out.host ?? "",
    port: out.port,
    maxConnections: out.maxConnections,
    maxRetries: out.maxRetries,
    retryWaitDurationMs: out.retryWaitDurationMs,
    secretRefs,
  };
  if (out.username !== undefined) result.username = out.username;
  if (out.password !== undefined) result.password = out.password;
  if (out.ssl !== undefined) result.ssl = toSsl(out.ssl);
  if (out.credentialStore !== undefined) result.credentialStore = out.credentialStore;
  return result;
}

function toSsl(ssl: NonNullable<CommonOut["ssl"]>): SslConfig {
  const result: SslConfig = { ...ssl } as SslConfig;
  if (ssl.trustStore) result.trustStore = withStoreType(ssl.trustStore);
  if (ssl.keyStore) result.keyStore = withStoreType(ssl.keyStore);
  return result;
}

function withStoreType(
  store: { path: string; password?: string; sslStoreType?: SslStoreType },
): StoreConfig {
  const lower = store.path.toLowerCase();
  const guessed: SslStoreType = /\.(pem|crt|cer|key)$/.test(lower)
    ? "PEM"
    : lower.endsWith(".jks")
    ? "JKS"
    : "PKCS12";
  return { ...store, sslStoreType: store.sslStoreType ?? guessed };
}

function setAt(data: Record<string, unknown>, path: KeyPath, value: unknown): void {
  let node: unknown = data;
  for (const part of path.slice(0, -1)) node = (node as Record<string | number, unknown>)[part];
  if (isPlainMapping(node) || Array.isArray(node)) {
    (node as Record<string | number, unknown>)[path[path.length - 1]] = value;
  }
}
