/**
 * Retention that respects consumers: each stream of a replication is trimmed (`XTRIM …
 * MINID`) to what every consumer group of that stream has acknowledged — below the lowest,
 * over its groups, of the group's oldest pending entry and the entry after its last-delivered
 * id — never below `min-length` entries nor entries younger than `min-age-ms`. A stream
 * without groups is trimmed by the hard cap `max-length` only; the cap also trims entries
 * some group has not acknowledged, and says so (the `warn` and `trimmed` hooks).
 *
 * The bound is computed and applied by one Lua script per call, so it is atomic with respect
 * to consumers (a group created or an entry acknowledged meanwhile cannot be missed), on a
 * single server and on a Redis Cluster alike (the script touches one key). A call removes at
 * most STEP entries, so no call blocks Redis for long; a pass repeats calls until a stream is
 * done. The end of every stream is protected by the StreamTailGuard (what a resume, an undo
 * or a cut-off snapshot batch reads stays exactly as it would be without retention).
 */
import { createHash } from "node:crypto";
import type { RedisClient } from "./redis_connection.ts";
import type { StreamTailGuard } from "./stream_tail_guard.ts";

/** Most entries one script call removes. */
const STEP = 1000;
/** Most script calls per stream and pass; the next pass continues. */
const MAX_CALLS_PER_STREAM = 2000;
/** Page size when reading a protected window of newest entries. */
const PAGE = 1000;

/**
 * KEYS[1] the stream. ARGV: mode (`plan` | `trim`), min-length, min-age-ms, max-length (0:
 * none), ceiling (entries at or above it stay), step, limit (trim: the bound planned; ''),
 * acked (`1`: the server has `XTRIM … ACKED`).
 * Returns {entries removed (plan: removable), bound, of them unacknowledged, length,
 * more (1: the step limited this call), the group with the lowest floor}.
 */
export const TRIM_SCRIPT = `
local key = KEYS[1]
if redis.call('TYPE', key).ok ~= 'stream' then return {0, '', 0, 0, 0, ''} end
local mode = ARGV[1]
local minLength = tonumber(ARGV[2])
local minAge = tonumber(ARGV[3])
local maxLength = tonumber(ARGV[4])
local ceiling = ARGV[5]
local step = tonumber(ARGV[6])
local limit = ARGV[7]
local nativeAcked = ARGV[8] == '1'

local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parts(a)
  local bm, bs = parts(b)
  if am ~= bm then return am < bm end
  return as < bs
end
-- nil is "no bound"
local function lower(a, b)
  if a == nil then return b end
  if b == nil then return a end
  if less(b, a) then return b end
  return a
end
local function higher(a, b)
  if a == nil or b == nil then return nil end
  if less(a, b) then return b end
  return a
end

local len = redis.call('XLEN', key)
local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
if #first == 0 or not less(first[1][1], ceiling) then return {0, '', 0, len, 0, ''} end
local firstId = first[1][1]

-- What every group has acknowledged: below its oldest pending entry and past its last
-- delivered one. Without groups nothing is acknowledged: only the cap trims.
local groups = redis.call('XINFO', 'GROUPS', key)
local floor = nil
local floorGroup = ''
if #groups == 0 then floor = '0-0' end
for _, g in ipairs(groups) do
  local name, delivered, pending
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1]
    elseif g[i] == 'last-delivered-id' then delivered = g[i + 1]
    elseif g[i] == 'pending' then pending = g[i + 1] end
  end
  local ms, seq = string.match(delivered, '^(%d+)-(%d+)$')
  local gfloor = delivered
  if tonumber(seq) < 9007199254740991 then
    gfloor = ms .. '-' .. string.format('%.0f', tonumber(seq) + 1)
  end
  if pending > 0 then
    local summary = redis.call('XPENDING', key, name)
    gfloor = lower(gfloor, summary[2])
  end
  if floor == nil or less(gfloor, floor) then
    floor = gfloor
    floorGroup = name
  end
end

local soft = floor
if minAge > 0 then
  local now = redis.call('TIME')
  local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  soft = lower(soft, string.format('%.0f', nowMs - minAge) .. '-0')
end
local capped = maxLength > 0 and len > maxLength
if not less(firstId, soft) and not capped then return {0, '', 0, len, 0, floorGroup} end

-- The oldest entries: the bounds that remove a given number of them.
local head = redis.call('XRANGE', key, '-', '+', 'COUNT', step + 1)
local function cut(n)
  if n <= 0 then return '0-0' end
  if n < #head then return head[n + 1][1] end
  return nil
end
if minLength > 0 then soft = lower(soft, cut(len - minLength)) end
local bound = soft
if capped then bound = higher(soft, cut(len - maxLength)) end
bound = lower(bound, ceiling)
local more = 0
if #head > step and less(head[step + 1][1], bound) then
  bound = head[step + 1][1]
  more = 1
end
if limit ~= '' and less(limit, bound) then
  bound = limit
  more = 0
end

local n, unread = 0, 0
for i = 1, #head do
  local id = head[i][1]
  if not less(id, bound) then break end
  n = n + 1
  if #groups > 0 and not less(id, floor) then unread = unread + 1 end
end
if mode == 'trim' and n > 0 then
  local removed = nil
  if nativeAcked and #groups > 0 and not less(floor, bound) then
    local r = redis.pcall('XTRIM', key, 'MINID', '=', bound, 'ACKED')
    if type(r) == 'number' then removed = r end
  end
  if removed == nil then removed = redis.call('XTRIM', key, 'MINID', '=', bound) end
  n = removed
end
return {n, bound, unread, len, more, floorGroup}
`;
const TRIM_SCRIPT_SHA = createHash("sha1").update(TRIM_SCRIPT).digest("hex");

