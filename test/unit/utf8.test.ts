import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { utf8Encode } from '../../crypto/utf8.js';

describe('utf8Encode', () => {
  it('gives the protocol labels the bytes TextEncoder gives', () => {
    for (const s of ['Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s', 'WireGuard v1 zx2c4 Jason@zx2c4.com', 'mac1----', 'cookie--', '192.0.2.1|51820', 'fd00::1|1']) {
      expect(utf8Encode(s)).toEqual(new TextEncoder().encode(s));
    }
  });
  it('agrees with TextEncoder on any string, lone surrogates included', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => {
      expect(utf8Encode(s)).toEqual(new TextEncoder().encode(s));
    }), { numRuns: 2000 });
  });
});
