// BLAKE2s (RFC 7693) and the constructions WireGuard builds on it (paper §5.4):
//   HASH(x)       = BLAKE2s(x), 32 bytes
//   MAC(key, x)   = keyed BLAKE2s(key, x), 16 bytes (mac1, mac2, cookie)
//   HMAC(key, x)  = HMAC-BLAKE2s (RFC 2104, 64-byte block), 32 bytes
//   KDFn(key, x)  = HKDF with HMAC-BLAKE2s and empty info: n outputs of 32 bytes

import { blake2s } from '@noble/hashes/blake2.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import { checkBytes } from './errors.js';

export const HASH_LENGTH = 32;
export const MAC_LENGTH = 16;

/** BLAKE2s-256 of the concatenation of `parts`. */
export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create({ dkLen: HASH_LENGTH });
  for (const [i, p] of parts.entries()) {
    checkBytes(`part ${i}`, p);
    h.update(p);
  }
  return h.digest();
}

/** Keyed BLAKE2s with a 16-byte output: WireGuard's MAC. `key` is 1..32 bytes. */
export function mac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  checkBytes('key', key);
  if (key.length < 1 || key.length > 32) throw new RangeError(`key: expected 1 to 32 bytes, got ${key.length}`);
  const h = blake2s.create({ key, dkLen: MAC_LENGTH });
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Keyed BLAKE2s with any output length 1..32 (for test vectors and tools). */
export function blake2sKeyed(key: Uint8Array, data: Uint8Array, outputLength: number): Uint8Array {
  checkBytes('key', key);
  checkBytes('data', data);
  return blake2s(data, key.length > 0 ? { key, dkLen: outputLength } : { dkLen: outputLength });
}

/** HMAC(key, parts...): the seam a runtime may fill with a faster one (node:crypto's, in src/runtime). */
export type Hmac = (key: Uint8Array, ...parts: Uint8Array[]) => Uint8Array;

export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  checkBytes('key', key);
  const h = nobleHmac.create(blake2s, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/** KDF1(key, input) = t0. */
export function kdf1(key: Uint8Array, input: Uint8Array, hmac: Hmac = blake2sHmac): Uint8Array {
  const prk = hmac(key, input);
  const t0 = hmac(prk, ONE);
  prk.fill(0);
  return t0;
}

/** KDF2(key, input) = (t0, t1). */
export function kdf2(key: Uint8Array, input: Uint8Array, hmac: Hmac = blake2sHmac): [Uint8Array, Uint8Array] {
  const prk = hmac(key, input);
  const t0 = hmac(prk, ONE);
  const t1 = hmac(prk, t0, TWO);
  prk.fill(0);
  return [t0, t1];
}

/** KDF3(key, input) = (t0, t1, t2). */
export function kdf3(key: Uint8Array, input: Uint8Array, hmac: Hmac = blake2sHmac): [Uint8Array, Uint8Array, Uint8Array] {
  const prk = hmac(key, input);
  const t0 = hmac(prk, ONE);
  const t1 = hmac(prk, t0, TWO);
  const t2 = hmac(prk, t1, THREE);
  prk.fill(0);
  return [t0, t1, t2];
}

const blake2sHmac: Hmac = hmac;
