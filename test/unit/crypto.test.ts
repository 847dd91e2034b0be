// crypto/ against the published vectors in ../shared/vectors, named by their source,
// plus properties of the AEAD seam that the engine relies on.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  constantTimeEqual, createNobleAead, decodeKey, encodeKey, generatePresharedKey, generatePrivateKey,
  hash, hmac, isZero, kdf1, kdf2, kdf3, KeyFormatError, mac, nobleDh, open, openWithNonce, publicKeyOf,
  seal, sealWithNonce, tai64n, tai64nAfter, tai64nFromMillis, writeNonce, xopen, xseal, blake2sKeyed,
} from '../../crypto/index.js';
import { hchachaSubkey } from '../../crypto/xaead.js';
import { hex, loadVectors, toHex } from '../support/vectors.js';

type AeadVector = { name: string; key: string; nonce: string; aad: string; plaintext: string; ciphertext: string; tag: string };

describe('ChaCha20-Poly1305 (RFC 8439)', () => {
  const { vectors } = loadVectors<AeadVector>('chacha20poly1305-rfc8439.json');
  for (const v of vectors) {
    it(v.name, () => {
      const sealed = sealWithNonce(hex(v.key), hex(v.nonce), hex(v.plaintext), hex(v.aad));
      expect(toHex(sealed)).toBe(v.ciphertext + v.tag);
      expect(toHex(openWithNonce(hex(v.key), hex(v.nonce), sealed, hex(v.aad))!)).toBe(v.plaintext);
      sealed[0]! ^= 1;
      expect(openWithNonce(hex(v.key), hex(v.nonce), sealed, hex(v.aad))).toBeNull();
    });
  }

  it('writeNonce matches a BigInt little-endian encoding', () => {
    fc.assert(fc.property(fc.maxSafeNat(), (c) => {
      const expected = new Uint8Array(12);
      new DataView(expected.buffer).setBigUint64(4, BigInt(c), true);
      expect(writeNonce(new Uint8Array(12), c)).toEqual(expected);
    }));
  });

  const aead = createNobleAead();
  const key = new Uint8Array(32).fill(7);
  it('property: open(seal(m)) = m, in place and into a separate buffer', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1500 }), fc.uint8Array({ maxLength: 32 }), fc.maxSafeNat(), (m, aad, counter) => {
      const sealed = seal(aead, key, counter, m, aad);
      expect(open(aead, key, counter, sealed, aad)).toEqual(m);
      const buf = new Uint8Array(m.length + 16);
      buf.set(m);
      aead.seal(key, counter, buf.subarray(0, m.length), aad, buf);
      expect(buf).toEqual(sealed);
      expect(aead.open(key, counter, buf, aad, buf.subarray(0, m.length))).toBe(true);
      expect(buf.subarray(0, m.length)).toEqual(m);
    }), { numRuns: 200 });
  });

  it('property: any flipped bit in ciphertext, tag, aad or counter is refused', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.nat(), fc.nat({ max: 7 }), fc.constantFrom('sealed', 'aad', 'counter'), (m, pos, bit, where) => {
      const aad = Uint8Array.of(1, 2, 3);
      const sealed = seal(aead, key, 5, m, aad);
      if (where === 'sealed') sealed[pos % sealed.length]! ^= 1 << bit;
      if (where === 'aad') aad[pos % aad.length]! ^= 1 << bit;
      const counter = where === 'counter' ? 5 ^ (1 << bit) : 5;
      expect(open(aead, key, counter, sealed, aad)).toBeNull();
    }), { numRuns: 300 });
  });

  it('refuses wrong argument types and lengths with TypeError / RangeError', () => {
    expect(() => aead.seal(new Uint8Array(31), 0, new Uint8Array(1), new Uint8Array(0), new Uint8Array(17))).toThrow(RangeError);
    expect(() => aead.seal(key, -1, new Uint8Array(1), new Uint8Array(0), new Uint8Array(17))).toThrow(RangeError);
    expect(() => aead.seal(key, 0, new Uint8Array(1), new Uint8Array(0), new Uint8Array(16))).toThrow(RangeError);
    expect(() => aead.seal('k' as unknown as Uint8Array, 0, new Uint8Array(1), new Uint8Array(0), new Uint8Array(17))).toThrow(TypeError);
    expect(aead.open(key, 0, new Uint8Array(15), new Uint8Array(0), new Uint8Array(0))).toBe(false);
  });
});

