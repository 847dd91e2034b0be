// WireGuard keys as text: 32 bytes in standard base64 with padding, 44 characters,
// exactly as `wg genkey`, `wg pubkey` and `wg genpsk` print them. Decoding is strict and
// says what is wrong, without echoing the text (it may be a private key).

import { checkBytes } from './errors.js';
import { nobleDh, type Dh } from './x25519.js';
import { randomBytes, type RandomSource, systemRandom } from './random.js';

export const KEY_TEXT_LENGTH = 44;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const KEY_TEXT = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export class KeyFormatError extends Error {
  readonly code = 'ERR_KEY_FORMAT';
  override readonly name = 'KeyFormatError';
}

export function encodeKey(key: Uint8Array): string {
  checkBytes('key', key, 32);
  // Built as char codes and made into one flat string: concatenating 11 pieces would
  // leave a rope of ~20 objects behind each key held in memory.
  const codes = new Array<number>(KEY_TEXT_LENGTH);
  let o = 0;
  for (let i = 0; i < 33; i += 3) {
    const n = (key[i]! << 16) | ((key[i + 1] ?? 0) << 8) | (key[i + 2] ?? 0);
    codes[o++] = ALPHABET.charCodeAt(n >>> 18);
    codes[o++] = ALPHABET.charCodeAt((n >>> 12) & 63);
    codes[o++] = ALPHABET.charCodeAt((n >>> 6) & 63);
    codes[o++] = ALPHABET.charCodeAt(n & 63);
  }
  codes[43] = 61; // '=': 32 bytes leave one pad character
  return String.fromCharCode(...codes);
}

/** Decodes a 44-character base64 key; throws KeyFormatError saying what is wrong. */
export function decodeKey(text: string): Uint8Array {
  if (typeof text !== 'string') throw new KeyFormatError('a key must be text');
  if (text.length !== KEY_TEXT_LENGTH) {
    throw new KeyFormatError(`a key is ${KEY_TEXT_LENGTH} base64 characters ending in '=', got ${text.length} characters`);
  }
  if (!KEY_TEXT.test(text)) {
    const bad = [...text.slice(0, 43)].findIndex((c) => !ALPHABET.includes(c));
    if (bad >= 0) throw new KeyFormatError(`a key is base64: character ${bad + 1} is not in the base64 alphabet`);
    if (text[43] !== '=') throw new KeyFormatError(`a key of 32 bytes ends in '=' in base64`);
    throw new KeyFormatError('not a 32-byte key: the last base64 character has bits that a 32-byte key cannot set');
  }
  const out = new Uint8Array(32);
  let o = 0;
  for (let i = 0; i < 44; i += 4) {
    const n =
      (ALPHABET.indexOf(text[i]!) << 18) |
      (ALPHABET.indexOf(text[i + 1]!) << 12) |
      (ALPHABET.indexOf(text[i + 2]!) << 6) |
      (i + 3 < 43 ? ALPHABET.indexOf(text[i + 3]!) : 0);
    out[o++] = n >>> 16;
    out[o++] = (n >>> 8) & 255;
    if (o < 32) out[o++] = n & 255;
  }
  return out;
}

/** `wg genkey`: a clamped private key. */
export function generatePrivateKey(dh: Dh = nobleDh, random: RandomSource = systemRandom): Uint8Array {
  return dh.generatePrivateKey(random);
}

/** `wg genpsk`: 32 random bytes, not clamped. */
export function generatePresharedKey(random: RandomSource = systemRandom): Uint8Array {
  return randomBytes(32, random);
}

/** `wg pubkey`. */
export function publicKeyOf(privateKey: Uint8Array, dh: Dh = nobleDh): Uint8Array {
  return dh.publicKey(privateKey);
}