export interface RetentionSettings {
  minLength: number;
  minAgeMs: number;
  /** Hard cap; undefined: none. */
  maxLength?: number;
}

/** What one pass did to one stream. */
export interface StreamTrim {
  stream: string;
  removed: number;
  /** Removed entries that some consumer group had not acknowledged (the hard cap). */
  unread: number;
  /** Entries below this id are gone (the last bound applied). */
  through: string;
  /** The group whose floor was the lowest, when unread entries were dropped. */
  group: string;
}

export interface RetentionHooks {
  /**
   * Before each trim: records that entries of `stream` below `through` may go. The trim
   * that follows never goes further, so a crash in between leaves a record that says at
   * most a little more than happened, never less.
   */
  record(stream: string, through: string): Promise<void>;
  trimmed?(t: StreamTrim): void;
  warn?(message: string): void;
}

type ScriptReply = [number, string, number, number, number, string];

export class StreamRetention {
  #sha: string | null = null;
  #nativeAcked: boolean | null = null;

  constructor(
    private readonly client: RedisClient,
    private readonly settings: RetentionSettings,
    private readonly guard: StreamTailGuard,
    private readonly hooks: RetentionHooks,
  ) {}

  /** Trims each of `streams` as far as the settings allow; returns what was removed. */
  async pass(streams: readonly string[], signal?: AbortSignal): Promise<StreamTrim[]> {
    this.#nativeAcked ??= await this.#hasNativeAcked();
    const out: StreamTrim[] = [];
    for (const stream of streams) {
      if (signal?.aborted) break;
      const t = await this.trimStream(stream, signal);
      if (t.removed > 0) {
        out.push(t);
        this.hooks.trimmed?.(t);
        if (t.unread > 0) {
          this.hooks.warn?.(
            `retention: the hard cap max-length ${this.settings.maxLength} trimmed ${t.unread} ` +
              `entr${t.unread === 1 ? "y" : "ies"} of stream ${t.stream} that consumer group ` +
              `${
                JSON.stringify(t.group)
              } had not acknowledged (entries below ${t.through} are gone)`,
          );
        }
      }
    }
    return out;
  }

