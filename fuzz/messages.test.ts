// The wire-format decoders (tunnel/messages.ts) against a naive reference written from
// the paper's §5.4 table: classify and decodeMessage on any bytes (and on values that are
// not bytes at all), the fields' offsets and byte order, the transport counter above and
// below 2^53, and encode -> decode round trips.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  COOKIE_REPLY_LENGTH, INITIATION_LENGTH, MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_TRANSPORT,
  RESPONSE_LENGTH,
} from '../tunnel/constants.js';
import {
  classify, decodeMessage, encodeCookieReply, encodeInitiation, encodeResponse, receiverIndexOf, transportCounterOf,
  writeTransportHeader,
} from '../tunnel/messages.js';
import { fcParams } from './budget.js';

/** The reference: what a message of each type must look like. */
function referenceClassify(b: Uint8Array): number | string {
  if (b.length === 0) return 'empty';
  const type = b[0]!;
  if (![1, 2, 3, 4].includes(type)) return 'unknown-type';
  if (b.length < 4) return 'bad-length';
  if (b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return 'reserved-nonzero';
  const want = { 1: 148, 2: 92, 3: 64 }[type as 1 | 2 | 3];
  if (want !== undefined) return b.length === want ? type : 'bad-length';
  return b.length >= 32 ? type : 'bad-length';
}

const le32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset).getUint32(at, true);

/** Bytes that look like messages often enough: a type byte, mostly-zero reserved bytes, lengths near the real ones. */
const messageLike: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.tuple(
    fc.integer({ min: 0, max: 6 }),
    fc.constantFrom(0, 0, 0, 1, 128),
    fc.constantFrom(0, 1, 3, 4, 31, 32, 33, 63, 64, 65, 91, 92, 93, 147, 148, 149, 1500),
    fc.nat(),
  ).map(([type, reserved, length, seed]) => {
    const b = new Uint8Array(length);
    let x = seed | 1;
    for (let i = 0; i < length; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      b[i] = x & 255;
    }
    if (length > 0) b[0] = type;
    if (length > 3) { b[1] = 0; b[2] = reserved; b[3] = 0; }
    return b;
  }),
);

