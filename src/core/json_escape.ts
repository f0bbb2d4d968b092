/**
 * JSON string escaping on bytes, shared by the sources' byte writers.
 *
 * @module
 */

const BACKSLASH = 0x5c;
const QUOTE = 0x22;
const HEX_DIGITS = new TextEncoder().encode("0123456789abcdef");

/**
 * Writes byte `c`, one that JSON must escape (`"`, `\`, a control character), escaped like
 * JSON.stringify does: a short escape where JSON has one, else `\u00XX`. Returns the
 * position after it.
 */
export function writeJsonEscape(b: Uint8Array, p: number, c: number): number {
  b[p++] = BACKSLASH;
  switch (c) {
    case QUOTE:
    case BACKSLASH:
      b[p++] = c;
      break;
    case 8:
      b[p++] = 0x62; // b
      break;
    case 9:
      b[p++] = 0x74; // t
      break;
    case 10:
      b[p++] = 0x6e; // n
      break;
    case 12:
      b[p++] = 0x66; // f
      break;
    case 13:
      b[p++] = 0x72; // r
      break;
    default:
      b[p++] = 0x75; // u
      b[p++] = 0x30;
      b[p++] = 0x30;
      b[p++] = HEX_DIGITS[c >> 4];
      b[p++] = HEX_DIGITS[c & 15];
  }
  return p;
}
