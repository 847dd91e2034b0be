// The addon's ChaCha20-Poly1305 (native/src/aead.cc, on OpenSSL) must be a drop-in
// replacement for @noble's: byte-identical on random inputs, in place and out of place,
// and a flipped bit anywhere refused.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nobleAead, open, seal } from '../../crypto/aead.js';
import { createAddonAead } from '../../src/runtime/addon-crypto.js';

// No skip: the addon is built by setup, and the runtime needs it for its TUN anyway.
describe('addon ChaCha20-Poly1305 backend', () => {
  const aead = createAddonAead();

  it('is byte-identical to noble, each opens the other, and a flipped bit is refused', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.maxSafeNat(), fc.uint8Array({ maxLength: 1500 }), fc.uint8Array({ maxLength: 40 }), fc.nat(), (k, n, m, aad, bit) => {
      const a = seal(aead, k, n, m, aad);
      expect(a).toEqual(seal(nobleAead, k, n, m, aad));
      expect(open(nobleAead, k, n, a, aad)).toEqual(m);
      expect(open(aead, k, n, a, aad)).toEqual(m);
      const i = bit % (a.length * 8);
      a[i >> 3]! ^= 1 << (i & 7);
      expect(open(aead, k, n, a, aad)).toBeNull();
    }), { numRuns: 300 });
  });

  it('seals and opens in place, as the engine does, and where out overlaps the input elsewhere', () => {
    const key = new Uint8Array(32).fill(7);
    const message = Uint8Array.from({ length: 100 }, (_, i) => i);
    const expected = seal(nobleAead, key, 2 ** 40 + 3, message, new Uint8Array(0));
    const buf = new Uint8Array(116);
    buf.set(message);
    aead.seal(key, 2 ** 40 + 3, buf.subarray(0, 100), new Uint8Array(0), buf);
    expect(buf).toEqual(expected);
    expect(aead.open(key, 2 ** 40 + 3, buf, new Uint8Array(0), buf.subarray(0, 100))).toBe(true);
    expect(buf.subarray(0, 100)).toEqual(message);
    // Shifted by 4 bytes: plaintext at 4.., output at 0..
    const shifted = new Uint8Array(120);
    shifted.set(message, 4);
    aead.seal(key, 9, shifted.subarray(4, 104), new Uint8Array(0), shifted.subarray(0, 116));
    expect(shifted.subarray(0, 116)).toEqual(seal(nobleAead, key, 9, message, new Uint8Array(0)));
  });

  it('refuses a wrong key or counter, and checks lengths before touching memory', () => {
    const key = new Uint8Array(32).fill(1);
    const sealed = seal(aead, key, 5, new Uint8Array(64), new Uint8Array(0));
    expect(open(aead, key, 6, sealed, new Uint8Array(0))).toBeNull();
    expect(open(aead, new Uint8Array(32).fill(2), 5, sealed, new Uint8Array(0))).toBeNull();
    expect(open(aead, key, 5, sealed.subarray(0, 15), new Uint8Array(0))).toBeNull();
    expect(() => aead.seal(key, 1, new Uint8Array(10), new Uint8Array(0), new Uint8Array(25))).toThrow(RangeError);
    expect(() => aead.seal(new Uint8Array(31), 1, new Uint8Array(10), new Uint8Array(0), new Uint8Array(26))).toThrow(RangeError);
    expect(() => aead.open(key, -1, sealed, new Uint8Array(0), new Uint8Array(64))).toThrow(RangeError);
  });
});
