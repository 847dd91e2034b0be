// GRO for the TUN write (src/runtime/gro.ts): coalesced TCP segments must be exactly what
// the kernel cuts back into the original segments, checksums included, per the
// virtio_net_hdr written beside them. `segment` below is that cut, written from the
// kernel's rules (tcp_gso_segment): payload in gso_size pieces, sequence numbers moved
// on, PSH on the last piece only, IPv4 IDs counted up, every checksum computed in full.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Coalescer, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6, VNET_HDR_LENGTH } from '../../src/runtime/gro.js';

interface Tcp {
  v6?: boolean;
  src?: number;
  dst?: number;
  sport?: number;
  dport?: number;
  seq: number;
  ack?: number;
  flags?: number;
  window?: number;
  id?: number;
  options?: number[];
  payload: Uint8Array;
}

function sum16(p: Uint8Array, from: number, to: number, sum = 0): number {
  for (let i = from; i < to; i += 2) sum += (p[i]! << 8) | (i + 1 < to ? p[i + 1]! : 0);
  return sum;
}
const fold = (s: number) => { while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000); return s; };
const checksum = (s: number) => ~fold(s) & 0xffff;

/** Fills in the IPv4 header checksum and the TCP checksum of a whole packet. */
function fillChecksums(p: Uint8Array): void {
  const v6 = p[0]! >> 4 === 6;
  const ip = v6 ? 40 : 20;
  const tcpLen = p.length - ip;
  if (!v6) {
    p[10] = p[11] = 0;
    const c = checksum(sum16(p, 0, 20));
    p[10] = c >> 8; p[11] = c & 0xff;
  }
  p[ip + 16] = p[ip + 17] = 0;
  const pseudo = (v6 ? sum16(p, 8, 40) : sum16(p, 12, 20)) + 6 + tcpLen;
  const c = checksum(sum16(p, ip, p.length, pseudo));
  p[ip + 16] = c >> 8; p[ip + 17] = c & 0xff;
}

function tcp(t: Tcp): Uint8Array {
  const v6 = t.v6 ?? false;
  const ip = v6 ? 40 : 20;
  const opts = t.options ?? [];
  const th = 20 + opts.length;
  const p = new Uint8Array(ip + th + t.payload.length);
  const src = t.src ?? 1;
  const dst = t.dst ?? 2;
  if (v6) {
    p.set([0x60, 0, 0, 0, (th + t.payload.length) >> 8, (th + t.payload.length) & 0xff, 6, 64]);
    p.set([0x20, 0x01, 0x0d, 0xb8], 8); p[23] = src;
    p.set([0x20, 0x01, 0x0d, 0xb8], 24); p[39] = dst;
  } else {
    const id = t.id ?? 100;
    p.set([0x45, 0, p.length >> 8, p.length & 0xff, id >> 8, id & 0xff, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, src, 10, 0, 0, dst]);
  }
  const v = new DataView(p.buffer);
  v.setUint16(ip, t.sport ?? 40000);
  v.setUint16(ip + 2, t.dport ?? 5201);
  v.setUint32(ip + 4, t.seq >>> 0);
  v.setUint32(ip + 8, t.ack ?? 777);
  p[ip + 12] = (th / 4) << 4;
  p[ip + 13] = t.flags ?? 0x10;
  v.setUint16(ip + 14, t.window ?? 502);
  p.set(opts, ip + 20);
  p.set(t.payload, ip + th);
  fillChecksums(p);
  return p;
}

