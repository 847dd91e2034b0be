// WireGuard's cross-platform userspace API (https://www.wireguard.com/xplatform/), the
// text that `wg show`, `wg showconf` and `wg set` exchange with a userspace daemon:
// parsing requests and formatting replies. Pure: no socket, no clock, no device. The
// fuzz suites drive it through executeUapi (handle.ts).
//
// The protocol, one request at a time on a stream:
//
//   get=1\n\n                     ->  key=value\n …  errno=0\n\n
//   set=1\n key=value\n … \n      ->  errno=N\n\n
//
// A `set` has a device section (private_key, listen_port, fwmark, replace_peers), then
// one section per peer, each opened by public_key= (remove, update_only, preshared_key,
// endpoint, persistent_keepalive_interval, replace_allowed_ips, allowed_ip,
// protocol_version). Keys are 64 hex digits; an all-zero preshared key removes it.
// A `get` answers with the same keys plus last_handshake_time_sec/_nsec, rx_bytes and
// tx_bytes per peer, in wireguard-go's order.
//
// Requests are read line by line (UapiReader): a `set` is parsed as its lines arrive
// into a plan (UapiSetRequest) bounded by limits.ts, and handed over whole once its
// blank line has arrived; nothing is applied before that (apply.ts). A line that is
// wrong makes the rest of its request be skipped to the blank line, then refused with
// errno, and the connection goes on; a stream that cannot be resynchronised (an
// unknown operation, a request or line past its bound) is refused and closed.
//
// Private and preshared keys never appear in an error message.

import { decodeKey } from '../../../crypto/keys.js';
import type { AllowedIpPrefix, PeerStatus } from '../../../tunnel/device.js';
import { type Endpoint, formatEndpoint } from '../../../tunnel/endpoint.js';
import { parseEndpoint, parseHost } from '../../config/endpoint.js';
import { formatIpv4, formatIpv6, IpFormatError, parsePrefix } from '../../config/ip.js';
import { ValueError } from '../../config/values.js';
import { invalid, protocolError, tooLarge, UapiError } from './errors.js';
import { MAX_ALLOWED_IPS_PER_REQUEST, MAX_LINE_BYTES, MAX_OPERATION_LINE_BYTES, MAX_PEERS_PER_REQUEST, MAX_REQUEST_BYTES } from './limits.js';

// ---------------------------------------------------------------------------------
// The plan of a `set`

/** One peer section of a `set`, collapsed to its end effect. */
export interface UapiPeerSet {
  readonly publicKey: Uint8Array;
  /** Remove the peer (lines after remove=true in its section are checked, then ignored). */
  remove: boolean;
  /** Change the peer only if it already exists. */
  updateOnly: boolean;
  /** null: remove the preshared key (an all-zero value). */
  presharedKey?: Uint8Array | null;
  endpoint?: Endpoint;
  persistentKeepalive?: number;
  replaceAllowedIPs: boolean;
  /** The section's allowed IPs, in request order, as [from, to) in the request's list; after replace_allowed_ips, only those that follow it. */
  allowedFrom: number;
  allowedTo: number;
}

export interface UapiSetRequest {
  privateKey?: Uint8Array;
  listenPort?: number;
  fwmark?: number;
  replacePeers: boolean;
  /** In request order; a key may appear in several sections, applied in turn. */
  readonly peers: UapiPeerSet[];
  /** Every allowed_ip of the request, packed; each peer section names its range. */
  readonly allowedIPs: PrefixList;
}

/** Zeroes the keys a parsed request holds (the device keeps its own copies). */
export function wipeSetRequest(request: UapiSetRequest): void {
  request.privateKey?.fill(0);
  for (const p of request.peers) p.presharedKey?.fill(0);
}

/** Bytes per packed prefix: the address length (4 or 16), the prefix length, 16 address bytes. */
const PREFIX_RECORD = 18;

/**
 * Prefixes packed in one growing buffer, 18 bytes each: a `set` of 130,560 allowed IPs
 * holds 2.3 MB here instead of an object and an array per prefix.
 */
export class PrefixList {
  private bytes = new Uint8Array(PREFIX_RECORD * 16);
  length = 0;

