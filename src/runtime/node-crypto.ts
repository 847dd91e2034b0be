// Faster backends for the crypto seams, on node:crypto (OpenSSL). The core (crypto/,
// tunnel/) never imports this: the Node runtime injects it. bench/crypto.ts measures
// it against the portable @noble backends; test/unit/node-crypto.test.ts checks it
// against the same published vectors.

import {
  createCipheriv, createDecipheriv, createHmac, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject,
} from 'node:crypto';
import type { Hmac } from '../../crypto/blake2s.js';
import { type Aead, KEY_LENGTH, NONCE_LENGTH, TAG_LENGTH, writeNonce } from '../../crypto/aead.js';
import { isZero } from '../../crypto/ct.js';
import { checkBytes, checkCounter } from '../../crypto/errors.js';
import { clamp, type Dh } from '../../crypto/x25519.js';
import { randomBytes, type RandomSource, systemRandom } from '../../crypto/random.js';

const AUTH = { authTagLength: TAG_LENGTH } as const;

export function createNodeAead(): Aead {
  const nonce = new Uint8Array(NONCE_LENGTH);
  return {
    name: 'node:crypto',
    seal(key, counter, plaintext, aad, out) {
      checkBytes('key', key, KEY_LENGTH);
      checkCounter('counter', counter);
      checkBytes('out', out, plaintext.length + TAG_LENGTH);
      const c = createCipheriv('chacha20-poly1305', key, writeNonce(nonce, counter), AUTH);
      if (aad.length > 0) c.setAAD(aad, { plaintextLength: plaintext.length });
      const body = c.update(plaintext);
      c.final();
      out.set(body, 0);
      out.set(c.getAuthTag(), plaintext.length);
      return out;
    },
    open(key, counter, sealed, aad, out) {
      if (sealed.length < TAG_LENGTH) return false;
      checkBytes('key', key, KEY_LENGTH);
      checkCounter('counter', counter);
      checkBytes('out', out, sealed.length - TAG_LENGTH);
      const n = sealed.length - TAG_LENGTH;
      const d = createDecipheriv('chacha20-poly1305', key, writeNonce(nonce, counter), AUTH);
      d.setAuthTag(sealed.subarray(n));
      if (aad.length > 0) d.setAAD(aad, { plaintextLength: n });
      const body = d.update(sealed.subarray(0, n));
      try {
        d.final();
      } catch {
        return false;
      }
      out.set(body, 0);
      return true;
    },
  };
}

// X25519 keys as KeyObjects. A private key is raw 32 bytes behind the fixed DER prefix of
// RFC 8410 (OpenSSL 3 decodes DER slowly, ~0.5 ms, but a static key is parsed once); a
// public key goes in and out as a JWK (RFC 8037), 20x faster than DER, which matters for
// the peer's ephemeral key in every handshake.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

const privateKeyObject = (raw: Uint8Array): KeyObject =>
  createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
const publicKeyObject = (raw: Uint8Array): KeyObject =>
  createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url') }, format: 'jwk' });
const rawOf = (base64url: string | undefined): Uint8Array => {
  const raw = Buffer.from(base64url ?? '', 'base64url');
  if (raw.length !== 32) throw new Error('node:crypto exported an X25519 key that is not 32 bytes');
  return Uint8Array.from(raw);
};

/**
 * X25519 on node:crypto. KeyObjects are cached per Uint8Array (weakly), so a device's own
 * key and its peers' keys are parsed once. An ephemeral key made with the system's
 * randomness comes from OpenSSL's own key generation with its KeyObject and public key
 * at hand, so a handshake parses no private key.
 */
export function createNodeDh(): Dh {
  const privates = new WeakMap<Uint8Array, KeyObject>();
  const publics = new WeakMap<Uint8Array, KeyObject>();
  /** The public key of each private key generated here. */
  const publicOf = new WeakMap<Uint8Array, Uint8Array>();
  const priv = (k: Uint8Array): KeyObject => {
    let o = privates.get(k);
    if (o === undefined) privates.set(k, (o = privateKeyObject(k)));
    return o;
  };
  const pub = (k: Uint8Array): KeyObject => {
    let o = publics.get(k);
    if (o === undefined) publics.set(k, (o = publicKeyObject(k)));
    return o;
  };
  return {
    name: 'node:crypto',
    generatePrivateKey(random: RandomSource = systemRandom) {
      // Another randomness source (a seeded one, in tests) decides the key itself.
      if (random !== systemRandom) return clamp(randomBytes(32, random));
      const { privateKey } = generateKeyPairSync('x25519');
      const jwk = privateKey.export({ format: 'jwk' });
      // Clamped as the other backends return it; X25519 clamps the scalar anyway, so the
      // KeyObject made from the unclamped bytes computes the same results.
      const raw = clamp(rawOf(jwk.d));
      privates.set(raw, privateKey);
      publicOf.set(raw, rawOf(jwk.x));
      return raw;
    },
    publicKey(privateKey) {
      checkBytes('privateKey', privateKey, 32);
      const known = publicOf.get(privateKey);
      if (known !== undefined) return known.slice();
      return rawOf(createPublicKey(priv(privateKey)).export({ format: 'jwk' }).x);
    },
    sharedSecret(privateKey, publicKey) {
      checkBytes('privateKey', privateKey, 32);
      checkBytes('publicKey', publicKey, 32);
      // RFC 7748 §5: the top bit of u is ignored; OpenSSL expects it masked.
      let u = publicKey;
      if ((u[31]! & 0x80) !== 0) {
        u = publicKey.slice();
        u[31]! &= 0x7f;
      }
      let shared: Uint8Array;
      try {
        shared = new Uint8Array(diffieHellman({ privateKey: priv(privateKey), publicKey: pub(u) }));
      } catch {
        return null; // OpenSSL refuses an all-zero result
      }
      return isZero(shared) ? null : shared;
    },
  };
}

/**
 * HMAC-BLAKE2s (RFC 2104 over BLAKE2s-256) on OpenSSL: about 6x @noble's per call, and a
 * handshake makes some twenty of them. OpenSSL's digest is copied out and wiped: it is key
 * material (chaining keys, transport keys).
 */
export const nodeHmac: Hmac = (key, ...parts) => {
  const h = createHmac('blake2s256', key);
  for (const p of parts) h.update(p);
  const digest = h.digest();
  const out = Uint8Array.from(digest);
  digest.fill(0);
  return out;
};

export const nodeAead: Aead = createNodeAead();
export const nodeDh: Dh = createNodeDh();
