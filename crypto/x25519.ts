// X25519 (RFC 7748 §5). `Dh` is the seam through which a runtime may inject a faster
// backend (node:crypto KeyObjects); `nobleDh` is the portable reference.
//
// WireGuard requires that a shared secret of all zeros (a low-order public key) is an
// error, not a key: `sharedSecret` returns null for it.

import { x25519 } from '@noble/curves/ed25519.js';
import { isZero } from './ct.js';
import { checkBytes } from './errors.js';
import { randomBytes, type RandomSource, systemRandom } from './random.js';

export const KEY_LENGTH = 32;

export interface Dh {
  readonly name: string;
  /** A new, clamped private key. */
  generatePrivateKey(random?: RandomSource): Uint8Array;
  publicKey(privateKey: Uint8Array): Uint8Array;
  /** X25519(privateKey, publicKey), or null when the result is all zeros. */
  sharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null;
}

/** Clamps a 32-byte scalar in place (RFC 7748 §5, decodeScalar25519), as `wg genkey` does. */
export function clamp(key: Uint8Array): Uint8Array {
  key[0]! &= 248;
  key[31] = (key[31]! & 127) | 64;
  return key;
}

export const nobleDh: Dh = {
  name: '@noble/curves',
  generatePrivateKey(random: RandomSource = systemRandom) {
    return clamp(randomBytes(KEY_LENGTH, random));
  },
  publicKey(privateKey) {
    checkBytes('privateKey', privateKey, KEY_LENGTH);
    return x25519.getPublicKey(privateKey);
  },
  sharedSecret(privateKey, publicKey) {
    checkBytes('privateKey', privateKey, KEY_LENGTH);
    checkBytes('publicKey', publicKey, KEY_LENGTH);
    let shared: Uint8Array;
    try {
      shared = x25519.getSharedSecret(privateKey, publicKey);
    } catch {
      return null; // noble refuses an all-zero result
    }
    return isZero(shared) ? null : shared;
  },
};
