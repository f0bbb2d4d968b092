/**
 * RespPipeline against real Redis: the shared private server for data tests, servers of the
 * test's own (`redis-server --port …`) for ACL users and for stopping a server under load.
 */
import { ByteSlice, type EntryField, entryText, WrappedField } from "../../src/core/entry_field.ts";
import assert from "node:assert/strict";
import net from "node:net";
import process from "node:process";
import { spawn } from "node:child_process";
import { Redis } from "ioredis";
import { RespPipeline } from "../../src/sink/redis/resp_pipeline.ts";
import { deleteKeys, readStream, redisClient } from "../helpers/clients.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";

const env = serviceEnv().redis;
const prefix = `test:resp:${process.pid}:`;
const ENCODINGS = ["string", "bytes"] as const;

function open(encoding?: "string" | "bytes", extra: { port?: number } = {}) {
  return RespPipeline.open({
    host: env.host,
    port: extra.port ?? env.port,
    origin: "resp_pipeline_test",
    encoding,
  });
}

async function withRedis(fn: (redis: Redis) => Promise<void>): Promise<void> {
  const redis = redisClient();
  try {
    await fn(redis);
  } finally {
    await deleteKeys(redis, prefix + "*");
    await redis.quit();
  }
}

/** A port nobody listens on now (checked by binding it). */
async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 56400 + Math.floor(Math.random() * 100);
    const ok = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once("error", () => resolve(false));
      srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error("no free port in 56400-56499");
}

/** Starts a throw-away redis-server as a child process; returns its port and a stopper. */
async function ownRedis(): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn("redis-server", [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
  ], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let running = true;
  child.once("exit", () => running = false);
  try {
    await waitFor(() => isListening(port), { what: `redis-server on ${port}` });
  } catch (err) {
    child.kill("SIGKILL");
    await exited;
    throw err;
  }
  const stop = async () => {
    if (running) child.kill("SIGTERM");
    await exited;
  };
  return { port, stop };
}

function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

function entry(i: number): string[] {
  return [`{"id":${i}}`, JSON.stringify({ id: i, name: `row ${i}`, pad: "x".repeat(i % 300) })];
}

