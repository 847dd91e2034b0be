// TSO on the TUN read (src/runtime/tso.ts): a super-packet as the kernel hands it over
// (TUNSETOFFLOAD, a virtio_net_hdr in front, the checksum field holding the
// pseudo-header's partial sum) must come out as the segments the kernel's own cut would
// have made, each one a packet a receiving kernel accepts. The checks here are written
// from the kernel's rules and verify checksums the way a receiver does (the sum over the
// whole header and pseudo-header is 0xffff), not with the code under test.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addonPath, loadAddon } from '../../src/runtime/addon.js';
import { Coalescer, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6 } from '../../src/runtime/gro.js';
import { IN_PLACE, MAX_SEGMENTS, REFUSED, Segmenter, VIRTIO_NET_HDR_GSO_ECN, VIRTIO_NET_HDR_GSO_UDP_L4 } from '../../src/runtime/tso.js';

const ACK = 0x10;
const PSH = 0x08;
const FIN = 0x01;
const CWR = 0x80;

function sum16(p: Uint8Array, from: number, to: number, sum = 0): number {
  for (let i = from; i < to; i += 2) sum += (p[i]! << 8) | (i + 1 < to ? p[i + 1]! : 0);
  return sum;
}
const fold = (s: number) => { while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000); return s; };

interface Super {
  v6?: boolean;
  udp?: boolean;
  seq?: number;
  flags?: number;
  id?: number;
  options?: number[];
  /** IPv6 destination options header (8 bytes) between the fixed header and TCP/UDP. */
  destOpts?: boolean;
  payload: Uint8Array;
}

/** Where the transport header starts in a packet built by `build`. */
const transportOf = (p: Uint8Array) => (p[0]! >> 4 === 6 ? (p[6] === 60 ? 48 : 40) : (p[0]! & 0x0f) * 4);

