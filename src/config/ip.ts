// IPv4 and IPv6 addresses and prefixes as text, strictly, with no dependency on node:net
// so that the engine can reuse it.
//
// Input:
//   IPv4  four decimal octets 0..255, no leading zeros ("010.0.0.1" is refused: some
//         parsers read it as octal, inet_pton refuses it).
//   IPv6  RFC 4291 §2.2: eight groups of 1..4 hex digits, one "::" standing for one or
//         more zero groups, and an optional dotted IPv4 tail for the last 32 bits
//         ("::ffff:192.0.2.1"). Zone indices ("fe80::1%eth0") are refused.
//   Prefix  ADDRESS "/" LENGTH, LENGTH decimal without leading zeros, ≤ 32 or ≤ 128.
// Output:
//   IPv6 as RFC 5952 §4: lower case, no leading zeros, the longest run of two or more
//   zero groups (the first of equal runs) as "::", and IPv4-mapped addresses
//   (::ffff:0:0/96) with a dotted tail as §5 recommends.

import { formatIpv4, formatIpv6 } from '../../tunnel/ip.js';

export { formatIpv4, formatIpv6 };

export type IpFamily = 4 | 6;

export interface IpAddress {
  readonly family: IpFamily;
  /** 4 bytes for IPv4, 16 for IPv6, network order. */
  readonly bytes: Uint8Array;
}

export interface IpPrefix {
  readonly family: IpFamily;
  /** 4 bytes for IPv4, 16 for IPv6, network order. Host bits are kept as given. */
  readonly address: Uint8Array;
  /** 0..32 for IPv4, 0..128 for IPv6. */
  readonly prefixLength: number;
  /** The canonical text form, always with the length: "10.0.0.0/24", "2001:db8::/32". */
  readonly text: string;
}

export class IpFormatError extends Error {
  readonly code = 'ERR_IP_FORMAT';
  override readonly name = 'IpFormatError';
}

const DECIMAL_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;
const PREFIX_LENGTH = /^(?:0|[1-9][0-9]{0,2})$/;

function parseIpv4Into(text: string, out: Uint8Array, offset: number): void {
  const parts = text.split('.');
  if (parts.length !== 4) throw new IpFormatError('an IPv4 address is four decimal numbers separated by dots');
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!DECIMAL_OCTET.test(part)) {
      throw new IpFormatError(
        part === ''
          ? 'an IPv4 address has a number between each pair of dots'
          : /^0[0-9]/.test(part)
            ? 'an IPv4 address has no leading zeros (they could be read as octal)'
            : 'an IPv4 address is made of decimal numbers 0..255',
      );
    }
    const n = Number(part);
    if (n > 255) throw new IpFormatError('each number of an IPv4 address is at most 255');
    out[offset + i] = n;
  }
}

export function parseIpv4(text: string): Uint8Array {
  const out = new Uint8Array(4);
  parseIpv4Into(text, out, 0);
  return out;
}

export function parseIpv6(text: string): Uint8Array {
  if (text.includes('%')) throw new IpFormatError('IPv6 zone indices (%name) are not supported');
  const out = new Uint8Array(16);
  const halves = text.split('::');
  if (halves.length > 2) throw new IpFormatError('an IPv6 address has "::" at most once');
  const compressed = halves.length === 2;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const tail = compressed ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
  // The dotted IPv4 tail, if any, is the very last group of the whole address.
  const last = compressed ? tail : head;
  let v4Tail: string | undefined;
  if (last.length > 0 && last[last.length - 1]!.includes('.')) v4Tail = last.pop();
  const groups = head.length + tail.length + (v4Tail === undefined ? 0 : 2);
  if (compressed ? groups > 7 : groups !== 8) {
    throw new IpFormatError(
      compressed
        ? 'an IPv6 address with "::" has at most seven other groups'
        : 'an IPv6 address has eight groups of hex digits, or fewer with "::"',
    );
  }
  const writeGroups = (list: string[], at: number): void => {
    for (let i = 0; i < list.length; i++) {
      const g = list[i]!;
      if (!HEX_GROUP.test(g)) {
        throw new IpFormatError(
          g === '' ? 'an IPv6 address has a group between each pair of single colons' : 'each group of an IPv6 address is 1 to 4 hex digits',
        );
      }
      const n = parseInt(g, 16);
      out[at + 2 * i] = n >>> 8;
      out[at + 2 * i + 1] = n & 255;
    }
  };
  writeGroups(head, 0);
  const tailGroups = tail.length + (v4Tail === undefined ? 0 : 2);
  writeGroups(tail, 16 - 2 * tailGroups);
  if (v4Tail !== undefined) parseIpv4Into(v4Tail, out, 12);
  return out;
}

