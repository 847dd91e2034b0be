// TSO on the TUN read: with TUNSETOFFLOAD (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, and
// TUN_F_USO4 | TUN_F_USO6 where asked), the kernel hands the TUN one TCP (or UDP)
// super-packet of up to 64 KiB where it would have cut it into MTU-sized segments, with
// a virtio_net_hdr in front that says how to cut it (gso_type, gso_size) and where the
// checksum it left unfinished is (NEEDS_CSUM: csum_start, csum_offset). One read then
// moves what took dozens: that per-packet cost in the kernel and across the addon is
// most of what the sending daemon spent (bench/profile.ts). wireguard-go has read its
// TUN this way since 2023.
//
// The cut is the kernel's own (tcp_gso_segment, __udp_gso_segment, inet_gso_segment):
// segment k carries the headers of the super-packet and the payload bytes
// [k gso_size, (k + 1) gso_size), with
//   IPv4: total length of the segment, ID counted up by k, the header checksum again;
//   IPv6: payload length of the segment (hop-by-hop and destination options headers
//         between it and TCP/UDP are copied as they are; any other extension refused);
//   TCP:  sequence number moved on by k gso_size; FIN and PSH on the last segment only,
//         CWR on the first only;
//   UDP:  length of the segment;
// and the TCP or UDP checksum computed in full (pseudo-header with the segment's
// length). A packet that is not GSO but has NEEDS_CSUM gets the checksum finished in
// place as the kernel's skb_checksum_help does: the field holds the pseudo-header's
// partial sum, the sum from csum_start to the end is folded into it (0 is sent as
// 0xffff). So every packet that leaves is one any receiving kernel accepts.
//
// What the header says is checked against the packet before anything is trusted:
// lengths and offsets inside the packet, the IP version and protocol the GSO type
// names, IP lengths equal to what was read, no fragment, csum_start at the transport
// header, at most MAX_SEGMENTS segments, each within the caller's slot. hdr_len is
// not used: the headers' length is read from the packet itself. A packet that fails is
// refused (dropped, counted by reason), never cut.
//
// prepare() parses a packet where it lies (a slot of the read batch) and sums each
// segment's payload (one addon call, checksumChunks, where the runtime has the addon),
// then cut(k) writes segment k into memory the caller owns (a pooled slot, sealed in
// place after). Nothing is allocated but one view per segment for its payload's copy.

import { VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6 } from './gro.js';

export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
/** Or'ed into gso_type: the TCP super-packet has ECN's CWR set (cleared after the first segment). */
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;
/**
 * Segments of one super-packet at most: Linux's TCP never sends an MSS under 88 bytes
 * (745 segments in 64 KiB) and its UDP GSO at most 128 segments.
 */
export const MAX_SEGMENTS = 1024;

const TCP = 6;
const UDP = 17;
const FIN = 0x01;
const PSH = 0x08;
const CWR = 0x80;
/** IPv6 extension headers allowed between the fixed header and TCP/UDP: hop-by-hop, destination options. */
const HOP_BY_HOP = 0;
const DESTINATION_OPTIONS = 60;
const MAX_EXTENSION_HEADERS = 4;

export type TsoRefusal =
  /** gso_type is not NONE, TCPV4, TCPV6 or UDP_L4 (UDP_L4 only when UDP offload was asked), or gso_size is 0. */
  | 'gso-type'
  /** NEEDS_CSUM with csum_start / csum_offset outside the packet, or not at the transport header's checksum. */
  | 'checksum-offsets'
  /** The IP header does not match the GSO type or the read length, is a fragment, or has an extension header we do not cut. */
  | 'ip-header'
  /** The TCP or UDP header is cut short, or there is no payload to cut. */
  | 'transport-header'
  /** More than MAX_SEGMENTS segments, or a segment longer than the caller's slot. */
  | 'segment-size';

/**
 * Writes into out[k] the RFC 1071 sum (folded, not complemented, network byte order) of
 * each piece of `chunk` bytes of data[start:end]; returns how many. The addon has one
 * (native/src/checksum.cc), several times faster than the loop here.
 */
export type ChunkSums = (data: Uint8Array, start: number, end: number, chunk: number, out: Uint32Array) => number;

