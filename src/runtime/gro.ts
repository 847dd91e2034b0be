// GRO for the TUN write: the TCP segments of one flow that arrive in one batch, in
// sequence, are written to the TUN as one super-packet with a virtio_net_hdr that tells
// the kernel how to cut it back (IFF_VNET_HDR, gso_type TCPV4 or TCPV6). The kernel's
// stack then takes one packet where it took many: that per-packet cost is most of what
// the receiving daemon spends (bench/profile.ts). This is what Linux's own GRO does for
// a NIC, and what wireguard-go has done since 2023.
//
// A segment joins the open group of its flow (same addresses and ports) when it is the
// next in sequence and the rest of its headers match the group's first (IP version,
// TOS or traffic class and flow label, TTL or hop limit, TCP header length and options,
// ACK, window; IPv4's ID one more than the last), its flags are ACK or ACK|PSH, its payload is not longer than the first's,
// and the group is still open: a shorter segment or a PSH closes it, as does anything
// else of the flow that cannot join (so a flow's packets keep their order). IPv4 only
// without options or fragments; IPv6 only with TCP right after the fixed header.
//
// The super-packet: the first segment's headers with the lengths (and IPv4's header
// checksum) made right, the payloads one after the other, PSH if the last had it, and
// the TCP checksum field holding the pseudo-header's partial sum, as the kernel expects
// with VIRTIO_NET_HDR_F_NEEDS_CSUM (it sums the rest). Single packets go out as they
// came, with an all-zero header. Nothing is allocated per packet: groups live in typed
// arrays, super-packets in one arena, reused every batch.

export const VNET_HDR_LENGTH = 10;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;

const TCP = 6;
const ACK = 0x10;
const PSH = 0x08;
const MAX_IP_LENGTH = 65535;
/** Segments per super-packet at most (the kernel's GSO allows more; a batch is 64). */
const MAX_SEGMENTS = 64;

/** Where a coalescable TCP segment's parts are, or undefined for any other packet. */
interface Segment {
  v6: boolean;
  ipLength: number; // IP header bytes
  tcpLength: number; // TCP header bytes
  payload: number; // payload bytes
}

/** The TCP segment in `p`, if it is one GRO may coalesce (see the file's comment). */
function parseSegment(p: Uint8Array, out: Segment): boolean {
  if (p.length < 20) return false;
  const version = p[0]! >> 4;
  let ip: number;
  let total: number;
  if (version === 4) {
    ip = (p[0]! & 0x0f) * 4;
    if (ip !== 20 || p[9] !== TCP) return false;
    if ((p[6]! & 0x3f) !== 0 || p[7] !== 0) return false; // MF or a fragment offset
    total = (p[2]! << 8) | p[3]!;
    out.v6 = false;
  } else if (version === 6) {
    ip = 40;
    if (p.length < 40 || p[6] !== TCP) return false;
    total = 40 + ((p[4]! << 8) | p[5]!);
    out.v6 = true;
  } else {
    return false;
  }
  if (total !== p.length || total < ip + 20) return false;
  const tcp = (p[ip + 12]! >> 4) * 4;
  if (tcp < 20 || ip + tcp > total) return false;
  const flags = p[ip + 13]!;
  if (flags !== ACK && flags !== (ACK | PSH)) return false;
  out.ipLength = ip;
  out.tcpLength = tcp;
  out.payload = total - ip - tcp;
  return out.payload > 0;
}

const u32 = (p: Uint8Array, o: number): number => ((p[o]! << 24) | (p[o + 1]! << 16) | (p[o + 2]! << 8) | p[o + 3]!) >>> 0;

