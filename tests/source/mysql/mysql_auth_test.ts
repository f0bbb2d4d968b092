/**
 * MySQL 8's default authentication, `caching_sha2_password`, which MariaDB cannot exercise
 * (it has no such plugin). A constructed server speaks the protocol's handshake packets as
 * MySQL 8 sends them and verifies what Replicant's connection (`openMysql`, the options every
 * MySQL connection of the source uses, binlog included) answers: the fast path (the server's
 * cache knows the user), the full path over plain TCP (the client asks for the server's RSA
 * key and sends the password encrypted with it), the switch from `mysql_native_password`
 * announced in the greeting, and a wrong password reported as Replicant's own message.
 */
import assert from "node:assert/strict";
import { constants, createHash, generateKeyPairSync, privateDecrypt } from "node:crypto";
import { createServer, type Socket } from "node:net";
import { openMysql } from "../../../src/source/mysql/mysql_endpoint.ts";
import { SourceError } from "../../../src/core/errors.ts";

const PASSWORD = "s3cret-ü";
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest();
const xor = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.map((v, i) => v ^ b[i % b.length]));
/** The server's RSA key pair of the full path, one for every connection as a server has. */
const { publicKey, privateKey } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  publicKeyEncoding: { type: "spki", format: "pem" },
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
});

// Capabilities of a MySQL 8 server without TLS: LONG_PASSWORD, FOUND_ROWS, LONG_FLAG,
// CONNECT_WITH_DB, PROTOCOL_41, TRANSACTIONS, SECURE_CONNECTION, MULTI_RESULTS, PLUGIN_AUTH,
// PLUGIN_AUTH_LENENC_CLIENT_DATA.
const CAPABILITIES = 0x1 | 0x2 | 0x4 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x20000 | 0x80000 |
  0x200000;

const OK = Buffer.from([0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]);
const ACCESS_DENIED = Buffer.concat([
  Buffer.from([0xff, 0x15, 0x04]), // 1045
  Buffer.from("#28000Access denied for user 'cdc'@'localhost' (using password: YES)"),
]);

function greeting(nonce: Buffer, plugin: string): Buffer {
  const caps = Buffer.alloc(4);
  caps.writeUInt32LE(CAPABILITIES);
  return Buffer.concat([
    Buffer.from([0x0a]),
    Buffer.from("8.0.36\0"),
    Buffer.from([1, 0, 0, 0]), // connection id
    nonce.subarray(0, 8),
    Buffer.from([0]),
    caps.subarray(0, 2),
    Buffer.from([255]), // utf8mb4_0900_ai_ci
    Buffer.from([0x02, 0x00]), // autocommit
    caps.subarray(2, 4),
    Buffer.from([21]),
    Buffer.alloc(10),
    nonce.subarray(8, 20),
    Buffer.from([0]),
    Buffer.from(plugin + "\0"),
  ]);
}

/** Reads whole packets from a socket, in order: `next()` resolves with [sequence, payload]. */
function packetReader(socket: Socket) {
  let buf = Buffer.alloc(0);
  const waiting: ((p: [number, Buffer]) => void)[] = [];
  const ready: [number, Buffer][] = [];
  socket.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readUIntLE(0, 3)) {
      const len = buf.readUIntLE(0, 3);
      const packet: [number, Buffer] = [buf[3], buf.subarray(4, 4 + len)];
      buf = buf.subarray(4 + len);
      const w = waiting.shift();
      if (w) w(packet);
      else ready.push(packet);
    }
  });
  return {
    next: () =>
      new Promise<[number, Buffer]>((resolve) => {
        const p = ready.shift();
        if (p) resolve(p);
        else waiting.push(resolve);
      }),
  };
}

function send(socket: Socket, seq: number, payload: Buffer) {
  const header = Buffer.alloc(4);
  header.writeUIntLE(payload.length, 0, 3);
  header[3] = seq & 0xff;
  socket.write(Buffer.concat([header, payload]));
}

/** The auth response and plugin name of a HandshakeResponse41. */
function parseHandshakeResponse(p: Buffer): { user: string; token: Buffer; plugin: string } {
  let at = 32; // capabilities, max packet, charset, 23 reserved
  const userEnd = p.indexOf(0, at);
  const user = p.subarray(at, userEnd).toString();
  at = userEnd + 1;
  const tokenLen = p[at]; // lenenc; tokens are < 251 bytes
  const token = p.subarray(at + 1, at + 1 + tokenLen);
  at += 1 + tokenLen;
  const caps = p.readUInt32LE(0);
  if (caps & 0x8) at = p.indexOf(0, at) + 1; // database
  const plugin = p.subarray(at, p.indexOf(0, at)).toString();
  return { user, token, plugin };
}

type Flow = "fast" | "full" | "switch";

/** What the server saw, for the test to check. */
interface Seen {
  user?: string;
  plugin?: string;
  askedForKey: boolean;
  fullAuthPassword?: string;
  rejected: boolean;
  query?: string;
}

/**
 * A server that runs one `flow` of caching_sha2_password per connection, then answers OK to
 * one query. It checks what the client sends the way MySQL does, against the stored
 * SHA256(SHA256(password)): the scramble on the fast path, the decrypted password on the full
 * path; a mismatch is refused with error 1045.
 */
