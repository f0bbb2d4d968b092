/**
 * A minimal RESP2 connection for the snapshot's hot path: a whole batch of XADD commands is
 * encoded into one buffer and written with one `socket.write`, and a streaming reply parser
 * hands the replies back per entry. Several batches may be in flight on one connection; their
 * replies arrive in order and are matched to them through a FIFO.
 *
 * Compared with an ioredis pipeline this allocates no Command, Promise or argument array per
 * entry: one promise and one reply array per batch. Everything else (retries, reconnecting,
 * choosing what to do with a failed entry) is the caller's business; after a lost connection
 * every call fails with a connection error (`code` ECONNRESET or the socket's code) and the
 * caller opens a new `RespPipeline` (or calls `reconnect()`).
 */
import { Buffer } from "node:buffer";
import type net from "node:net";
import { copyBytes } from "../../core/byte_copy.ts";
import { ByteSlice, type EntryField } from "../../core/entry_field.ts";
import {
  CONNECT_TIMEOUT_MS,
  connectError,
  connectSocket,
  handshakeOf,
  type RedisEndpoint,
  whereOf,
} from "./redis_endpoint.ts";

/** The server to reach (see redis_endpoint.ts) and how batches are encoded. */
export interface RespPipelineOptions extends RedisEndpoint {
  /**
   * How batches are encoded: `string` (one string, one TextEncoder.encodeInto; fastest in
   * Deno) or `bytes` (Buffer.utf8Write per argument; fastest in Bun). Default: by runtime.
   */
  encoding?: "string" | "bytes";
}

/** An error reply of Redis (`-WRONGTYPE …`); the message is Redis's text unchanged. */
export class RedisReplyError extends Error {
  override name = "ReplyError";
}