/** What the kernel makes of one written packet and its virtio_net_hdr. */
function segment(p: Uint8Array, h: Uint8Array): Uint8Array[] {
  if (h[1] === VIRTIO_NET_HDR_GSO_NONE) {
    expect(h.every((b) => b === 0)).toBe(true);
    return [p];
  }
  expect(h[0]).toBe(VIRTIO_NET_HDR_F_NEEDS_CSUM);
  const v6 = h[1] === VIRTIO_NET_HDR_GSO_TCPV6;
  const hdrLen = h[2]! | (h[3]! << 8);
  const gso = h[4]! | (h[5]! << 8);
  const csumStart = h[6]! | (h[7]! << 8);
  expect(csumStart).toBe(v6 ? 40 : 20);
  expect(h[8]! | (h[9]! << 8)).toBe(16);
  // The checksum field holds the pseudo-header's partial sum, as the kernel expects.
  const ip = csumStart;
  const pseudo = (v6 ? sum16(p, 8, 40) : sum16(p, 12, 20)) + 6 + (p.length - ip);
  expect((p[ip + 16]! << 8) | p[ip + 17]!).toBe(fold(pseudo));
  if (!v6) expect(checksum(sum16(p, 0, 20))).toBe(0); // the super-packet's own header checksum
  // Its length field says its length, as the kernel checks before it cuts.
  expect(v6 ? ((p[4]! << 8) | p[5]!) + 40 : (p[2]! << 8) | p[3]!).toBe(p.length);
  const out: Uint8Array[] = [];
  const seq0 = new DataView(p.buffer, p.byteOffset).getUint32(ip + 4);
  const id0 = (p[4]! << 8) | p[5]!;
  for (let off = hdrLen, i = 0; off < p.length; off += gso, i++) {
    const end = Math.min(off + gso, p.length);
    const s = new Uint8Array(hdrLen + end - off);
    s.set(p.subarray(0, hdrLen));
    s.set(p.subarray(off, end), hdrLen);
    const v = new DataView(s.buffer);
    if (v6) v.setUint16(4, s.length - 40);
    else { v.setUint16(2, s.length); v.setUint16(4, (id0 + i) & 0xffff); }
    v.setUint32(ip + 4, (seq0 + off - hdrLen) >>> 0);
    if (end < p.length) s[ip + 13]! &= ~0x08;
    fillChecksums(s);
    out.push(s);
  }
  return out;
}

/** Coalesces, checks that the kernel's cut gives back exactly the input, returns the result. */
function roundTrip(input: Uint8Array[]): { count: number; headers: Uint8Array[]; packets: Uint8Array[] } {
  const c = new Coalescer(64, 64 * 16384);
  const originals = input.map((p) => p.slice());
  const n = c.coalesce(input, input.length);
  const headers = Array.from({ length: n }, (_, i) => c.headers.slice(i * VNET_HDR_LENGTH, (i + 1) * VNET_HDR_LENGTH));
  const packets = c.packets.slice(0, n).map((p) => p.slice());
  const cut = packets.flatMap((p, i) => segment(p, headers[i]!));
  // Same packets; across flows the order may differ, within a flow it may not.
  const key = (p: Uint8Array) => Buffer.from(p).toString('hex');
  expect(cut.map(key).sort()).toEqual(originals.map(key).sort());
  const flowOf = (p: Uint8Array) => key(p.subarray(p[0]! >> 4 === 6 ? 8 : 12, p[0]! >> 4 === 6 ? 44 : 24));
  for (const flow of new Set(originals.map(flowOf))) {
    expect(cut.filter((p) => flowOf(p) === flow).map(key)).toEqual(originals.filter((p) => flowOf(p) === flow).map(key));
  }
  return { count: n, headers, packets };
}

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
const run = (from: number, sizes: number[], base: Omit<Tcp, 'seq' | 'payload'> = {}, idFrom = 100) => {
  let seq = from;
  return sizes.map((n, i) => { const p = tcp({ ...base, seq, id: idFrom + i, payload: bytes(n, i) }); seq += n; return p; });
};