  /** One stream: script calls until nothing more may go (or the per-pass limit). */
  async trimStream(stream: string, signal?: AbortSignal): Promise<StreamTrim> {
    const total: StreamTrim = { stream, removed: 0, unread: 0, through: "", group: "" };
    // Valid for the whole pass: the stream only grows at its end, and an undo only deletes
    // entries after the protected ones.
    const ceiling = await this.#ceiling(stream);
    if (ceiling === null) return total;
    for (let call = 0; call < MAX_CALLS_PER_STREAM && !signal?.aborted; call++) {
      const [removable, planned] = await this.#run(stream, "plan", ceiling, "");
      if (removable === 0) break;
      await this.hooks.record(stream, planned);
      // The same bound, computed again: lower if a group appeared or moved back meanwhile.
      const [removed, bound, unread, , more, group] = await this.#run(
        stream,
        "trim",
        ceiling,
        planned,
      );
      if (removed === 0) break;
      total.removed += removed;
      total.unread += unread;
      total.through = bound;
      if (unread > 0) total.group = group;
      if (more !== 1) break;
    }
    return total;
  }

  /**
   * The oldest entry the tail guard protects (entries at or above it stay), or null when the
   * stream must not be trimmed now (too short, missing, or a batch into an empty stream).
   */
  async #ceiling(stream: string): Promise<string | null> {
    const newest = await this.client.xrevrange(stream, "+", "-", "COUNT", 1) as [
      string,
      string[],
    ][];
    if (newest.length === 0) return null;
    const protection = this.guard.protection(stream);
    if (protection === null) return null;
    let start = protection.before ?? newest[0][0];
    let oldest: string | null = null;
    for (let left = protection.keep; left > 0;) {
      const n = Math.min(PAGE, left);
      const page = await this.client.xrevrange(stream, start, "-", "COUNT", n) as [
        string,
        string[],
      ][];
      if (page.length < n) return null;
      left -= n;
      oldest = page[n - 1][0];
      start = "(" + oldest;
    }
    return oldest;
  }

  async #run(
    stream: string,
    mode: "plan" | "trim",
    ceiling: string,
    limit: string,
  ): Promise<ScriptReply> {
    const s = this.settings;
    const args = [
      mode,
      String(s.minLength),
      String(s.minAgeMs),
      String(s.maxLength ?? 0),
      ceiling,
      String(STEP),
      limit,
      this.#nativeAcked ? "1" : "0",
    ];
    if (this.#sha !== null) {
      try {
        return await this.client.evalsha(this.#sha, 1, stream, ...args) as ScriptReply;
      } catch (err) {
        if (!/NOSCRIPT/.test((err as Error).message)) throw err;
      }
    }
    const reply = await this.client.eval(TRIM_SCRIPT, 1, stream, ...args) as ScriptReply;
    this.#sha = TRIM_SCRIPT_SHA;
    return reply;
  }

  /** Redis 8.2 and later trim with `ACKED` themselves (used for acknowledged-only trims). */
  async #hasNativeAcked(): Promise<boolean> {
    try {
      const info = await (this.client as { info(section: string): Promise<string> }).info(
        "server",
      );
      const m = /redis_version:(\d+)\.(\d+)/.exec(info);
      return m !== null && (Number(m[1]) > 8 || (Number(m[1]) === 8 && Number(m[2]) >= 2));
    } catch {
      return false;
    }
  }
}

/**
 * Runs retention passes over the streams `streams()` names (asked anew each pass, so tables
 * that join the replication are trimmed too) every `intervalMs`, and at once when `trigger`
 * is called (memory pressure). A pass that fails is reported and the next one tries again.
 */
export class RetentionLoop {
  #timer: ReturnType<typeof setTimeout> | null = null;
  #running: Promise<void> | null = null;
  #again = false;
  readonly #stop = new AbortController();

  constructor(
    private readonly retention: StreamRetention,
    private readonly streams: () => string[],
    private readonly intervalMs: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  start(): void {
    this.#schedule();
  }

  /** Runs a pass now (or right after the one running). */
  trigger(): void {
    if (this.#stop.signal.aborted) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#running = this.#pass();
  }

  /** Stops the loop; a pass in flight ends after the script call it is in. */
  async stop(): Promise<void> {
    this.#stop.abort();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  async #pass(): Promise<void> {
    try {
      do {
        this.#again = false;
        await this.retention.pass(this.streams(), this.#stop.signal);
      } while (this.#again && !this.#stop.signal.aborted);
    } catch (err) {
      this.onError(err);
    } finally {
      this.#running = null;
      this.#schedule();
    }
  }

  #schedule(): void {
    if (this.#stop.signal.aborted || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.trigger();
    }, this.intervalMs);
  }
}