for (const encoding of ENCODINGS) {
  Deno.test(`resp: a batch of 10k entries lands in order with its ids (${encoding})`, async () => {
    await withRedis(async (redis) => {
      const conn = await open(encoding);
      try {
        const stream = `${prefix}big:${encoding}`;
        const entries = Array.from({ length: 10_000 }, (_, i) => entry(i));
        const ids = await conn.xaddBatch(stream, entries);
        assert.equal(ids.length, entries.length);
        for (const id of ids) assert.equal(typeof id, "string", String(id));
        const stored = await readStream(redis, stream);
        assert.deepEqual(stored.map(([id]) => id), ids);
        assert.deepEqual(stored.map(([, fields]) => fields), entries);
        assert.equal(await conn.command("XLEN", stream), 10_000);
        assert.equal(await conn.command("CLIENT", "GETNAME"), "replicant-writer");
      } finally {
        await conn.close();
      }
    });
  });

  Deno.test(`resp: multi-byte, CR LF, empty and long values round-trip (${encoding})`, async () => {
    await withRedis(async (redis) => {
      const conn = await open(encoding);
      try {
        const stream = `${prefix}unicode:${encoding}`;
        const entries = [
          ["k", ""],
          ["", "v"],
          ["é", "ééééé"], // 5 chars, 10 bytes: the header grows a digit
          ["😀", "a😀b"], // surrogate pairs
          ["crlf", "line1\r\nline2\r\n\r\n$3\r\n*1\r\n"],
          ["nul", "a\u0000b\u0001\u007f\u0080\u00ff"],
          ["cjk", "日本語テキスト".repeat(3)],
          ["long", "é".repeat(9_999)], // 9999 chars, 19998 bytes
          ["longer", "ü✓".repeat(100_000)], // 500 kB, arrives in several TCP chunks
          ["many", "1", "two", "2", "three", "", "four", "4"],
        ];
        const ids = await conn.xaddBatch(stream, entries);
        assert.ok(ids.every((id) => typeof id === "string"), String(ids));
        const stored = await readStream(redis, stream);
        assert.deepEqual(stored.map(([, f]) => f), entries);
        // And back through RespPipeline's own parser (bulk strings split over chunks).
        const own = (await conn.command("XRANGE", stream, "-", "+")) as [string, string[]][];
        assert.deepEqual(own.map(([id]) => id), ids);
        assert.deepEqual(own.map(([, f]) => f), entries);
      } finally {
        await conn.close();
      }
    });
  });

  Deno.test(`resp: wrapped fields (schema half + payload) round-trip (${encoding})`, async () => {
    await withRedis(async (redis) => {
      const conn = await open(encoding);
      try {
        const stream = `${prefix}wrapped:${encoding}`;
        const open8 = '{"schema":{"é":1},"payload":'; // multi-byte in the cached half
        const entries: EntryField[][] = [
          [new WrappedField(open8, '{"id":1}'), new WrappedField(open8, '"😀"')],
          // Total lengths around a digit boundary of the bulk header (99 -> 100 bytes).
          [new WrappedField("x".repeat(90), "é".repeat(4)), "plain"],
          [new WrappedField("x".repeat(90), "é".repeat(5)), new WrappedField("", "")],
          [new WrappedField(open8, "ü✓".repeat(50_000)), "v"],
        ];
        const ids = await conn.xaddBatch(stream, entries);
        assert.ok(ids.every((id) => typeof id === "string"), String(ids));
        const stored = await readStream(redis, stream);
        assert.deepEqual(stored.map(([, f]) => f), entries.map(entryText));
      } finally {
        await conn.close();
      }
    });
  });

  Deno.test(`resp: byte slices, bare and wrapped, round-trip (${encoding})`, async () => {
    await withRedis(async (redis) => {
      const conn = await open(encoding);
      try {
        const stream = `${prefix}slices:${encoding}`;
        const text = '{"id":1}' + "é".repeat(45) + "😀" + "x".repeat(300_000);
        const bytes = new TextEncoder().encode("junk" + text + "junk");
        const slice = (from: number, to: number) => new ByteSlice(bytes, 4 + from, 4 + to);
        const open8 = '{"schema":{"é":1},"payload":';
        const entries: EntryField[][] = [
          [slice(0, 8), slice(8, 98)], // 90 bytes of "é"
          ["key", slice(0, 8), "value", new WrappedField(open8, slice(0, 8))],
          // Lengths around a digit boundary of the bulk header (99 -> 100 bytes).
          [slice(0, 99), new WrappedField("x".repeat(90), slice(0, 8))],
          [slice(0, 100), new WrappedField("x".repeat(91), slice(0, 8)), "plain", slice(0, 0)],
          [slice(98, 102), new WrappedField(open8, slice(0, 300_000))], // bigger than a buffer
          [new WrappedField(open8, "string body"), slice(0, 8)],
        ];
        const ids = await conn.xaddBatch(stream, entries);
        assert.ok(ids.every((id) => typeof id === "string"), String(ids));
        const stored = await readStream(redis, stream);
        assert.deepEqual(stored.map(([, f]) => f), entries.map(entryText));
        assert.equal(stored[4][1][0], "😀");
      } finally {
        await conn.close();
      }
    });
  });

  Deno.test(`resp: without ids, landed entries reply "" and errors stay (${encoding})`, async () => {
    await withRedis(async (redis) => {
      const conn = await open(encoding);
      try {
        const stream = `${prefix}noids:${encoding}`;
        const wrong = `${prefix}noids-string:${encoding}`;
        await redis.set(wrong, "not a stream");
        const replies = await conn.xaddBatch(stream, [entry(1), entry(2)], 0, false);
        assert.deepEqual(replies, ["", ""]);
        const [bad] = await conn.xaddBatch(wrong, [entry(3)], 0, false);
        assert.match((bad as Error).message, /WRONGTYPE/);
        // Ids again for the next caller that wants them, on the same connection.
        const ids = await conn.xaddBatch(stream, [entry(4)]);
        assert.match(ids[0] as string, /^\d+-\d+$/);
        assert.equal(await redis.xlen(stream), 3);
      } finally {
        await conn.close();
      }
    });
  });

  Deno.test(`resp: MAXLEN ~ trims the stream (${encoding})`, async () => {
    await withRedis(async () => {
      const conn = await open(encoding);
      try {
        const stream = `${prefix}maxlen:${encoding}`;
        for (let b = 0; b < 5; b++) {
          const ids = await conn.xaddBatch(
            stream,
            Array.from({ length: 1000 }, (_, i) => entry(b * 1000 + i)),
            200,
          );
          assert.ok(ids.every((id) => typeof id === "string"));
        }
        const len = (await conn.command("XLEN", stream)) as number;
        assert.ok(len >= 200 && len < 1000, `XLEN ${len}`);
      } finally {
        await conn.close();
      }
    });
  });
}

