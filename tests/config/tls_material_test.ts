import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { SslConfig } from "../../src/config/mod.ts";
import { tlsMaterialOf } from "../../src/config/tls_material.ts";
import { KEY_PASSWORD, makeTestCerts, TRUST_PASSWORD } from "./tls_certs.ts";
import { problemsOf } from "./write_config.ts";

const certs = makeTestCerts();
const FILE = "conf/conn/redis.yaml";
const ssl = (more: Partial<SslConfig>): SslConfig => ({
  enable: true,
  hostnameVerification: true,
  ...more,
});
const subjectOf = (pem: string) => new X509Certificate(pem).subject;
const caSubject = subjectOf(readFileSync(certs.caCert, "utf8"));

Deno.test("tls material: PEM trust store and PEM key store as they are", () => {
  const m = tlsMaterialOf(
    ssl({
      trustStore: { path: certs.caCert, sslStoreType: "PEM" },
      keyStore: { path: certs.clientPem, sslStoreType: "PEM" },
    }),
    FILE,
  );
  assert.equal(m.ca?.length, 1);
  assert.equal(subjectOf(m.ca![0]), caSubject);
  assert.match(subjectOf(m.cert!), /CN=replicant/);
  assert.match(m.key!, /PRIVATE KEY/);
});

Deno.test("tls material: PKCS12 trust store and key store (node-forge)", () => {
  const m = tlsMaterialOf(
    ssl({
      trustStore: { path: certs.trustP12, password: TRUST_PASSWORD, sslStoreType: "PKCS12" },
      keyStore: { path: certs.clientP12, password: KEY_PASSWORD, sslStoreType: "PKCS12" },
    }),
    FILE,
  );
  assert.deepEqual(m.ca?.map(subjectOf), [caSubject]);
  assert.match(subjectOf(m.cert!), /CN=replicant/);
  assert.match(m.key!, /PRIVATE KEY/);
});

Deno.test("tls material: JKS trust store and key store (jks-js)", () => {
  if (!certs.trustJks || !certs.clientJks) return; // no keytool
  const m = tlsMaterialOf(
    ssl({
      trustStore: { path: certs.trustJks, password: TRUST_PASSWORD, sslStoreType: "JKS" },
      keyStore: { path: certs.clientJks, password: KEY_PASSWORD, sslStoreType: "JKS" },
    }),
    FILE,
  );
  assert.deepEqual(m.ca?.map(subjectOf), [caSubject]);
  assert.match(subjectOf(m.cert!.split(/(?<=-----END CERTIFICATE-----)/)[0]), /CN=replicant/);
  assert.match(m.key!, /PRIVATE KEY/);
});

Deno.test("tls material: a PKCS12 file called JKS is read by its content", () => {
  const m = tlsMaterialOf(
    ssl({ trustStore: { path: certs.trustP12, password: TRUST_PASSWORD, sslStoreType: "JKS" } }),
    FILE,
  );
  assert.deepEqual(m.ca?.map(subjectOf), [caSubject]);
});

Deno.test("tls material: root-cert, ssl-cert and ssl-key PEM files", () => {
  const m = tlsMaterialOf(
    ssl({ rootCert: certs.caCert, sslCert: certs.clientCert, sslKey: certs.clientKey }),
    FILE,
  );
  assert.equal(m.ca?.length, 1);
  assert.match(m.key!, /PRIVATE KEY/);
});

Deno.test("tls material: wrong store passwords name the key and the file", () => {
  const p12 = problemsOf(() =>
    tlsMaterialOf(
      ssl({ trustStore: { path: certs.trustP12, password: "nope", sslStoreType: "PKCS12" } }),
      FILE,
    )
  );
  assert.equal(p12[0].file, FILE);
  assert.equal(p12[0].key, "ssl.trust-store.password");
  assert.match(p12[0].message, /wrong password for PKCS12 store .*trust\.p12/);
  if (certs.clientJks) {
    const jks = problemsOf(() =>
      tlsMaterialOf(
        ssl({ keyStore: { path: certs.clientJks!, password: "nope", sslStoreType: "JKS" } }),
        FILE,
      )
    );
    assert.equal(jks[0].key, "ssl.key-store.password");
    assert.match(jks[0].message, /wrong password for JKS store .*client\.jks/);
  }
});

Deno.test("tls material: missing and unreadable files", () => {
  const missing = problemsOf(() =>
    tlsMaterialOf(
      ssl({ trustStore: { path: path.join(certs.dir, "none.p12"), sslStoreType: "PKCS12" } }),
      FILE,
    )
  );
  assert.equal(missing[0].key, "ssl.trust-store.path");
  assert.match(missing[0].message, /none\.p12: file not found/);
  const junk = path.join(certs.dir, "junk.p12");
  writeFileSync(junk, "not a store");
  const bad = problemsOf(() =>
    tlsMaterialOf(ssl({ trustStore: { path: junk, sslStoreType: "PKCS12" } }), FILE)
  );
  assert.equal(bad[0].key, "ssl.trust-store.path");
  const noKey = problemsOf(() =>
    tlsMaterialOf(ssl({ keyStore: { path: certs.caCert, sslStoreType: "PEM" } }), FILE)
  );
  assert.match(noKey[0].message, /holds no private key/);
  const root = problemsOf(() =>
    tlsMaterialOf(ssl({ rootCert: path.join(certs.dir, "nope.crt") }), FILE)
  );
  assert.equal(root[0].key, "ssl.root-cert");
});