/** The connection was lost or closed; `code` is the socket's code or ECONNRESET. */
export class RedisConnectionError extends Error {
  override name = "RedisConnectionError";
  constructor(message: string, readonly code: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** One request waiting for replies: a batch (`count` replies) or a single command. */
interface Pending {
  batch: boolean;
  /** Whether the batch's caller wants the ids; if not, each landed entry is `""`. */
  ids: boolean;
  count: number;
  got: number;
  replies: (string | Error)[] | null;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** A request to send: a batch to encode, or a command's bytes. */
interface Outgoing {
  pending: Pending;
  stream: string;
  entries: EntryField[][] | null;
  maxLen: number;
  data: Buffer | null;
}

/** An array reply being filled in, for replies spread over several TCP chunks. */
interface Frame {
  items: unknown[];
  idx: number;
}

const CR = 13;
const LF = 10;
/** `typeof Bun`: Bun's Buffer.utf8Write is much faster than one big string + encodeInto there. */
const IS_BUN = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
const textEncoder = new TextEncoder();
const SCRATCH_INITIAL = 256 * 1024;

function digitCount(n: number): number {
  return n < 10
    ? 1
    : n < 100
    ? 2
    : n < 1000
    ? 3
    : n < 10000
    ? 4
    : n < 100000
    ? 5
    : String(n).length;
}

/** Writes `$n\r\n` at `pos`; returns the position after it. */
function writeBulkHeader(buf: Uint8Array, pos: number, n: number, digits: number): number {
  buf[pos] = 36; // $
  let p = pos + digits;
  let x = n;
  do {
    buf[p--] = 48 + (x % 10);
    x = Math.floor(x / 10);
  } while (x > 0);
  p = pos + 1 + digits;
  buf[p] = CR;
  buf[p + 1] = LF;
  return p + 2;
}

function bulk(s: string): string {
  return "$" + Buffer.byteLength(s) + "\r\n" + s + "\r\n";
}

/** RESP encoding of one command (generic path, not hot). */
function encodeCommand(args: string[]): string {
  let out = "*" + args.length + "\r\n";
  for (const a of args) out += bulk(a);
  return out;
}

export class RespPipeline {
  readonly #opts: RespPipelineOptions;
  readonly #where: string;
  #socket: net.Socket;
  /** Set once the connection is unusable; every call then fails with a copy of it. */
  #dead: RedisConnectionError | null = null;
  #socketError: (Error & { code?: string }) | null = null;
  #closing = false;
  #closed: Promise<void>;

  // FIFO of requests waiting for replies (array + head index; compacted now and then).
  #queue: Pending[] = [];
  #head = 0;
  /** Requests not sent yet, waiting for the socket to drain. */
  #backlog: Outgoing[] = [];
  #needDrain = false;

  // Reply parser state.
  #buf: Buffer | null = null;
  #pos = 0;
  /** Bytes a large incomplete reply needs before parsing is worth retrying. */
  #need = 0;
  #chunks: Buffer[] = [];
  #chunkBytes = 0;
  #stack: Frame[] = [];

  // Encoder buffers: a write may hold its buffer until flushed, so a buffer goes back to the
  // free list from the write's callback, and a batch takes a free one or allocates.
  #free: Buffer[] = [];
  #scratchSize = SCRATCH_INITIAL;
  /** The whole buffer the last encoded batch lives in. */
  #owner: Buffer | null = null;
  #prefixes = new Map<string, Buffer | string>();
  #opens = new Map<string, Buffer>();
  readonly #bytesEncoding: boolean;

  private constructor(opts: RespPipelineOptions) {
    this.#opts = opts;
    this.#where = `${opts.host}:${opts.port} (${opts.origin})`;
    this.#bytesEncoding = opts.encoding ? opts.encoding === "bytes" : IS_BUN;
    const socket = connectSocket(opts);
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("drain", () => this.#onDrain());
    socket.on("error", (err: Error) => {
      this.#socketError ??= err;
    });
    this.#closed = new Promise((resolve) => {
      socket.once("close", () => {
        this.#fail(null);
        resolve();
      });
    });
  }

  /**
   * Connects, authenticates and names the connection (redis_endpoint.ts's handshake); fails
   * with the endpoint's connect error (the same message and hint as the admin client's) on
   * refusal, timeout, a TLS or a rejected AUTH.
   */
  static async open(opts: RespPipelineOptions): Promise<RespPipeline> {
    const conn = new RespPipeline(opts);
    const timeoutMs = opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    const timer = setTimeout(() => {
      // ioredis's words for the same fault, so both stacks report it alike.
      const err = Object.assign(new Error("connect ETIMEDOUT"), { code: "ETIMEDOUT" });
      conn.#socket.destroy(err);
    }, timeoutMs);
    const steps = handshakeOf(opts).map((args) => conn.command(...args));
    // allSettled: a failed AUTH also fails SETNAME (NOAUTH); neither rejection goes unhandled.
    const results = await Promise.allSettled(steps);
    clearTimeout(timer);
    const failed = results.find((r) => r.status === "rejected") as
      | PromiseRejectedResult
      | undefined;
    if (!failed) return conn;
    conn.#socket.destroy();
    throw connectError(whereOf(opts), opts.origin, conn.#socketError ?? failed.reason);
  }

  /** Opens a fresh connection with the same options (this one is closed if still open). */
  async reconnect(): Promise<RespPipeline> {
    if (!this.#dead) this.#socket.destroy();
    return await RespPipeline.open(this.#opts);
  }

  /** True until the connection is lost or closed. */
  get connected(): boolean {
    return this.#dead === null && !this.#closing;
  }

  /** Requests waiting for replies (batches and commands), sent or not yet. */
  get inFlight(): number {
    return this.#queue.length - this.#head + this.#backlog.length;
  }

  /**
   * XADDs every entry (`XADD stream [MAXLEN ~ maxLen] * f1 v1 …`) with one write; resolves
   * with one reply per entry in order: the id, or an Error carrying Redis's message.
   * Rejects (whole batch) only when the connection is lost. With `ids` false a landed
   * entry's reply is `""`: no string is made per entry for callers that need no ids.
   */
  xaddBatch(
    stream: string,
    entries: EntryField[][],
    maxLen = 0,
    ids = true,
  ): Promise<(string | Error)[]> {
    if (this.#dead || this.#closing) return Promise.reject(this.#unusable());
    if (entries.length === 0) return Promise.resolve([]);
    return new Promise<(string | Error)[]>((resolve, reject) => {
      this.#submit({
        pending: {
          batch: true,
          ids,
          count: entries.length,
          got: 0,
          replies: new Array(entries.length),
          resolve: resolve as (v: unknown) => void,
          reject,
        },
        stream,
        entries,
        maxLen,
        data: null,
      });
    });
  }

  /** Any command; resolves with the reply as JS values, rejects with Redis's error. */
  command(...args: string[]): Promise<unknown> {
    if (this.#dead || this.#closing) return Promise.reject(this.#unusable());
    const data = Buffer.from(encodeCommand(args));
    return new Promise((resolve, reject) => {
      this.#submit({
        pending: { batch: false, ids: true, count: 1, got: 0, replies: null, resolve, reject },
        stream: "",
        entries: null,
        maxLen: 0,
        data,
      });
    });
  }

  /**
   * Sends a request now, or after those waiting when the socket has more than it can take
   * (write returned false, no 'drain' yet). Batches are encoded only when sent: a pile of
   * batches written at once would sit in the runtime's socket buffer, copied there, which
   * cost the snapshot as much CPU as encoding them (Bun); the kernel's buffer keeps Redis
   * busy meanwhile.
   */
  #submit(request: Outgoing): void {
    if (this.#needDrain || this.#backlog.length > 0) this.#backlog.push(request);
    else this.#send(request);
  }

  #send(request: Outgoing): void {
    let data = request.data;
    if (data === null) {
      try {
        data = this.#bytesEncoding
          ? this.#encodeBytes(request.stream, request.entries!, request.maxLen)
          : this.#encodeString(request.stream, request.entries!, request.maxLen);
      } catch (err) {
        request.pending.reject(err as Error); // e.g. a value that is not a string
        return;
      }
    }
    this.#queue.push(request.pending);
    this.#write(data, request.data === null);
  }

  #onDrain(): void {
    this.#needDrain = false;
    while (this.#backlog.length > 0 && !this.#needDrain && !this.#dead) {
      this.#send(this.#backlog.shift()!);
    }
  }

  /** Sends QUIT after the requests in flight and resolves once the socket is closed. */
  async close(): Promise<void> {
    if (this.#dead || this.#closing) {
      if (!this.#dead) await this.#closed;
      return;
    }
    const quit = this.command("QUIT").catch(() => {/* closed anyway */});
    this.#closing = true;
    const timer = setTimeout(() => this.#socket.destroy(), 2000);
    await quit;
    this.#socket.end();
    await this.#closed;
    clearTimeout(timer);
  }

  // ---------------------------------------------------------------- encoding

  /** Per-entry prefix `*N\r\n$4\r\nXADD\r\n$len\r\nstream\r\n[MAXLEN ~ n]$1\r\n*\r\n`. */
  #prefixString(stream: string, maxLen: number, fieldCount: number): string {
    const key = `${fieldCount}|${maxLen}|${stream}`;
    let p = this.#prefixes.get(key) as string | undefined;
    if (p === undefined) {
      const args = ["XADD", stream];
      if (maxLen > 0) args.push("MAXLEN", "~", String(maxLen));
      args.push("*");
      p = "*" + (args.length + fieldCount) + "\r\n" + args.map(bulk).join("");
      if (this.#prefixes.size > 64) this.#prefixes.clear();
      this.#prefixes.set(key, p);
    }
    return p;
  }

  #prefixBytes(stream: string, maxLen: number, fieldCount: number): Buffer {
    const key = `b${fieldCount}|${maxLen}|${stream}`;
    let p = this.#prefixes.get(key) as Buffer | undefined;
    if (p === undefined) {
      p = Buffer.from(this.#prefixString(stream, maxLen, fieldCount));
      this.#prefixes.set(key, p);
    }
    return p;
  }

  /** UTF-8 bytes of a WrappedField's constant half, encoded once. */
  #openBytes(open: string): Buffer {
    let b = this.#opens.get(open);
    if (b === undefined) {
      if (this.#opens.size >= 256) this.#opens.clear();
      b = Buffer.from(open);
      this.#opens.set(open, b);
    }
    return b;
  }

  /** A buffer of at least `size` bytes that no pending write holds. */
  #take(size: number): Buffer {
    while (this.#free.length > 0) {
      const b = this.#free.pop()!;
      if (b.length >= size) return b;
    }
    if (size > this.#scratchSize) this.#scratchSize = size;
    return Buffer.allocUnsafe(this.#scratchSize);
  }

  #release(buf: Buffer): void {
    if (buf.length >= this.#scratchSize && this.#free.length < 4) this.#free.push(buf);
  }

  /**
   * Deno: one string for the whole batch (header lengths by Buffer.byteLength), encoded with
   * one TextEncoder.encodeInto — far fewer native calls than writing argument by argument.
   * Fields given as bytes end the string so far: it is encoded, then the bytes are copied.
   */
  #encodeString(stream: string, entries: EntryField[][], maxLen: number): Buffer {
    let str = "";
    let lastCount = -1;
    let prefix = "";
    let buf: Buffer | null = null;
    let pos = 0;
    /** Encodes `str` at `pos`, with room for `more` bytes after it. */
    const flush = (more: number) => {
      const need = pos + str.length * 3 + more;
      if (buf === null || need > buf.length) {
        const bigger = this.#take(Math.max(need, buf === null ? 0 : buf.length * 2));
        if (buf !== null) {
          buf.copy(bigger, 0, 0, pos);
          this.#release(buf);
        }
        buf = bigger;
      }
      if (str !== "") pos += textEncoder.encodeInto(str, buf.subarray(pos)).written;
      str = "";
      return buf;
    };
    for (let i = 0; i < entries.length; i++) {
      const fields = entries[i];
      if (fields.length !== lastCount) {
        lastCount = fields.length;
        prefix = this.#prefixString(stream, maxLen, lastCount);
      }
      str += prefix;
      for (let j = 0; j < fields.length; j++) {
        const f = fields[j];
        if (typeof f === "string") {
          str += "$" + Buffer.byteLength(f) + "\r\n" + f + "\r\n";
        } else if (f instanceof ByteSlice) {
          str += "$" + (f.end - f.start) + "\r\n";
          const b = flush(f.end - f.start);
          pos = copyBytes(b, pos, f.bytes, f.start, f.end);
          str += "\r\n";
        } else if (typeof f.body === "string") {
          const s = f.open + f.body + "}";
          str += "$" + Buffer.byteLength(s) + "\r\n" + s + "\r\n";
        } else {
          const open = this.#openBytes(f.open);
          const body = f.body;
          const n = open.length + body.end - body.start + 1;
          str += "$" + n + "\r\n";
          const b = flush(n);
          pos = copyBytes(b, pos, open, 0, open.length);
          pos = copyBytes(b, pos, body.bytes, body.start, body.end);
          b[pos++] = 0x7d; // }
          str += "\r\n";
        }
      }
    }
    if (buf === null) {
      // Strings only: one encodeInto, the buffer sized by UTF-16 length first.
      buf = this.#take(str.length);
      let res = textEncoder.encodeInto(str, buf);
      if (res.read < str.length) {
        this.#release(buf);
        buf = this.#take(Buffer.byteLength(str));
        res = textEncoder.encodeInto(str, buf);
      }
      this.#owner = buf;
      return buf.subarray(0, res.written);
    }
    const out: Buffer = flush(0);
    this.#owner = out;
    return out.subarray(0, pos);
  }

  /**
   * Bun: each argument is written with Buffer.utf8Write right after a header sized for its
   * UTF-16 length; multi-byte text rarely changes the digit count, and then the bytes are
   * moved (copyWithin) to make room for the longer header.
   */
  #encodeBytes(stream: string, entries: EntryField[][], maxLen: number): Buffer {
    let buf = this.#take(this.#scratchSize);
    let pos = 0;
    let lastCount = -1;
    let prefix: Buffer = Buffer.alloc(0);
    const utf8Write = (buf as unknown as {
      utf8Write(s: string, offset: number, length: number): number;
    }).utf8Write;
    for (let i = 0; i < entries.length; i++) {
      const fields = entries[i];
      if (fields.length !== lastCount) {
        lastCount = fields.length;
        prefix = this.#prefixBytes(stream, maxLen, lastCount);
      }
      // Worst case for this entry: prefix + per field header (13) + 3 bytes/char + CRLF.
      let need = prefix.length;
      for (let j = 0; j < fields.length; j++) {
        const f = fields[j];
        need += typeof f === "string"
          ? f.length * 3 + 16
          : f instanceof ByteSlice
          ? f.end - f.start + 16
          : this.#openBytes(f.open).length + f.body.length * 3 + 17;
      }
      if (pos + need > buf.length) {
        this.#scratchSize = Math.max(buf.length * 2, pos + need);
        const bigger = Buffer.allocUnsafe(this.#scratchSize);
        buf.copy(bigger, 0, 0, pos);
        buf = bigger;
      }
      for (let k = 0; k < prefix.length; k++) buf[pos + k] = prefix[k];
      pos += prefix.length;
      for (let j = 0; j < fields.length; j++) {
        const f = fields[j];
        if (f instanceof ByteSlice) {
          // Bytes: the length is known, so the header goes first and the bytes right after.
          const len = f.end - f.start;
          pos = writeBulkHeader(buf, pos, len, digitCount(len));
          pos = copyBytes(buf, pos, f.bytes, f.start, f.end);
          buf[pos] = CR;
          buf[pos + 1] = LF;
          pos += 2;
          continue;
        }
        if (typeof f !== "string" && typeof f.body !== "string") {
          const open = this.#openBytes(f.open);
          const body = f.body;
          const len = open.length + body.end - body.start + 1;
          pos = writeBulkHeader(buf, pos, len, digitCount(len));
          open.copy(buf, pos);
          pos = copyBytes(buf, pos + open.length, body.bytes, body.start, body.end);
          buf[pos] = 0x7d; // }
          buf[pos + 1] = CR;
          buf[pos + 2] = LF;
          pos += 3;
          continue;
        }
        let n: number;
        let start: number;
        let guess: number;
        if (typeof f === "string") {
          guess = digitCount(f.length);
          start = pos + guess + 3;
          n = utf8Write.call(buf, f, start, buf.length - start);
        } else {
          // The schema half's bytes are cached: only the payload is encoded.
          const open = this.#openBytes(f.open);
          const body = f.body as string;
          guess = digitCount(open.length + body.length + 1);
          start = pos + guess + 3;
          open.copy(buf, start);
          n = open.length;
          n += utf8Write.call(buf, body, start + n, buf.length - start - n);
          buf[start + n++] = 0x7d; // }
        }
        const digits = digitCount(n);
        if (digits !== guess) buf.copyWithin(pos + digits + 3, start, start + n);
        pos = writeBulkHeader(buf, pos, n, digits) + n;
        buf[pos] = CR;
        buf[pos + 1] = LF;
        pos += 2;
      }
    }
    this.#owner = buf;
    return buf.subarray(0, pos);
  }

  #write(data: Buffer, fromScratch: boolean): void {
    if (fromScratch) {
      const owner = this.#owner!;
      this.#owner = null;
      // Flushed (or failed): the buffer may serve a later batch.
      if (!this.#socket.write(data, () => this.#release(owner))) this.#needDrain = true;
    } else if (!this.#socket.write(data)) this.#needDrain = true;
  }

  // ----------------------------------------------------------------- replies

  #onData(chunk: Buffer): void {
    if (this.#need > 0) {
      this.#chunks.push(chunk);
      this.#chunkBytes += chunk.length;
      if (this.#chunkBytes < this.#need) return;
      this.#buf = Buffer.concat(this.#chunks, this.#chunkBytes);
      this.#chunks = [];
      this.#chunkBytes = 0;
      this.#need = 0;
      this.#pos = 0;
    } else if (this.#buf !== null && this.#pos < this.#buf.length) {
      this.#buf = Buffer.concat([this.#buf.subarray(this.#pos), chunk]);
      this.#pos = 0;
    } else {
      this.#buf = chunk;
      this.#pos = 0;
    }
    try {
      this.#parse();
    } catch (err) {
      // A protocol error: nothing later on this connection can be trusted.
      this.#socketError ??= err as Error;
      this.#socket.destroy();
    }
  }

  #parse(): void {
    const buf = this.#buf!;
    const len = buf.length;
    let pos = this.#pos;
    while (pos < len) {
      const start = pos;
      const type = buf[pos];
      // The header line: find CR LF.
      let eol = pos + 1;
      while (eol < len && buf[eol] !== CR) eol++;
      if (eol + 1 >= len) break; // header incomplete
      let value: unknown;
      if (type === 36 /* $ */ || type === 42 /* * */ || type === 58 /* : */) {
        let i = pos + 1;
        let neg = false;
        if (buf[i] === 45) {
          neg = true;
          i++;
        }
        let n = 0;
        for (; i < eol; i++) n = n * 10 + (buf[i] - 48);
        if (neg) n = -n;
        pos = eol + 2;
        if (type === 36) {
          if (n < 0) value = null;
          else {
            if (pos + n + 2 > len) {
              // Body not here yet: wait until the whole bulk string has arrived.
              this.#waitFor(start, pos - start + n + 2);
              return;
            }
            const p = this.#stack.length === 0 ? this.#queue[this.#head] : undefined;
            value = p !== undefined && !p.ids ? "" : decodeBulk(buf, pos, pos + n);
            pos += n + 2;
          }
        } else if (type === 58) {
          value = n;
        } else if (n < 0) {
          value = null;
        } else if (n > 0) {
          this.#stack.push({ items: new Array(n), idx: 0 });
          continue;
        } else {
          value = [];
        }
      } else if (type === 43 /* + */) {
        value = decodeBulk(buf, pos + 1, eol);
        pos = eol + 2;
      } else if (type === 45 /* - */) {
        value = new RedisReplyError(buf.toString("utf8", pos + 1, eol));
        pos = eol + 2;
      } else {
        throw new Error(
          `Redis protocol error: unexpected byte ${type} in a reply from ${this.#where}`,
        );
      }
      this.#pos = pos;
      this.#deliver(value);
    }
    this.#pos = pos;
    if (pos >= len) this.#buf = null;
  }

  /** Keeps the unparsed tail and waits for `total` bytes before parsing again. */
  #waitFor(start: number, total: number): void {
    const rest = this.#buf!.subarray(start);
    this.#buf = null;
    this.#pos = 0;
    this.#chunks = [rest];
    this.#chunkBytes = rest.length;
    this.#need = total;
  }

  #deliver(reply: unknown): void {
    let value = reply;
    const stack = this.#stack;
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      top.items[top.idx++] = value;
      if (top.idx < top.items.length) return;
      stack.pop();
      value = top.items;
    }
    const p = this.#queue[this.#head];
    if (p === undefined) {
      throw new Error(`Redis protocol error: a reply from ${this.#where} nobody asked for`);
    }
    if (p.batch) {
      p.replies![p.got++] = value instanceof Error ? value : String(value);
      if (p.got < p.count) return;
      this.#shift();
      p.resolve(p.replies);
    } else {
      this.#shift();
      if (value instanceof Error) p.reject(value);
      else p.resolve(value);
    }
  }

