/**
 * `start-position.start-timestamp`: Arcion writes `YYYY-MM-DD hh:mm z` (`z` a zone such as
 * `UTC`, `PST`, `IST`). Also accepted: seconds and fractions (`hh:mm:ss.fff`), a `T` between
 * date and time, numeric offsets (`+05:30`, `Z`), and a plain number of milliseconds since
 * the epoch. A time without a zone is refused: the server's, the machine's and UTC would
 * each give another instant.
 *
 * @module
 */

/**
 * Zone abbreviations and their offsets in minutes. An abbreviation names a fixed offset, as
 * Java's `z` pattern reads it (`IST` is India, `CST` is US Central); daylight names are
 * their own entries.
 */
export const ZONE_OFFSETS: Readonly<Record<string, number>> = {
  UTC: 0,
  GMT: 0,
  Z: 0,
  WET: 0,
  BST: 60,
  CET: 60,
  CEST: 120,
  EET: 120,
  EEST: 180,
  MSK: 180,
  IST: 330,
  SGT: 480,
  HKT: 480,
  CST: -360,
  CDT: -300,
  JST: 540,
  KST: 540,
  AEST: 600,
  AEDT: 660,
  NZST: 720,
  NZDT: 780,
  EST: -300,
  EDT: -240,
  MST: -420,
  MDT: -360,
  PST: -480,
  PDT: -420,
  AKST: -540,
  AKDT: -480,
  HST: -600,
};

const FORM =
  /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?:?\s*([A-Za-z]+|[+-]\d{2}:?\d{2})$/;

/** Milliseconds since the epoch, or a message saying what is wrong. */
export function parseStartTimestamp(value: unknown): number | { problem: string } {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  const text = typeof value === "string" ? value.trim() : "";
  if (/^\d{10,16}$/.test(text)) return Number(text);
  const m = FORM.exec(text);
  const expected = 'expected "YYYY-MM-DD hh:mm[:ss] ZONE" (ZONE: UTC, PST, IST, +05:30, …) or ' +
    "milliseconds since 1970";
  if (!m) {
    const hint = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text)
      ? "; add a time zone (UTC, PST, +05:30, …): without one the instant is ambiguous"
      : "";
    return { problem: `${expected}, got ${JSON.stringify(value)}${hint}` };
  }
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  let offset: number | undefined;
  if (/^[+-]/.test(zone)) {
    const digits = zone.replace(":", "");
    offset = (zone[0] === "-" ? -1 : 1) *
      (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5)));
  } else offset = ZONE_OFFSETS[zone.toUpperCase()];
  if (offset === undefined) {
    return {
      problem: `unknown time zone ${
        JSON.stringify(zone)
      }; use a numeric offset (+05:30) or one of ${Object.keys(ZONE_OFFSETS).join(", ")}`,
    };
  }
  const ms = frac ? Number(frac.padEnd(3, "0").slice(0, 3)) : 0;
  const utc = Date.UTC(
    Number(y),
    Number(mo) - 1,
    Number(d),
    Number(h),
    Number(mi),
    Number(s ?? 0),
    ms,
  );
  const check = new Date(utc);
  if (
    check.getUTCMonth() !== Number(mo) - 1 || check.getUTCDate() !== Number(d) ||
    Number(h) > 23 || Number(mi) > 59 || Number(s ?? 0) > 59
  ) {
    return { problem: `${JSON.stringify(value)} is not a valid date and time` };
  }
  return utc - offset * 60_000;
}
