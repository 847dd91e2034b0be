// The node:crypto backends must be drop-in replacements for the @noble ones: the same
// published vectors, and byte-identical results on random inputs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nobleAead, open, seal } from '../../crypto/aead.js';
import { nobleDh } from '../../crypto/x25519.js';
import { hmac } from '../../crypto/blake2s.js';
import { nodeAead, nodeDh, nodeHmac } from '../../src/runtime/node-crypto.js';
import { MemNet } from '../support/memnet.js';
import { readEcho } from '../support/packets.js';
import { hex, loadVectors, toHex } from '../support/vectors.js';

describe('node:crypto X25519 backend', () => {
  const { vectors } = loadVectors<Record<string, string>>('x25519-rfc7748.json');
  for (const v of vectors.filter((x) => x.type !== 'iterated')) {
    it(v.name!, () => {
      if (v.type === 'scalar_mult') {
        expect(toHex(nodeDh.sharedSecret(hex(v.scalar!), hex(v.u!))!)).toBe(v.output);
      } else {
        expect(toHex(nodeDh.publicKey(hex(v.alice_private!)))).toBe(v.alice_public);
        expect(toHex(nodeDh.sharedSecret(hex(v.alice_private!), hex(v.bob_public!))!)).toBe(v.shared);
      }
    });
  }
  it('agrees with noble on random keys, and refuses low-order points', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (a, u) => {
      expect(nodeDh.sharedSecret(a, u)).toEqual(nobleDh.sharedSecret(a, u));
      expect(nodeDh.publicKey(a)).toEqual(nobleDh.publicKey(a));
    }), { numRuns: 100 });
    expect(nodeDh.sharedSecret(nobleDh.generatePrivateKey(), new Uint8Array(32))).toBeNull();
  });
  it('makes keys with OpenSSL that are clamped and agree with noble on their public key and shared secrets', () => {
    for (let i = 0; i < 20; i++) {
      const a = nodeDh.generatePrivateKey();
      expect(a[0]! & 7).toBe(0);
      expect(a[31]! & 0xc0).toBe(0x40);
      const pub = nodeDh.publicKey(a);
      expect(pub).toEqual(nobleDh.publicKey(a));
      pub.fill(0); // a copy: the cached public key is not the caller's to change
      expect(nodeDh.publicKey(a)).toEqual(nobleDh.publicKey(a));
      const b = nobleDh.generatePrivateKey();
      expect(nodeDh.sharedSecret(a, nobleDh.publicKey(b))).toEqual(nobleDh.sharedSecret(b, nobleDh.publicKey(a)));
    }
  });
});

describe('node:crypto ChaCha20-Poly1305 backend', () => {
  it('is byte-identical to noble, and each opens the other', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.maxSafeNat(), fc.uint8Array({ maxLength: 1500 }), fc.uint8Array({ maxLength: 40 }), (k, n, m, aad) => {
      const a = seal(nodeAead, k, n, m, aad);
      expect(a).toEqual(seal(nobleAead, k, n, m, aad));
      expect(open(nobleAead, k, n, a, aad)).toEqual(m);
      expect(open(nodeAead, k, n, a, aad)).toEqual(m);
      if (a.length > 0) {
        a[a.length - 1]! ^= 1;
        expect(open(nodeAead, k, n, a, aad)).toBeNull();
      }
    }), { numRuns: 200 });
  });
});

describe('node:crypto HMAC-BLAKE2s backend', () => {
  it('is byte-identical to noble on any key and parts', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 3 }), (key, parts) => {
      expect(nodeHmac(key, ...parts)).toEqual(hmac(key, ...parts));
    }), { numRuns: 200 });
  });

  it('a device using it handshakes with one using noble, both ways', () => {
    const net = new MemNet();
    const a = net.add('a', '192.0.2.1', { dh: nodeDh, aead: nodeAead, hmac: nodeHmac });
    const b = net.add('b', '192.0.2.2');
    net.connect(a, b, { psk: new Uint8Array(32).fill(3) });
    net.ping(a, b, 1);
    net.deliverAll();
    net.ping(b, a, 2);
    net.deliverAll();
    expect(b.delivered.map((p) => readEcho(p)!.seq)).toEqual([1]);
    expect(a.delivered.map((p) => readEcho(p)!.seq)).toEqual([2]);
    expect(a.events.filter((e) => e.type === 'handshake-complete')).toHaveLength(1);
  });
});