  #shift(): void {
    this.#queue[this.#head++] = undefined as unknown as Pending;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  // ------------------------------------------------------------ connection loss

  #unusable(): RedisConnectionError {
    if (this.#dead) {
      return new RedisConnectionError(this.#dead.message, this.#dead.code, {
        cause: this.#dead.cause,
      });
    }
    return new RedisConnectionError(
      `Redis connection to ${this.#where} is closed`,
      "ECONNRESET",
    );
  }

  /** Marks the connection dead and rejects everything in flight. */
  #fail(err: Error | null): void {
    if (this.#dead) return;
    const cause = err ?? this.#socketError;
    const code = (cause as { code?: string } | null)?.code ?? "ECONNRESET";
    const message = this.#closing && !cause
      ? `Redis connection to ${this.#where} is closed`
      : `Redis connection to ${this.#where} lost${cause ? `: ${cause.message}` : ""}`;
    this.#dead = new RedisConnectionError(message, code, cause ? { cause } : undefined);
    const pending = this.#queue.slice(this.#head);
    for (const r of this.#backlog) pending.push(r.pending);
    this.#backlog = [];
    this.#queue = [];
    this.#head = 0;
    this.#stack = [];
    this.#buf = null;
    this.#chunks = [];
    this.#need = 0;
    for (const p of pending) p.reject(this.#unusable());
  }
}

/** Bun's and Node's native Latin-1 decoding (no encoding lookup), where there is one. */
const latin1Slice = (Buffer.prototype as unknown as {
  latin1Slice?: (this: Buffer, start: number, end: number) => string;
}).latin1Slice;

/**
 * Decodes a bulk/simple string. Short ASCII ones (stream ids, one per entry written) are
 * checked by a loop and made by one Latin-1 call: building them a character at a time
 * made a string per character, a good part of the snapshot's garbage.
 */
function decodeBulk(buf: Buffer, start: number, end: number): string {
  if (end - start <= 32) {
    for (let i = start; i < end; i++) {
      if (buf[i] >= 0x80) return buf.toString("utf8", start, end);
    }
    return latin1Slice !== undefined
      ? latin1Slice.call(buf, start, end)
      : buf.toString("latin1", start, end);
  }
  return buf.toString("utf8", start, end);
}
