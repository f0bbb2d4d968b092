/**
 * Turns the `ssl` section of a connection file (trust store, key store, PEM files) into the
 * PEM strings Node's TLS wants: `ca` from a trust store, `cert` + `key` from a key store.
 * Stores may be PEM files (used as they are), PKCS12 (parsed with node-forge) or Java
 * KeyStores (JKS, parsed with jks-js). Since Java 9, keytool writes PKCS12 by default even to
 * a `.jks` file, so the format is taken from the file's first bytes, not from its name.
 *
 * Every problem is a ConfigError naming the file and the key, e.g.
 * `conf/conn/redis.yaml: ssl.trust-store.password: wrong password for PKCS12 store …`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { isIP } from "node:net";
import type { ConnectionOptions as TlsOptions } from "node:tls";
import { readFileSync } from "node:fs";
import forgeModule from "node-forge";
import { decrypt as decryptJksKey, parseJks } from "jks-js";
import { ConfigError, type ConfigProblem } from "./config_error.ts";
import type { Connection, SslConfig, StoreConfig } from "./load_connection.ts";

/** What a TLS client needs, as PEM text. Absent fields: use Node's defaults. */
export interface TlsMaterial {
  /** Trusted CA certificates (PEM, one per entry). */
  ca?: string[];
  /** Client certificate chain (PEM), for mutual TLS. */
  cert?: string;
  /** Client private key (PEM, unencrypted). */
  key?: string;
}

/** Where a store comes from, for messages: file and dotted key (`ssl.trust-store`). */
export interface StoreOrigin {
  file: string;
  key: string;
  /** The key names the file itself (`ssl.root-cert`), not a store section with `path`. */
  fileKey?: boolean;
}

// Only what we use of node-forge (it ships no types).
interface ForgeBag {
  cert?: unknown;
  key?: unknown;
  asn1?: unknown;
}
interface ForgeP12 {
  getBags(filter: { bagType: string }): Record<string, ForgeBag[] | undefined>;
}
interface Forge {
  asn1: { fromDer(der: string, strict?: boolean): unknown; toDer(asn1: unknown): ForgeBytes };
  pkcs12: { pkcs12FromAsn1(asn1: unknown, strict: boolean, password?: string): ForgeP12 };
  pki: {
    oids: Record<string, string>;
    certificateToPem(cert: unknown): string;
    privateKeyToPem(key: unknown): string;
    privateKeyInfoToPem(asn1: unknown): string;
  };
}
interface ForgeBytes {
  getBytes(): string;
}
const forge = forgeModule as unknown as Forge;

const JKS_MAGIC = 0xfeedfeed;
const JCEKS_MAGIC = 0xcececece;

function problem(origin: StoreOrigin, key: string, message: string): ConfigError {
  const at = origin.fileKey ? origin.key : `${origin.key}.${key}`;
  return new ConfigError([{ file: origin.file, key: at, message }]);
}