async function constructedServer(flow: Flow) {
  const stored = sha256(sha256(Buffer.from(PASSWORD)));
  const seen: Seen = { askedForKey: false, rejected: false };
  const failures: unknown[] = [];
  const scrambleMatches = (token: Buffer, nonce: Buffer) =>
    token.length === 32 &&
    sha256(xor(token, sha256(Buffer.concat([stored, nonce])))).equals(stored);

  const server = createServer((socket) => {
    socket.on("error", () => {});
    const packets = packetReader(socket);
    (async () => {
      let nonce = Buffer.from(Array.from({ length: 20 }, (_, i) => 0x21 + i * 3));
      send(
        socket,
        0,
        greeting(nonce, flow === "switch" ? "mysql_native_password" : "caching_sha2_password"),
      );
      let [seq, p] = await packets.next();
      const response = parseHandshakeResponse(p);
      seen.user = response.user;
      seen.plugin = response.plugin;
      let token = response.token;
      if (flow === "switch") {
        nonce = Buffer.from(Array.from({ length: 20 }, (_, i) => 0x40 + i));
        send(
          socket,
          ++seq,
          Buffer.concat([
            Buffer.from("\xfecaching_sha2_password\0", "latin1"),
            nonce,
            Buffer.from([0]),
          ]),
        );
        [seq, token] = await packets.next();
      }
      const refuse = () => {
        seen.rejected = true;
        send(socket, ++seq, ACCESS_DENIED);
        socket.end();
      };
      if (flow === "full") {
        // The server's cache lacks the user (first login since its start), so it cannot check
        // the scramble: full authentication.
        send(socket, ++seq, Buffer.from([0x01, 0x04]));
        [seq, p] = await packets.next();
        seen.askedForKey = p.equals(Buffer.from([0x02]));
        send(socket, ++seq, Buffer.concat([Buffer.from([0x01]), Buffer.from(publicKey)]));
        [seq, p] = await packets.next();
        const plain = privateDecrypt(
          { key: privateKey, oaepHash: "sha1", padding: constants.RSA_PKCS1_OAEP_PADDING },
          p,
        );
        seen.fullAuthPassword = xor(plain, nonce).toString("utf8");
        if (!sha256(sha256(Buffer.from(seen.fullAuthPassword.replace(/\0$/, "")))).equals(stored)) {
          return refuse();
        }
      } else if (!scrambleMatches(token, nonce)) {
        return refuse();
      } else {
        send(socket, ++seq, Buffer.from([0x01, 0x03])); // fast auth success
      }
      send(socket, ++seq, OK);
      [, p] = await packets.next();
      if (p[0] === 0x03) { // COM_QUERY
        seen.query = p.subarray(1).toString();
        send(socket, 1, OK);
      }
      await packets.next(); // COM_QUIT
      socket.end();
    })().catch((err) => failures.push(err));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    seen,
    failures,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Connects with `openMysql` through one flow; the server's view and the error, if any. */
async function connectTo(flow: Flow, password = PASSWORD): Promise<Seen & { error?: unknown }> {
  const server = await constructedServer(flow);
  try {
    const conn = await openMysql({
      host: "127.0.0.1",
      port: server.port,
      user: "cdc",
      password,
      serverIds: [4242],
      origin: "conf/conn/mysql.yaml",
    });
    await conn.end();
    return server.seen;
  } catch (error) {
    return { ...server.seen, error };
  } finally {
    await server.close();
    assert.deepEqual(server.failures, []);
  }
}

Deno.test("mysql auth: caching_sha2_password fast path, scramble verified", async () => {
  const seen = await connectTo("fast");
  assert.equal(seen.error, undefined);
  assert.equal(seen.user, "cdc");
  assert.equal(seen.plugin, "caching_sha2_password");
  assert.equal(seen.askedForKey, false);
  assert.match(seen.query ?? "", /^SET time_zone = '\+00:00'/);
});

Deno.test("mysql auth: caching_sha2_password full path over TCP asks for the RSA key", async () => {
  const seen = await connectTo("full");
  assert.equal(seen.error, undefined);
  assert.equal(seen.askedForKey, true);
  assert.equal(seen.fullAuthPassword, PASSWORD + "\0");
  assert.match(seen.query ?? "", /^SET time_zone/);
});

Deno.test("mysql auth: greeting with mysql_native_password, switch to caching_sha2_password", async () => {
  const seen = await connectTo("switch");
  assert.equal(seen.error, undefined);
  assert.equal(seen.plugin, "mysql_native_password");
  assert.match(seen.query ?? "", /^SET time_zone/);
});

Deno.test("mysql auth: a refused caching_sha2_password login names server, file and keys", async () => {
  for (const flow of ["fast", "full"] as const) {
    const seen = await connectTo(flow, "wrong");
    assert.equal(seen.rejected, true, flow);
    assert.equal(seen.query, undefined, flow);
    const err = seen.error;
    assert.ok(err instanceof SourceError, `${flow}: ${err}`);
    assert.match(
      err.message,
      /^Cannot connect to MySQL at 127\.0\.0\.1:\d+ \(conf\/conn\/mysql\.yaml\): authentication failed/,
    );
    assert.match(err.message, /access denied for user "cdc" \(check `username` and `password`/);
  }
});
