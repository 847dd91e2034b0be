// AEAD_CHACHA20_POLY1305 (RFC 8439 §2.8) with WireGuard's nonce: 32 bits of zeros
// followed by the 64-bit little-endian message counter (WireGuard paper §5.4.6).
//
// `Aead` is the seam through which a runtime may inject a faster backend (node:crypto,
// the addon); `nobleAead` is the portable reference that the core uses by default.

import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { checkBytes, checkCounter } from './errors.js';

export const KEY_LENGTH = 32;
export const TAG_LENGTH = 16;
export const NONCE_LENGTH = 12;

export interface Aead {
  readonly name: string;
  /**
   * Encrypts `plaintext` under (key, counter) and writes ciphertext || tag into `out`,
   * which must be exactly plaintext.length + 16 bytes and may start at `plaintext`
   * (in place). Returns `out`.
   */
  seal(key: Uint8Array, counter: number, plaintext: Uint8Array, aad: Uint8Array, out: Uint8Array): Uint8Array;
  /**
   * Verifies and decrypts `sealed` (ciphertext || tag) into `out`, exactly
   * sealed.length - 16 bytes, possibly in place. Returns false, with `out` undefined,
   * when the tag does not verify.
   */
  open(key: Uint8Array, counter: number, sealed: Uint8Array, aad: Uint8Array, out: Uint8Array): boolean;
}

/** Writes WireGuard's 12-byte nonce for `counter` into `nonce`. */
export function writeNonce(nonce: Uint8Array, counter: number): Uint8Array {
  const view = new DataView(nonce.buffer, nonce.byteOffset, NONCE_LENGTH);
  view.setUint32(0, 0, true);
  view.setUint32(4, counter >>> 0, true);
  view.setUint32(8, Math.floor(counter / 0x1_0000_0000), true);
  return nonce;
}

function checkArgs(key: Uint8Array, counter: number, input: Uint8Array, aad: Uint8Array, out: Uint8Array, outLength: number): void {
  checkBytes('key', key, KEY_LENGTH);
  checkCounter('counter', counter);
  checkBytes('input', input);
  checkBytes('aad', aad);
  checkBytes('out', out, outLength);
}

export function createNobleAead(): Aead {
  const nonce = new Uint8Array(NONCE_LENGTH);
  return {
    name: '@noble/ciphers',
    seal(key, counter, plaintext, aad, out) {
      checkArgs(key, counter, plaintext, aad, out, plaintext.length + TAG_LENGTH);
      return chacha20poly1305(key, writeNonce(nonce, counter), aad).encrypt(plaintext, out);
    },
    open(key, counter, sealed, aad, out) {
      if (sealed.length < TAG_LENGTH) return false;
      checkArgs(key, counter, sealed, aad, out, sealed.length - TAG_LENGTH);
      try {
        chacha20poly1305(key, writeNonce(nonce, counter), aad).decrypt(sealed, out);
        return true;
      } catch {
        return false;
      }
    },
  };
}

/** AEAD_CHACHA20_POLY1305 with an arbitrary 12-byte nonce (RFC 8439 §2.8), for vectors and tools. */
export function sealWithNonce(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  checkBytes('key', key, KEY_LENGTH);
  checkBytes('nonce', nonce, NONCE_LENGTH);
  return chacha20poly1305(key, nonce, aad).encrypt(plaintext);
}

/** Opens with an arbitrary 12-byte nonce; null when the tag does not verify. */
export function openWithNonce(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  checkBytes('key', key, KEY_LENGTH);
  checkBytes('nonce', nonce, NONCE_LENGTH);
  if (sealed.length < TAG_LENGTH) return null;
  try {
    return chacha20poly1305(key, nonce, aad).decrypt(sealed);
  } catch {
    return null;
  }
}

/** The portable default. */
export const nobleAead: Aead = createNobleAead();

/** Allocating convenience for handshakes and tests: returns ciphertext || tag. */
export function seal(aead: Aead, key: Uint8Array, counter: number, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  return aead.seal(key, counter, plaintext, aad, new Uint8Array(plaintext.length + TAG_LENGTH));
}

/** Allocating convenience: returns the plaintext, or null when the tag is wrong. */
export function open(aead: Aead, key: Uint8Array, counter: number, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  if (sealed.length < TAG_LENGTH) return null;
  const out = new Uint8Array(sealed.length - TAG_LENGTH);
  return aead.open(key, counter, sealed, aad, out) ? out : null;
}