/** Parses an IPv4 or IPv6 address (IPv6 if the text contains a colon). */
export function parseIpAddress(text: string): IpAddress {
  if (typeof text !== 'string') throw new TypeError('address: expected a string');
  if (text.includes(':')) return { family: 6, bytes: parseIpv6(text) };
  return { family: 4, bytes: parseIpv4(text) };
}

export function formatIpAddress(address: IpAddress): string {
  return address.family === 4 ? formatIpv4(address.bytes) : formatIpv6(address.bytes);
}

function maxLength(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

/** Builds a prefix (copying the bytes) with its canonical text. */
export function makePrefix(family: IpFamily, address: Uint8Array, prefixLength: number): IpPrefix {
  if (family !== 4 && family !== 6) throw new RangeError('family: expected 4 or 6');
  if (address.length !== (family === 4 ? 4 : 16)) {
    throw new RangeError(`address: expected ${family === 4 ? 4 : 16} bytes for IPv${family}, got ${address.length}`);
  }
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > maxLength(family)) {
    throw new RangeError(`prefixLength: expected an integer 0..${maxLength(family)}`);
  }
  const bytes = Uint8Array.from(address);
  const text = `${formatIpAddress({ family, bytes })}/${prefixLength}`;
  return { family, address: bytes, prefixLength, text };
}

/** The same prefix with every bit after the prefix length cleared. */
export function maskPrefix(prefix: IpPrefix): IpPrefix {
  return makePrefix(prefix.family, maskBytes(prefix.address, prefix.prefixLength), prefix.prefixLength);
}

export function hasHostBits(prefix: IpPrefix): boolean {
  const masked = maskBytes(prefix.address, prefix.prefixLength);
  return masked.some((b, i) => b !== prefix.address[i]);
}

function maskBytes(address: Uint8Array, prefixLength: number): Uint8Array {
  const out = Uint8Array.from(address);
  clearHostBits(out, prefixLength);
  return out;
}

/** Clears the bits after `prefixLength` in place; true when one was set. */
function clearHostBits(bytes: Uint8Array, prefixLength: number): boolean {
  let changed = false;
  for (let i = prefixLength >>> 3; i < bytes.length; i++) {
    const keep = (0xff00 >>> Math.max(0, Math.min(8, prefixLength - 8 * i))) & 0xff;
    if ((bytes[i]! & ~keep) !== 0) changed = true;
    bytes[i]! &= keep;
  }
  return changed;
}

export interface ParsePrefixOptions {
  /** Clear the host bits, as the WireGuard allowed-IPs table does (default false). */
  readonly mask?: boolean;
}

/**
 * Parses "ADDRESS/LENGTH" or a bare "ADDRESS" (a host prefix: /32 or /128).
 * Host bits are kept unless `mask` is set.
 */
export function parsePrefix(text: string, options: ParsePrefixOptions = {}): IpPrefix {
  if (typeof text !== 'string') throw new TypeError('prefix: expected a string');
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const { family, bytes } = parseIpAddress(addressText);
  let length = maxLength(family);
  if (slash >= 0) {
    const lengthText = text.slice(slash + 1);
    if (!PREFIX_LENGTH.test(lengthText)) {
      throw new IpFormatError('a prefix length is a decimal number after the "/", without leading zeros');
    }
    length = Number(lengthText);
    if (length > maxLength(family)) {
      throw new IpFormatError(`an IPv${family} prefix length is at most ${maxLength(family)}`);
    }
  }
  const masked = options.mask === true && clearHostBits(bytes, length);
  // The bytes are this call's own (no copy needed). Strictly parsed IPv4 text (no leading
  // zeros anywhere) is already canonical: only IPv6 and masked addresses are formatted.
  const canonical = family === 4 && slash >= 0 && !masked ? text : `${formatIpAddress({ family, bytes })}/${length}`;
  return { family, address: bytes, prefixLength: length, text: canonical };
}