Deno.test("resp: an error reply fails only its own entry", async () => {
  await withRedis(async (redis) => {
    const conn = await open();
    try {
      const good = `${prefix}good`;
      const wrong = `${prefix}string`;
      await redis.set(wrong, "not a stream");
      // Within one batch: a bad argument count fails that entry only.
      const mixed = await conn.xaddBatch(good, [["a", "1"], ["odd"], ["b", "2"], [], ["c", "3"]]);
      assert.equal(typeof mixed[0], "string");
      assert.ok(
        mixed[1] instanceof Error && /^ERR wrong number of arguments/.test(mixed[1].message),
      );
      assert.equal(typeof mixed[2], "string");
      assert.ok(mixed[3] instanceof Error);
      assert.equal(typeof mixed[4], "string");
      // Batches alternating between a stream and a string key, all in flight at once.
      const batches = Array.from(
        { length: 10 },
        (_, b) =>
          conn.xaddBatch(
            b % 2 === 0 ? good : wrong,
            Array.from({ length: 100 }, (_, i) => entry(i)),
          ),
      );
      const results = await Promise.all(batches);
      results.forEach((replies, b) => {
        assert.equal(replies.length, 100);
        for (const r of replies) {
          if (b % 2 === 0) assert.equal(typeof r, "string");
          else {
            assert.ok(r instanceof Error, String(r));
            assert.match(r.message, /^WRONGTYPE /);
          }
        }
      });
      assert.equal(await redis.xlen(good), 3 + 5 * 100);
      // Generic commands reject with Redis's error and the connection stays usable.
      await assert.rejects(conn.command("XLEN", wrong), { message: /^WRONGTYPE / });
      await assert.rejects(conn.command("NOSUCHCOMMAND"), { message: /unknown command/ });
      assert.equal(await conn.command("PING"), "PONG");
    } finally {
      await conn.close();
    }
  });
});

Deno.test("resp: generic command replies become JS values", async () => {
  await withRedis(async () => {
    const conn = await open();
    try {
      const stream = `${prefix}cmd`;
      const [id1, id2] = (await conn.xaddBatch(stream, [["a", "1"], ["b", "2"]])) as string[];
      assert.equal(await conn.command("XLEN", stream), 2);
      assert.equal(await conn.command("XDEL", stream, id1), 1);
      assert.deepEqual(await conn.command("XRANGE", stream, "-", "+"), [[id2, ["b", "2"]]]);
      assert.equal(await conn.command("GET", `${prefix}missing`), null);
      assert.deepEqual(await conn.command("XRANGE", `${prefix}missing`, "-", "+"), []);
      assert.deepEqual(await conn.command("MGET", `${prefix}missing`, `${prefix}missing`), [
        null,
        null,
      ]);
      assert.equal(await conn.command("SET", `${prefix}s`, "värde"), "OK");
      assert.equal(await conn.command("GET", `${prefix}s`), "värde");
      assert.equal(await conn.command("INCRBY", `${prefix}n`, "-5"), -5);
    } finally {
      await conn.close();
    }
  });
});

Deno.test("resp: batches in flight together keep their order", async () => {
  await withRedis(async (redis) => {
    const conn = await open();
    try {
      const stream = `${prefix}order`;
      const calls: Promise<unknown>[] = [];
      let n = 0;
      for (let b = 0; b < 30; b++) {
        const entries = Array.from({ length: 1 + (b * 37) % 400 }, () => entry(n++));
        calls.push(conn.xaddBatch(stream, entries));
        if (b % 7 === 0) calls.push(conn.command("XLEN", stream));
      }
      assert.ok(conn.inFlight > 1);
      const results = await Promise.all(calls);
      const ids = results.filter(Array.isArray).flat() as string[];
      assert.equal(ids.length, n);
      // XLEN answers sit between the batches they were sent between.
      let written = 0;
      for (const r of results) {
        if (Array.isArray(r)) written += r.length;
        else assert.equal(r, written);
      }
      const stored = await readStream(redis, stream);
      assert.deepEqual(stored.map(([id]) => id), ids);
      assert.deepEqual(
        stored.map(([, f]) => JSON.parse(f[0]).id),
        Array.from({ length: n }, (_, i) => i),
      );
    } finally {
      await conn.close();
    }
  });
});

Deno.test("resp: a killed connection rejects what is in flight and later calls", async () => {
  await withRedis(async (redis) => {
    const conn = await open();
    const id = await conn.command("CLIENT", "ID");
    // A blocking command holds the batch behind it in flight until the kill.
    const blocked = conn.command("BLPOP", `${prefix}never`, "0");
    const batch = conn.xaddBatch(`${prefix}killed`, [["a", "1"]]);
    const checks = [
      assert.rejects(blocked, (err: Error & { code?: string }) => {
        assert.equal(err.code, "ECONNRESET");
        assert.match(err.message, /connection to .*:\d+ .*lost/);
        return true;
      }),
      assert.rejects(batch, { code: "ECONNRESET" }),
    ];
    await waitFor(async () => {
      const list = (await redis.call("CLIENT", "LIST", "ID", String(id))) as string;
      return list.includes("cmd=blpop");
    }, { what: "the BLPOP to block" });
    assert.equal(await redis.call("CLIENT", "KILL", "ID", String(id)), 1);
    await Promise.all(checks);
    assert.equal(conn.connected, false);
    await assert.rejects(conn.xaddBatch(`${prefix}killed`, [["a", "1"]]), {
      code: "ECONNRESET",
    });
    await assert.rejects(conn.command("PING"), /lost/);
    await conn.close(); // resolves on a dead connection
    const again = await conn.reconnect();
    assert.equal(await again.command("PING"), "PONG");
    await again.close();
  });
});

