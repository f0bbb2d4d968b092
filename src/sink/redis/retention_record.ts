/**
 * Which streams of an id retention trimmed, and up to where: fields of the id's checkpoint
 * hash, `retention:trimmed:<stream>` → `{"through":"<id>","at":"<time>"}`, where entries
 * with ids below `through` may be gone. A stream is marked before its first trim, so a
 * crash between the two can only leave a stream marked that still holds everything, never
 * the other way round. `replicant verify` reads them to name the tables it cannot rebuild.
 */

export const RETENTION_FIELD_PREFIX = "retention:trimmed:";

export interface RetentionRecord {
  stream: string;
  /** Entries below this id may have been trimmed; null: marked, no trim confirmed yet. */
  through: string | null;
  at: string;
}

export function retentionField(stream: string): string {
  return RETENTION_FIELD_PREFIX + stream;
}

export function retentionValue(through: string | null, at = new Date()): string {
  return JSON.stringify({ through, at: at.toISOString() });
}

/** The records among the fields of a checkpoint hash. */
export function retentionRecordsOf(state: Record<string, string>): Map<string, RetentionRecord> {
  const out = new Map<string, RetentionRecord>();
  for (const [field, value] of Object.entries(state)) {
    if (!field.startsWith(RETENTION_FIELD_PREFIX)) continue;
    const stream = field.slice(RETENTION_FIELD_PREFIX.length);
    let parsed: { through?: unknown; at?: unknown } = {};
    try {
      parsed = JSON.parse(value);
    } catch {
      // A damaged record still says the stream was trimmed.
    }
    out.set(stream, {
      stream,
      through: typeof parsed.through === "string" ? parsed.through : null,
      at: typeof parsed.at === "string" ? parsed.at : "",
    });
  }
  return out;
}
