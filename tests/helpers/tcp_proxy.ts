/**
 * A small TCP proxy for fault tests: forwards 127.0.0.1:<port> to a target and can cut a
 * connection in the middle of what a client sends (after the n-th occurrence of a marker),
 * so a pipelined batch reaches the server only in part and the client sees the connection
 * die. New connections are forwarded as usual afterwards. It can also hold back what a
 * client sends from a marker on (a slow request), or refuse and cut everything (an outage).
 */
import net from "node:net";

interface Cut {
  marker: Buffer;
  occurrence: number;
  done: () => void;
}

interface Delay {
  marker: Buffer;
  ms: number;
  done: () => void;
}

type ProxiedSocket = net.Socket & { seen?: number; carry?: Buffer; held?: Buffer[] | null };

export class TcpProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #cut: Cut | null = null;
  #delay: Delay | null = null;
  #down = false;
  /** Connections cut so far. */
  cuts = 0;

  private constructor(server: net.Server, readonly port: number) {
    this.#server = server;
  }

  static async start(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
    let proxy: TcpProxy | null = null;
    const server = net.createServer((client) => proxy!.#pipe(client, targetHost, targetPort));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  /**
   * Arms a cut: the first connection that sends `marker` for the `occurrence`-th time
   * (counted from now) forwards the bytes before that occurrence, half-closes toward the
   * server (which still runs the complete commands it got) and drops the client. Resolves
   * once cut.
   */
  cutAt(marker: string, occurrence = 1): Promise<void> {
    return new Promise((resolve) => {
      this.#cut = { marker: Buffer.from(marker, "latin1"), occurrence, done: resolve };
      for (const s of this.#sockets) (s as ProxiedSocket).seen = 0;
    });
  }

  /**
   * Arms a delay: the first client chunk that contains `marker` (from now) and everything
   * that client sends after it reach the server `ms` later, in order. Resolves when the
   * held bytes are sent on.
   */
  delayAt(marker: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#delay = { marker: Buffer.from(marker, "latin1"), ms, done: resolve };
    });
  }

  /** Drops every open connection at once. */
  cutAll(): void {
    for (const s of this.#sockets) s.destroy();
  }

  /**
   * An outage of the link: every open connection is dropped and new ones are closed at
   * once, until `up()`.
   */
  down(): void {
    this.#down = true;
    this.cutAll();
  }

  /** Ends an outage: new connections are forwarded again. */
  up(): void {
    this.#down = false;
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #pipe(client: net.Socket, host: string, port: number): void {
    if (this.#down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(port, host);
    const c = client as ProxiedSocket;
    c.seen = 0;
    c.carry = Buffer.alloc(0);
    c.held = null;
    this.#sockets.add(client);
    this.#sockets.add(upstream);
    let cutting = false;
    const drop = () => {
      client.destroy();
      // After a cut the server side closes on its own, once it has read what was sent.
      if (!cutting) upstream.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(upstream);
    };
    client.on("error", drop);
    upstream.on("error", drop);
    client.on("close", drop);
    upstream.on("close", drop);
    upstream.on("data", (d) => client.write(d));
    client.on("data", (chunk: Buffer) => {
      if (c.held) return void c.held.push(chunk);
      const delay = this.#delay;
      if (delay && chunk.includes(delay.marker)) {
        this.#delay = null;
        c.held = [chunk];
        setTimeout(() => {
          const held = c.held ?? [];
          c.held = null;
          for (const h of held) upstream.write(h);
          delay.done();
        }, delay.ms);
        return;
      }
      const cut = this.#cut;
      if (!cut) return void upstream.write(chunk);
      // Search the chunk plus the tail of the previous one (a marker may straddle chunks).
      const carry = c.carry!;
      const hay = Buffer.concat([carry, chunk]);
      let from = 0;
      for (;;) {
        const at = hay.indexOf(cut.marker, from);
        if (at < 0) break;
        from = at + cut.marker.length;
        if (at + cut.marker.length <= carry.length) continue; // counted with the last chunk
        c.seen = (c.seen ?? 0) + 1;
        if (c.seen >= cut.occurrence) {
          this.#cut = null;
          this.cuts++;
          const keep = Math.max(0, at - carry.length);
          cutting = true;
          upstream.end(chunk.subarray(0, keep));
          client.destroy();
          this.#sockets.delete(client);
          cut.done();
          return;
        }
      }
      c.carry = hay.subarray(Math.max(0, hay.length - cut.marker.length + 1));
      upstream.write(chunk);
    });
  }
}