/** Returned by prepare(): the packet was refused (see `refused`). */
export const REFUSED = -1;
/** Returned by prepare(): the packet is ready to send as it is (its checksum finished if it had to be). */
export const IN_PLACE = 0;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const fold = (sum: number): number => {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
};

/** The one's-complement sum of `p[from:to]` as 16-bit network-order words, added to `sum`, not folded. */
function sumBytes(p: Uint8Array, from: number, to: number, sum: number): number {
  let i = from;
  for (; i + 1 < to; i += 2) sum += (p[i]! << 8) | p[i + 1]!;
  if (i < to) sum += p[i]! << 8;
  return sum;
}

export class Segmenter {
  /** Super-packets cut, and the segments they made (since construction). */
  superPackets = 0;
  segments = 0;
  /** NEEDS_CSUM packets finished in place. */
  checksummed = 0;
  /** Packets refused, by reason. */
  readonly refused: Record<TsoRefusal, number> = { 'gso-type': 0, 'checksum-offsets': 0, 'ip-header': 0, 'transport-header': 0, 'segment-size': 0 };

  // The packet prepare() took, and what cut() needs of it.
  private buf: Uint8Array = new Uint8Array(0);
  private start = 0;
  private length = 0;
  private v6 = false;
  private tcp = false;
  /** Where the transport header starts, and where the payload does. */
  private transport = 0;
  private headers = 0;
  private gsoSize = 0;
  private count = 0;
  private id = 0;
  private seq = 0;
  private flags = 0;
  /** The pseudo-header's addresses and protocol, summed (the length is added per segment). */
  private pseudo = 0;
  /** The payload's sum of each segment, from prepare(). */
  private readonly sums = new Uint32Array(MAX_SEGMENTS);
  private readonly chunkSums: ChunkSums;
  // 32-bit words over the last buffer summed, so that aligned sums read 4 bytes at a time.
  private wordsOf: ArrayBufferLike | undefined;
  private words: Uint32Array = new Uint32Array(0);

  /**
   * @param maxSegment the longest segment cut() may write (the caller's slot room).
   * @param udp whether UDP super-packets (TUN_F_USO4/6) are expected; otherwise refused.
   * @param chunkSums sums the segments' payloads (the addon's checksumChunks); a loop here by default.
   */
  constructor(readonly maxSegment: number, readonly udp = false, chunkSums?: ChunkSums) {
    this.chunkSums = chunkSums ?? ((data, start, end, chunk, out) => {
      let k = 0;
      for (let from = start; from < end; from += chunk) out[k++] = fold(this.sum(data, from, Math.min(from + chunk, end), 0));
      return k;
    });
  }