  push(address: Uint8Array, cidr: number): void {
    if ((this.length + 1) * PREFIX_RECORD > this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    const at = this.length * PREFIX_RECORD;
    this.bytes[at] = address.length;
    this.bytes[at + 1] = cidr;
    this.bytes.set(address, at + 2);
    this.length++;
  }

  /** Prefixes [from, to) as views into the list (valid while it lives). */
  slice(from: number, to: number): AllowedIpPrefix[] {
    const out: AllowedIpPrefix[] = new Array(to - from);
    for (let i = from; i < to; i++) {
      const at = i * PREFIX_RECORD;
      out[i - from] = { address: this.bytes.subarray(at + 2, at + 2 + this.bytes[at]!), cidr: this.bytes[at + 1]! };
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------
// Values

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const DECIMAL = /^[0-9]{1,10}$/;

function parseHexKey(key: string, value: string): Uint8Array {
  // The value is never quoted: it may be a private key.
  if (!HEX_KEY.test(value)) throw invalid(`${key}: expected 64 hex digits`);
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(value.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Decimal 0..max, leading zeros accepted as wireguard-go's strconv.ParseUint does. */
function parseUint(key: string, value: string, max: number): number {
  const n = DECIMAL.test(value) ? Number(value) : NaN;
  if (!(n <= max)) throw invalid(`${key}: expected a decimal number 0..${max}`);
  return n;
}

function parseTrue(key: string, value: string): true {
  if (value !== 'true') throw invalid(`${key}: the only value is "true"`);
  return true;
}

/**
 * A value as an error may quote it: printable, short, and never anything that could be
 * a key sent by mistake (a run of 32 or more hex or base64 characters is left out).
 */
function shown(value: string): string {
  if (/[A-Za-z0-9+/=]{32,}/.test(value)) return '(a value that looks like a key, not shown)';
  const printable = value.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(printable.length > 60 ? `${printable.slice(0, 60)}…` : printable);
}

/** A key name as an error may quote it: only names made of letters and "_", like the real ones. */
const shownKey = (key: string): string => (/^[a-z_]{1,40}$/.test(key) ? JSON.stringify(key) : '(not shown)');

/** IPv4 `a.b.c.d:port` or IPv6 `[addr]:port`; port 1..65535; IP addresses only (wg(8) resolves names). */
export function parseUapiEndpoint(value: string): Endpoint {
  try {
    return parseEndpoint(value, { names: false });
  } catch (error) {
    // The endpoint parser's messages say what was expected and never quote the text.
    if (error instanceof ValueError) throw invalid(`endpoint: ${error.message}`);
    throw error;
  }
}

/** `host:port` or `[host]:port` for an IP address; undefined for anything else (wg(8) would try to resolve it). */
export function formatUapiEndpoint(endpoint: Endpoint): string | undefined {
  const { host, port } = endpoint;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  // A link-local IPv6 address learnt from a packet may carry its zone ("fe80::1%2").
  const zone = host.indexOf('%');
  const address = zone < 0 ? host : host.slice(0, zone);
  if (zone >= 0 && !address.includes(':')) return undefined;
  try {
    parseHost(address, { names: false });
  } catch {
    return undefined;
  }
  return formatEndpoint(endpoint);
}

/** ADDRESS/LENGTH, the length required (as netip.ParsePrefix); host bits are cleared. */
export function parseUapiAllowedIp(value: string): AllowedIpPrefix {
  if (!value.includes('/')) throw invalid(`allowed_ip: expected ADDRESS/LENGTH, got ${shown(value)}`);
  try {
    const prefix = parsePrefix(value, { mask: true });
    return { address: prefix.address, cidr: prefix.prefixLength };
  } catch (error) {
    if (error instanceof IpFormatError) throw invalid(`allowed_ip: ${error.message}, got ${shown(value)}`);
    throw error;
  }
}

// ---------------------------------------------------------------------------------
// Parsing a `set`, line by line

/** The per-request bounds a reader enforces (limits.ts has the defaults). */
export interface UapiRequestLimits {
  readonly maxRequestBytes: number;
  readonly maxPeersPerRequest: number;
  readonly maxAllowedIpsPerRequest: number;
}

export const DEFAULT_REQUEST_LIMITS: UapiRequestLimits = Object.freeze({
  maxRequestBytes: MAX_REQUEST_BYTES,
  maxPeersPerRequest: MAX_PEERS_PER_REQUEST,
  maxAllowedIpsPerRequest: MAX_ALLOWED_IPS_PER_REQUEST,
});

/**
 * The lines of one `set` (without "set=1" and without the blank line that ends it), one
 * at a time. The first bad line is kept as the error and every line after it is
 * ignored; finish() then throws it. Changes nothing outside itself.
 */
export class UapiSetParser {
  readonly request: UapiSetRequest = { replacePeers: false, peers: [], allowedIPs: new PrefixList() };
  private peer: UapiPeerSet | undefined;
  private failure: UapiError | undefined;

  constructor(private readonly limits: UapiRequestLimits = DEFAULT_REQUEST_LIMITS) {}

  /** The error that ended parsing, if a line was bad. */
  get error(): UapiError | undefined {
    return this.failure;
  }

  line(line: string): void {
    if (this.failure !== undefined) return;
    try {
      this.parse(line);
    } catch (error) {
      this.failure = error instanceof UapiError ? error : invalid('a value could not be read');
      wipeSetRequest(this.request);
    }
  }

  /** The whole request, or the UapiError of its first bad line. */
  finish(): UapiSetRequest {
    if (this.failure !== undefined) throw this.failure;
    return this.request;
  }

  private parse(line: string): void {
    const eq = line.indexOf('=');
    if (eq < 0) throw protocolError('a line without "="');
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    const request = this.request;
    if (key === 'public_key') {
      if (request.peers.length >= this.limits.maxPeersPerRequest) {
        throw tooLarge(`more than ${this.limits.maxPeersPerRequest} peers in one request`);
      }
      const at = request.allowedIPs.length;
      this.peer = { publicKey: parseHexKey(key, value), remove: false, updateOnly: false, replaceAllowedIPs: false, allowedFrom: at, allowedTo: at };
      request.peers.push(this.peer);
      return;
    }
    const peer = this.peer;
    if (peer === undefined) {
      switch (key) {
        case 'private_key': {
          // All zeros removes the key: the device then has no identity (Device.setPrivateKey).
          const k = parseHexKey(key, value);
          request.privateKey?.fill(0);
          request.privateKey = k;
          return;
        }
        case 'listen_port':
          request.listenPort = parseUint(key, value, 0xffff);
          return;
        case 'fwmark':
          request.fwmark = parseUint(key, value, 0xffff_ffff);
          return;
        case 'replace_peers':
          request.replacePeers = parseTrue(key, value);
          return;
        default:
          throw invalid(`unknown device key ${shownKey(key)}`);
      }
    }
    switch (key) {
      case 'remove':
        peer.remove = parseTrue(key, value);
        return;
      case 'update_only':
        peer.updateOnly = parseTrue(key, value);
        return;
      case 'preshared_key': {
        const k = parseHexKey(key, value);
        peer.presharedKey?.fill(0);
        peer.presharedKey = k.every((b) => b === 0) ? null : k;
        return;
      }
      case 'endpoint':
        peer.endpoint = parseUapiEndpoint(value);
        return;
      case 'persistent_keepalive_interval':
        peer.persistentKeepalive = parseUint(key, value, 0xffff);
        return;
      case 'replace_allowed_ips':
        peer.replaceAllowedIPs = parseTrue(key, value);
        peer.allowedFrom = peer.allowedTo = request.allowedIPs.length;
        return;
      case 'allowed_ip': {
        if (request.allowedIPs.length >= this.limits.maxAllowedIpsPerRequest) {
          throw tooLarge(`more than ${this.limits.maxAllowedIpsPerRequest} allowed_ip lines in one request`);
        }
        const prefix = parseUapiAllowedIp(value);
        request.allowedIPs.push(prefix.address, prefix.cidr);
        peer.allowedTo = request.allowedIPs.length;
        return;
      }
      case 'protocol_version':
        if (value !== '1') throw invalid(`protocol_version: only 1 is supported, got ${shown(value)}`);
        return;
      default:
        throw invalid(`unknown peer key ${shownKey(key)}`);
    }
  }
}

/** Parses the lines of a whole `set` at once; throws UapiError and nothing else. */
export function parseUapiSet(lines: Iterable<string>, limits: UapiRequestLimits = DEFAULT_REQUEST_LIMITS): UapiSetRequest {
  const parser = new UapiSetParser(limits);
  for (const line of lines) parser.line(line);
  return parser.finish();
}

// ---------------------------------------------------------------------------------
// Reading requests, line by line

/** A whole request: a get, a set to apply, or a set refused by its parser (answer with its errno). */
export type UapiRequest =
  | { readonly op: 'get' }
  | { readonly op: 'set'; readonly request: UapiSetRequest }
  | { readonly op: 'refused'; readonly error: UapiError };

/** The stream cannot go on: answer with this error's errno and close. */
export interface UapiFatal {
  readonly op: 'fatal';
  readonly error: UapiError;
}

/**
 * Cuts requests out of a stream of lines (each without its "\n") and parses them. After
 * a fatal result it yields nothing more.
 */
export class UapiReader {
  private state: 'operation' | 'get' | 'set' | 'failed' = 'operation';
  private parser: UapiSetParser | undefined;
  /** Bytes of the current request so far, "\n"s included. */
  private bytes = 0;

  constructor(private readonly limits: UapiRequestLimits = DEFAULT_REQUEST_LIMITS) {}

  /** True between requests: nothing of a next one has been read. */
  get idle(): boolean {
    return this.state === 'operation';
  }

  /** True once the stream has been refused: nothing more is read. */
  get failed(): boolean {
    return this.state === 'failed';
  }

  /** The longest the line being read may be, "\n" included. */
  lineLimit(): number {
    if (this.state === 'operation') return MAX_OPERATION_LINE_BYTES;
    return Math.min(MAX_LINE_BYTES, Math.max(1, this.limits.maxRequestBytes - this.bytes));
  }

  /** The line being read is longer than lineLimit(): the stream is refused. */
  lineTooLong(): UapiFatal {
    if (this.state === 'operation') return this.fail(protocolError('the operation is get=1 or set=1'));
    if (this.lineLimit() < MAX_LINE_BYTES) return this.fail(tooLarge(`a request is at most ${this.limits.maxRequestBytes} bytes`));
    return this.fail(tooLarge(`a line is at most ${MAX_LINE_BYTES} bytes`));
  }

  /** One line, without its "\n". Returns a whole request, a fatal error, or undefined while a request is incomplete. */
  push(line: string): UapiRequest | UapiFatal | undefined {
    if (this.state === 'failed') return undefined;
    this.bytes += line.length + 1;
    if (this.bytes > this.limits.maxRequestBytes) return this.fail(tooLarge(`a request is at most ${this.limits.maxRequestBytes} bytes`));
    switch (this.state) {
      case 'operation':
        if (line === 'get=1') {
          this.state = 'get';
          return undefined;
        }
        if (line === 'set=1') {
          this.state = 'set';
          this.parser = new UapiSetParser(this.limits);
          return undefined;
        }
        return this.fail(protocolError('the operation is get=1 or set=1'));
      case 'get':
        if (line !== '') return this.fail(invalid('get=1 is followed by a blank line and nothing else'));
        this.reset();
        return { op: 'get' };
      case 'set': {
        const parser = this.parser!;
        if (line !== '') {
          parser.line(line);
          return undefined;
        }
        this.reset();
        const error = parser.error;
        return error === undefined ? { op: 'set', request: parser.request } : { op: 'refused', error };
      }
    }
  }

  /** The stream ended: an error if it ended inside a request. */
  end(): UapiFatal | undefined {
    if (this.state === 'get') return this.fail(invalid('get=1 is followed by a blank line and nothing else'));
    if (this.state === 'set') return this.fail(protocolError('set=1 without a blank line to end it'));
    return undefined;
  }

  /** Drops a request in progress, wiping the keys it holds. */
  wipe(): void {
    if (this.parser !== undefined) wipeSetRequest(this.parser.request);
    this.parser = undefined;
  }

  private reset(): void {
    this.state = 'operation';
    this.parser = undefined;
    this.bytes = 0;
  }

  private fail(error: UapiError): UapiFatal {
    this.wipe();
    this.state = 'failed';
    return { op: 'fatal', error };
  }
}

/**
 * Reads exactly one whole request out of `text` ("get=1\n\n", or "set=1\n" + lines +
 * "\n"). Throws UapiError for anything else: nothing after the request is allowed.
 */
export function readUapiRequest(text: string, limits: UapiRequestLimits = DEFAULT_REQUEST_LIMITS): UapiRequest {
  if (typeof text !== 'string') throw protocolError('the request is not text');
  if (text.length > limits.maxRequestBytes) throw tooLarge(`a request is at most ${limits.maxRequestBytes} bytes`);
  const reader = new UapiReader(limits);
  const push = (line: string): UapiRequest | UapiFatal | undefined => (line.length + 1 > reader.lineLimit() ? reader.lineTooLong() : reader.push(line));
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) break;
    const result = push(text.slice(start, nl));
    start = nl + 1;
    if (result === undefined) continue;
    if (result.op === 'fatal') throw result.error;
    if (start !== text.length) {
      if (result.op === 'set') wipeSetRequest(result.request);
      throw result.op === 'get' ? invalid('get=1 is followed by a blank line and nothing else') : protocolError('bytes after the blank line that ends set=1');
    }
    return result;
  }
  // No whole request: the text stopped inside a line or inside a request.
  const last = start < text.length ? push(text.slice(start)) : undefined;
  const fatal = last?.op === 'fatal' ? last : reader.end();
  reader.wipe();
  throw fatal?.error ?? protocolError(text === '' ? 'an empty request' : 'a request ends in a blank line');
}

// ---------------------------------------------------------------------------------
// Formatting a `get`

/** What a `get` reports. Keys are copies: format wipes them. */
export interface UapiDeviceState {
  readonly privateKey: Uint8Array;
  readonly listenPort: number;
  readonly fwmark: number;
  readonly peers: Iterable<PeerStatus>;
}

const HEX = '0123456789abcdef';

function hexKey(key: Uint8Array): string {
  let out = '';
  for (let i = 0; i < key.length; i++) out += HEX[key[i]! >>> 4]! + HEX[key[i]! & 15]!;
  return out;
}

const ZERO_KEY_HEX = '0'.repeat(64);

function formatPrefix(p: AllowedIpPrefix): string {
  return `${p.address.length === 4 ? formatIpv4(p.address) : formatIpv6(p.address)}/${p.cidr}`;
}

const uint = (n: number): string => (Number.isFinite(n) && n > 0 ? Math.trunc(n).toString() : '0');

/** The reply to a `get`, in wireguard-go's order, ending in "errno=0\n\n". Wipes the keys it was given. */
export function formatUapiGetReply(state: UapiDeviceState): string {
  const lines: string[] = [];
  const { privateKey } = state;
  if (privateKey.some((b) => b !== 0)) lines.push(`private_key=${hexKey(privateKey)}`);
  privateKey.fill(0);
  if (state.listenPort !== 0) lines.push(`listen_port=${uint(state.listenPort)}`);
  if (state.fwmark !== 0) lines.push(`fwmark=${uint(state.fwmark)}`);
  for (const peer of state.peers) {
    const publicKey = decodeKey(peer.publicKey);
    lines.push(`public_key=${hexKey(publicKey)}`);
    if (peer.presharedKey) {
      lines.push(`preshared_key=${hexKey(peer.presharedKey)}`);
      peer.presharedKey.fill(0);
    } else {
      lines.push(`preshared_key=${ZERO_KEY_HEX}`);
    }
    lines.push('protocol_version=1');
    const endpoint = peer.endpoint && formatUapiEndpoint(peer.endpoint);
    if (endpoint !== undefined) lines.push(`endpoint=${endpoint}`);
    const ms = peer.lastHandshake > 0 ? Math.trunc(peer.lastHandshake) : 0;
    lines.push(`last_handshake_time_sec=${Math.floor(ms / 1000)}`);
    lines.push(`last_handshake_time_nsec=${(ms % 1000) * 1_000_000}`);
    lines.push(`tx_bytes=${uint(peer.txBytes)}`);
    lines.push(`rx_bytes=${uint(peer.rxBytes)}`);
    lines.push(`persistent_keepalive_interval=${uint(peer.persistentKeepalive)}`);
    for (const p of peer.allowedIPs) lines.push(`allowed_ip=${formatPrefix(p)}`);
  }
  lines.push('errno=0', '', '');
  return lines.join('\n');
}
