/** Number of hash slots of a Redis Cluster. */
export const SLOT_COUNT = 16384;

/** CRC16-CCITT (XMODEM) table, the checksum Redis Cluster uses for key slots. */
const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let b = 0; b < 8; b++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    t[i] = crc;
  }
  return t;
})();

const encoder = new TextEncoder();

function crc16(bytes: Uint8Array, start: number, end: number): number {
  let crc = 0;
  for (let i = start; i < end; i++) {
    crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]) & 0xff];
  }
  return crc;
}

/**
 * The hash slot of a key (`CLUSTER KEYSLOT`): CRC16 of the key's UTF-8 bytes mod 16384, or of
 * only the part between the first `{` and the next `}` when that part is not empty.
 */
export function keySlot(key: string): number {
  const bytes = encoder.encode(key);
  let start = 0;
  let end = bytes.length;
  const open = bytes.indexOf(0x7b); // {
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  return crc16(bytes, start, end) % SLOT_COUNT;
}