/** Same flow: addresses and ports. */
function sameFlow(a: Uint8Array, b: Uint8Array, v6: boolean, ip: number): boolean {
  const [from, to] = v6 ? [8, 40] : [12, 20];
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false;
  for (let i = ip; i < ip + 4; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Everything but lengths, IDs, checksums, sequence number and PSH matches. */
function sameHeaders(a: Uint8Array, b: Uint8Array, s: Segment): boolean {
  if (s.v6) {
    if (a[0] !== b[0] || a[1] !== b[1] || a[2] !== b[2] || a[3] !== b[3] || a[7] !== b[7]) return false;
  } else if (a[1] !== b[1] || a[8] !== b[8] || (a[6]! & 0x40) !== (b[6]! & 0x40)) {
    return false; // TOS, TTL, DF
  }
  const t = s.ipLength;
  if (((b[t + 12]! >> 4) * 4) !== s.tcpLength) return false;
  for (let i = t + 8; i < t + 12; i++) if (a[i] !== b[i]) return false; // ACK
  if (a[t + 14] !== b[t + 14] || a[t + 15] !== b[t + 15]) return false; // window
  for (let i = t + 20; i < t + s.tcpLength; i++) if (a[i] !== b[i]) return false; // options
  return true;
}

/** The one's-complement sum of `p[from:to]` added to `sum`, not folded. */
function sum16(p: Uint8Array, from: number, to: number, sum: number): number {
  let i = from;
  for (; i + 1 < to; i += 2) sum += (p[i]! << 8) | p[i + 1]!;
  if (i < to) sum += p[i]! << 8;
  return sum;
}

const fold = (sum: number): number => {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
};

export class Coalescer {
  /** After coalesce(): the packets to write, `count` of them. */
  readonly packets: Uint8Array[];
  /** After coalesce(): packet i's virtio_net_hdr at bytes 10 i .. 10 i + 10. */
  readonly headers: Uint8Array;
  count = 0;
  /** Super-packets written by the last coalesce(), and the segments they carried. */
  superPackets = 0;
  coalescedSegments = 0;

  private readonly arena: Uint8Array;
  // Per group: its first packet, member chain, and state.
  private readonly first: Int32Array;
  private readonly last: Int32Array;
  private readonly next: Int32Array;
  private readonly segments: Int32Array;
  private readonly bytes: Int32Array; // IP total length so far
  private readonly gsoSize: Int32Array;
  private readonly nextSeq: Float64Array;
  private readonly open: Uint8Array;
  private readonly groupV6: Uint8Array;
  private readonly ipLen: Int32Array;
  private readonly tcpLen: Int32Array;
  private readonly seg: Segment = { v6: false, ipLength: 0, tcpLength: 0, payload: 0 };

  constructor(readonly capacity: number, maxBatchBytes: number) {
    this.packets = new Array<Uint8Array>(capacity).fill(new Uint8Array(0));
    this.headers = new Uint8Array(capacity * VNET_HDR_LENGTH);
    this.arena = new Uint8Array(maxBatchBytes);
    this.first = new Int32Array(capacity);
    this.last = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
    this.segments = new Int32Array(capacity);
    this.bytes = new Int32Array(capacity);
    this.gsoSize = new Int32Array(capacity);
    this.nextSeq = new Float64Array(capacity);
    this.open = new Uint8Array(capacity);
    this.groupV6 = new Uint8Array(capacity);
    this.ipLen = new Int32Array(capacity);
    this.tcpLen = new Int32Array(capacity);
  }

  /**
   * Coalesces `input[0..n)` (at most `capacity` packets; more bytes than the arena
   * holds go out uncoalesced) into `packets[0..count)` with their `headers`; returns count. The views in
   * `packets` are the input's own or into this coalescer's arena, valid until the next call.
   */
  coalesce(input: readonly Uint8Array[], n: number): number {
    if (n > this.capacity) throw new RangeError(`coalesce: ${n} packets, capacity ${this.capacity}`);
    // A super-packet is never longer than its segments: the input's bytes bound the arena's.
    let inputBytes = 0;
    for (let i = 0; i < n; i++) inputBytes += input[i]!.length;
    // One packet (a ping, a lone ACK) has nothing to join: written as it came.
    if (n === 1 || inputBytes > this.arena.length) return this.passThrough(input, n);
    const s = this.seg;
    let groups = 0;
    for (let i = 0; i < n; i++) {
      const p = input[i]!;
      this.next[i] = -1;
      const ok = parseSegment(p, s);
      // The open group of this packet's flow, if any (any TCP packet: one that cannot
      // join still closes its flow's group, so that the flow keeps its order).
      let g = -1;
      const tcpAny = ok || isTcp(p);
      if (tcpAny) {
        const v6 = (p[0]! >> 4) === 6;
        const ip = v6 ? 40 : (p[0]! & 0x0f) * 4;
        for (let k = groups - 1; k >= 0; k--) {
          if (this.open[k] === 1 && this.groupV6[k] === (v6 ? 1 : 0) && this.ipLen[k] === ip && sameFlow(input[this.first[k]!]!, p, v6, ip)) {
            g = k;
            break;
          }
        }
      }
      if (ok && g >= 0 && this.fits(g, input, p, s)) {
        this.next[this.last[g]!] = i;
        this.last[g] = i;
        this.segments[g]!++;
        this.bytes[g]! += s.payload;
        this.nextSeq[g] = (this.nextSeq[g]! + s.payload) % 0x1_0000_0000;
        if (s.payload < this.gsoSize[g]! || (p[s.ipLength + 13]! & PSH) !== 0 || this.segments[g] === MAX_SEGMENTS) this.open[g] = 0;
        continue;
      }
      if (g >= 0) this.open[g] = 0;
      // A new group: coalescable (open) or a packet on its own (closed).
      const k = groups++;
      this.first[k] = i;
      this.last[k] = i;
      this.segments[k] = 1;
      this.open[k] = ok && (p[s.ipLength + 13]! & PSH) === 0 ? 1 : 0;
      if (ok) {
        this.groupV6[k] = s.v6 ? 1 : 0;
        this.ipLen[k] = s.ipLength;
        this.tcpLen[k] = s.tcpLength;
        this.bytes[k] = p.length;
        this.gsoSize[k] = s.payload;
        this.nextSeq[k] = (u32(p, s.ipLength + 4) + s.payload) % 0x1_0000_0000;
      }
    }
    this.emit(input, groups);
    return this.count;
  }

  /** Every packet on its own (one packet, or a batch larger than the arena, which the caller sized). */
  private passThrough(input: readonly Uint8Array[], n: number): number {
    for (let i = 0; i < n; i++) this.packets[i] = input[i]!;
    this.headers.fill(0, 0, n * VNET_HDR_LENGTH);
    this.superPackets = 0;
    this.coalescedSegments = 0;
    this.count = n;
    return n;
  }

  private fits(g: number, input: readonly Uint8Array[], p: Uint8Array, s: Segment): boolean {
    const head = input[this.first[g]!]!;
      // IPv4: the ID counts up by one a segment, so that cutting the super-packet (which
    // counts them up from the first) gives back exactly these packets, as Linux's GRO.
    const idOk = s.v6 || ((((head[4]! << 8) | head[5]!) + this.segments[g]!) & 0xffff) === ((p[4]! << 8) | p[5]!);
    return idOk && s.ipLength === this.ipLen[g] && s.tcpLength === this.tcpLen[g] && s.payload <= this.gsoSize[g]! &&
      u32(p, s.ipLength + 4) === this.nextSeq[g] && this.bytes[g]! + s.payload <= MAX_IP_LENGTH && sameHeaders(head, p, s);
  }

  private emit(input: readonly Uint8Array[], groups: number): void {
    const { arena, headers } = this;
    headers.fill(0, 0, groups * VNET_HDR_LENGTH);
    let used = 0;
    this.superPackets = 0;
    this.coalescedSegments = 0;
    for (let g = 0; g < groups; g++) {
      const head = input[this.first[g]!]!;
      if (this.segments[g] === 1) {
        this.packets[g] = head;
        continue;
      }
      const ip = this.ipLen[g]!;
      const hl = ip + this.tcpLen[g]!;
      const total = this.bytes[g]!;
      const out = arena.subarray(used, used + total);
      used += total;
      out.set(head, 0);
      let at = head.length;
      let lastFlags = 0;
      for (let i = this.next[this.first[g]!]!; i >= 0; i = this.next[i]!) {
        const p = input[i]!;
        out.set(p.subarray(hl), at);
        at += p.length - hl;
        lastFlags = p[ip + 13]!;
      }
      out[ip + 13]! |= lastFlags & PSH;
      const v6 = this.groupV6[g] === 1;
      let pseudo: number;
      if (v6) {
        out[4] = (total - 40) >> 8;
        out[5] = (total - 40) & 0xff;
        pseudo = sum16(out, 8, 40, 0) + TCP + (total - 40);
      } else {
        out[2] = total >> 8;
        out[3] = total & 0xff;
        out[10] = 0;
        out[11] = 0;
        const c = ~fold(sum16(out, 0, 20, 0)) & 0xffff;
        out[10] = c >> 8;
        out[11] = c & 0xff;
        pseudo = sum16(out, 12, 20, 0) + TCP + (total - 20);
      }
      const partial = fold(pseudo);
      out[ip + 16] = partial >> 8;
      out[ip + 17] = partial & 0xff;
      const h = g * VNET_HDR_LENGTH; // struct virtio_net_hdr, little-endian
      headers[h] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      headers[h + 1] = v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
      headers[h + 2] = hl & 0xff;
      headers[h + 3] = hl >> 8;
      headers[h + 4] = this.gsoSize[g]! & 0xff;
      headers[h + 5] = this.gsoSize[g]! >> 8;
      headers[h + 6] = ip & 0xff; // csum_start
      headers[h + 7] = ip >> 8;
      headers[h + 8] = 16; // csum_offset: TCP's checksum field
      headers[h + 9] = 0;
      this.packets[g] = out;
      this.superPackets++;
      this.coalescedSegments += this.segments[g]!;
    }
    this.count = groups;
  }
}

function isTcp(p: Uint8Array): boolean {
  if (p.length < 20) return false;
  const v = p[0]! >> 4;
  return (v === 4 && p[9] === TCP) || (v === 6 && p.length >= 40 && p[6] === TCP);
}