describe('XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03)', () => {
  const { vectors } = loadVectors<Record<string, string>>('xchacha20poly1305-draft.json');
  for (const v of vectors) {
    it(v.name!, () => {
      if (v.type === 'hchacha20') {
        expect(toHex(hchachaSubkey(hex(v.key!), hex(v.nonce!)))).toBe(v.subkey);
      } else {
        const sealed = xseal(hex(v.key!), hex(v.nonce!), hex(v.plaintext!), hex(v.aad!));
        expect(toHex(sealed)).toBe(v.ciphertext! + v.tag!);
        expect(toHex(xopen(hex(v.key!), hex(v.nonce!), sealed, hex(v.aad!))!)).toBe(v.plaintext);
        sealed[sealed.length - 1]! ^= 0x80;
        expect(xopen(hex(v.key!), hex(v.nonce!), sealed, hex(v.aad!))).toBeNull();
      }
    });
  }
});

describe('BLAKE2s (RFC 7693 and the BLAKE2 KATs)', () => {
  const { vectors } = loadVectors<{ name: string; key: string; input: string; output_len: number; output: string }>('blake2s-rfc7693.json');
  for (const v of vectors) {
    it(v.name, () => {
      const out = blake2sKeyed(hex(v.key), hex(v.input), v.output_len);
      expect(toHex(out)).toBe(v.output);
      if (v.key === '' && v.output_len === 32) expect(toHex(hash(hex(v.input)))).toBe(v.output);
      if (v.key !== '' && v.output_len === 16) expect(toHex(mac(hex(v.key), hex(v.input)))).toBe(v.output);
    });
  }
  it('hash of parts equals hash of their concatenation', () => {
    fc.assert(fc.property(fc.uint8Array(), fc.uint8Array(), (a, b) => {
      expect(hash(a, b)).toEqual(hash(Uint8Array.from([...a, ...b])));
    }), { numRuns: 100 });
  });
});

describe('HMAC-BLAKE2s KDF (wireguard-go device/kdf_test.go)', () => {
  const { vectors } = loadVectors<Record<string, string>>('hkdf-blake2s-wireguard.json');
  for (const [i, v] of vectors.entries()) {
    it(`vector ${i + 1}: key "${Buffer.from(hex(v.key!)).toString()}"`, () => {
      const key = hex(v.key!);
      const input = hex(v.input!);
      const [t0, t1, t2] = kdf3(key, input);
      expect([toHex(t0), toHex(t1), toHex(t2)]).toEqual([v.t0, v.t1, v.t2]);
      expect(kdf2(key, input).map(toHex)).toEqual([v.t0, v.t1]);
      expect(toHex(kdf1(key, input))).toBe(v.t0);
      expect(hmac(key, input)).toHaveLength(32);
    });
  }
});

