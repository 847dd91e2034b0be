// WireGuard's cross-platform userspace API (https://www.wireguard.com/xplatform/): the
// control socket at /var/run/wireguard/IFACE.sock that `wg show`, `wg showconf` and
// `wg set` from wireguard-tools talk to, as they do to wireguard-go.
//
// The protocol, one request at a time on a unix stream socket:
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
// errno is written negated, as wireguard-go writes it (errno=-22): wg(8) sets
// `errno = -value` and prints it with perror, so a positive number would print as
// "Unknown error -22". Which errno for what, after wireguard-go's device/uapi.go:
//   EPROTO      a line without "=", an operation other than get=1 / set=1, a request
//               that does not end in a blank line or has bytes after it;
//   EINVAL      an unknown key, a key in the wrong section, a malformed value, a
//               get=1 not followed by the blank line, too many peers, and (ours) an
//               all-zero private_key: the engine has no "no key" state;
//   EADDRINUSE  the runtime could not bind listen_port or apply fwmark (or the errno
//               its error names, when it names one: EPERM for a mark, say);
//   EMSGSIZE    (ours) the request is larger than the server accepts, or has more
//               allowed_ip lines;
//   ENOANO      anything unexpected (wireguard-go's IpcErrorUnknown, 55).
//
// A `set` is all or nothing as far as it can be: every line is parsed and checked before
// anything changes, then the runtime's part (listen port, fwmark: may fail, are rolled
// back) and then the engine's part (cannot fail once checked). wireguard-go applies line
// by line and leaves a half-applied request behind on an error; the end state of a
// request that succeeds is the same in both.
//
// Private and preshared keys never appear in an error message or a log line.