Deno.test("resp: a stopped server fails pending batches and refuses new connections", async () => {
  const server = await ownRedis();
  try {
    const conn = await open(undefined, { port: server.port });
    const stream = `${prefix}stopped`;
    assert.equal(typeof (await conn.xaddBatch(stream, [["a", "1"]]))[0], "string");
    const blocked = conn.command("BLPOP", `${prefix}never`, "0");
    const batches = [1, 2, 3].map(() =>
      conn.xaddBatch(stream, Array.from({ length: 1000 }, (_, i) => entry(i)))
    );
    const checks = [blocked, ...batches].map((p) =>
      assert.rejects(p, (err: Error & { code?: string }) => {
        assert.ok(err.code === "ECONNRESET" || err.code === "EPIPE", String(err.code));
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${server.port}`));
        return true;
      })
    );
    await server.stop();
    await Promise.all(checks);
    await assert.rejects(
      open(undefined, { port: server.port }),
      (err: Error & { code?: string }) => {
        assert.match(
          err.message,
          new RegExp(`Cannot connect to Redis at 127\\.0\\.0\\.1:${server.port}`),
        );
        assert.equal(err.code, "ECONNREFUSED");
        return true;
      },
    );
    await conn.close();
  } finally {
    await server.stop();
  }
});

Deno.test("resp: AUTH with an ACL user; a wrong password fails clearly", async () => {
  const server = await ownRedis();
  try {
    const admin = new Redis({ host: "127.0.0.1", port: server.port });
    await admin.call("ACL", "SETUSER", "writer", "on", ">s3cret", "~resp:*", "+@all");
    await admin.call("CONFIG", "SET", "requirepass", "admin-secret");
    admin.disconnect();
    const base = { host: "127.0.0.1", port: server.port, origin: "acl-test" };

    const conn = await RespPipeline.open({ ...base, username: "writer", password: "s3cret" });
    assert.equal(await conn.command("ACL", "WHOAMI"), "writer");
    assert.equal(await conn.command("CLIENT", "GETNAME"), "replicant-writer");
    const ids = await conn.xaddBatch("resp:acl", [["a", "1"]]);
    assert.equal(typeof ids[0], "string");
    // Outside the user's key pattern: NOPERM for that entry.
    const denied = await conn.xaddBatch("other:acl", [["a", "1"]]);
    assert.ok(denied[0] instanceof Error && /^NOPERM/.test(denied[0].message), String(denied[0]));
    await conn.close();

    // The default user with only a password.
    const dflt = await RespPipeline.open({ ...base, password: "admin-secret" });
    assert.equal(await dflt.command("ACL", "WHOAMI"), "default");
    await dflt.close();

    await assert.rejects(
      RespPipeline.open({ ...base, username: "writer", password: "wrong" }),
      (err: Error) => {
        assert.match(
          err.message,
          new RegExp(
            `^Cannot connect to Redis at 127\\.0\\.0\\.1:${server.port} \\(acl-test\\): WRONGPASS`,
          ),
        );
        assert.match(err.message, /authentication failed: check `username` and `password`/);
        return true;
      },
    );
    await assert.rejects(RespPipeline.open(base), /NOAUTH.*authentication failed/);
  } finally {
    await server.stop();
  }
});

Deno.test("resp: a server that never answers times out naming host:port", async () => {
  const sockets: net.Socket[] = [];
  const silent = net.createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const port = (silent.address() as net.AddressInfo).port;
  try {
    const started = Date.now();
    await assert.rejects(
      RespPipeline.open({ host: "127.0.0.1", port, origin: "silent", connectTimeoutMs: 300 }),
      (err: Error & { code?: string }) => {
        assert.match(err.message, new RegExp(`Cannot connect to Redis at 127\\.0\\.0\\.1:${port}`));
        assert.match(err.message, /ETIMEDOUT/);
        assert.equal(err.code, "ETIMEDOUT");
        return true;
      },
    );
    assert.ok(Date.now() - started < 5000);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
});