describe('GRO for the TUN write', () => {
  it('coalesces an IPv4 run into one super-packet whose checksums the kernel accepts, the last segment short', () => {
    const r = roundTrip(run(1000, [1368, 1368, 1368, 1368, 500]));
    expect(r.count).toBe(1);
    expect(r.headers[0]![1]).toBe(VIRTIO_NET_HDR_GSO_TCPV4);
    expect(r.headers[0]![4]! | (r.headers[0]![5]! << 8)).toBe(1368);
    expect(r.packets[0]!.length).toBe(40 + 4 * 1368 + 500);
  });

  it('coalesces IPv6, with TCP timestamps options alike, and carries the last PSH', () => {
    const ts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    const segs = run(5, [1348, 1348, 1348], { v6: true, options: ts });
    segs[2]![40 + 13] = 0x18;
    const raw = segs[2]!.subarray(0);
    // recompute the checksum after setting PSH
    fillChecksums(raw);
    const r = roundTrip(segs);
    expect(r.count).toBe(1);
    expect(r.headers[0]![1]).toBe(VIRTIO_NET_HDR_GSO_TCPV6);
    expect(r.packets[0]![40 + 13]).toBe(0x18);
  });

  it('keeps flows apart in one batch, each in its order, and wraps the sequence number', () => {
    const a = run(0xffff_fe00, [1000, 1000, 1000], { sport: 1 });
    const b = run(7, [1000, 1000], { sport: 2 });
    const six = run(9, [900, 900], { v6: true, sport: 3 });
    const r = roundTrip([a[0]!, b[0]!, six[0]!, a[1]!, b[1]!, six[1]!, a[2]!]);
    expect(r.count).toBe(3);
    expect(r.headers.every((h) => h[0] === VIRTIO_NET_HDR_F_NEEDS_CSUM)).toBe(true);
  });

  it('does not coalesce past a gap, a different ACK or window, a SYN or FIN, a short segment, or a PSH', () => {
    expect(roundTrip([...run(0, [1000]), ...run(2000, [1000])]).count).toBe(2); // gap
    const acks = run(0, [1000, 1000]);
    expect(roundTrip([acks[0]!, tcp({ seq: 1000, ack: 778, payload: bytes(1000) })]).count).toBe(2);
    expect(roundTrip([acks[0]!, tcp({ seq: 1000, window: 9, payload: bytes(1000) })]).count).toBe(2);
    expect(roundTrip([acks[0]!, tcp({ seq: 1000, flags: 0x11, payload: bytes(1000) })]).count).toBe(2); // FIN
    expect(roundTrip([tcp({ seq: 0, flags: 0x02, payload: bytes(0) }), tcp({ seq: 1, payload: bytes(100) })]).count).toBe(2); // SYN
    expect(roundTrip(run(0, [500, 1000, 1000])).count).toBe(2); // a longer one after a short one
    expect(roundTrip(run(0, [1000, 1000], {}, 5).map((p, i) => (i === 1 ? tcp({ seq: 1000, id: 9, payload: bytes(1000, 1) }) : p))).count).toBe(2); // IPv4 ID not next
    const pushed = run(0, [1000, 1000, 1000]);
    pushed[1]![20 + 13] = 0x18;
    fillChecksums(pushed[1]!);
    expect(roundTrip(pushed).count).toBe(2); // PSH ends the first super-packet
  });

  it('passes other packets through untouched, with an all-zero header, keeping a flow behind its FIN', () => {
    const udp = new Uint8Array(60);
    udp.set([0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 17]);
    const segs = run(0, [1000, 1000]);
    const fin = tcp({ seq: 2000, flags: 0x11, payload: bytes(10) });
    const after = tcp({ seq: 2010, payload: bytes(1000) });
    const r = roundTrip([udp, segs[0]!, segs[1]!, fin, after]);
    expect(r.count).toBe(4);
    expect(r.packets[0]).toEqual(udp);
    expect(r.headers[0]!.every((b) => b === 0)).toBe(true);
    // A window update (no payload) between two segments stays between them.
    const update = tcp({ seq: 1000, window: 900, payload: bytes(0) });
    expect(roundTrip([segs[0]!, update, tcp({ seq: 1000, id: 101, payload: bytes(1000, 1) })]).count).toBe(3);
  });

  it('round-trips random mixes of flows, sizes and flags', () => {
    fc.assert(fc.property(fc.array(fc.record({ flow: fc.integer({ min: 0, max: 3 }), size: fc.integer({ min: 0, max: 1400 }), psh: fc.boolean(), skip: fc.boolean() }), { maxLength: 64 }), (spec) => {
      const seqs = [0xffff_f000, 10, 20, 30];
      const ids = [0xfffe, 0, 0, 0];
      const input = spec.map(({ flow, size, psh, skip }, i) => {
        if (skip) seqs[flow]! += 1;
        ids[flow] = (ids[flow]! + 1) & 0xffff;
        const p = tcp({ v6: flow === 3, sport: flow, seq: seqs[flow]!, flags: psh ? 0x18 : 0x10, id: ids[flow]!, payload: bytes(size, i) });
        seqs[flow] = (seqs[flow]! + size) >>> 0;
        return p;
      });
      roundTrip(input);
    }), { numRuns: 300 });
  });
});
