// AEAD_XChaCha20_Poly1305 (draft-irtf-cfrg-xchacha-03 §2): ChaCha20-Poly1305 with a
// 24-byte nonce, via HChaCha20. WireGuard uses it only for the cookie reply (§5.4.7),
// so it allocates: cookie replies are rare.

import { hchacha, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
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

/** HChaCha20 (draft-irtf-cfrg-xchacha-03 §2.2): the 32-byte subkey for key and a 16-byte nonce. */
export function hchachaSubkey(key: Uint8Array, nonce16: Uint8Array): Uint8Array {
  checkBytes('key', key, 32);
  checkBytes('nonce', nonce16, 16);
  const words = (b: Uint8Array) => {
    const out = new Uint32Array(b.length / 4);
    const view = new DataView(b.buffer, b.byteOffset, b.length);
    for (let i = 0; i < out.length; i++) out[i] = view.getUint32(i * 4, true);
    return out;
  };
  // "expand 32-byte k" as four little-endian words.
  const sigma = Uint32Array.of(0x61707865, 0x3320646e, 0x79622d32, 0x6b206574);
  const out = new Uint32Array(8);
  hchacha(sigma, words(key), words(nonce16), out);
  const bytes = new Uint8Array(32);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < 8; i++) view.setUint32(i * 4, out[i]!, true);
  return bytes;
}