/** A packet as the kernel's stack makes it before the TUN: IP header right, transport checksum partial. */
function build(s: Super): Uint8Array {
  const v6 = s.v6 ?? false;
  const ip = v6 ? (s.destOpts === true ? 48 : 40) : 20;
  const opts = s.options ?? [];
  const th = s.udp === true ? 8 : 20 + opts.length;
  const p = new Uint8Array(ip + th + s.payload.length);
  const v = new DataView(p.buffer);
  const proto = s.udp === true ? 17 : 6;
  if (v6) {
    p.set([0x60, 0x01, 0x23, 0x45]);
    v.setUint16(4, p.length - 40);
    p[6] = s.destOpts === true ? 60 : proto;
    p[7] = 64;
    p.set([0x20, 0x01, 0x0d, 0xb8], 8); p[23] = 1;
    p.set([0x20, 0x01, 0x0d, 0xb8], 24); p[39] = 2;
    if (s.destOpts === true) p.set([proto, 0, 1, 4, 0, 0, 0, 0], 40); // PadN
  } else {
    const id = s.id ?? 100;
    p.set([0x45, 0, p.length >> 8, p.length & 0xff, id >> 8, id & 0xff, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    const c = ~fold(sum16(p, 0, 20)) & 0xffff;
    v.setUint16(10, c);
  }
  v.setUint16(ip, 40000);
  v.setUint16(ip + 2, 5201);
  if (s.udp === true) {
    v.setUint16(ip + 4, p.length - ip);
  } else {
    v.setUint32(ip + 4, (s.seq ?? 1000) >>> 0);
    v.setUint32(ip + 8, 777);
    p[ip + 12] = (th / 4) << 4;
    p[ip + 13] = s.flags ?? ACK;
    v.setUint16(ip + 14, 502);
    p.set(opts, ip + 20);
  }
  p.set(s.payload, ip + th);
  // CHECKSUM_PARTIAL: the field holds the pseudo-header's sum, not complemented.
  const pseudo = (v6 ? sum16(p, 8, 40) : sum16(p, 12, 20)) + proto + (p.length - ip);
  v.setUint16(ip + (s.udp === true ? 6 : 16), fold(pseudo));
  return p;
}

function header(p: Uint8Array, gsoType: number, gsoSize: number, flags = VIRTIO_NET_HDR_F_NEEDS_CSUM): Uint8Array {
  const t = transportOf(p);
  const udp = (gsoType & 0x7f) === VIRTIO_NET_HDR_GSO_UDP_L4 || (p[0]! >> 4 === 4 ? p[9] : p[t === 48 ? 40 : 6]) === 17;
  const hl = udp ? t + 8 : t + (p[t + 12]! >> 4) * 4;
  return Uint8Array.from([flags, gsoType, hl & 0xff, hl >> 8, gsoSize & 0xff, gsoSize >> 8, t & 0xff, t >> 8, udp ? 6 : 16, 0]);
}

/** What a receiving kernel checks: IPv4 header checksum and lengths, and the TCP/UDP checksum over the pseudo-header. */
function expectAccepted(s: Uint8Array): void {
  const v6 = s[0]! >> 4 === 6;
  const t = transportOf(s);
  if (v6) expect(((s[4]! << 8) | s[5]!) + 40).toBe(s.length);
  else {
    expect((s[2]! << 8) | s[3]!).toBe(s.length);
    expect(fold(sum16(s, 0, 20))).toBe(0xffff);
  }
  const proto = v6 ? s[t === 48 ? 40 : 6]! : s[9]!;
  if (proto === 17) expect((s[t + 4]! << 8) | s[t + 5]!).toBe(s.length - t);
  const pseudo = (v6 ? sum16(s, 8, 40) : sum16(s, 12, 20)) + proto + (s.length - t);
  expect(fold(sum16(s, t, s.length, pseudo))).toBe(0xffff);
}

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

/** prepare() then cut() every segment into fresh slots (at `at`, 16 by default, as the tunnel's headroom). */
function split(seg: Segmenter, p: Uint8Array, h: Uint8Array, at = 16): Uint8Array[] | number {
  const n = seg.prepare(p, 0, p.length, h, 0);
  if (n <= 0) return n;
  const out: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const slot = new Uint8Array(at + seg.maxSegment + 32);
    const len = seg.cut(k, slot, at);
    out.push(slot.slice(at, at + len));
  }
  return out;
}

const u16 = (p: Uint8Array, o: number) => (p[o]! << 8) | p[o + 1]!;
const u32 = (p: Uint8Array, o: number) => new DataView(p.buffer, p.byteOffset).getUint32(o);

describe('TSO: cutting the TUN\'s super-packets', () => {
  it('cuts an IPv4 super-packet field by field, the last segment short', () => {
    const payload = bytes(1368 * 3 + 500);
    const ts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    const p = build({ seq: 0xffff_f000, id: 0xfffe, flags: ACK | PSH, options: ts, payload });
    const seg = new Segmenter(1420);
    const out = split(seg, p, header(p, VIRTIO_NET_HDR_GSO_TCPV4, 1368)) as Uint8Array[];
    expect(out.map((s) => s.length)).toEqual([1420, 1420, 1420, 52 + 500]);
    out.forEach((s, k) => {
      expect(s.subarray(0, 2)).toEqual(p.subarray(0, 2)); // version, IHL, TOS
      expect(u16(s, 4)).toBe((0xfffe + k) & 0xffff); // the ID counts up, wrapping
      expect(s.subarray(6, 10)).toEqual(p.subarray(6, 10)); // DF, TTL, protocol
      expect(s.subarray(12, 20)).toEqual(p.subarray(12, 20));
      expect(s.subarray(20, 24)).toEqual(p.subarray(20, 24)); // ports
      expect(u32(s, 24)).toBe((0xffff_f000 + k * 1368) >>> 0); // sequence, wrapping past 2^32
      expect(s.subarray(28, 33)).toEqual(p.subarray(28, 33)); // ACK number, data offset
      expect(s[33]).toBe(k === 3 ? ACK | PSH : ACK);
      expect(s.subarray(34, 36)).toEqual(p.subarray(34, 36)); // window
      expect(s.subarray(40, 52)).toEqual(p.subarray(40, 52)); // options
      expect(s.subarray(52)).toEqual(payload.subarray(k * 1368, Math.min((k + 1) * 1368, payload.length)));
      expectAccepted(s);
    });
    expect(seg.superPackets).toBe(1);
    expect(seg.segments).toBe(4);
  });

  it('puts FIN and PSH on the last segment only and CWR on the first only (gso_type with ECN)', () => {
    const p = build({ flags: ACK | PSH | FIN | CWR, payload: bytes(3000) });
    const out = split(new Segmenter(1500), p, header(p, VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 1000)) as Uint8Array[];
    expect(out.map((s) => s[33])).toEqual([ACK | CWR, ACK, ACK | PSH | FIN]);
    out.forEach(expectAccepted);
  });

  it('cuts IPv6, with a destination options header before TCP', () => {
    for (const destOpts of [false, true]) {
      const payload = bytes(2500, 7);
      const p = build({ v6: true, destOpts, seq: 5, payload });
      const t = destOpts ? 48 : 40;
      const out = split(new Segmenter(1500), p, header(p, VIRTIO_NET_HDR_GSO_TCPV6, 1200)) as Uint8Array[];
      expect(out.map((s) => s.length)).toEqual([t + 20 + 1200, t + 20 + 1200, t + 20 + 100]);
      out.forEach((s, k) => {
        expect(s.subarray(0, 4)).toEqual(p.subarray(0, 4)); // version, traffic class, flow label
        expect(u16(s, 4)).toBe(s.length - 40);
        expect(s.subarray(6, t)).toEqual(p.subarray(6, t)); // next header, hop limit, addresses, options
        expect(u32(s, t + 4)).toBe(5 + k * 1200);
        expect(s.subarray(t + 20)).toEqual(payload.subarray(k * 1200, (k + 1) * 1200));
        expectAccepted(s);
      });
    }
  });

  it('finishes a one-segment GSO packet in place', () => {
    const p = build({ flags: ACK | PSH, payload: bytes(700) });
    const before = p.slice();
    expect(new Segmenter(1500).prepare(p, 0, p.length, header(p, VIRTIO_NET_HDR_GSO_TCPV4, 1368), 0)).toBe(IN_PLACE);
    expectAccepted(p);
    expect(p.subarray(0, 36)).toEqual(before.subarray(0, 36)); // only the checksum changed
    expect(p.subarray(38)).toEqual(before.subarray(38));
  });

  it('finishes the checksum of a packet that is not GSO but NEEDS_CSUM (TCP and UDP), and leaves others alone', () => {
    const seg = new Segmenter(1500);
    for (const p of [build({ payload: bytes(333) }), build({ udp: true, payload: bytes(101) }), build({ v6: true, udp: true, payload: bytes(64) })]) {
      expect(seg.prepare(p, 0, p.length, header(p, VIRTIO_NET_HDR_GSO_NONE, 0), 0)).toBe(IN_PLACE);
      expectAccepted(p);
    }
    expect(seg.checksummed).toBe(3);
    const plain = build({ payload: bytes(10) });
    const copy = plain.slice();
    expect(seg.prepare(plain, 0, plain.length, new Uint8Array(10), 0)).toBe(IN_PLACE);
    expect(plain).toEqual(copy);
  });

  it('cuts UDP super-packets (USO) only when asked to', () => {
    const payload = bytes(3000, 3);
    const p = build({ udp: true, id: 7, payload });
    const h = header(p, VIRTIO_NET_HDR_GSO_UDP_L4, 1400);
    const off = new Segmenter(1500);
    expect(off.prepare(p, 0, p.length, h, 0)).toBe(REFUSED);
    expect(off.refused['gso-type']).toBe(1);
    const out = split(new Segmenter(1500, true), p, h) as Uint8Array[];
    expect(out.map((s) => s.length)).toEqual([1428, 1428, 228]);
    out.forEach((s, k) => {
      expect(u16(s, 4)).toBe(7 + k);
      expect(s.subarray(28)).toEqual(payload.subarray(k * 1400, (k + 1) * 1400));
      expectAccepted(s);
    });
    const six = build({ v6: true, udp: true, payload });
    (split(new Segmenter(1500, true), six, header(six, VIRTIO_NET_HDR_GSO_UDP_L4, 1400)) as Uint8Array[]).forEach(expectAccepted);
  });

  it('gives the same bytes whether or not the slot is word-aligned (the word-at-a-time checksum)', () => {
    const p = build({ payload: bytes(5000, 9) });
    const h = header(p, VIRTIO_NET_HDR_GSO_TCPV4, 1380);
    const aligned = split(new Segmenter(1500), p, h, 16) as Uint8Array[];
    for (const at of [1, 2, 3, 17]) expect(split(new Segmenter(1500), p, h, at)).toEqual(aligned);
    // The packet itself at an odd offset of its buffer.
    const odd = new Uint8Array(p.length + 1);
    odd.set(p, 1);
    expect(split(new Segmenter(1500), odd.subarray(1), h)).toEqual(aligned);
    // Or given as (buffer, start, length), as the tunnel gives a slot of its read batch.
    const seg = new Segmenter(1500);
    const n = seg.prepare(odd, 1, p.length, h, 0);
    const slot = new Uint8Array(1600);
    expect(Array.from({ length: n }, (_, k) => slot.slice(16, 16 + seg.cut(k, slot, 16)))).toEqual(aligned);
  });

  it('refuses malformed virtio headers and packets, counted by reason, and never cuts them', () => {
    const good = () => build({ payload: bytes(3000) });
    const hdr = (p: Uint8Array) => header(p, VIRTIO_NET_HDR_GSO_TCPV4, 1000);
    const cases: [string, (p: Uint8Array, h: Uint8Array) => void, string][] = [
      ['gso_size 0', (_p, h) => { h[4] = 0; h[5] = 0; }, 'gso-type'],
      ['UFO (gso_type 3)', (_p, h) => { h[1] = 3; }, 'gso-type'],
      ['unknown gso_type', (_p, h) => { h[1] = 9; }, 'gso-type'],
      ['csum_start past the transport header', (_p, h) => { h[6] = 24; }, 'checksum-offsets'],
      ['csum_offset not TCP\'s', (_p, h) => { h[8] = 6; }, 'checksum-offsets'],
      ['csum_start beyond the packet', (_p, h) => { h[6] = 0xff; h[7] = 0xff; }, 'checksum-offsets'],
      ['IPv4 total length not the read length', (p) => { p[3]! ^= 1; }, 'ip-header'],
      ['TCPV6 on an IPv4 packet', (_p, h) => { h[1] = VIRTIO_NET_HDR_GSO_TCPV6; }, 'ip-header'],
      ['a fragment', (p) => { p[6] = 0x20; }, 'ip-header'],
      ['IHL beyond the packet', (p) => { p[0] = 0x4f; }, 'checksum-offsets'],
      ['IHL under 5', (p) => { p[0] = 0x44; }, 'ip-header'],
      ['not TCP', (p) => { p[9] = 17; }, 'ip-header'],
      ['TCP data offset under 5', (p) => { p[32] = 0x40; }, 'transport-header'],
      ['more segments than MAX_SEGMENTS', (_p, h) => { h[4] = 1; h[5] = 0; }, 'segment-size'],
    ];
    for (const [what, mangle, reason] of cases) {
      const p = good();
      const h = hdr(p);
      mangle(p, h);
      const seg = new Segmenter(1500);
      expect(seg.prepare(p, 0, p.length, h, 0), what).toBe(REFUSED);
      expect(seg.refused[reason as keyof typeof seg.refused], what).toBe(1);
      expect(() => seg.cut(0, new Uint8Array(2000), 0), what).toThrow(RangeError);
    }
    const seg = new Segmenter(1000);
    const p = good();
    expect(seg.prepare(p, 0, p.length, hdr(p), 0)).toBe(REFUSED); // a segment of 1040 bytes does not fit a slot of 1000
    expect(seg.refused['segment-size']).toBe(1);
    const short = build({ payload: bytes(0) });
    expect(new Segmenter(1500).prepare(short, 0, short.length, hdr(short), 0)).toBe(REFUSED); // GSO with nothing to cut
    const cut = build({ payload: bytes(10) });
    cut[32] = 0xf0; // a TCP header of 60 bytes in a packet of 50
    expect(new Segmenter(1500).prepare(cut, 0, cut.length, hdr(cut), 0)).toBe(REFUSED);
    const tiny = new Uint8Array(12);
    expect(new Segmenter(1500).prepare(tiny, 0, tiny.length, hdr(good()), 0)).toBe(REFUSED);
    const routing = build({ v6: true, payload: bytes(3000) });
    routing[6] = 43; // a routing header changes the pseudo-header's destination: not cut
    expect(new Segmenter(1500).prepare(routing, 0, routing.length, header(build({ v6: true, payload: bytes(3000) }), VIRTIO_NET_HDR_GSO_TCPV6, 1000), 0)).toBe(REFUSED);
    expect(MAX_SEGMENTS).toBeLessThan(3000);
  });

  it('never throws or writes outside a segment on random headers and packets', () => {
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 10, maxLength: 10 }), fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.boolean(),
      fc.constantFrom(VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_UDP_L4, 0),
      (h, body, v6, type) => {
        // A plausible start half the time, so that the checks past the first are reached.
        const p = body.length >= 60 && (h[0]! & 1) === 1 ? build({ v6, udp: type === VIRTIO_NET_HDR_GSO_UDP_L4, payload: body.subarray(60) }) : body;
        if (p !== body) {
          if ((h[0]! & 2) === 2) h.set(header(p, type, 20 + h[4]!));
          h[1] = type;
        }
        const seg = new Segmenter(200, true);
        const n = seg.prepare(p, 0, p.length, h, 0);
        expect(n).toBeGreaterThanOrEqual(REFUSED);
        for (let k = 0; k < n; k++) {
          const slot = new Uint8Array(232);
          const len = seg.cut(k, slot, 16);
          expect(len).toBeLessThanOrEqual(200);
          expect(slot.subarray(0, 16).every((b) => b === 0)).toBe(true);
          expect(slot.subarray(16 + len).every((b) => b === 0)).toBe(true);
        }
      },
    ), { numRuns: 3000 });
  });

  it('GRO(TSO(x)) == x: cutting a super-packet and coalescing the segments gives it back', () => {
    const gro = new Coalescer(64, 64 * 16384);
    fc.assert(fc.property(
      fc.boolean(), fc.integer({ min: 536, max: 1400 }), fc.integer({ min: 2, max: 40 }), fc.integer({ min: 0, max: 1399 }),
      fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0, max: 0xffff }),
      (v6, mss, full, tail, psh, options, seq, id) => {
        const length = Math.min(mss * full + (tail % mss), 65535 - 100);
        const x = build({ v6, seq, id, flags: psh ? ACK | PSH : ACK, options: options ? [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2] : [], payload: bytes(length, seq & 0xff) });
        const hx = header(x, v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4, mss);
        const segs = split(new Segmenter(1500), x.slice(), hx) as Uint8Array[];
        expect(segs.length).toBe(Math.ceil(length / mss));
        segs.forEach(expectAccepted);
        expect(gro.coalesce(segs, segs.length)).toBe(1);
        expect(Buffer.from(gro.packets[0]!).toString('hex')).toBe(Buffer.from(x).toString('hex'));
        expect(gro.headers.subarray(0, 10)).toEqual(hx);
      },
    ), { numRuns: 300 });
  });

  describe.skipIf(addonPath() === undefined)('with the addon\'s checksumChunks', () => {
    it('sums every piece as the RFC 1071 loop does, odd pieces and offsets included', () => {
      const { checksumChunks } = loadAddon();
      const out = new Uint32Array(512);
      fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 5000 }), fc.nat(), fc.nat(), fc.integer({ min: 1, max: 1500 }), (data, a, b, chunk) => {
        const start = data.length === 0 ? 0 : a % (data.length + 1);
        const end = start + (data.length === start ? 0 : b % (data.length - start + 1));
        const n = checksumChunks(data, start, end, chunk, out);
        expect(n).toBe(Math.ceil((end - start) / chunk));
        for (let k = 0; k < n; k++) expect(out[k]).toBe(fold(sum16(data, start + k * chunk, Math.min(start + (k + 1) * chunk, end))));
      }), { numRuns: 500 });
      expect(() => checksumChunks(new Uint8Array(10), 0, 10, 1, new Uint32Array(5))).toThrow(RangeError);
      expect(() => checksumChunks(new Uint8Array(10), 0, 11, 4, out)).toThrow(RangeError);
      expect(() => checksumChunks(new Uint8Array(10), 0, 10, 0, out)).toThrow(RangeError);
    });

    it('cuts the same bytes as the loop, TCP and UDP, any gso_size', () => {
      const { checksumChunks } = loadAddon();
      fc.assert(fc.property(fc.boolean(), fc.boolean(), fc.integer({ min: 1, max: 1400 }), fc.integer({ min: 1, max: 20_000 }), (v6, udp, gso, length) => {
        fc.pre(Math.ceil(length / gso) <= MAX_SEGMENTS);
        const p = build({ v6, udp, payload: bytes(length, gso & 0xff) });
        const h = header(p, udp ? VIRTIO_NET_HDR_GSO_UDP_L4 : v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4, gso);
        const withLoop = split(new Segmenter(1500, true), p.slice(), h);
        const withAddon = split(new Segmenter(1500, true, checksumChunks), p.slice(), h);
        expect(withAddon).toEqual(withLoop);
        if (typeof withAddon !== 'number') withAddon.forEach(expectAccepted);
      }), { numRuns: 300 });
    });
  });
});
