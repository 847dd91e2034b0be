// parseIpPacket (tunnel/ip.ts) against a naive reference written from RFC 791 §3.1 and
// RFC 8200 §3: any bytes, and headers generated near every boundary (IHL, total length,
// payload length against the bytes present), with trailing padding as WireGuard adds it.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseIpPacket } from '../tunnel/ip.js';
import { fcParams } from './budget.js';

type Ref = { ok: false; reason: string } | { ok: true; version: 4 | 6; src: number[]; dst: number[]; length: number };

function reference(p: Uint8Array): Ref {
  if (p.length === 0) return { ok: false, reason: 'too-short' };
  const version = p[0]! >> 4;
  const dv = new DataView(p.buffer, p.byteOffset, p.length);
  if (version === 4) {
    if (p.length < 20) return { ok: false, reason: 'too-short' };
    const ihl = p[0]! & 0xf;
    if (ihl < 5) return { ok: false, reason: 'bad-header-length' };
    const total = dv.getUint16(2);
    if (total < ihl * 4 || total > p.length) return { ok: false, reason: 'bad-length' };
    return { ok: true, version, src: [...p.subarray(12, 16)], dst: [...p.subarray(16, 20)], length: total };
  }
  if (version === 6) {
    if (p.length < 40) return { ok: false, reason: 'too-short' };
    const total = 40 + dv.getUint16(4);
    if (total > p.length) return { ok: false, reason: 'bad-length' };
    return { ok: true, version, src: [...p.subarray(8, 24)], dst: [...p.subarray(24, 40)], length: total };
  }
  return { ok: false, reason: 'bad-version' };
}

/** A header whose length fields sit near the number of bytes that follow. */
const nearValid: fc.Arbitrary<Uint8Array> = fc.tuple(
  fc.constantFrom(4, 6, 4, 6, 0, 5, 15),
  fc.integer({ min: 0, max: 15 }),
  fc.integer({ min: 0, max: 120 }),
  fc.integer({ min: -3, max: 3 }),
  fc.uint8Array({ minLength: 160, maxLength: 160 }),
).map(([version, ihl, available, skew, body]) => {
  const p = body.slice(0, available);
  if (available > 0) p[0] = (version << 4) | ihl;
  const dv = new DataView(p.buffer);
  if (version === 4 && available >= 4) dv.setUint16(2, Math.max(0, available + skew));
  if (version === 6 && available >= 6) dv.setUint16(4, Math.max(0, available - 40 + skew));
  return p;
});

/** A well-formed packet of `length` bytes followed by WireGuard padding. */
const padded: fc.Arbitrary<[Uint8Array, number]> = fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 15 }))
  .map(([v6, options, payload, padding]) => {
    const header = v6 ? 40 : 20 + options * 4;
    const length = header + payload;
    const p = new Uint8Array(length + padding).fill(0xab);
    p[0] = v6 ? 0x60 : 0x40 | (header / 4);
    if (v6) new DataView(p.buffer).setUint16(4, payload);
    else new DataView(p.buffer).setUint16(2, length);
    return [p, length];
  });

describe('parseIpPacket', () => {
  it('agrees with the reference on any bytes and on near-valid headers, and never throws', () => {
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 100 }), nearValid), (p) => {
      const got = parseIpPacket(p);
      const want = reference(p);
      expect(got.ok).toBe(want.ok);
      if (!got.ok || !want.ok) {
        expect(got.ok ? undefined : got.reason).toBe(want.ok ? undefined : want.reason);
        return;
      }
      expect([got.version, [...got.source], [...got.destination], got.length]).toEqual([want.version, want.src, want.dst, want.length]);
      // Views into the packet, never copies, never past its end.
      for (const a of [got.source, got.destination]) {
        expect(a.buffer).toBe(p.buffer);
        expect(a.byteOffset + a.length).toBeLessThanOrEqual(p.byteOffset + p.length);
      }
      expect(got.length).toBeLessThanOrEqual(p.length);
    }), fcParams(2000));
  });

  it('reads the real length of a padded packet', () => {
    fc.assert(fc.property(padded, ([p, length]) => {
      const got = parseIpPacket(p);
      expect(got.ok && got.length).toBe(length);
    }), fcParams(500));
  });

  it('works on a view into a larger buffer (as the engine calls it)', () => {
    fc.assert(fc.property(padded, fc.integer({ min: 0, max: 32 }), ([p, length], offset) => {
      const big = new Uint8Array(offset + p.length + 16).fill(0x45);
      big.set(p, offset);
      const got = parseIpPacket(big.subarray(offset, offset + p.length));
      expect(got.ok && got.length).toBe(length);
    }), fcParams(300));
  });
});
