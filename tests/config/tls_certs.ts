/**
 * Test certificates made with openssl (and keytool for JKS) in a temporary folder: a CA, a
 * server certificate for 127.0.0.1 and localhost, a client certificate, and the same material
 * as PKCS12 and JKS stores.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export interface TestCerts {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** CA certificate in a PKCS12 trust store, password TRUST_PASSWORD. */
  trustP12: string;
  /** CA certificate in a JKS trust store (null when keytool is missing). */
  trustJks: string | null;
  /** Client key and certificate (+ CA) in PKCS12, password KEY_PASSWORD. */
  clientP12: string;
  /** Client key and certificate in JKS, password KEY_PASSWORD (null without keytool). */
  clientJks: string | null;
  /** A certificate + key pair in one PEM file. */
  clientPem: string;
}

export const TRUST_PASSWORD = "trust-pw";
export const KEY_PASSWORD = "key-pw";

function run(cmd: string, args: string[], cwd: string): void {
  execFileSync(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
}

export function keytoolAvailable(): boolean {
  try {
    execFileSync("keytool", ["-help"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export function makeTestCerts(): TestCerts {
  const dir = mkdtempSync(path.join(tmpdir(), "replicant-tls-"));
  const f = (name: string) => path.join(dir, name);
  const days = ["-days", "2"];
  run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-subj",
    "/CN=Replicant Test CA",
    ...days,
  ], dir);
  const sign = (name: string, cn: string, ext: string) => {
    run("openssl", [
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${cn}`,
    ], dir);
    writeFileSync(f(`${name}.ext`), ext);
    run("openssl", [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-extfile",
      `${name}.ext`,
      ...days,
    ], dir);
  };
  sign(
    "server",
    "localhost",
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
  );
  sign("client", "replicant", "extendedKeyUsage=clientAuth\n");
  run("openssl", [
    "pkcs12",
    "-export",
    "-nokeys",
    "-in",
    "ca.crt",
    "-out",
    "trust.p12",
    "-passout",
    `pass:${TRUST_PASSWORD}`,
  ], dir);
  run("openssl", [
    "pkcs12",
    "-export",
    "-in",
    "client.crt",
    "-inkey",
    "client.key",
    "-certfile",
    "ca.crt",
    "-name",
    "client",
    "-out",
    "client.p12",
    "-passout",
    `pass:${KEY_PASSWORD}`,
  ], dir);
  execFileSync("sh", ["-c", "cat client.crt client.key > client.pem"], { cwd: dir });
  let trustJks: string | null = null;
  let clientJks: string | null = null;
  if (keytoolAvailable()) {
    run("keytool", [
      "-importcert",
      "-noprompt",
      "-alias",
      "ca",
      "-file",
      "ca.crt",
      "-keystore",
      "trust.jks",
      "-storetype",
      "JKS",
      "-storepass",
      TRUST_PASSWORD,
    ], dir);
    run("keytool", [
      "-importkeystore",
      "-noprompt",
      "-srckeystore",
      "client.p12",
      "-srcstoretype",
      "PKCS12",
      "-srcstorepass",
      KEY_PASSWORD,
      "-destkeystore",
      "client.jks",
      "-deststoretype",
      "JKS",
      "-deststorepass",
      KEY_PASSWORD,
    ], dir);
    if (existsSync(f("trust.jks"))) trustJks = f("trust.jks");
    if (existsSync(f("client.jks"))) clientJks = f("client.jks");
  }
  return {
    dir,
    caCert: f("ca.crt"),
    caKey: f("ca.key"),
    serverCert: f("server.crt"),
    serverKey: f("server.key"),
    clientCert: f("client.crt"),
    clientKey: f("client.key"),
    trustP12: f("trust.p12"),
    trustJks,
    clientP12: f("client.p12"),
    clientJks,
    clientPem: f("client.pem"),
  };
}
