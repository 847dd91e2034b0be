// The value of each key, parsed strictly. Each parser returns the normalised value or
// throws a ValueError saying what was expected; parse.ts adds the file, line and key.
// write.ts uses the same parsers to check what it is about to write.

import { idnToAscii } from './idn.js';
import { decodeKey, KeyFormatError } from '../../crypto/keys.js';
import { type ConfigErrorCode, quote } from './errors.js';
import { formatIpv4, formatIpv6, IpFormatError, type IpPrefix, parseIpAddress, parsePrefix } from './ip.js';
import type { RoutingTable } from './types.js';

export class ValueError extends Error {
  readonly code: ConfigErrorCode;
  constructor(code: ConfigErrorCode, detail: string) {
    super(detail);
    this.code = code;
  }
}

/** Space, \t, \n, \v, \f, \r: POSIX [[:space:]] in the C locale. */
const isAsciiSpace = (code: number): boolean => code === 0x20 || (code >= 0x09 && code <= 0x0d);

/**
 * wg-quick trims with [[:space:]]; so do we (ASCII only, not Unicode spaces). A scan from
 * each end, linear in the text: a regular expression anchored at the end, [ws]+$, is
 * tried at every position of a run of spaces and takes quadratic time (40,000 spaces
 * before a last character took 2 s).
 */
export function trimAscii(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isAsciiSpace(text.charCodeAt(start))) start++;
  while (end > start && isAsciiSpace(text.charCodeAt(end - 1))) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

/**
 * Splits a comma-separated list. An empty value is an empty list (as `AllowedIPs =`
 * in wg); an empty entry between commas is an error, not silently skipped.
 * `spaces`: white space separates entries too, as wg-quick's word splitting does for
 * Address and DNS (AllowedIPs goes to `wg`, which only knows commas).
 */
export function splitList(value: string, spaces = false): string[] {
  if (value === '') return [];
  const items = value.split(',').map(trimAscii);
  const empty = items.indexOf('');
  if (empty >= 0) {
    throw new ValueError('ERR_CONFIG_SYNTAX', `entry ${empty + 1} of the comma-separated list is empty`);
  }
  return spaces ? items.flatMap((item) => item.split(/[ \t\v\f\r\n]+/)) : items;
}

/** "entry 2 'foo'" or "entry 2" when the text must not be shown. */
function entry(index: number, text: string): string {
  const shown = quote(text);
  return shown === undefined ? `entry ${index + 1}` : `entry ${index + 1} ${shown}`;
}

export function parseKey(text: string): Uint8Array {
  if (text === '') throw new ValueError('ERR_CONFIG_EMPTY_VALUE', 'a key is required after "="');
  try {
    return decodeKey(text);
  } catch (error) {
    // KeyFormatError's message describes the fault without echoing the text.
    if (error instanceof KeyFormatError) throw new ValueError('ERR_CONFIG_BAD_KEY', error.message);
    throw error;
  }
}

const DECIMAL = /^(?:0|[1-9][0-9]{0,9})$/;

function decimal(text: string): number | undefined {
  return DECIMAL.test(text) ? Number(text) : undefined;
}

export function parsePort(text: string, allowZero: boolean): number {
  const n = decimal(text);
  const low = allowZero ? 0 : 1;
  if (n === undefined || n < low || n > 65535) {
    throw new ValueError('ERR_CONFIG_BAD_PORT', `a port is a decimal number ${low}..65535 (service names are not accepted)`);
  }
  return n;
}

export const MTU_MIN_IPV4 = 576;
export const MTU_MIN_IPV6 = 1280;
export const MTU_MAX = 65535;

export function parseMtu(text: string): number {
  const n = decimal(text);
  if (n === undefined || n < MTU_MIN_IPV4 || n > MTU_MAX) {
    throw new ValueError('ERR_CONFIG_BAD_MTU', `an MTU is a decimal number ${MTU_MIN_IPV4}..${MTU_MAX} (${MTU_MIN_IPV6}.. with an IPv6 address)`);
  }
  return n;
}

export const TABLE_MAX = 0xffffffff;

export function parseTable(text: string): RoutingTable {
  const lower = text.toLowerCase();
  if (lower === 'off' || lower === 'auto') return lower;
  const n = decimal(text);
  if (n === undefined || n < 1 || n > TABLE_MAX) {
    throw new ValueError(
      'ERR_CONFIG_BAD_TABLE',
      `a routing table is off, auto, or a decimal number 1..${TABLE_MAX} (names from rt_tables are not accepted: main is 254)`,
    );
  }
  return n;
}