  /**
   * Takes the packet at `buf[start : start + length]` as read from the TUN, with its
   * virtio_net_hdr at `header[at : at + 10]`. Returns IN_PLACE when the packet is ready
   * to send as it is (not GSO, or GSO with one segment: its checksum is finished in
   * place), REFUSED, or the number of segments (2 or more) to write with cut(0) ..
   * cut(n - 1), before `buf` changes or the next prepare().
   */
  prepare(buf: Uint8Array, start: number, length: number, header: Uint8Array, at: number): number {
    this.count = 0;
    if (start < 0 || length < 0 || start + length > buf.length) throw new RangeError(`prepare: ${length} bytes at ${start} are outside ${buf.length}`);
    const p = buf;
    const s = start;
    const flags = header[at]!;
    const gsoType = header[at + 1]! & ~VIRTIO_NET_HDR_GSO_ECN;
    const gsoSize = header[at + 4]! | (header[at + 5]! << 8);
    const csumStart = header[at + 6]! | (header[at + 7]! << 8);
    const csumOffset = header[at + 8]! | (header[at + 9]! << 8);
    const needsCsum = (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0;
    if (gsoType === VIRTIO_NET_HDR_GSO_NONE) {
      if (!needsCsum) return IN_PLACE;
      if (csumStart + csumOffset + 2 > length) return this.refuse('checksum-offsets');
      this.finishChecksum(p, s + csumStart, s + csumStart + csumOffset, s + length);
      return IN_PLACE;
    }
    const tcp = gsoType === VIRTIO_NET_HDR_GSO_TCPV4 || gsoType === VIRTIO_NET_HDR_GSO_TCPV6;
    if ((!tcp && !(gsoType === VIRTIO_NET_HDR_GSO_UDP_L4 && this.udp)) || gsoSize === 0) return this.refuse('gso-type');
    if (length < 20) return this.refuse('ip-header');
    const version = p[s]! >> 4;
    let transport: number;
    let protocol: number;
    if (version === 4 && gsoType !== VIRTIO_NET_HDR_GSO_TCPV6) {
      transport = (p[s]! & 0x0f) * 4;
      if (transport < 20 || transport > length || ((p[s + 2]! << 8) | p[s + 3]!) !== length) return this.refuse('ip-header');
      if ((p[s + 6]! & 0x3f) !== 0 || p[s + 7] !== 0) return this.refuse('ip-header'); // MF or a fragment offset
      protocol = p[s + 9]!;
      this.pseudo = sumBytes(p, s + 12, s + 20, 0);
    } else if (version === 6 && gsoType !== VIRTIO_NET_HDR_GSO_TCPV4) {
      if (length < 40 || 40 + ((p[s + 4]! << 8) | p[s + 5]!) !== length) return this.refuse('ip-header');
      protocol = p[s + 6]!;
      transport = 40;
      for (let n = 0; protocol === HOP_BY_HOP || protocol === DESTINATION_OPTIONS; n++) {
        if (n === MAX_EXTENSION_HEADERS || transport + 8 > length) return this.refuse('ip-header');
        protocol = p[s + transport]!;
        transport += (p[s + transport + 1]! + 1) * 8;
      }
      this.pseudo = sumBytes(p, s + 8, s + 40, 0);
    } else {
      return this.refuse('ip-header');
    }
    if (protocol !== (tcp ? TCP : UDP)) return this.refuse('ip-header');
    this.pseudo += protocol;
    if (needsCsum && (csumStart !== transport || csumOffset !== (tcp ? 16 : 6))) return this.refuse('checksum-offsets');
    let headers: number;
    if (tcp) {
      if (transport + 20 > length) return this.refuse('transport-header');
      headers = transport + (p[s + transport + 12]! >> 4) * 4;
      if (headers < transport + 20) return this.refuse('transport-header');
    } else {
      headers = transport + 8;
    }
    if (headers >= length) return this.refuse('transport-header');
    const count = Math.ceil((length - headers) / gsoSize);
    if (count > MAX_SEGMENTS || headers + Math.min(gsoSize, length - headers) > this.maxSegment) return this.refuse('segment-size');
    this.buf = p;
    this.start = s;
    this.length = length;
    this.v6 = version === 6;
    this.tcp = tcp;
    this.transport = transport;
    this.headers = headers;
    this.gsoSize = gsoSize;
    if (count === 1) {
      this.writeChecksum(p, s, length);
      return IN_PLACE;
    }
    this.count = count;
    this.id = (p[s + 4]! << 8) | p[s + 5]!;
    const t = s + transport;
    this.seq = tcp ? ((p[t + 4]! << 24) | (p[t + 5]! << 16) | (p[t + 6]! << 8) | p[t + 7]!) >>> 0 : 0;
    this.flags = tcp ? p[t + 13]! : 0;
    this.chunkSums(p, s + headers, s + length, gsoSize, this.sums);
    this.superPackets++;
    this.segments += count;
    return count;
  }

  /**
   * Writes segment `k` of the packet prepare() took into `out` from byte `at` on; returns
   * its length. Only the headers are summed here: the payload's sum came from prepare().
   */
  cut(k: number, out: Uint8Array, at: number): number {
    if (!Number.isInteger(k) || k < 0 || k >= this.count || this.count < 2) throw new RangeError(`cut: no segment ${k} (${this.count} prepared)`);
    const p = this.buf;
    const s = this.start;
    const h = this.headers;
    const t = this.transport;
    const from = h + k * this.gsoSize;
    const chunk = Math.min(this.gsoSize, this.length - from);
    const length = h + chunk;
    if (at < 0 || at + length > out.length) throw new RangeError(`cut: ${length} bytes do not fit at ${at} of ${out.length}`);
    for (let i = 0; i < h; i++) out[at + i] = p[s + i]!;
    out.set(p.subarray(s + from, s + from + chunk), at + h);
    if (this.v6) {
      out[at + 4] = (length - 40) >> 8;
      out[at + 5] = (length - 40) & 0xff;
    } else {
      out[at + 2] = length >> 8;
      out[at + 3] = length & 0xff;
      const id = (this.id + k) & 0xffff;
      out[at + 4] = id >> 8;
      out[at + 5] = id & 0xff;
      out[at + 10] = 0;
      out[at + 11] = 0;
      const c = ~fold(sumBytes(out, at, at + t, 0)) & 0xffff;
      out[at + 10] = c >> 8;
      out[at + 11] = c & 0xff;
    }
    if (this.tcp) {
      const seq = (this.seq + k * this.gsoSize) >>> 0;
      out[at + t + 4] = seq >>> 24;
      out[at + t + 5] = (seq >>> 16) & 0xff;
      out[at + t + 6] = (seq >>> 8) & 0xff;
      out[at + t + 7] = seq & 0xff;
      let flags = this.flags;
      if (k !== this.count - 1) flags &= ~(FIN | PSH);
      if (k !== 0) flags &= ~CWR;
      out[at + t + 13] = flags;
    } else {
      out[at + t + 4] = (length - t) >> 8;
      out[at + t + 5] = (length - t) & 0xff;
    }
    // The checksum: pseudo-header, the headers as written (field zeroed), the payload's sum from prepare().
    const field = at + t + (this.tcp ? 16 : 6);
    out[field] = 0;
    out[field + 1] = 0;
    let c = ~fold(sumBytes(out, at + t, at + h, this.pseudo + (length - t) + this.sums[k]!)) & 0xffff;
    if (c === 0 && !this.tcp) c = 0xffff; // UDP's 0 means "no checksum"
    out[field] = c >> 8;
    out[field + 1] = c & 0xff;
    return length;
  }

  /** The TCP/UDP checksum of the packet at `p[at : at + length]`, computed in full and stored. */
  private writeChecksum(p: Uint8Array, at: number, length: number): void {
    const t = at + this.transport;
    const field = t + (this.tcp ? 16 : 6);
    p[field] = 0;
    p[field + 1] = 0;
    let c = ~fold(this.sum(p, t, at + length, this.pseudo + (length - this.transport))) & 0xffff;
    if (c === 0 && !this.tcp) c = 0xffff; // UDP's 0 means "no checksum"
    p[field] = c >> 8;
    p[field + 1] = c & 0xff;
  }

  /** Folds the sum of `p[start:end]` into the partial sum at `field` (skb_checksum_help). */
  private finishChecksum(p: Uint8Array, start: number, field: number, end: number): void {
    const c = ~fold(this.sum(p, start, end, 0)) & 0xffff || 0xffff;
    p[field] = c >> 8;
    p[field + 1] = c & 0xff;
    this.checksummed++;
  }

  /** sumBytes, four bytes at a time where `p[from]` is 4-byte aligned (RFC 1071: the sum does not care about byte order). */
  private sum(p: Uint8Array, from: number, to: number, sum: number): number {
    const offset = p.byteOffset + from;
    if (!LITTLE_ENDIAN || (offset & 3) !== 0 || to - from < 64) return sumBytes(p, from, to, sum);
    if (this.wordsOf !== p.buffer) {
      this.wordsOf = p.buffer;
      this.words = new Uint32Array(p.buffer, 0, p.buffer.byteLength >>> 2);
    }
    const words = this.words;
    const first = offset >>> 2;
    const end = first + ((to - from) >>> 2);
    let swapped = 0;
    for (let i = first; i < end; i++) swapped += words[i]!;
    // Little-endian words sum to the byte-swapped network sum.
    swapped = fold(swapped);
    sum += ((swapped & 0xff) << 8) | (swapped >> 8);
    return sumBytes(p, from + (end - first) * 4, to, sum);
  }

  private refuse(reason: TsoRefusal): number {
    this.refused[reason]++;
    return REFUSED;
  }
}
