// The IP packets the fuzzers push through tunnels, and the little address arithmetic the
// checks need. Each test packet carries a unique tag (a 32-bit id after a 4-byte magic)
// in its payload, so that a packet written to a tunnel interface can be traced to the
// one `sendPacket` call that made it, and checked byte for byte.
//
// Deliberately independent of tunnel/ip.ts and tunnel/allowedips.ts: these are the
// oracles the engine is checked against, so they must not share its code.

import type { Prng } from './prng.js';

export const MAGIC = [0x42, 0x52, 0x52, 0x57]; // "BRRW"
const UDP = 17;

export interface Prefix {
  readonly address: Uint8Array; // 4 or 16 bytes
  readonly cidr: number;
}

export function v4(text: string): Uint8Array {
  return Uint8Array.from(text.split('.').map(Number));
}

/** fd00::<n> style: the 16-byte address with `last` in the low two bytes. */
export function v6(high: number, last: number): Uint8Array {
  const a = new Uint8Array(16);
  a[0] = high >>> 8;
  a[1] = high & 255;
  a[14] = last >>> 8;
  a[15] = last & 255;
  return a;
}

export function addressText(a: Uint8Array): string {
  if (a.length === 4) return Array.from(a).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((a[i]! << 8) | a[i + 1]!).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** Naive prefix match, bit by bit. */
export function inPrefix(address: Uint8Array, p: Prefix): boolean {
  if (address.length !== p.address.length) return false;
  for (let bit = 0; bit < p.cidr; bit++) {
    const byte = bit >>> 3;
    const mask = 0x80 >>> (bit & 7);
    if ((address[byte]! & mask) !== (p.address[byte]! & mask)) return false;
  }
  return true;
}

export const inAnyPrefix = (address: Uint8Array, prefixes: readonly Prefix[]): boolean => prefixes.some((p) => inPrefix(address, p));

/**
 * A UDP-over-IPv4 or -IPv6 packet of exactly `size` bytes (at least the headers plus
 * 8 bytes of tag) from `src` to `dst`, carrying `tag`.
 */
export function taggedPacket(src: Uint8Array, dst: Uint8Array, tag: number, size: number, rng: Prng): Uint8Array {
  const v6 = src.length === 16;
  const ipHeader = v6 ? 40 : 20;
  const min = ipHeader + 8 + 8;
  const total = Math.max(min, size);
  const pkt = new Uint8Array(total);
  if (v6) {
    pkt[0] = 0x60;
    const payload = total - 40;
    pkt[4] = payload >>> 8;
    pkt[5] = payload & 255;
    pkt[6] = UDP;
    pkt[7] = 64;
    pkt.set(src, 8);
    pkt.set(dst, 24);
  } else {
    pkt[0] = 0x45;
    pkt[2] = total >>> 8;
    pkt[3] = total & 255;
    pkt[8] = 64;
    pkt[9] = UDP;
    pkt.set(src, 12);
    pkt.set(dst, 16);
  }
  const udp = ipHeader;
  pkt[udp] = 0xc3;
  pkt[udp + 1] = 0x50;
  pkt[udp + 2] = 0xc3;
  pkt[udp + 3] = 0x51;
  const udpLength = total - ipHeader;
  pkt[udp + 4] = udpLength >>> 8;
  pkt[udp + 5] = udpLength & 255;
  pkt.set(MAGIC, udp + 8);
  pkt[udp + 12] = tag >>> 24;
  pkt[udp + 13] = (tag >>> 16) & 255;
  pkt[udp + 14] = (tag >>> 8) & 255;
  pkt[udp + 15] = tag & 255;
  rng.fill(pkt.subarray(udp + 16));
  return pkt;
}

export interface PacketInfo {
  readonly version: 4 | 6;
  readonly source: Uint8Array;
  readonly destination: Uint8Array;
  readonly length: number;
  /** The tag, when the packet is one of ours. */
  readonly tag: number | undefined;
}

/** Reads a packet the fuzzers made (and anything shaped like an IP header). */
export function readPacket(pkt: Uint8Array): PacketInfo | undefined {
  if (pkt.length < 1) return undefined;
  const version = pkt[0]! >>> 4;
  let header: number;
  let length: number;
  let source: Uint8Array;
  let destination: Uint8Array;
  if (version === 4 && pkt.length >= 20) {
    header = (pkt[0]! & 15) * 4;
    length = (pkt[2]! << 8) | pkt[3]!;
    source = pkt.subarray(12, 16);
    destination = pkt.subarray(16, 20);
  } else if (version === 6 && pkt.length >= 40) {
    header = 40;
    length = 40 + ((pkt[4]! << 8) | pkt[5]!);
    source = pkt.subarray(8, 24);
    destination = pkt.subarray(24, 40);
  } else {
    return undefined;
  }
  let tag: number | undefined;
  const t = header + 8;
  if (length >= t + 8 && pkt.length >= t + 8 && MAGIC.every((m, i) => pkt[t + i] === m)) {
    tag = ((pkt[t + 4]! << 24) | (pkt[t + 5]! << 16) | (pkt[t + 6]! << 8) | pkt[t + 7]!) >>> 0;
  }
  return { version: version as 4 | 6, source, destination, length, tag };
}

export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

export function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** A 53-bit FNV-1a-style fingerprint of `bytes` (two independent 32-bit lanes). */
export function fingerprint(bytes: Uint8Array): number {
  let h1 = 0x811c9dc5;
  let h2 = 0x1b873593 ^ bytes.length;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    h1 = Math.imul(h1 ^ b, 0x01000193);
    h2 = Math.imul(h2 ^ b, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  return (h1 >>> 0) * 0x200000 + ((h2 >>> 0) & 0x1fffff);
}
