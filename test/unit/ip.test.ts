import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseIpPacket, type IpParseResult } from '../../tunnel/ip.js';

// Headers built by hand, field by field (RFC 791 section 3.1, RFC 8200 section 3).

function ipv4(opts: {
  src?: number[];
  dst?: number[];
  payload?: number;
  ihl?: number;
  totalLength?: number;
  padding?: number;
}): Uint8Array {
  const ihl = opts.ihl ?? 5;
  const headerBytes = Math.max(ihl, 5) * 4;
  const payload = opts.payload ?? 8;
  const total = opts.totalLength ?? headerBytes + payload;
  const p = new Uint8Array(headerBytes + payload + (opts.padding ?? 0));
  p[0] = (4 << 4) | ihl; // version, IHL
  p[1] = 0; // DSCP/ECN
  p[2] = total >>> 8; // total length
  p[3] = total & 0xff;
  p[4] = 0x12; // identification
  p[5] = 0x34;
  p[6] = 0x40; // flags: don't fragment
  p[8] = 64; // TTL
  p[9] = 17; // protocol: UDP
  p.set(opts.src ?? [10, 0, 0, 1], 12);
  p.set(opts.dst ?? [198, 51, 100, 7], 16);
  for (let i = headerBytes; i < p.length; i++) p[i] = 0xa5;
  return p;
}

