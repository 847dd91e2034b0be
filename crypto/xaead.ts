// AEAD_XChaCha20_Poly1305 (draft-irtf-cfrg-xchacha-03 §2): ChaCha20-Poly1305 with a
// 24-byte nonce, via HChaCha20. WireGuard uses it only for the cookie reply (§5.4.7),
// so it allocates: cookie replies are rare.

import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { checkBytes } from './errors.js';

export const XNONCE_LENGTH = 24;

export function xseal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  checkBytes('key', key, 32);
  checkBytes('nonce', nonce, XNONCE_LENGTH);
  checkBytes('plaintext', plaintext);
  checkBytes('aad', aad);
  return xchacha20poly1305(key, nonce, aad).encrypt(plaintext);
}

/** Returns the plaintext, or null when the tag does not verify. */
export function xopen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  checkBytes('key', key, 32);
  checkBytes('nonce', nonce, XNONCE_LENGTH);
  checkBytes('sealed', sealed);
  checkBytes('aad', aad);
  if (sealed.length < 16) return null;
  try {
    return xchacha20poly1305(key, nonce, aad).decrypt(sealed);
  } catch {
    return null;
  }
}