describe('wire format decoders', () => {
  it('classify agrees with the reference on any bytes', () => {
    fc.assert(fc.property(messageLike, (b) => {
      expect(classify(b)).toBe(referenceClassify(b));
    }), fcParams(1000));
  });

  it('decodeMessage never throws, and refuses exactly what classify refuses', () => {
    fc.assert(fc.property(fc.oneof(messageLike, fc.anything() as fc.Arbitrary<unknown>), (b) => {
      const d = decodeMessage(b as Uint8Array);
      if (!(b instanceof Uint8Array)) {
        expect(d.ok).toBe(false);
        return;
      }
      const c = classify(b);
      expect(d.ok).toBe(typeof c === 'number');
      if (!d.ok) expect(d.reason).toBe(c);
    }), fcParams(1000));
  });

  it('decoded fields are views at the paper\'s offsets, little-endian indices, nothing copied', () => {
    fc.assert(fc.property(messageLike, (b) => {
      const d = decodeMessage(b);
      if (!d.ok) return;
      const m = d.message;
      const view = (v: Uint8Array, at: number, n: number): void => {
        expect(v.buffer).toBe(b.buffer);
        expect(v.byteOffset).toBe(b.byteOffset + at);
        expect(v.length).toBe(n);
      };
      switch (m.type) {
        case MESSAGE_INITIATION:
          expect(m.senderIndex).toBe(le32(b, 4));
          view(m.ephemeral, 8, 32); view(m.encryptedStatic, 40, 48); view(m.encryptedTimestamp, 88, 28);
          view(m.mac1, 116, 16); view(m.mac2, 132, 16);
          break;
        case MESSAGE_RESPONSE:
          expect([m.senderIndex, m.receiverIndex]).toEqual([le32(b, 4), le32(b, 8)]);
          view(m.ephemeral, 12, 32); view(m.encryptedNothing, 44, 16); view(m.mac1, 60, 16); view(m.mac2, 76, 16);
          break;
        case MESSAGE_COOKIE_REPLY:
          expect(m.receiverIndex).toBe(le32(b, 4));
          view(m.nonce, 8, 24); view(m.encryptedCookie, 32, 32);
          break;
        case MESSAGE_TRANSPORT:
          expect(m.receiverIndex).toBe(le32(b, 4));
          expect(receiverIndexOf(b)).toBe(m.receiverIndex);
          view(m.counterBytes, 8, 8); view(m.encryptedPacket, 16, b.length - 16);
          break;
      }
    }), fcParams(1000));
  });

  it('the transport counter reads exactly below 2^53 and is refused (-1) at or above it', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.nat({ max: 0xffff_ffff }), (counter, index) => {
      const b = new Uint8Array(32);
      b[0] = 4;
      new DataView(b.buffer).setUint32(4, index, true);
      new DataView(b.buffer).setBigUint64(8, counter, true);
      expect(receiverIndexOf(b)).toBe(index);
      expect(transportCounterOf(b)).toBe(counter < 1n << 53n ? Number(counter) : -1);
    }), fcParams(1000));
  });

  it('writeTransportHeader then decode gives back the index and counter', () => {
    fc.assert(fc.property(fc.nat({ max: 0xffff_ffff }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (index, counter) => {
      const b = new Uint8Array(48).fill(0xee);
      writeTransportHeader(b, index, counter);
      expect(classify(b)).toBe(MESSAGE_TRANSPORT);
      expect(receiverIndexOf(b)).toBe(index);
      expect(transportCounterOf(b)).toBe(counter);
      expect(new DataView(b.buffer).getBigUint64(8, true)).toBe(BigInt(counter));
    }), fcParams(1000));
  });

  it('encoders round-trip through the decoder, and refuse bad fields with RangeError only', () => {
    const index = fc.oneof(fc.nat({ max: 0xffff_ffff }), fc.constantFrom(-1, 2 ** 32, 1.5, Number.NaN));
    const bytes = (n: number) => fc.oneof(fc.uint8Array({ minLength: n, maxLength: n }), fc.uint8Array({ maxLength: n + 2 }));
    const ok = (i: number) => Number.isInteger(i) && i >= 0 && i <= 0xffff_ffff;
    fc.assert(fc.property(index, index, bytes(32), bytes(48), bytes(28), bytes(16), bytes(24), (s, r, e, st, ts, nothing, nonce) => {
      const attempt = <T>(valid: boolean, f: () => T, check: (x: T) => void): void => {
        if (valid) check(f());
        else expect(f).toThrow(RangeError);
      };
      attempt(ok(s) && e.length === 32 && st.length === 48 && ts.length === 28,
        () => encodeInitiation({ senderIndex: s, ephemeral: e, encryptedStatic: st, encryptedTimestamp: ts }), (out) => {
          expect(out.length).toBe(INITIATION_LENGTH);
          const d = decodeMessage(out);
          expect(d.ok && d.message.type === MESSAGE_INITIATION && d.message.senderIndex === s).toBe(true);
          if (d.ok && d.message.type === MESSAGE_INITIATION) expect([...d.message.encryptedStatic]).toEqual([...st]);
        });
      attempt(ok(s) && ok(r) && e.length === 32 && nothing.length === 16,
        () => encodeResponse({ senderIndex: s, receiverIndex: r, ephemeral: e, encryptedNothing: nothing }), (out) => {
          expect(out.length).toBe(RESPONSE_LENGTH);
          const d = decodeMessage(out);
          expect(d.ok && d.message.type === MESSAGE_RESPONSE && d.message.senderIndex === s && d.message.receiverIndex === r).toBe(true);
        });
      const cookie = st.subarray(0, 32);
      attempt(ok(r) && nonce.length === 24 && cookie.length === 32,
        () => encodeCookieReply({ receiverIndex: r, nonce, encryptedCookie: cookie }), (out) => {
          expect(out.length).toBe(COOKIE_REPLY_LENGTH);
          const d = decodeMessage(out);
          expect(d.ok && d.message.type === MESSAGE_COOKIE_REPLY && d.message.receiverIndex === r).toBe(true);
        });
    }), fcParams(500));
  });
});
