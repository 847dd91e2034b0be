// Strict, minimal parsing of the IP packets the engine handles: those read from the
// tunnel interface (to pick the peer by destination) and those that come out of
// decryption (to check the source against the peer's allowed IPs and to trim padding).
//
// Only what routing needs is read: the version nibble, the header and total lengths,
// and the two addresses. The checks follow what the Linux kernel does with a decrypted
// packet (drivers/net/wireguard/receive.c, wg_packet_consume_data_done): IPv4 total
// length from the header, IPv6 total length = payload length + 40, and a packet that
// claims more bytes than arrived is refused. Bytes past the claimed length are padding
// (WireGuard pads plaintext to a multiple of 16); `length` tells the caller where the
// real packet ends.
//
// IPv4 (RFC 791 section 3.1): version 4, IHL >= 5 words, header length <= total length
// <= bytes received. Options are allowed and skipped (they sit between byte 20 and
// IHL * 4). Checksums are not checked: on the decrypted side the AEAD tag already
// vouches for every byte, and on the TUN side the local stack wrote them.
// IPv6 (RFC 8200 section 3): version 6, a 40-byte fixed header, 40 + payload length <=
// bytes received. A payload length of 0 is taken at its word (a 40-byte packet), as the
// kernel does: jumbograms (RFC 2675) cannot cross a WireGuard tunnel.
//
// parseIpPacket never throws and copies no bytes: the addresses are views into the
// packet, valid while the caller leaves the buffer alone.

export const IPV4_HEADER_MIN = 20;
export const IPV6_HEADER_LENGTH = 40;

/** Why a packet was refused; stable strings, suitable for counters and logs. */
export type IpRefusal =
  /** Fewer bytes than the fixed header of the packet's version (or none at all). */
  | 'too-short'
  /** The version nibble is neither 4 nor 6. */
  | 'bad-version'
  /** IPv4 IHL below 5 (a header shorter than 20 bytes). */
  | 'bad-header-length'
  /** The length the header claims is shorter than the header or longer than the bytes. */
  | 'bad-length';

export interface IpPacket {
  readonly ok: true;
  readonly version: 4 | 6;
  /** Source address: 4 or 16 bytes, a view into the packet. */
  readonly source: Uint8Array;
  /** Destination address: 4 or 16 bytes, a view into the packet. */
  readonly destination: Uint8Array;
  /** The packet's real length per its header (<= the bytes given); the rest is padding. */
  readonly length: number;
}

export interface IpRefused {
  readonly ok: false;
  readonly reason: IpRefusal;
}

export type IpParseResult = IpPacket | IpRefused;

// One frozen object per reason, so that refusing a packet allocates nothing.
const REFUSED: { readonly [R in IpRefusal]: IpRefused } = {
  'too-short': Object.freeze({ ok: false, reason: 'too-short' }),
  'bad-version': Object.freeze({ ok: false, reason: 'bad-version' }),
  'bad-header-length': Object.freeze({ ok: false, reason: 'bad-header-length' }),
  'bad-length': Object.freeze({ ok: false, reason: 'bad-length' }),
};

/** Parses the IP header at the start of `packet`. Never throws. */
export function parseIpPacket(packet: Uint8Array): IpParseResult {
  const available = packet.length;
  if (available === 0) return REFUSED['too-short'];
  const first = packet[0]!;
  const version = first >>> 4;

  if (version === 4) {
    if (available < IPV4_HEADER_MIN) return REFUSED['too-short'];
    const headerLength = (first & 0x0f) * 4;
    if (headerLength < IPV4_HEADER_MIN) return REFUSED['bad-header-length'];
    const total = (packet[2]! << 8) | packet[3]!;
    // total >= header and total <= available also guarantee the header is all there.
    if (total < headerLength || total > available) return REFUSED['bad-length'];
    return {
      ok: true,
      version: 4,
      source: packet.subarray(12, 16),
      destination: packet.subarray(16, 20),
      length: total,
    };
  }

  if (version === 6) {
    if (available < IPV6_HEADER_LENGTH) return REFUSED['too-short'];
    const total = IPV6_HEADER_LENGTH + ((packet[4]! << 8) | packet[5]!);
    if (total > available) return REFUSED['bad-length'];
    return {
      ok: true,
      version: 6,
      source: packet.subarray(8, 24),
      destination: packet.subarray(24, 40),
      length: total,
    };
  }

  return REFUSED['bad-version'];
}

// --- Addresses as text ------------------------------------------------------------
// The canonical forms every layer compares endpoints in (src/config/ip.ts re-exports them).

export function formatIpv4(bytes: Uint8Array): string {
  if (bytes.length !== 4) throw new RangeError(`IPv4 address: expected 4 bytes, got ${bytes.length}`);
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

function isIpv4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/** RFC 5952 §4 canonical text, with the §5 dotted tail for IPv4-mapped addresses. */
export function formatIpv6(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new RangeError(`IPv6 address: expected 16 bytes, got ${bytes.length}`);
  if (isIpv4Mapped(bytes)) return `::ffff:${formatIpv4(bytes.subarray(12))}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // §4.2.3: the longest run of zero groups, the first if two are equally long, and
  // only if it is at least two groups long (§4.2.2).
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]): string => list.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}
