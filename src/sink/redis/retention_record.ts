/**
 * Which streams of an id retention trimmed, and up to where: fields of the id's checkpoint
 * hash, `retention:trimmed:<stream>` → `{"through":"<id>","at":"<time>"}`, where entries
 * with ids below `through` may be gone. Each is written before the trim it describes, so a
 * crash between the two leaves a record that says a little more than happened, never less.
 * `replicant verify` reads them to name the tables it cannot rebuild.
 */

export const RETENTION_FIELD_PREFIX = "retention:trimmed:";

export interface RetentionRecord {
  stream: string;
  /** Entries below this id may have been trimmed (null: the record is damaged). */
  through: string | null;
  at: string;
}

export function retentionField(stream: string): string {
  return RETENTION_FIELD_PREFIX + stream;
}

export function retentionValue(through: string, at = new Date()): string {
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
