import type { StreamScan } from "../../ports/stream_sink.ts";
import type { RedisClient } from "./redis_connection.ts";

export type StreamEntry = [id: string, fields: string[]];

/**
 * Every entry of a stream, oldest first, in pages of `count` (`XRANGE`); the next page is
 * asked for while the caller works on the current one. A missing stream has no pages.
 */
export async function* streamPages(
  client: RedisClient,
  stream: string,
  count = 5000,
): AsyncGenerator<StreamEntry[]> {
  const read = (start: string) =>
    client.xrange(stream, start, "+", "COUNT", count) as Promise<StreamEntry[]>;
  let next = read("-");
  try {
    for (;;) {
      const page = await next;
      if (page.length === count) next = read("(" + page[page.length - 1][0]);
      if (page.length > 0) yield page;
      if (page.length < count) return;
    }
  } finally {
    // A caller that stops early leaves the page asked for ahead unread.
    next.catch(() => {});
  }
}

/** The StreamScan of a Redis connection (XLEN, XRANGE pages). */
export function redisStreamScan(client: RedisClient): StreamScan {
  return {
    length: (stream) => client.xlen(stream),
    pages: (stream) => streamPages(client, stream),
  };
}