/** "off" is 0; decimal or 0x hexadecimal up to 2^32-1, as `wg` reads it (octal is refused). */
export function parseFwMark(text: string): number {
  if (text.toLowerCase() === 'off') return 0;
  let n: number | undefined;
  if (/^0[xX][0-9A-Fa-f]{1,8}$/.test(text)) n = parseInt(text.slice(2), 16);
  else n = decimal(text);
  if (n === undefined || n > 0xffffffff) {
    throw new ValueError('ERR_CONFIG_BAD_FWMARK', 'a firewall mark is off, a decimal number or 0x followed by hex digits, at most 0xffffffff');
  }
  return n;
}

export function parseKeepalive(text: string): number {
  if (text.toLowerCase() === 'off') return 0;
  const n = decimal(text);
  if (n === undefined || n > 65535) {
    throw new ValueError('ERR_CONFIG_BAD_KEEPALIVE', 'a persistent keepalive is off or a number of seconds 0..65535');
  }
  return n;
}

export function parseBoolean(text: string): boolean {
  const lower = text.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  throw new ValueError('ERR_CONFIG_BAD_BOOLEAN', 'expected true or false');
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A DNS name: labels of 1..63 letters, digits and hyphens, no hyphen at either end of a
 * label, at most 253 characters, not ending in an all-digit label (that is an IPv4
 * address, not a name). Returned in lower case. No leading "*." or ".": a domain
 * already matches every name under it. No trailing dot either.
 */
export function parseDomain(text: string): string {
  if (text === '') throw new ValueError('ERR_CONFIG_BAD_DOMAIN', 'a domain name is required');
  if (text.startsWith('*.') || text.startsWith('.')) {
    throw new ValueError('ERR_CONFIG_BAD_DOMAIN', 'write a domain without a leading "*." or ".": it already matches every name under it');
  }
  if (text.endsWith('.')) throw new ValueError('ERR_CONFIG_BAD_DOMAIN', 'write a domain without a trailing dot');
  if (/[^\u0000-\u007f]/.test(text)) {
    throw new ValueError('ERR_CONFIG_BAD_DOMAIN', 'an internationalised domain is written in its ASCII form (xn--…)');
  }
  if (text.length > 253) throw new ValueError('ERR_CONFIG_BAD_DOMAIN', 'a domain name is at most 253 characters');
  const lower = text.toLowerCase();
  const labels = lower.split('.');
  for (const label of labels) {
    if (label === '') throw new ValueError('ERR_CONFIG_BAD_DOMAIN', 'a domain name has no empty label (two dots in a row)');
    if (label.length > 63) throw new ValueError('ERR_CONFIG_BAD_DOMAIN', 'each label of a domain name is at most 63 characters');
    if (!LABEL.test(label)) {
      throw new ValueError(
        'ERR_CONFIG_BAD_DOMAIN',
        'a domain name has labels of letters, digits and hyphens, with no hyphen at the start or end of a label',
      );
    }
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) {
    throw new ValueError('ERR_CONFIG_BAD_DOMAIN', 'a domain name does not end in an all-digit label (an IP address is not a domain)');
  }
  return lower;
}

/**
 * A domain of a per-app list, as Apple compares them: one trailing dot is ignored and an
 * internationalised name is taken in its ASCII form (punycode, idn.ts),
 * then it must be a DNS name (parseDomain). Returned in that ASCII, lower-case form.
 */
export function parseMatchDomain(text: string): string {
  const bare = text.endsWith('.') && !text.endsWith('..') ? text.slice(0, -1) : text;
  if (/[^\u0000-\u007f]/.test(bare)) {
    const ascii = idnToAscii(bare);
    if (ascii === undefined) throw new ValueError('ERR_CONFIG_BAD_DOMAIN', 'an internationalised domain that IDNA cannot turn into ASCII (punycode)');
    return parseDomain(ascii);
  }
  return parseDomain(bare);
}

/** A comma-separated list of domains (MailDomains and friends, an [App]'s Domains). */
export function parseDomainList(value: string): string[] {
  return splitList(value).map((item, i) => {
    try {
      return parseMatchDomain(item);
    } catch (error) {
      if (error instanceof ValueError) throw new ValueError(error.code, `${entry(i, item)}: ${error.message}`);
      throw error;
    }
  });
}

/** Canonical text of an IP address, or a ValueError naming the entry. */
export function canonicalIp(text: string): string {
  try {
    const address = parseIpAddress(text);
    return address.family === 4 ? formatIpv4(address.bytes) : formatIpv6(address.bytes);
  } catch (error) {
    if (error instanceof IpFormatError) throw new ValueError('ERR_CONFIG_BAD_ADDRESS', error.message);
    throw error;
  }
}

/** Address / AllowedIPs: a list of CIDR prefixes, a bare address meaning /32 or /128. */
export function parsePrefixList(value: string, mask: boolean, spaces: boolean): IpPrefix[] {
  return splitList(value, spaces).map((item, i) => {
    try {
      return parsePrefix(item, { mask });
    } catch (error) {
      if (error instanceof IpFormatError) {
        const hint = /[ \t]/.test(item) ? ' (separate entries with commas)' : '';
        throw new ValueError('ERR_CONFIG_BAD_ADDRESS', `${entry(i, item)}: ${error.message}${hint}`);
      }
      throw error;
    }
  });
}

/**
 * DNS: wg-quick's rule sorts the entries: digits and dots, or anything with a colon, is
 * a resolver address; anything else is a search domain.
 */
export function parseDns(value: string): { servers: string[]; search: string[] } {
  const servers: string[] = [];
  const search: string[] = [];
  splitList(value, true).forEach((item, i) => {
    const isAddress = /^[0-9.]+$/.test(item) || item.includes(':');
    try {
      if (isAddress) servers.push(canonicalIp(item));
      else search.push(parseDomain(item));
    } catch (error) {
      if (error instanceof ValueError) {
        const what = isAddress ? 'a resolver address' : 'a search domain';
        throw new ValueError(error.code, `${entry(i, item)} (read as ${what}): ${error.message}`);
      }
      throw error;
    }
  });
  return { servers, search };
}

/**
 * A PreUp/PostUp/PreDown/PostDown command. The file cannot hold a newline, and wg-quick
 * cuts a line at its first "#", so a command can hold neither; nor can it start or end
 * with spaces, which are trimmed.
 */
export function checkHook(text: string): string {
  if (trimAscii(text) === '') throw new ValueError('ERR_CONFIG_EMPTY_VALUE', 'a command is required after "="');
  if (/[\n\r]/.test(text)) throw new ValueError('ERR_CONFIG_UNREPRESENTABLE', 'a command cannot contain a line break');
  if (text.includes('#')) throw new ValueError('ERR_CONFIG_UNREPRESENTABLE', 'a command cannot contain "#": wg-quick reads it as a comment');
  if (trimAscii(text) !== text) throw new ValueError('ERR_CONFIG_UNREPRESENTABLE', 'a command cannot start or end with white space');
  return text;
}

/** An [App]'s Name: it names nftables sets and cgroups, so a short identifier. */
export function parseAppName(text: string): string {
  if (!/^[a-z][a-z0-9_]{0,23}$/.test(text)) {
    throw new ValueError('ERR_CONFIG_BAD_APP', 'an app name is 1 to 24 lower-case letters, digits and "_", starting with a letter (mail, calendar, contacts, or your own)');
  }
  return text;
}

/**
 * A cgroup v2 path, relative to the cgroup2 mount ("user.slice/user-1000.slice/…"); a
 * leading and trailing "/" are dropped. No "." or ".." components, nothing but the
 * characters systemd and mkdir use for unit names.
 */
export function parseCGroup(text: string): string {
  const path = text.replace(/^\/+/, '').replace(/\/+$/, '');
  const parts = path.split('/');
  if (path === '' || parts.some((p) => p === '' || p === '.' || p === '..' || !/^[A-Za-z0-9_.@:+=-]+$/.test(p))) {
    throw new ValueError(
      'ERR_CONFIG_BAD_APP',
      'a cgroup is a path under the cgroup2 mount such as user.slice/user-1000.slice/user@1000.service/app.slice/app-mail.slice (components of letters, digits and _ . @ : + = -)',
    );
  }
  if (parts.length > 32) throw new ValueError('ERR_CONFIG_BAD_APP', 'a cgroup path is at most 32 components deep');
  return parts.join('/');
}

/** A user id for an [App]: 1..2^32-2. Root (0) is refused: Burrow's own resolver runs as root. */
export function parseUid(text: string): number {
  const n = decimal(text);
  if (n === undefined || n > 0xfffffffe) throw new ValueError('ERR_CONFIG_BAD_APP', 'a UID is a decimal user id (see `id -u NAME`)');
  if (n === 0) throw new ValueError('ERR_CONFIG_BAD_APP', "UID 0 is refused: root's processes include Burrow's own resolver, whose queries must not be redirected to itself");
  return n;
}
