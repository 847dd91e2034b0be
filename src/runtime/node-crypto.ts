// Faster backends for the crypto seams, on node:crypto (OpenSSL). The core (crypto/,
// tunnel/) never imports this: the Node runtime injects it. bench/crypto.ts measures
// it against the portable @noble backends; test/unit/node-crypto.test.ts checks it
// against the same published vectors.

import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
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

// X25519 keys as KeyObjects: raw 32 bytes behind the fixed DER prefixes of RFC 8410.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

const privateKeyObject = (raw: Uint8Array): KeyObject =>
  createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
const publicKeyObject = (raw: Uint8Array): KeyObject =>
  createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });

/**
 * X25519 on node:crypto. KeyObjects of static keys are cached per Uint8Array (weakly),
 * so a device's own key and its peers' keys are parsed once.
 */
export function createNodeDh(): Dh {
  const privates = new WeakMap<Uint8Array, KeyObject>();
  const publics = new WeakMap<Uint8Array, KeyObject>();
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
      return clamp(randomBytes(32, random));
    },
    publicKey(privateKey) {
      checkBytes('privateKey', privateKey, 32);
      const der = createPublicKey(priv(privateKey)).export({ format: 'der', type: 'spki' });
      return Uint8Array.from(der.subarray(SPKI_PREFIX.length));
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

export const nodeAead: Aead = createNodeAead();
export const nodeDh: Dh = createNodeDh();
