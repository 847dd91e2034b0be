// TAI64N timestamps as WireGuard's handshake initiation carries them (paper §5.4.2):
// 8 bytes big-endian seconds since 1970 plus 2^62 + 10, then 4 bytes big-endian
// nanoseconds. Like wireguard-go and the kernel, the low 24 bits of the nanoseconds are
// cleared so the timestamp does not reveal the clock to better than ~16.8 ms.

export const TAI64N_LENGTH = 12;
const TAI64_BASE = 0x4000_0000_0000_000an;
const WHITENER_MASK = 0xffffff;

/** Encodes a wall-clock time given as whole seconds and nanoseconds since the epoch. */
export function tai64n(unixSeconds: number, nanoseconds: number, whiten = true): Uint8Array {
  if (!Number.isSafeInteger(unixSeconds) || unixSeconds < 0) throw new RangeError('unixSeconds: expected a non-negative integer');
  if (!Number.isInteger(nanoseconds) || nanoseconds < 0 || nanoseconds > 999_999_999) {
    throw new RangeError('nanoseconds: expected an integer from 0 to 999999999');
  }
  const out = new Uint8Array(TAI64N_LENGTH);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, TAI64_BASE + BigInt(unixSeconds));
  view.setUint32(8, whiten ? nanoseconds - (nanoseconds & WHITENER_MASK) : nanoseconds);
  return out;
}

/** TAI64N of a millisecond wall clock (Date.now()-style). */
export function tai64nFromMillis(wallMillis: number): Uint8Array {
  const seconds = Math.floor(wallMillis / 1000);
  return tai64n(seconds, Math.floor((wallMillis - seconds * 1000) * 1e6));
}

/** True when timestamp `a` is strictly later than `b` (bytewise big-endian). */
export function tai64nAfter(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < TAI64N_LENGTH; i++) {
    if (a[i] !== b[i]) return a[i]! > b[i]!;
  }
  return false;
}