describe('X25519 (RFC 7748)', () => {
  const { vectors } = loadVectors<Record<string, string | number>>('x25519-rfc7748.json');
  for (const v of vectors) {
    it(String(v.name), () => {
      if (v.type === 'scalar_mult') {
        expect(toHex(nobleDh.sharedSecret(hex(v.scalar as string), hex(v.u as string))!)).toBe(v.output);
      } else if (v.type === 'iterated') {
        let k = hex(v.start_k as string);
        let u = hex(v.start_u as string);
        for (let i = 0; i < (v.iterations as number); i++) [k, u] = [nobleDh.sharedSecret(k, u)!, k];
        expect(toHex(k)).toBe(v.output);
      } else {
        const a = hex(v.alice_private as string);
        const b = hex(v.bob_private as string);
        expect(toHex(nobleDh.publicKey(a))).toBe(v.alice_public);
        expect(toHex(nobleDh.publicKey(b))).toBe(v.bob_public);
        expect(toHex(nobleDh.sharedSecret(a, hex(v.bob_public as string))!)).toBe(v.shared);
        expect(toHex(nobleDh.sharedSecret(b, hex(v.alice_public as string))!)).toBe(v.shared);
      }
    });
  }
  it('an all-zero shared secret (low-order public key) is refused', () => {
    const sk = generatePrivateKey();
    expect(nobleDh.sharedSecret(sk, new Uint8Array(32))).toBeNull();
    const one = new Uint8Array(32);
    one[0] = 1; // u = 1 is a point of small order
    expect(nobleDh.sharedSecret(sk, one)).toBeNull();
  });
  it('generated private keys are clamped as wg genkey clamps them', () => {
    for (let i = 0; i < 20; i++) {
      const k = generatePrivateKey();
      expect(k[0]! & 7).toBe(0);
      expect(k[31]! & 0x80).toBe(0);
      expect(k[31]! & 0x40).toBe(0x40);
    }
  });
});

describe('TAI64N (WireGuard rule)', () => {
  const { vectors } = loadVectors<Record<string, string | number>>('tai64n.json');
  for (const v of vectors) {
    it(String(v.utc), () => {
      expect(toHex(tai64n(v.unix_seconds as number, v.nanoseconds as number, false))).toBe(v.tai64n);
      expect(toHex(tai64n(v.unix_seconds as number, v.nanoseconds as number))).toBe(v.tai64n_whitened);
    });
  }
  it('orders by time, and whitening never reorders seconds', () => {
    expect(tai64nAfter(tai64nFromMillis(1_700_000_001_000), tai64nFromMillis(1_700_000_000_999))).toBe(true);
    expect(tai64nAfter(tai64nFromMillis(1_700_000_000_000), tai64nFromMillis(1_700_000_000_000))).toBe(false);
    expect(tai64nAfter(tai64nFromMillis(1_700_000_000_000), tai64nFromMillis(1_700_000_000_020))).toBe(false);
  });
});

describe('key encoding (wg genkey / pubkey / genpsk)', () => {
  it('round-trips every 32-byte key', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (k) => {
      const text = encodeKey(k);
      expect(text).toBe(Buffer.from(k).toString('base64'));
      expect(decodeKey(text)).toEqual(k);
    }));
  });
  it('the RFC 7748 §6.1 public key in wg form', () => {
    const pub = publicKeyOf(hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
    expect(encodeKey(pub)).toBe(Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex').toString('base64'));
  });
  it('refuses malformed text and says what is wrong without echoing it', () => {
    const good = encodeKey(generatePresharedKey());
    const cases: [string, RegExp][] = [
      [good.slice(0, 43), /44 base64 characters.*got 43/],
      [good + 'A', /got 45/],
      [`${good.slice(0, 10)}!${good.slice(11)}`, /character 11 is not in the base64 alphabet/],
      [`${good.slice(0, 43)}A`, /ends in '='/],
      [`${good.slice(0, 42)}B=`, /bits that a 32-byte key cannot set/],
    ];
    for (const [text, message] of cases) {
      let err: unknown;
      try { decodeKey(text); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(KeyFormatError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain(text);
    }
  });
});

describe('constant-time helpers', () => {
  it('constantTimeEqual agrees with byte equality', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), (a, b) => {
      expect(constantTimeEqual(a, b)).toBe(Buffer.from(a).equals(Buffer.from(b)));
      expect(constantTimeEqual(a, Uint8Array.from(a))).toBe(true);
    }));
    expect(isZero(new Uint8Array(32))).toBe(true);
    expect(isZero(Uint8Array.of(0, 0, 1))).toBe(false);
  });
});