function readStore(store: StoreConfig, origin: StoreOrigin): Buffer {
  try {
    return readFileSync(store.path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "file not found" : (err as Error).message;
    throw problem(origin, "path", `cannot read ${store.path}: ${why}`);
  }
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

/** PEM blocks of a text by kind: certificates and private keys. */
function pemBlocks(text: string): { certs: string[]; keys: string[] } {
  const certs: string[] = [];
  const keys: string[] = [];
  for (const match of text.matchAll(PEM_BLOCK)) {
    if (match[1] === "CERTIFICATE" || match[1] === "TRUSTED CERTIFICATE") certs.push(match[0]);
    else if (match[1].endsWith("PRIVATE KEY")) keys.push(match[0]);
  }
  return { certs, keys };
}

function derToPem(der: string | Uint8Array, label: string): string {
  const b64 = Buffer.from(typeof der === "string" ? Buffer.from(der, "binary") : der)
    .toString("base64");
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, "$&\n")}-----END ${label}-----\n`;
}

interface StoreContents {
  certs: string[];
  keys: string[];
}

function readPem(store: StoreConfig, origin: StoreOrigin): StoreContents {
  const bytes = readStore(store, origin);
  const text = bytes.toString("utf8");
  const found = pemBlocks(text);
  if (found.certs.length === 0 && found.keys.length === 0) {
    // A single DER certificate (.crt/.cer written by Windows or keytool -exportcert).
    if (bytes[0] === 0x30) return { certs: [derToPem(bytes, "CERTIFICATE")], keys: [] };
    throw problem(origin, "path", `${store.path} holds no PEM certificate or key`);
  }
  if (found.keys.some((k) => /ENCRYPTED/.test(k) || /Proc-Type: 4,ENCRYPTED/.test(k))) {
    throw problem(
      origin,
      "path",
      `${store.path}: encrypted PEM private keys are not supported; decrypt it ` +
        `(openssl pkey -in key.pem -out plain.pem) or use a PKCS12 store`,
    );
  }
  return found;
}

function readPkcs12(store: StoreConfig, origin: StoreOrigin, bytes: Buffer): StoreContents {
  let p12: ForgeP12;
  try {
    const asn1 = forge.asn1.fromDer(bytes.toString("binary"));
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, store.password ?? "");
  } catch (err) {
    const message = (err as Error).message ?? String(err);
    if (/Invalid password|could not be verified|decrypt/i.test(message)) {
      throw problem(
        origin,
        "password",
        store.password
          ? `wrong password for PKCS12 store ${store.path}`
          : `PKCS12 store ${store.path} needs a password`,
      );
    }
    throw problem(origin, "path", `${store.path} is not a readable PKCS12 store: ${message}`);
  }
  const oids = forge.pki.oids;
  const bagsOf = (type: string) => p12.getBags({ bagType: type })[type] ?? [];
  const certs = bagsOf(oids.certBag).map((bag) =>
    bag.cert
      ? forge.pki.certificateToPem(bag.cert)
      : derToPem(forge.asn1.toDer(bag.asn1).getBytes(), "CERTIFICATE")
  );
  const keys = [...bagsOf(oids.pkcs8ShroudedKeyBag), ...bagsOf(oids.keyBag)].map((bag) =>
    bag.key ? forge.pki.privateKeyToPem(bag.key) : forge.pki.privateKeyInfoToPem(bag.asn1)
  );
  return { certs, keys };
}

function readJks(store: StoreConfig, origin: StoreOrigin, bytes: Buffer): StoreContents {
  if (!store.password) {
    throw problem(origin, "password", `JKS store ${store.path} needs a password`);
  }
  let entries: ReturnType<typeof parseJks>;
  try {
    entries = parseJks(bytes, store.password);
  } catch (err) {
    const message = (err as Error).message ?? String(err);
    if (/Password verification failed/i.test(message)) {
      throw problem(origin, "password", `wrong password for JKS store ${store.path}`);
    }
    throw problem(origin, "path", `${store.path} is not a readable JKS store: ${message}`);
  }
  const certs: string[] = [];
  const keys: string[] = [];
  for (const entry of entries) {
    if ("chain" in entry) {
      let key: string;
      try {
        // Key entries are protected with the store password (keytool's default).
        key = decryptJksKey(entry.protectedPrivateKey, store.password);
      } catch {
        throw problem(
          origin,
          "password",
          `cannot decrypt the private key ${JSON.stringify(entry.alias)} of JKS store ` +
            `${store.path} with the store password (Replicant needs the key password to equal it)`,
        );
      }
      keys.push(key);
      for (const cert of entry.chain) certs.push(derToPem(cert.value, "CERTIFICATE"));
    } else {
      certs.push(derToPem(entry.cert.value, "CERTIFICATE"));
    }
  }
  return { certs, keys };
}

/** Certificates and keys of a store, whatever its type. */
export function readStoreContents(store: StoreConfig, origin: StoreOrigin): StoreContents {
  if (store.sslStoreType === "PEM") return readPem(store, origin);
  const bytes = readStore(store, origin);
  const magic = bytes.length >= 4 ? bytes.readUInt32BE(0) : 0;
  if (magic === JCEKS_MAGIC) {
    throw problem(
      origin,
      "ssl-store-type",
      `${store.path} is a JCEKS store, which Replicant cannot read; convert it to PKCS12 ` +
        `(keytool -importkeystore -srcstoretype JCEKS -deststoretype PKCS12 …)`,
    );
  }
  if (magic === JKS_MAGIC) return readJks(store, origin, bytes);
  if (bytes[0] === 0x30) return readPkcs12(store, origin, bytes);
  if (/-----BEGIN /.test(bytes.subarray(0, 4096).toString("latin1"))) {
    return readPem(store, origin);
  }
  throw problem(
    origin,
    "path",
    `${store.path} is neither a PKCS12 nor a JKS store (ssl-store-type: ${store.sslStoreType})`,
  );
}

/**
 * TLS material of an `ssl` section: the trust store (or `root-cert`) gives `ca`, the key store
 * (or `ssl-cert` + `ssl-key`) gives `cert` and `key`. Throws ConfigError naming file and key.
 */
export function tlsMaterialOf(ssl: SslConfig, file: string): TlsMaterial {
  const result: TlsMaterial = {};
  const problems: ConfigProblem[] = [];
  // Each part on its own, so a wrong trust-store and key-store password are both reported.
  const collect = (part: () => void) => {
    try {
      part();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
    }
  };
  const ca: string[] = [];
  collect(() => trustPart(ssl, file, ca));
  if (ca.length > 0) result.ca = ca;
  collect(() => keyPart(ssl, file, result));
  if (problems.length > 0) throw new ConfigError(problems);
  return result;
}

function trustPart(ssl: SslConfig, file: string, ca: string[]): void {
  if (ssl.trustStore) {
    const origin = { file, key: "ssl.trust-store" };
    const contents = readStoreContents(ssl.trustStore, origin);
    if (contents.certs.length === 0) {
      throw problem(origin, "path", `${ssl.trustStore.path} holds no certificate to trust`);
    }
    ca.push(...contents.certs);
  }
  if (ssl.rootCert) {
    const origin = { file, key: "ssl.root-cert", fileKey: true };
    const contents = readStoreContents({ path: ssl.rootCert, sslStoreType: "PEM" }, origin);
    if (contents.certs.length === 0) {
      throw problem(origin, "", `${ssl.rootCert} holds no certificate`);
    }
    ca.push(...contents.certs);
  }
}

function keyPart(ssl: SslConfig, file: string, result: TlsMaterial): void {
  if (ssl.keyStore) {
    const origin = { file, key: "ssl.key-store" };
    const contents = readStoreContents(ssl.keyStore, origin);
    if (contents.keys.length === 0) {
      throw problem(origin, "path", `${ssl.keyStore.path} holds no private key`);
    }
    if (contents.certs.length === 0) {
      throw problem(origin, "path", `${ssl.keyStore.path} holds no client certificate`);
    }
    if (contents.keys.length > 1) {
      throw problem(
        origin,
        "path",
        `${ssl.keyStore.path} holds ${contents.keys.length} private keys; keep only the client's`,
      );
    }
    result.key = contents.keys[0];
    result.cert = contents.certs.join("\n");
  } else if (ssl.sslCert && ssl.sslKey) {
    const certs = readStoreContents(
      { path: ssl.sslCert, sslStoreType: "PEM" },
      { file, key: "ssl.ssl-cert", fileKey: true },
    ).certs;
    const keys = readStoreContents(
      { path: ssl.sslKey, sslStoreType: "PEM" },
      { file, key: "ssl.ssl-key", fileKey: true },
    ).keys;
    if (certs.length === 0) {
      throw problem({ file, key: "ssl" }, "ssl-cert", `${ssl.sslCert} holds no certificate`);
    }
    if (keys.length === 0) {
      throw problem({ file, key: "ssl" }, "ssl-key", `${ssl.sslKey} holds no private key`);
    }
    result.cert = certs.join("\n");
    result.key = keys[0];
  }
}

/**
 * Node TLS options of a connection's `ssl` section (undefined without TLS): the server
 * certificate is checked against the trust store (or the system CAs), and its host name too
 * unless `hostname-verification: false`; with that and no trust store nor `root-cert` the
 * connection is encrypted but the server unverified (libpq's verify-full, verify-ca, require).
 * Store problems are ConfigErrors naming the file and key (exit 2).
 */
export function tlsOptionsOf(conn: Connection): TlsOptions | undefined {
  const ssl = conn.ssl;
  if (!ssl?.enable) return undefined;
  const material = tlsMaterialOf(ssl, conn.file ?? `${conn.type} connection`);
  // Like libpq's sslmode: verify-full by default; verify-ca with hostname-verification: false;
  // require (encrypted, unverified) when that is false and no CA is given either.
  const options: TlsOptions = {
    rejectUnauthorized: ssl.hostnameVerification || material.ca !== undefined,
  };
  if (material.ca) options.ca = material.ca;
  if (material.cert) options.cert = material.cert;
  if (material.key) options.key = material.key;
  // SNI takes a host name, never an IP address.
  if (!isIP(conn.host)) options.servername = conn.host;
  if (!ssl.hostnameVerification) options.checkServerIdentity = () => undefined;
  return options;
}