function ipv6(opts: { src?: number[]; dst?: number[]; payload?: number; payloadLength?: number; padding?: number }): Uint8Array {
  const payload = opts.payload ?? 8;
  const claimed = opts.payloadLength ?? payload;
  const p = new Uint8Array(40 + payload + (opts.padding ?? 0));
  p[0] = 6 << 4; // version, traffic class high nibble
  p[1] = 0x0a; // traffic class low nibble, flow label
  p[2] = 0xbc;
  p[3] = 0xde;
  p[4] = claimed >>> 8; // payload length
  p[5] = claimed & 0xff;
  p[6] = 58; // next header: ICMPv6
  p[7] = 64; // hop limit
  p.set(opts.src ?? [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 8);
  p.set(opts.dst ?? [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 24);
  for (let i = 40; i < p.length; i++) p[i] = 0x5a;
  return p;
}

function ok(r: IpParseResult) {
  if (!r.ok) throw new Error(`refused: ${r.reason}`);
  return r;
}

describe('parseIpPacket: good packets', () => {
  it('IPv4 with a 20-byte header', () => {
    const p = ipv4({ src: [192, 0, 2, 1], dst: [203, 0, 113, 9], payload: 28 });
    const r = ok(parseIpPacket(p));
    expect(r.version).toBe(4);
    expect(Array.from(r.source)).toEqual([192, 0, 2, 1]);
    expect(Array.from(r.destination)).toEqual([203, 0, 113, 9]);
    expect(r.length).toBe(48);
  });

  it('IPv4 addresses are views into the packet, not copies', () => {
    const p = ipv4({});
    const r = ok(parseIpPacket(p));
    expect(r.source.buffer).toBe(p.buffer);
    expect(r.destination.buffer).toBe(p.buffer);
    p[12] = 99;
    expect(r.source[0]).toBe(99);
  });

  it('IPv4 with options (IHL 15) and a header-only packet', () => {
    const r = ok(parseIpPacket(ipv4({ ihl: 15, payload: 0 })));
    expect(r.length).toBe(60);
    const bare = ok(parseIpPacket(ipv4({ payload: 0 })));
    expect(bare.length).toBe(20);
  });

  it('IPv4 followed by padding reports the real length', () => {
    const p = ipv4({ payload: 3, padding: 13 }); // 23 bytes padded to 36, as WireGuard does
    const r = ok(parseIpPacket(p));
    expect(p.length).toBe(36);
    expect(r.length).toBe(23);
  });

  it('IPv4 at a non-zero offset inside a larger buffer', () => {
    const inner = ipv4({ src: [10, 9, 8, 7] });
    const big = new Uint8Array(100);
    big.set(inner, 16);
    const r = ok(parseIpPacket(big.subarray(16, 16 + inner.length)));
    expect(Array.from(r.source)).toEqual([10, 9, 8, 7]);
    expect(r.source.byteOffset).toBe(16 + 12);
  });

  it('IPv6', () => {
    const src = [0x26, 0x07, 0x53, 0, 0x60, 0, 0x6b, 0, 0, 0, 0, 0, 0xc0, 0x5f, 0x05, 0x43];
    const r = ok(parseIpPacket(ipv6({ src, payload: 24 })));
    expect(r.version).toBe(6);
    expect(Array.from(r.source)).toEqual(src);
    expect(r.destination).toHaveLength(16);
    expect(r.destination[15]).toBe(2);
    expect(r.length).toBe(64);
  });

  it('IPv6 with no payload, and with padding', () => {
    expect(ok(parseIpPacket(ipv6({ payload: 0 }))).length).toBe(40);
    const padded = ipv6({ payload: 5, padding: 3 });
    expect(ok(parseIpPacket(padded)).length).toBe(45);
  });

  it('IPv6 with the largest payload length', () => {
    const r = ok(parseIpPacket(ipv6({ payload: 65535 })));
    expect(r.length).toBe(65575);
  });
});

describe('parseIpPacket: refusals', () => {
  it('empty', () => {
    expect(parseIpPacket(new Uint8Array(0))).toEqual({ ok: false, reason: 'too-short' });
  });

  it('versions other than 4 and 6', () => {
    for (const v of [0, 1, 2, 3, 5, 7, 8, 15]) {
      const p = ipv4({});
      p[0] = (v << 4) | 5;
      expect(parseIpPacket(p)).toEqual({ ok: false, reason: 'bad-version' });
    }
  });

  it('IPv4 shorter than 20 bytes, at every length', () => {
    const full = ipv4({ payload: 0 });
    for (let n = 1; n < 20; n++) {
      expect(parseIpPacket(full.subarray(0, n))).toEqual({ ok: false, reason: 'too-short' });
    }
  });

  it('IPv4 IHL below 5', () => {
    for (let ihl = 0; ihl < 5; ihl++) {
      const p = ipv4({ ihl, totalLength: 28 });
      expect(parseIpPacket(p)).toEqual({ ok: false, reason: 'bad-header-length' });
    }
  });

  it('IPv4 total length shorter than the header', () => {
    for (let total = 0; total < 20; total++) {
      expect(parseIpPacket(ipv4({ totalLength: total }))).toEqual({ ok: false, reason: 'bad-length' });
    }
    // IHL 6 (24 bytes) with a total of 20..23
    for (let total = 20; total < 24; total++) {
      expect(parseIpPacket(ipv4({ ihl: 6, totalLength: total }))).toEqual({ ok: false, reason: 'bad-length' });
    }
  });

  it('IPv4 options longer than the packet', () => {
    const p = ipv4({ ihl: 5, payload: 4 }); // 24 bytes
    p[0] = 0x4f; // IHL 15: a 60-byte header
    expect(parseIpPacket(p)).toEqual({ ok: false, reason: 'bad-length' });
  });

  it('IPv4 total length longer than the bytes, by one or more', () => {
    const p = ipv4({ payload: 10 }); // 30 bytes
    for (const total of [31, 32, 100, 65535]) {
      p[2] = total >>> 8;
      p[3] = total & 0xff;
      expect(parseIpPacket(p)).toEqual({ ok: false, reason: 'bad-length' });
    }
    // and every truncation of a good packet
    const good = ipv4({ payload: 10 });
    for (let n = 20; n < good.length; n++) {
      expect(parseIpPacket(good.subarray(0, n))).toEqual({ ok: false, reason: 'bad-length' });
    }
  });

  it('IPv6 shorter than 40 bytes, at every length', () => {
    const full = ipv6({ payload: 0 });
    for (let n = 1; n < 40; n++) {
      expect(parseIpPacket(full.subarray(0, n))).toEqual({ ok: false, reason: 'too-short' });
    }
  });

  it('IPv6 payload length past the bytes', () => {
    for (const claimed of [9, 10, 1000, 65535]) {
      expect(parseIpPacket(ipv6({ payload: 8, payloadLength: claimed }))).toEqual({
        ok: false,
        reason: 'bad-length',
      });
    }
    const good = ipv6({ payload: 8 });
    for (let n = 40; n < good.length; n++) {
      expect(parseIpPacket(good.subarray(0, n))).toEqual({ ok: false, reason: 'bad-length' });
    }
  });
});

describe('parseIpPacket: any bytes', () => {
  it('never throws, and a success is always self-consistent', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 80 }),
      // start with a plausible version nibble so that the length checks get exercised
      fc
        .tuple(fc.constantFrom(0x40, 0x45, 0x46, 0x4f, 0x60, 0x6f), fc.uint8Array({ minLength: 0, maxLength: 120 }))
        .map(([first, rest]) => Uint8Array.of(first, ...rest)),
    );
    fc.assert(
      fc.property(bytes, (p) => {
        const r = parseIpPacket(p);
        if (!r.ok) return ['too-short', 'bad-version', 'bad-header-length', 'bad-length'].includes(r.reason);
        const addr = r.version === 4 ? 4 : 16;
        return (
          (p[0]! >>> 4) === r.version &&
          r.source.length === addr &&
          r.destination.length === addr &&
          r.length <= p.length &&
          r.length >= (r.version === 4 ? 20 : 40)
        );
      }),
      { numRuns: 5000 },
    );
  });
});