import { type FSWatcher, watch } from 'node:fs';
import { chmod, lstat, mkdir, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import { basename, dirname } from 'node:path';
import { encodeKey, publicKeyOf } from '../../crypto/keys.js';
import { type AllowedIpPrefix, type Device, MAX_PEERS } from '../../tunnel/device.js';
import { type Endpoint, formatEndpoint } from '../../tunnel/endpoint.js';
import { parseEndpoint, parseHost } from '../config/endpoint.js';
import { formatIpv4, formatIpv6, IpFormatError, parsePrefix } from '../config/ip.js';
import { ValueError } from '../config/values.js';

// ---------------------------------------------------------------------------------
// What the server needs from the runtime

/** The device behind a control socket. Port and mark belong to the runtime's sockets. */
export interface UapiBackend {
  readonly device: Device;
  /** The engine's clock (the `now` its other inputs get), for `peerStatus`. */
  now(): number;
  /** The bound UDP port; 0 when not bound. */
  listenPort(): number;
  /** Rebinds the UDP sockets (0: any free port). May throw an errno-coded error (EADDRINUSE). */
  setListenPort(port: number): Promise<void>;
  /** The sockets' SO_MARK; 0 when none. */
  fwmark(): number;
  /** Marks the sockets (0 clears the mark). May throw an errno-coded error. */
  setFwmark(mark: number): Promise<void>;
  /**
   * Called after a `set` changed the device, so the runtime can run the engine's timers
   * now (a persistent keepalive turned on is due at once). Must not throw.
   */
  changed?(): void;
}

// ---------------------------------------------------------------------------------
// Limits (our choices; wireguard-go has none but a 64 KiB line)

/** Bytes in one request, from "set=1" to its blank line. ~3,500 peers with PSK, endpoint and two allowed IPs. */
export const MAX_REQUEST_BYTES = 1 << 20;
/** allowed_ip lines in one request. */
export const MAX_ALLOWED_IPS_PER_REQUEST = 1 << 16;
/** Open control connections; more are refused by the server. */
export const MAX_CONNECTIONS = 16;
/** A connection with nothing read or written for this long is closed. */
export const IDLE_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------------------------
// Errors

const errnoOf = (name: string, linux: number): number => (osConstants.errno as Record<string, number | undefined>)[name] ?? linux;

/** errno values (positive; the reply carries them negated), this platform's numbering. */
export const UAPI_ERRNO = Object.freeze({
  EINVAL: errnoOf('EINVAL', 22),
  ENOANO: 55,
  EPROTO: errnoOf('EPROTO', 71),
  EMSGSIZE: errnoOf('EMSGSIZE', 90),
  EADDRINUSE: errnoOf('EADDRINUSE', 98),
});

export type UapiErrorCode =
  /** Framing: not get=1 / set=1, a line without "=", no blank line at the end, bytes after it. */
  | 'ERR_UAPI_PROTOCOL'
  /** An unknown key, a key in the wrong section, or a malformed value. */
  | 'ERR_UAPI_INVALID'
  /** More than MAX_REQUEST_BYTES or MAX_ALLOWED_IPS_PER_REQUEST. */
  | 'ERR_UAPI_TOO_LARGE'
  /** The request would give the device more than MAX_PEERS peers. */
  | 'ERR_UAPI_TOO_MANY_PEERS'
  /** The runtime refused listen_port or fwmark. */
  | 'ERR_UAPI_RUNTIME'
  /** Anything unexpected. */
  | 'ERR_UAPI_INTERNAL';

export class UapiError extends Error {
  override readonly name = 'UapiError';
  constructor(
    readonly code: UapiErrorCode,
    /** Positive errno; the reply says `errno=-N`. */
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

const protocolError = (message: string): UapiError => new UapiError('ERR_UAPI_PROTOCOL', UAPI_ERRNO.EPROTO, message);
const invalid = (message: string): UapiError => new UapiError('ERR_UAPI_INVALID', UAPI_ERRNO.EINVAL, message);

/** The reply to a failed request. */
export const errnoReply = (errno: number): string => `errno=${errno === 0 ? 0 : -Math.abs(errno)}\n\n`;

// ---------------------------------------------------------------------------------
// Parsing a `set`

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
  /** In request order; after replace_allowed_ips, only those that follow it. */
  allowedIPs: AllowedIpPrefix[];
}

export interface UapiSetRequest {
  privateKey?: Uint8Array;
  listenPort?: number;
  fwmark?: number;
  replacePeers: boolean;
  /** In request order; a key may appear in several sections, applied in turn. */
  readonly peers: UapiPeerSet[];
}

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

/** IPv4 `a.b.c.d:port` or IPv6 `[addr]:port`; port 1..65535; IP literals only (wg resolves names). */
export function parseUapiEndpoint(value: string): Endpoint {
  try {
    return parseEndpoint(value, { names: false });
  } catch (error) {
    if (error instanceof ValueError) throw invalid(`endpoint: ${error.message}`);
    throw error;
  }
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

/**
 * Parses the lines of a `set` (without "set=1" and without the blank line that ends it).
 * Checks every line; throws UapiError and nothing else. Changes nothing.
 */
export function parseUapiSet(lines: readonly string[]): UapiSetRequest {
  const request: UapiSetRequest = { replacePeers: false, peers: [] };
  let peer: UapiPeerSet | undefined;
  let allowedIps = 0;
  try {
    for (const line of lines) {
      const eq = line.indexOf('=');
      if (eq < 0) throw protocolError('a line without "="');
      const key = line.slice(0, eq);
      const value = line.slice(eq + 1);
      if (key === 'public_key') {
        peer = { publicKey: parseHexKey(key, value), remove: false, updateOnly: false, replaceAllowedIPs: false, allowedIPs: [] };
        request.peers.push(peer);
        continue;
      }
      if (peer === undefined) {
        switch (key) {
          case 'private_key': {
            const k = parseHexKey(key, value);
            // All zeros means "no private key" in the protocol. The engine has no such
            // state: it would run with the publicly known key clamp(0) instead.
            if (k.every((b) => b === 0)) throw invalid('private_key: removing the private key (all zeros) is not supported');
            request.privateKey?.fill(0);
            request.privateKey = k;
            break;
          }
          case 'listen_port':
            request.listenPort = parseUint(key, value, 0xffff);
            break;
          case 'fwmark':
            request.fwmark = parseUint(key, value, 0xffff_ffff);
            break;
          case 'replace_peers':
            request.replacePeers = parseTrue(key, value);
            break;
          default:
            throw invalid(`unknown device key ${shownKey(key)}`);
        }
        continue;
      }
      switch (key) {
        case 'remove':
          peer.remove = parseTrue(key, value);
          break;
        case 'update_only':
          peer.updateOnly = parseTrue(key, value);
          break;
        case 'preshared_key': {
          const k = parseHexKey(key, value);
          if (peer.presharedKey) peer.presharedKey.fill(0);
          if (k.every((b) => b === 0)) peer.presharedKey = null;
          else peer.presharedKey = k;
          break;
        }
        case 'endpoint':
          peer.endpoint = parseUapiEndpoint(value);
          break;
        case 'persistent_keepalive_interval':
          peer.persistentKeepalive = parseUint(key, value, 0xffff);
          break;
        case 'replace_allowed_ips':
          peer.replaceAllowedIPs = parseTrue(key, value);
          peer.allowedIPs = [];
          break;
        case 'allowed_ip':
          if (++allowedIps > MAX_ALLOWED_IPS_PER_REQUEST) {
            throw new UapiError('ERR_UAPI_TOO_LARGE', UAPI_ERRNO.EMSGSIZE, `more than ${MAX_ALLOWED_IPS_PER_REQUEST} allowed_ip lines in one request`);
          }
          peer.allowedIPs.push(parseUapiAllowedIp(value));
          break;
        case 'protocol_version':
          if (value !== '1') throw invalid(`protocol_version: only 1 is supported, got ${shown(value)}`);
          break;
        default:
          throw invalid(`unknown peer key ${shownKey(key)}`);
      }
    }
  } catch (error) {
    wipeSetRequest(request);
    throw error;
  }
  return request;
}

/** Zeroes the keys a parsed request holds (the device keeps its own copies). */
function wipeSetRequest(request: UapiSetRequest): void {
  request.privateKey?.fill(0);
  for (const p of request.peers) p.presharedKey?.fill(0);
}

// ---------------------------------------------------------------------------------
// Applying a `set`

function runtimeErrno(error: unknown): number {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) {
    const n = (osConstants.errno as Record<string, number | undefined>)[code];
    if (n !== undefined) return n;
  }
  return UAPI_ERRNO.EADDRINUSE; // wireguard-go's answer for any bind or mark failure
}

type PeerAction = 'set' | 'remove' | 'skip';

/**
 * Decides, against the device as it is now, what each peer section does, and checks
 * the peer count. Reads the device's keys only when update_only or the count needs it.
 */
function planPeers(request: UapiSetRequest, backend: UapiBackend): PeerAction[] {
  const device = backend.device;
  const newKeys = new Set<string>();
  let needExisting = false;
  for (const p of request.peers) {
    if (p.updateOnly) needExisting = true;
    if (!p.remove) newKeys.add(encodeKey(p.publicKey));
  }
  const upperBound = (request.replacePeers ? 0 : device.peerCount) + newKeys.size;
  if (!needExisting && upperBound <= MAX_PEERS) return request.peers.map((p) => (p.remove ? 'remove' : 'set'));

  // Replay the request over the set of keys the device holds.
  const keys = request.replacePeers ? new Set<string>() : new Set(device.inspect().peers.keys()); // key text, no status built
  let own = encodeKey(device.publicKey);
  if (request.privateKey !== undefined) {
    own = encodeKey(publicKeyOf(request.privateKey));
    keys.delete(own);
  }
  const actions = request.peers.map((p): PeerAction => {
    const name = encodeKey(p.publicKey);
    if (p.remove) {
      keys.delete(name);
      return 'remove';
    }
    if (name === own) return 'skip';
    if (p.updateOnly && !keys.has(name)) return 'skip';
    keys.add(name);
    return 'set';
  });
  if (keys.size > MAX_PEERS) {
    throw new UapiError('ERR_UAPI_TOO_MANY_PEERS', UAPI_ERRNO.EINVAL, `a device holds at most ${MAX_PEERS} peers`);
  }
  return actions;
}

async function applySet(request: UapiSetRequest, backend: UapiBackend): Promise<void> {
  const device = backend.device;
  // 1. The runtime's part, which may fail: undone if anything after it fails.
  const undo: Array<() => Promise<void>> = [];
  const rollback = async (): Promise<void> => {
    for (const step of undo.reverse()) await step().catch(() => undefined);
  };
  let actions: PeerAction[];
  try {
    if (request.listenPort !== undefined && request.listenPort !== backend.listenPort()) {
      const old = backend.listenPort();
      try {
        await backend.setListenPort(request.listenPort);
      } catch (error) {
        throw new UapiError('ERR_UAPI_RUNTIME', runtimeErrno(error), `listen_port ${request.listenPort}: ${describe(error)}`);
      }
      undo.push(() => backend.setListenPort(old));
    }
    if (request.fwmark !== undefined && request.fwmark !== backend.fwmark()) {
      const old = backend.fwmark();
      try {
        await backend.setFwmark(request.fwmark);
      } catch (error) {
        throw new UapiError('ERR_UAPI_RUNTIME', runtimeErrno(error), `fwmark ${request.fwmark}: ${describe(error)}`);
      }
      undo.push(() => backend.setFwmark(old));
    }
    // 2. Checked against the device as it is after the awaits above.
    actions = planPeers(request, backend);
  } catch (error) {
    await rollback();
    throw error;
  }

  // 3. The engine's part: synchronous, and checked above, so it does not fail halfway.
  if (request.privateKey !== undefined) {
    device.setPrivateKey(request.privateKey);
    // As wireguard-go: a peer with the device's new public key goes away.
    device.removePeer(device.publicKey);
  }
  if (request.replacePeers) device.removeAllPeers();
  request.peers.forEach((p, i) => {
    const action = actions[i];
    if (action === 'remove') {
      device.removePeer(p.publicKey);
    } else if (action === 'set') {
      device.setPeer(p.publicKey, {
        ...(p.presharedKey !== undefined && { presharedKey: p.presharedKey }),
        ...(p.endpoint !== undefined && { endpoint: p.endpoint }),
        ...(p.persistentKeepalive !== undefined && { persistentKeepalive: p.persistentKeepalive }),
        allowedIPs: p.allowedIPs,
        replaceAllowedIPs: p.replaceAllowedIPs,
      });
    }
  });
}

/** An error's message for the log; never a key (nothing here ever puts one in a message). */
function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---------------------------------------------------------------------------------
// Answering a `get`

const HEX = '0123456789abcdef';

function hexKey(key: Uint8Array): string {
  let out = '';
  for (let i = 0; i < key.length; i++) out += HEX[key[i]! >>> 4]! + HEX[key[i]! & 15]!;
  return out;
}

const ZERO_KEY_HEX = '0'.repeat(64);

/** `host:port` or `[host]:port` for an IP literal; undefined for anything else (wg(8) would try to resolve it). */
function formatUapiEndpoint(endpoint: Endpoint): string | undefined {
  const { port } = endpoint;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  // A link-local IPv6 address learnt from a packet may carry its zone ("fe80::1%2").
  const zone = endpoint.host.indexOf('%');
  const address = zone < 0 ? endpoint.host : endpoint.host.slice(0, zone);
  if (zone >= 0 && !address.includes(':')) return undefined;
  try {
    parseHost(address, { names: false });
  } catch {
    return undefined;
  }
  return formatEndpoint(endpoint);
}

function formatPrefix(p: AllowedIpPrefix): string {
  return `${p.address.length === 4 ? formatIpv4(p.address) : formatIpv6(p.address)}/${p.cidr}`;
}

const uint = (n: number): string => (Number.isFinite(n) && n > 0 ? Math.trunc(n).toString() : '0');

/** The body of a `get` reply, in wireguard-go's order, ending in "errno=0\n\n". */
export function formatUapiGet(backend: UapiBackend): string {
  const device = backend.device;
  const lines: string[] = [];
  const privateKey = device.privateKey;
  if (privateKey.some((b) => b !== 0)) lines.push(`private_key=${hexKey(privateKey)}`);
  privateKey.fill(0);
  const port = backend.listenPort();
  if (port !== 0) lines.push(`listen_port=${uint(port)}`);
  const mark = backend.fwmark();
  if (mark !== 0) lines.push(`fwmark=${uint(mark)}`);
  for (const peer of device.peerStatus(backend.now())) {
    const publicKey = Buffer.from(peer.publicKey, 'base64');
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

// ---------------------------------------------------------------------------------
// One request

export interface UapiRequestOptions {
  /** Default MAX_REQUEST_BYTES. */
  maxRequestBytes?: number;
}

/** The outcome of one request: the reply to send, and the error behind it, if any. */
export interface UapiResult {
  readonly reply: string;
  readonly error?: UapiError;
}

// Requests on one backend run one at a time, whichever connection they came from, so
// that a get never sees a set half-applied across its awaits.
const queues = new WeakMap<UapiBackend, Promise<unknown>>();

function serialize<T>(backend: UapiBackend, task: () => Promise<T>): Promise<T> {
  const previous = queues.get(backend) ?? Promise.resolve();
  const run = previous.then(task, task);
  queues.set(backend, run.catch(() => undefined));
  return run;
}

/**
 * Handles one whole request ("get=1\n\n", or "set=1\n" + lines + "\n") and returns the
 * reply with the error behind it. Never throws and never rejects: every failure is an
 * `errno=-N` reply, and a failed `set` changes nothing it could check beforehand.
 */
export function executeUapi(request: string, backend: UapiBackend, options: UapiRequestOptions = {}): Promise<UapiResult> {
  return serialize(backend, async (): Promise<UapiResult> => {
    try {
      return await execute(request, backend, options.maxRequestBytes ?? MAX_REQUEST_BYTES);
    } catch (error) {
      const e = error instanceof UapiError ? error : new UapiError('ERR_UAPI_INTERNAL', UAPI_ERRNO.ENOANO, `unexpected: ${describe(error)}`);
      return { reply: errnoReply(e.errno), error: e };
    }
  });
}

/** The reply to one whole request; see executeUapi. */
export async function handleUapi(request: string, backend: UapiBackend, options: UapiRequestOptions = {}): Promise<string> {
  return (await executeUapi(request, backend, options)).reply;
}

const tooLarge = (max: number): UapiError => new UapiError('ERR_UAPI_TOO_LARGE', UAPI_ERRNO.EMSGSIZE, `a request is at most ${max} bytes`);

async function execute(request: string, backend: UapiBackend, maxRequestBytes: number): Promise<UapiResult> {
  if (typeof request !== 'string') throw protocolError('the request is not text');
  if (request.length > maxRequestBytes) throw tooLarge(maxRequestBytes);
  const opEnd = request.indexOf('\n');
  const op = opEnd < 0 ? request : request.slice(0, opEnd);
  const rest = opEnd < 0 ? undefined : request.slice(opEnd + 1);
  if (op === 'get=1') {
    if (rest !== '\n') throw invalid('get=1 is followed by a blank line and nothing else');
    return { reply: formatUapiGet(backend) };
  }
  if (op !== 'set=1') throw protocolError('the operation is get=1 or set=1');
  if (rest === undefined) throw protocolError('set=1 without a blank line to end it');
  // "set=1\n\n" is an empty set; otherwise the lines end in "\n\n" and nothing follows.
  const end = rest.startsWith('\n') ? 0 : rest.indexOf('\n\n');
  if (end < 0) throw protocolError('set=1 without a blank line to end it');
  if (end + (end === 0 ? 1 : 2) !== rest.length) throw protocolError('bytes after the blank line that ends set=1');
  const lines = end === 0 ? [] : rest.slice(0, end).split('\n');
  const parsed = parseUapiSet(lines);
  try {
    await applySet(parsed, backend);
  } finally {
    wipeSetRequest(parsed);
  }
  try {
    backend.changed?.();
  } catch {
    // The change is made; a hook that breaks its contract must not report it as failed.
  }
  return { reply: errnoReply(0) };
}

// ---------------------------------------------------------------------------------
// Framing requests out of a byte stream

/** What the framer found: a whole request, or a reason to answer with errno and hang up. */
export type UapiFrame = { readonly kind: 'request'; readonly text: string } | { readonly kind: 'error'; readonly error: UapiError };

const NEWLINE = 0x0a;
const MAX_OP_LINE = 8; // "get=1\n" and "set=1\n" are 6 bytes

/**
 * Cuts a byte stream into requests without looking at their contents: an operation line,
 * then for get=1 exactly one more "\n", for set=1 everything up to the first blank line.
 * Each byte is scanned once, and wiped once its request has been handed out. After an
 * error frame the framer yields nothing more.
 */
export class UapiFramer {
  /** Our own copy of what arrived; [pos, end) is not scanned yet. */
  private input: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** The current request so far: views into inputs. */
  private parts: Buffer[] = [];
  private size = 0;
  private op: 'get' | 'set' | undefined;
  private last = -1;
  private failed = false;

  constructor(private readonly maxRequestBytes = MAX_REQUEST_BYTES) {}

  /** Adds bytes (copied: the caller may wipe or reuse `chunk`); then call next() until undefined. */
  push(chunk: Uint8Array): void {
    if (this.failed || chunk.length === 0) return;
    if (this.pos < this.input.length) {
      const rest = this.input.subarray(this.pos);
      this.input = Buffer.concat([rest, chunk]);
      rest.fill(0);
    } else {
      this.input = Buffer.from(chunk);
    }
    this.pos = 0;
  }

  /** True while part of a request has arrived but not its end. */
  get partial(): boolean {
    return this.size > 0 || this.pos < this.input.length;
  }

  next(): UapiFrame | undefined {
    if (this.failed) return undefined;
    const input = this.input;
    while (this.pos < input.length) {
      if (this.op === undefined) {
        const nl = input.indexOf(NEWLINE, this.pos);
        const end = nl < 0 ? input.length : nl + 1;
        if (!this.take(end, MAX_OP_LINE)) return this.fail(protocolError('the operation is get=1 or set=1'));
        if (nl < 0) return undefined;
        const line = this.joined().toString('latin1');
        if (line === 'get=1\n') this.op = 'get';
        else if (line === 'set=1\n') this.op = 'set';
        else return this.fail(protocolError('the operation is get=1 or set=1'));
        continue;
      }
      if (this.op === 'get') {
        this.take(this.pos + 1, Infinity);
        if (this.last !== NEWLINE) return this.fail(invalid('get=1 is followed by a blank line and nothing else'));
        return this.emit();
      }
      // set: up to the first "\n\n", counting the operation line's "\n".
      let end = -1;
      for (let from = this.pos; ; ) {
        const nl = input.indexOf(NEWLINE, from);
        if (nl < 0) break;
        const before = nl === this.pos ? this.last : input[nl - 1];
        if (before === NEWLINE) {
          end = nl + 1;
          break;
        }
        from = nl + 1;
      }
      if (!this.take(end < 0 ? input.length : end, this.maxRequestBytes)) return this.fail(tooLarge(this.maxRequestBytes));
      if (end >= 0) return this.emit();
    }
    return undefined;
  }

  /** Moves input[pos, end) into the current request; false if that makes it longer than max. */
  private take(end: number, max: number): boolean {
    if (this.size + (end - this.pos) > max) return false;
    if (end > this.pos) {
      this.parts.push(this.input.subarray(this.pos, end));
      this.size += end - this.pos;
      this.last = this.input[end - 1]!;
      this.pos = end;
    }
    return true;
  }

  private joined(): Buffer {
    if (this.parts.length > 1) {
      const all = Buffer.concat(this.parts);
      for (const p of this.parts) p.fill(0);
      this.parts = [all];
    }
    return this.parts[0] ?? Buffer.alloc(0);
  }

  private emit(): UapiFrame {
    const bytes = this.joined();
    // latin1: one character per byte, so no byte sequence can turn into a valid line.
    const text = bytes.toString('latin1');
    bytes.fill(0);
    this.parts = [];
    this.size = 0;
    this.op = undefined;
    this.last = -1;
    return { kind: 'request', text };
  }

  private fail(error: UapiError): UapiFrame {
    this.failed = true;
    for (const p of this.parts) p.fill(0);
    this.input.fill(0);
    this.parts = [];
    this.input = Buffer.alloc(0);
    this.pos = 0;
    this.size = 0;
    return { kind: 'error', error };
  }
}

// ---------------------------------------------------------------------------------
// The server

export type UapiServerErrorCode =
  /** Another live server answers on the socket path (another daemon has this interface). */
  | 'ERR_UAPI_IN_USE'
  /** Something other than a socket is at the path; it is left alone. */
  | 'ERR_UAPI_PATH_TAKEN'
  /** Creating the directory or the socket failed; `cause` says why. */
  | 'ERR_UAPI_LISTEN';

export class UapiServerError extends Error {
  override readonly name = 'UapiServerError';
  constructor(
    readonly code: UapiServerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface UapiServerOptions {
  /** Default MAX_CONNECTIONS. */
  maxConnections?: number;
  /** Default IDLE_TIMEOUT_MS. */
  idleTimeoutMs?: number;
  /** Default MAX_REQUEST_BYTES. */
  maxRequestBytes?: number;
  /** One line per refused request or broken connection; never contains a key. */
  log?: (line: string) => void;
  /**
   * Called once if the socket file is removed or replaced by someone else. `wg-quick
   * down` removes a userspace interface's socket to stop its daemon (wireguard-go exits
   * then); the daemon should bring the tunnel down.
   */
  onSocketRemoved?: () => void;
}

/** Whether something accepts connections on the unix socket at `path`. */
function answers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createConnection(path);
    const done = (live: boolean): void => {
      clearTimeout(timer);
      probe.destroy();
      resolve(live);
    };
    // A server that accepts but is too busy to answer still owns the path.
    const timer = setTimeout(() => done(true), timeoutMs);
    probe.once('connect', () => done(true));
    probe.once('error', () => done(false));
  });
}

/** Listens with umask 077 where the process allows it, so the socket is never group/world accessible. */
function listenPrivately(server: net.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let restore: number | undefined;
    try {
      restore = process.umask(0o077);
    } catch {
      // Worker threads cannot change the umask; the 0700 directory and chmod below cover it.
    }
    const onError = (error: Error): void => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    try {
      server.listen(path);
    } finally {
      if (restore !== undefined) process.umask(restore);
    }
  });
}

/**
 * The control socket for one device: `wg show`, `wg showconf` and `wg set` work against
 * it. Created mode 0600 (it hands out the private key), in a directory created 0700 if
 * missing. Requests on one connection are answered in order, one at a time; reading
 * pauses while a request is handled or its reply has not drained, so a client that
 * sends much and reads nothing holds at most one request and one reply.
 */
export class UapiServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private identity: { dev: number; ino: number } | undefined;
  private watcher: FSWatcher | undefined;
  private closing: Promise<void> | undefined;
  private readonly maxRequestBytes: number;
  private readonly idleTimeoutMs: number;
  private readonly log: ((line: string) => void) | undefined;

  private constructor(
    readonly path: string,
    private readonly backend: UapiBackend,
    options: UapiServerOptions,
  ) {
    this.maxRequestBytes = options.maxRequestBytes ?? MAX_REQUEST_BYTES;
    this.idleTimeoutMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    this.log = options.log;
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    this.server.maxConnections = options.maxConnections ?? MAX_CONNECTIONS;
    this.server.on('error', (error) => this.log?.(`uapi: ${describe(error)}`));
  }

  /**
   * Listens on `path`. Refuses (ERR_UAPI_IN_USE) when a live server answers there,
   * removes a stale socket left by a daemon that died, and leaves anything that is not
   * a socket alone (ERR_UAPI_PATH_TAKEN).
   */
  static async listen(path: string, backend: UapiBackend, options: UapiServerOptions = {}): Promise<UapiServer> {
    const dir = dirname(path);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new UapiServerError('ERR_UAPI_LISTEN', `cannot create ${dir}: ${describe(error)}`, { cause: error });
    }
    const existing = await lstat(path).catch(() => undefined);
    if (existing !== undefined) {
      if (!existing.isSocket()) throw new UapiServerError('ERR_UAPI_PATH_TAKEN', `${path} exists and is not a socket; not touching it`);
      if (await answers(path)) throw new UapiServerError('ERR_UAPI_IN_USE', `another daemon answers on ${path}`);
      await rm(path, { force: true }); // stale: its daemon is gone
    }

    const self = new UapiServer(path, backend, options);
    try {
      await listenPrivately(self.server, path);
      await chmod(path, 0o600);
      const st = await stat(path);
      self.identity = { dev: st.dev, ino: st.ino };
      if (options.onSocketRemoved !== undefined) self.watchSocket(options.onSocketRemoved);
    } catch (error) {
      await self.close().catch(() => undefined);
      const code = (error as { code?: unknown }).code;
      if (code === 'EADDRINUSE') throw new UapiServerError('ERR_UAPI_IN_USE', `${path} was taken while starting`, { cause: error });
      throw new UapiServerError('ERR_UAPI_LISTEN', `cannot listen on ${path}: ${describe(error)}`, { cause: error });
    }
    return self;
  }

  /** Connections open now. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Stops listening, drops every connection and removes the socket file (if still ours). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.watcher?.close();
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const socket of this.sockets) socket.destroy();
      await closed;
      // libuv unlinks a bound pipe's path when it closes it; if it did not, remove it
      // here, but never a socket another daemon has put there since.
      const st = await stat(this.path).catch(() => undefined);
      const id = this.identity;
      if (st !== undefined && id !== undefined && st.dev === id.dev && st.ino === id.ino) await rm(this.path, { force: true });
    })();
    return this.closing;
  }

  private watchSocket(onRemoved: () => void): void {
    const name = basename(this.path);
    let fired = false;
    const check = async (): Promise<void> => {
      const st = await lstat(this.path).catch(() => undefined);
      const id = this.identity;
      const ours = st !== undefined && id !== undefined && st.dev === id.dev && st.ino === id.ino;
      if (ours || fired || this.closing !== undefined) return;
      fired = true;
      this.watcher?.close();
      onRemoved();
    };
    this.watcher = watch(dirname(this.path), { persistent: false }, (_event, filename) => {
      if (filename === null || filename === name) void check();
    });
    this.watcher.on('error', (error) => this.log?.(`uapi: watching ${this.path}: ${describe(error)}`));
  }

  private accept(socket: net.Socket): void {
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    const framer = new UapiFramer(this.maxRequestBytes);
    const log = this.log;
    let busy = false;
    let ended = false;

    socket.setTimeout(this.idleTimeoutMs, () => socket.destroy());
    socket.on('error', (error) => log?.(`uapi: connection: ${describe(error)}`));
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('end', () => {
      // The client is done sending; answer what it sent, then close our side.
      ended = true;
      if (!busy) socket.end();
    });
    socket.on('data', (chunk: Buffer) => {
      framer.push(chunk);
      chunk.fill(0);
      void pump();
    });

    const drained = (): Promise<void> =>
      new Promise<void>((resolve) => {
        const done = (): void => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });

    const pump = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      socket.pause();
      try {
        for (let frame = framer.next(); frame !== undefined; frame = framer.next()) {
          if (socket.destroyed) return;
          if (frame.kind === 'error') {
            // The stream cannot be resynchronised: answer and hang up.
            log?.(`uapi: refused: ${frame.error.message}`);
            socket.end(errnoReply(frame.error.errno));
            return;
          }
          const result = await executeUapi(frame.text, this.backend, { maxRequestBytes: this.maxRequestBytes });
          if (result.error !== undefined) log?.(`uapi: refused: ${result.error.message}`);
          if (socket.destroyed) return;
          if (!socket.write(result.reply)) await drained();
        }
        if (ended) socket.end();
        else if (!socket.destroyed) socket.resume();
      } catch (error) {
        log?.(`uapi: connection: ${describe(error)}`);
        socket.destroy();
      } finally {
        busy = false;
      }
    };
  }
}
