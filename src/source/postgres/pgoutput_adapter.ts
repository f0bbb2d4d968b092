/**
 * Everything Replicant knows of `pg-logical-replication`: the replication connection, the
 * pgoutput plugin that hands out raw messages (pgoutput_decoder.ts), flow control through
 * the connection's socket, acknowledgements, and a shutdown that never hangs. The logical
 * source sees only this adapter.
 */
import type { Buffer } from "node:buffer";
import type pg from "pg";
import { LogicalReplicationService, type PgoutputPlugin } from "pg-logical-replication";
import type { PgEndpoint } from "./pg_endpoint.ts";
import { replicationClientConfig } from "./pg_replication_slot.ts";
import { decodePgoutput, type RawMessage } from "./pgoutput_decoder.ts";
import { formatLsn, parseLsn } from "./pgoutput_position.ts";

/** pgoutput output plugin that hands out raw text values (see pgoutput_decoder.ts). */
class RawPgoutputPlugin {
  constructor(readonly options: { publication: string; messages: boolean }) {}
  get name(): string {
    return "pgoutput";
  }
  parse(buffer: Buffer): RawMessage {
    return decodePgoutput(buffer);
  }
  start(client: pg.Client, slotName: string, lastLsn: string): Promise<unknown> {
    const pub = this.options.publication.replaceAll("'", "''");
    const messages = this.options.messages ? ", messages 'true'" : "";
    return client.query(
      `START_REPLICATION SLOT "${
        slotName.replaceAll('"', '""')
      }" LOGICAL ${lastLsn} (proto_version '1', publication_names '${pub}'${messages})`,
    );
  }
}

export interface PgoutputHandlers {
  /** A pgoutput message; it points into the parser's buffer (see `pause`). */
  message(msg: RawMessage): void;
  /** A keepalive: the server's WAL end, and whether it asks for a status update now. */
  keepalive(walEnd: bigint, replyRequested: boolean): void;
  /** The connection failed. */
  error(err: Error): void;
}

export interface PgoutputStart {
  slotName: string;
  publicationName: string;
  /** Ask for logical decoding messages too (PostgreSQL 14 and later). */
  messages: boolean;
  /** The first LSN to stream from. */
  startLsn: bigint;
}

/** One logical replication connection streaming pgoutput from a slot. */
export class PgoutputConnection {
  readonly #service: LogicalReplicationService;

  /**
   * Flow control is the caller's (`pause`/`resume`): the library's awaits every message
   * (several promises each), which cost more than decoding it. Acknowledgements are manual.
   */
  constructor(endpoint: PgEndpoint, handlers: PgoutputHandlers) {
    this.#service = new LogicalReplicationService(
      replicationClientConfig(endpoint, "replicant-realtime-stream"),
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
    );
    this.#service.on("error", (err: Error) => handlers.error(err));
    this.#service.on(
      "heartbeat",
      (lsn: string, _ts: number, reply: boolean) => handlers.keepalive(parseLsn(lsn), reply),
    );
    this.#service.on("data", (_lsn: string, msg: RawMessage) => handlers.message(msg));
  }

  /** Streams until the connection ends (resolves) or fails (rejects). */
  stream(start: PgoutputStart): Promise<void> {
    const plugin = new RawPgoutputPlugin({
      publication: start.publicationName,
      messages: start.messages,
    });
    return this.#service.subscribe(
      plugin as unknown as PgoutputPlugin,
      start.slotName,
      formatLsn(start.startLsn),
    ).then(() => {});
  }

  /**
   * Reads no more from the socket. Messages point into the protocol parser's buffer, which
   * the next chunk may overwrite: pause before a message is kept past its handler.
   */
  pause(): void {
    this.#socket()?.pause?.();
  }

  resume(): void {
    this.#socket()?.resume?.();
  }

  /** Tells the server everything up to and including `lsn` is flushed. */
  acknowledge(lsn: bigint): Promise<unknown> {
    return this.#service.acknowledge(formatLsn(lsn));
  }

  /**
   * Ends the stream without hanging: a paused socket never reports its end, so resume it,
   * and give up on a polite close after two seconds by destroying the socket.
   */
  async close(): Promise<void> {
    const stream = this.#socket();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const polite = this.#service.destroy().catch(() => {});
    stream?.resume?.();
    await Promise.race([
      polite,
      new Promise<void>((r) => timer = setTimeout(r, 2000)),
    ]);
    clearTimeout(timer);
    stream?.destroy?.();
  }

  /** The library's socket (a private field): the only handle on flow control. */
  #socket(): { pause?(): void; resume?(): void; destroy?(): void } | undefined {
    // deno-lint-ignore no-explicit-any
    return (this.#service as any)._connection?.stream;
  }
}
