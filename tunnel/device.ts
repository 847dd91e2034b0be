// The WireGuard engine, sans-I/O: a Device with its peers. Three inputs —
//   receiveDatagram(bytes, from, now)   a UDP datagram arrived
//   sendPacket(buf, length, now)        an IP packet came out of the tunnel interface
//   tick(now)                           time passed; returns when to call it next
// — and its outputs go to the DeviceIo the caller gave it: datagrams to send, packets
// to write to the tunnel interface, events for the log. The caller owns every socket,
// buffer and clock; `now` is a monotonic millisecond count.
//
// Sending (paper §5.4.6, wireguard-go send.go):
//   1. the packet's destination picks the peer by longest-prefix match (cryptokey routing);
//      no peer: dropped as 'no-peer';
//   2. with a usable current keypair and nothing staged, it is sealed in place in the
//      caller's buffer (header room in front) and sent to the peer's endpoint;
//   3. otherwise a copy is staged (bounded) and a handshake is started; staged packets
//      go out, in order, as soon as a keypair exists;
//   4. the key is kept fresh: REKEY_AFTER_MESSAGES or, for the initiator, REKEY_AFTER_TIME
//      starts a new handshake while the old keypair keeps working.
// Receiving (wireguard-go receive.go):
//   1. (type, length) decides the message; anything else is dropped with a reason;
//   2. handshake messages: a response must name a pending handshake of ours; then, while
//      the turn's handshake work budget lasts and nothing waits before it, the message is
//      handled at once; otherwise it is copied to the handshake queue (bounded; full:
//      dropped as 'handshake-queue-full'), before any decoding or hashing, so a flood
//      cannot hold the loop that carries the data, and later turns take it from there
//      (drainHandshakes). Handling: mac1 is checked; under load, mac2 is checked next,
//      an initiation without a valid one gets a cookie reply, and sources are
//      rate-limited. Each step charges the budget what it costs. The device is under
//      load while the queue is long (UNDER_LOAD_BACKLOG), and UNDER_LOAD_AFTER_TIME
//      after: by backlog, as wireguard-go, so a burst the budget serves gets no cookies;
//   3. transport data: index → keypair, keypair age, replay window check, AEAD open in
//      place, then the replay window commits the counter; the sender's address becomes the
//      peer's endpoint (roaming); an empty plaintext is a keepalive; otherwise the inner
//      source address must be one of the peer's allowed IPs, and the packet (padding
//      trimmed) is written to the tunnel interface.

import { type Aead, nobleAead } from '../crypto/aead.js';
import type { Hmac } from '../crypto/blake2s.js';
import { encodeKey } from '../crypto/keys.js';
import { type RandomSource, systemRandom } from '../crypto/random.js';
import { tai64nFromMillis } from '../crypto/tai64n.js';
import { utf8Encode } from '../crypto/utf8.js';
import { clamp, type Dh, nobleDh } from '../crypto/x25519.js';
import { AllowedIps } from './allowedips.js';
import {
  DEFAULT_MTU, KEEPALIVE_TIMEOUT, MAX_CONTENT_LENGTH, MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_TRANSPORT,
  REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, REKEY_TIMEOUT, TRANSPORT_HEADER_LENGTH,
  TRANSPORT_MIN_LENGTH,
} from './constants.js';
import { CookieChecker, verifyMac1 } from './cookie.js';
import {
  consumeInitiation, consumeResponse, createIdentity, createInitiation, createResponse, type HandshakeRefusal,
  type Identity,
} from './handshake.js';
import { formatIpv4, formatIpv6, IPV6_HEADER_LENGTH, type IpPacket, parseIpPacket } from './ip.js';
import { HANDSHAKE_QUEUE_LENGTH, HandshakeQueue } from './handshakequeue.js';
import { type IndexEntry, IndexTable } from './indextable.js';
import { Keypair } from './keypair.js';
import {
  classify, type CookieReply, type DecodeRefusal, decodeMessage, INITIATION_MAC1_OFFSET, type Initiation, receiverIndexOf,
  responseReceiverIndexOf,
  type Response, RESPONSE_MAC1_OFFSET, transportCounterOf,
} from './messages.js';
import type { Backends } from './noise.js';
import { type Endpoint, noHandshake, Peer, sameEndpoint } from './peer.js';
import { RateLimiter } from './ratelimiter.js';
import { DeadlineHeap } from './deadlines.js';
import { StagingQueues } from './staging.js';
import { jitterFrom, type TimerName } from './timers.js';
import { openTransport, sealedLength, sealTransport } from './transport.js';

export type { Endpoint } from './peer.js';
export type { IndexEntry } from './indextable.js';
export { DEFAULT_MTU } from './constants.js';
export { MAX_STAGED_BYTES, MAX_STAGED_PACKETS } from './staging.js';
export { HANDSHAKE_QUEUE_LENGTH } from './handshakequeue.js';

/** Peers one device may have. */
export const MAX_PEERS = 1 << 20;
/**
 * Handshake messages waiting in the queue that make the device count as under load:
 * 1/8 of the queue, as wireguard-go (QueueHandshakeSize / 8).
 */
export const UNDER_LOAD_BACKLOG = HANDSHAKE_QUEUE_LENGTH / 8;
/**
 * Work one turn of the caller's event loop may spend on handshake messages, in units of
 * one mac1 check (about 10 µs). Each message is charged what it cost: a mac1 check, a
 * cookie reply, a handshake's DH. So junk that fails mac1 is cheap and a turn can refuse
 * 256 of them, while it answers about 15 with cookie replies or completes 8 handshakes:
 * a few ms of handshake work a turn at most, and every data packet of the turn is
 * processed; what the budget leaves waits in the handshake queue. (Costs measured with node crypto and the noble XChaCha cookie seal; see
 * bench/flood.ts.)
 */
export const HANDSHAKE_WORK_PER_TURN = 256;
export const WORK_MAC1 = 1;
export const WORK_COOKIE_REPLY = 16;
export const WORK_HANDSHAKE = 32;
/** Ms between two timestamps that stay distinct after TAI64N whitening (2^24 ns ≈ 16.8 ms). */
const TIMESTAMP_STEP = 17;
/** Once under load, the device stays so this long (as the references: 1 s). */
export const UNDER_LOAD_AFTER_TIME = 1000;

export type DropReason =
  | DecodeRefusal | HandshakeRefusal
  | 'unknown-index' | 'expired-keypair' | 'counter-limit' | 'replay' | 'bad-tag' | 'bad-ip' | 'source-not-allowed'
  | 'no-peer' | 'no-endpoint' | 'staged-full' | 'rate-limited' | 'cookie-sent' | 'bad-cookie' | 'unexpected-response'
  | 'bad-peer-key'
  /** A handshake message that found the handshake queue full (HANDSHAKE_QUEUE_LENGTH waiting). */
  | 'handshake-queue-full'
  /** The device has no private key: it neither sends nor answers handshakes, and drops what would need one. */
  | 'no-identity'
  /** A packet from the tunnel interface longer than MAX_CONTENT_LENGTH. */
  | 'too-large'
  /**
   * A packet from the tunnel interface that is one of our own datagrams to a peer's
   * endpoint: the endpoint is routed through this tunnel. Sending it would loop without
   * end (the kernel's WireGuard drops these too, as a route through its own device).
   */
  | 'routing-loop';

export type DeviceEvent =
  | { type: 'handshake-initiated'; peer: string; attempt: number }
  | { type: 'handshake-complete'; peer: string; role: 'initiator' | 'responder' }
  | { type: 'handshake-given-up'; peer: string; dropped: number }
  | { type: 'keys-zeroed'; peer: string }
  | { type: 'endpoint-changed'; peer: string; endpoint: Endpoint }
  | { type: 'cookie-received'; peer: string }
  | { type: 'timer'; peer: string; timer: TimerName }
  /** The peer left the device (`wg set … remove`, a reload): what it had counted, which is now gone. */
  | { type: 'peer-removed'; peer: string; rxBytes: number; txBytes: number };

export interface DeviceIo {
  /** Sends a datagram. `data` is only valid during the call: send or copy it now. */
  send(data: Uint8Array, to: Endpoint): void;
  /** Writes a decrypted IP packet to the tunnel interface. Valid only during the call. */
  write(packet: Uint8Array): void;
  /** Handshakes, timers and roaming, for the log. Never called per data packet. */
  event?(e: DeviceEvent): void;
}

export interface DeviceOptions {
  /**
   * The device's static private key. null, or all zeros, is a device without one, as the
   * kernel and wireguard-go allow (`wg set IF private-key /dev/null`, or a `wg setconf`
   * file without PrivateKey): it has no identity until a key is set.
   */
  privateKey: Uint8Array | null;
  /** Tunnel MTU: padding never goes past it. Default 1420. */
  mtu?: number;
  dh?: Dh;
  aead?: Aead;
  /** HMAC-BLAKE2s for the handshake's KDFs; @noble's by default (the runtime injects node:crypto's). */
  hmac?: Hmac;
  random?: RandomSource;
  /**
   * The wall clock, ms since the Unix epoch (Date.now). Read when an initiation is made
   * (its TAI64N timestamp) and when a handshake completes (`wg show`), so that a clock
   * corrected by NTP or a suspend that stops the monotonic clock is followed at once.
   */
  wallClock?: () => number;
  /**
   * The older form, used only without `wallClock`: the wall clock at engine time 0, to
   * which `now` is added (deterministic, for simulations with a fake clock).
   */
  wallClockAtZero?: number;
  /**
   * Load detection: handshake messages waiting in the queue that put the device under
   * load (cookies demanded). Default UNDER_LOAD_BACKLOG; 0: always under load; Infinity:
   * never (a full queue still drops).
   */
  underLoadBacklog?: number;
  /** Handshake work per turn (see beginTurn), in units of WORK_MAC1; default HANDSHAKE_WORK_PER_TURN. */
  handshakeWorkPerTurn?: number;
  /**
   * The UDP port our datagrams leave from (it changes with `wg set listen-port`). With it,
   * a packet from the tunnel interface that is our own datagram to a peer's endpoint is
   * dropped as a routing loop instead of being sealed and sent again.
   */
  listenPort?: () => number;
}

export interface AllowedIpPrefix {
  readonly address: Uint8Array;
  readonly cidr: number;
}

/** What `wg set` can say about a peer; absent fields are left as they are. */
export interface PeerUpdate {
  presharedKey?: Uint8Array | null;
  endpoint?: Endpoint | null;
  /** Seconds; 0 turns it off. */
  persistentKeepalive?: number;
  allowedIPs?: readonly AllowedIpPrefix[];
  /** Replace the peer's allowed IPs with `allowedIPs` instead of adding them. */
  replaceAllowedIPs?: boolean;
}

export interface PeerStatus {
  publicKey: string;
  /** The preshared key (for `wg showconf` through the control socket); never logged. */
  presharedKey: Uint8Array | undefined;
  endpoint: Endpoint | undefined;
  allowedIPs: AllowedIpPrefix[];
  /** Wall-clock ms of the last completed handshake; 0 = never. */
  lastHandshake: number;
  rxBytes: number;
  txBytes: number;
  /** Seconds; 0 = off. */
  persistentKeepalive: number;
  /** Age in ms of the current keypair, or undefined when there is none. */
  keypairAge: number | undefined;
}

/** Read-only views of the engine's tables (see Device.inspect). */
export interface DeviceInspection {
  readonly indexTable: ReadonlyMap<number, IndexEntry>;
  readonly peers: ReadonlyMap<string, Peer>;
  /** Entries in the deadline heap, stale ones included. */
  readonly heapLength: number;
  /** Bytes staged across all peers. */
  readonly stagedBytes: number;
}

/** Tunnel MTUs a device takes: Linux's smallest (ETH_MIN_MTU) to the largest IP packet. */
export const MIN_MTU = 68;
export const MAX_MTU = 65535;

function checkMtu(mtu: number): number {
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_MTU) throw new RangeError(`mtu: expected ${MIN_MTU} to ${MAX_MTU}, got ${mtu}`);
  return mtu;
}

/** A clamped copy of `key`, or undefined for null or all zeros: "no key", to the control socket as to the kernel. */
function clampedOrNone(key: Uint8Array | null): Uint8Array | undefined {
  return key !== null && key.some((x) => x !== 0) ? clamp(key.slice()) : undefined;
}

export class Device {
  /** The tunnel interface's MTU, which padding never goes past (setMtu follows the interface). */
  mtu: number;
  private readonly b: Backends;
  private readonly random: RandomSource;
  private readonly io: DeviceIo;
  private readonly wallClock: (() => number) | undefined;
  private readonly wallClockAtZero: number;
  /** Undefined while the device has no private key. */
  private identity: Identity | undefined;
  /** Our public key as text; '' without an identity (no peer key encodes to it). */
  private ownName = '';
  private cookieChecker: CookieChecker | undefined;
  private readonly peersByKey = new Map<string, Peer>();
  private readonly indexTable: IndexTable;
  readonly allowedIps = new AllowedIps<Peer>();
  private readonly heap = new DeadlineHeap<Peer>();
  private readonly rateLimiter = new RateLimiter();
  private readonly underLoadBacklog: number;
  private underLoadUntil = -Infinity;
  private readonly handshakeQueue = new HandshakeQueue();
  /** True while the message being handled is the queue's front (it does not count as backlog). */
  private handlingQueued = false;
  private readonly handshakeWorkPerTurn: number;
  private readonly listenPort: (() => number) | undefined;
  /** True once the caller marks turns with beginTurn(); until then a turn is one `now`. */
  private turnsMarked = false;
  private turnNow = NaN;
  private turnWork = 0;
  private readonly staging = new StagingQueues<Peer>();
  private readonly scratch = new Uint8Array(4);
  private readonly jitterPool = new Uint8Array(64);
  private jitterUsed = 64;
  /** An empty packet's header and tag, sealed in place for each keepalive. */
  private readonly keepaliveBuf = new Uint8Array(TRANSPORT_MIN_LENGTH);
  /** Packets dropped, by reason. */
  readonly drops: Partial<Record<DropReason, number>> = {};

  constructor(options: DeviceOptions, io: DeviceIo) {
    this.b = { dh: options.dh ?? nobleDh, aead: options.aead ?? nobleAead, ...(options.hmac === undefined ? {} : { hmac: options.hmac }) };
    this.random = options.random ?? systemRandom;
    this.indexTable = new IndexTable(this.random);
    this.mtu = checkMtu(options.mtu ?? DEFAULT_MTU);
    this.io = io;
    this.wallClock = options.wallClock;
    if (this.wallClock !== undefined && typeof this.wallClock !== 'function') throw new TypeError('wallClock: expected a function');
    this.wallClockAtZero = options.wallClockAtZero ?? 0;
    this.underLoadBacklog = options.underLoadBacklog ?? UNDER_LOAD_BACKLOG;
    if (!(this.underLoadBacklog >= 0)) throw new RangeError('underLoadBacklog: expected 0 or more');
    this.handshakeWorkPerTurn = options.handshakeWorkPerTurn ?? HANDSHAKE_WORK_PER_TURN;
    this.listenPort = options.listenPort;
    if (this.listenPort !== undefined && typeof this.listenPort !== 'function') throw new TypeError('listenPort: expected a function');
    if (!(this.handshakeWorkPerTurn >= WORK_MAC1)) throw new RangeError('handshakeWorkPerTurn: expected at least 1');
    if (options.privateKey !== null && !(options.privateKey instanceof Uint8Array && options.privateKey.length === 32)) {
      throw new RangeError('privateKey: expected 32 bytes or null');
    }
    this.adoptIdentity(clampedOrNone(options.privateKey));
  }

  /** Our public key; all zeros while the device has no private key (see hasIdentity). */
  get publicKey(): Uint8Array {
    return this.identity?.publicKey ?? new Uint8Array(32);
  }

  /** False while the device has no private key: it then sends and answers no handshake. */
  get hasIdentity(): boolean {
    return this.identity !== undefined;
  }

  /**
   * A copy of the private key, clamped (for the control socket's `get`), all zeros when
   * the device has none, as the control socket writes "no key"; never logged.
   */
  get privateKey(): Uint8Array {
    return this.identity?.privateKey.slice() ?? new Uint8Array(32);
  }

  /**
   * Changes the device's private key: every session ends, as with `wg set private-key`.
   * The key is kept clamped (RFC 7748 §5), as the kernel and wireguard-go keep it, so
   * `wg show private-key` reads back the clamped form.
   */
  setPrivateKey(privateKey: Uint8Array | null): void {
    if (privateKey !== null && !(privateKey instanceof Uint8Array && privateKey.length === 32)) throw new RangeError('privateKey: expected 32 bytes or null');
    this.identity?.privateKey.fill(0);
    this.adoptIdentity(clampedOrNone(privateKey));
    // As the kernel: a peer whose key is now our own is removed.
    if (this.identity !== undefined && this.peersByKey.has(this.ownName)) this.removePeer(this.identity.publicKey);
    // Every session ends; the static-static DH is derived again with the new key on the
    // next handshake (a peer for which it is now zero is refused then, as 'bad-peer-key').
    for (const peer of this.peersByKey.values()) {
      this.zeroKeys(peer);
      peer.resetSecrets();
    }
  }

  /** Takes `clamped` (owned from here on) as the identity, or none. */
  private adoptIdentity(clamped: Uint8Array | undefined): void {
    this.identity = clamped === undefined ? undefined : createIdentity(this.b, clamped);
    this.ownName = this.identity === undefined ? '' : encodeKey(this.identity.publicKey);
    this.cookieChecker = this.identity === undefined ? undefined : new CookieChecker(this.identity.publicKey, this.random);
  }

  /**
   * The interface's MTU changed (`ip link set IF mtu N`): padding follows it from the next
   * packet on, as wireguard-go follows its TUN's MTU events. Packets staged before keep
   * room for any MTU.
   */
  setMtu(mtu: number): void {
    this.mtu = checkMtu(mtu);
  }

  // --- Configuration -------------------------------------------------------------

  /** Adds the peer, or updates it, as `wg set peer` does. Returns false for our own key. */
  setPeer(publicKey: Uint8Array, update: PeerUpdate = {}): boolean {
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) throw new RangeError('publicKey: expected 32 bytes');
    const name = encodeKey(publicKey);
    if (name === this.ownName) return false; // as the kernel: a device is not its own peer
    // Everything is checked before anything changes: a refused update leaves no trace.
    const psk = update.presharedKey ?? undefined;
    if (psk !== undefined && (!(psk instanceof Uint8Array) || psk.length !== 32)) throw new RangeError('presharedKey: expected 32 bytes');
    const keepalive = update.persistentKeepalive;
    if (keepalive !== undefined && (!Number.isInteger(keepalive) || keepalive < 0 || keepalive > 65535)) {
      throw new RangeError('persistentKeepalive: expected 0 to 65535 seconds');
    }
    for (const p of update.allowedIPs ?? []) {
      const bits = p.address instanceof Uint8Array && (p.address.length === 4 || p.address.length === 16) ? p.address.length * 8 : -1;
      if (bits < 0 || !Number.isInteger(p.cidr) || p.cidr < 0 || p.cidr > bits) throw new RangeError('allowedIPs: expected 4- or 16-byte addresses with a prefix length that fits');
    }
    let peer = this.peersByKey.get(name);
    if (peer === undefined) {
      if (this.peersByKey.size >= MAX_PEERS) throw new RangeError(`a device holds at most ${MAX_PEERS} peers`);
      peer = new Peer(publicKey);
      this.peersByKey.set(peer.name, peer); // one string for the key and the name
    }
    if (update.presharedKey !== undefined) {
      peer.presharedKey?.fill(0);
      peer.presharedKey = psk?.slice();
      peer.resetSecrets();
    }
    if (update.endpoint !== undefined) peer.endpoint = update.endpoint ?? undefined;
    if (keepalive !== undefined) {
      const was = peer.persistentKeepalive;
      peer.persistentKeepalive = keepalive * 1000;
      // As wireguard-go: turning it on sends a keepalive at once.
      if (was === 0 && keepalive > 0 && peer.endpoint !== undefined) peer.timers.persistentKeepalive = -Infinity;
      this.reschedule(peer);
    }
    if (update.replaceAllowedIPs) this.allowedIps.removePeer(peer);
    for (const p of update.allowedIPs ?? []) this.allowedIps.insert(p.address, p.cidr, peer);
    return true;
  }

  removePeer(publicKey: Uint8Array): boolean {
    const peer = this.peersByKey.get(encodeKey(publicKey));
    if (peer === undefined) return false;
    this.io.event?.({ type: 'peer-removed', peer: peer.name, rxBytes: peer.rxBytes, txBytes: peer.txBytes });
    this.zeroKeys(peer);
    this.allowedIps.removePeer(peer);
    this.heap.forget(peer);
    peer.presharedKey?.fill(0);
    peer.resetSecrets();
    this.peersByKey.delete(peer.name);
    return true;
  }

  removeAllPeers(): void {
    for (const peer of [...this.peersByKey.values()]) this.removePeer(peer.publicKey);
  }

  get peerCount(): number {
    return this.peersByKey.size;
  }

  /** Whether a peer with this public key is configured (the control socket's update_only). */
  hasPeer(publicKey: Uint8Array): boolean {
    return publicKey instanceof Uint8Array && publicKey.length === 32 && this.peersByKey.has(encodeKey(publicKey));
  }

  peerStatus(now: number): PeerStatus[] {
    return [...this.peersByKey.values()].map((p) => ({
      publicKey: p.name,
      presharedKey: p.presharedKey?.slice(),
      endpoint: p.endpoint,
      allowedIPs: this.allowedIps.entriesFor(p).map((e) => ({ address: e.address, cidr: e.cidr })),
      lastHandshake: p.lastHandshakeWall,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      persistentKeepalive: p.persistentKeepalive / 1000,
      keypairAge: p.currentKeypair === undefined ? undefined : now - p.currentKeypair.created,
    }));
  }

  /**
   * The engine's tables as they are now, for fuzzers, tests and diagnostics: live views,
   * not copies, valid until the next input. Never log them: keypairs hold keys.
   */
  inspect(): DeviceInspection {
    return { indexTable: this.indexTable.entries, peers: this.peersByKey, heapLength: this.heap.length, stagedBytes: this.staging.bytes };
  }

  /**
   * True while handshake messages wait in the queue past UNDER_LOAD_BACKLOG, and for
   * UNDER_LOAD_AFTER_TIME after: more arrive than the device answers freely.
   */
  isUnderLoad(now: number): boolean {
    return this.handshakeQueue.length >= this.underLoadBacklog || now < this.underLoadUntil;
  }

  /** Handshake messages waiting for a turn with budget (see drainHandshakes). */
  get queuedHandshakes(): number {
    return this.handshakeQueue.length;
  }

  // --- Input: a packet from the tunnel interface -----------------------------------

  /**
   * An IP packet of `length` bytes from the tunnel interface, at buf[16 : 16 + length].
   * `buf` must have room for the header in front and padding and tag behind:
   * sealedLength(length, mtu) bytes (see `packetBufferSize`). It is sealed in place.
   */
  sendPacket(buf: Uint8Array, length: number, now: number): void {
    if (buf.length < sealedLength(length, this.mtu)) throw new RangeError(`buf: needs ${sealedLength(length, this.mtu)} bytes`);
    // Larger than a transport message can carry (an interface MTU above what WireGuard
    // allows): counted, never sent.
    if (length > MAX_CONTENT_LENGTH) return this.drop('too-large');
    const ip = parseIpPacket(buf.subarray(TRANSPORT_HEADER_LENGTH, TRANSPORT_HEADER_LENGTH + length));
    if (!ip.ok) return this.drop('bad-ip');
    const peer = this.allowedIps.lookup(ip.destination);
    if (peer === undefined) return this.drop('no-peer');
    if (this.isOwnDatagram(buf.subarray(TRANSPORT_HEADER_LENGTH, TRANSPORT_HEADER_LENGTH + ip.length), ip)) return this.drop('routing-loop');
    const kp = peer.sendingKeypair(now, REJECT_AFTER_TIME, REJECT_AFTER_MESSAGES);
    if (kp !== undefined && peer.staged === undefined) {
      this.sealAndSend(peer, kp, buf, length, now);
    } else {
      this.stage(peer, buf, length);
      this.sendStaged(peer, now);
    }
    this.keepKeyFreshSending(peer, now);
    this.reschedule(peer);
  }

  /**
   * Is this IP packet a UDP datagram from our listen port to one of our peers' endpoints,
   * that is, one we sent, which the routing table brought back into the tunnel? Cheap for
   * everything else: two header bytes; the peers are only scanned for our own port.
   */
  private isOwnDatagram(packet: Uint8Array, ip: IpPacket): boolean {
    if (this.listenPort === undefined) return false;
    let udp: number;
    if (ip.version === 4) {
      // Protocol UDP, and the first fragment (only it has the ports).
      if (packet[9] !== 17 || ((packet[6]! & 0x1f) | packet[7]!) !== 0) return false;
      udp = (packet[0]! & 0x0f) * 4;
    } else {
      if (packet[6] !== 17) return false;
      udp = IPV6_HEADER_LENGTH;
    }
    if (ip.length < udp + 8) return false;
    const port = this.listenPort();
    if (port === 0 || ((packet[udp]! << 8) | packet[udp + 1]!) !== port) return false;
    const destinationPort = (packet[udp + 2]! << 8) | packet[udp + 3]!;
    const host = ip.version === 4 ? formatIpv4(ip.destination) : formatIpv6(ip.destination);
    for (const peer of this.peersByKey.values()) {
      const e = peer.endpoint;
      if (e !== undefined && e.port === destinationPort && e.host === host) return true;
    }
    return false;
  }

  // --- Input: a datagram from the network -----------------------------------------

  /**
   * A new turn of the caller's event loop begins: the handshake budget is full again.
   * A runtime calls it once per batch of datagrams it reads, and before each turn it
   * gives to waiting handshakes (drainHandshakes). A caller that never calls it (a test
   * with a fake clock) gets a fresh budget for each distinct `now` instead.
   */
  beginTurn(): void {
    this.turnsMarked = true;
    this.turnWork = 0;
  }

  /** A UDP datagram from `from`. Transport data is decrypted in place in `data`. */
  receiveDatagram(data: Uint8Array, from: Endpoint, now: number): void {
    const type = classify(data);
    if (typeof type !== 'number') return this.drop(type);
    if (type === MESSAGE_TRANSPORT) return this.receiveTransport(data, from, now);
    // Handshake messages, cheapest check first: a response must name our pending
    // handshake; then it is handled now if the turn has budget and none waits before
    // it, else it waits in the queue, copied, before any decoding or hashing.
    if (type === MESSAGE_RESPONSE && !this.awaitsResponse(responseReceiverIndexOf(data))) return this.drop('unexpected-response');
    if (type !== MESSAGE_COOKIE_REPLY) {
      if (this.handshakeQueue.length > 0) this.drainHandshakes(now);
      if (this.handshakeQueue.length > 0 || !this.hasHandshakeBudget(now)) return this.enqueueHandshake(data, from);
    }
    this.receiveHandshake(data, from, now);
  }

  /**
   * Handles waiting handshake messages, oldest first, while the turn's budget lasts;
   * returns how many still wait. A runtime calls it after beginTurn() in turns of their
   * own while any wait (between which the data keeps flowing); tick() calls it too.
   */
  drainHandshakes(now: number): number {
    const q = this.handshakeQueue;
    while (q.length > 0 && this.hasHandshakeBudget(now)) {
      // Handled in its slot, then freed: nothing handled here pushes to the queue.
      this.handlingQueued = true;
      this.receiveHandshake(q.front()!, q.frontSender()!, now);
      this.handlingQueued = false;
      q.pop();
    }
    return q.length;
  }

  private enqueueHandshake(data: Uint8Array, from: Endpoint): void {
    if (!this.handshakeQueue.push(data, from)) this.drop('handshake-queue-full');
  }

  /** A handshake message (initiation, response or cookie reply) whose turn has come. */
  private receiveHandshake(data: Uint8Array, from: Endpoint, now: number): void {
    const decoded = decodeMessage(data);
    if (!decoded.ok) return this.drop(decoded.reason);
    const m = decoded.message;
    if (m.type === MESSAGE_COOKIE_REPLY) return this.receiveCookieReply(m.receiverIndex, m, now);
    if (m.type !== MESSAGE_INITIATION && m.type !== MESSAGE_RESPONSE) return;
    const macOffset = m.type === MESSAGE_INITIATION ? INITIATION_MAC1_OFFSET : RESPONSE_MAC1_OFFSET;
    this.turnWork += WORK_MAC1;
    // No identity: no handshake of ours is pending, so no response reaches here either.
    const identity = this.identity;
    if (identity === undefined || this.cookieChecker === undefined) return this.drop('no-identity');
    if (!verifyMac1(data, macOffset, identity.mac1Key)) return this.drop('bad-mac1');
    if (this.underLoad(now)) {
      const source = this.sourceBytes(from);
      if (!this.cookieChecker.verifyMac2(data, macOffset, source, now)) {
        this.io.send(this.cookieChecker.createReply(data, macOffset, m.senderIndex, source, now), from);
        this.turnWork += WORK_COOKIE_REPLY;
        return this.drop('cookie-sent');
      }
      if (!this.rateLimiter.allow(from.host, now)) return this.drop('rate-limited');
    }
    this.turnWork += WORK_HANDSHAKE;
    if (m.type === MESSAGE_INITIATION) this.receiveInitiation(identity, m, from, now);
    else if (m.type === MESSAGE_RESPONSE) this.receiveResponse(identity, m, from, now);
  }

  // --- Input: time -------------------------------------------------------------------

  /**
   * Fires every timer due at `now` and handles waiting handshake messages while the
   * turn's budget lasts; returns the time of the next timer (Infinity: none). For a
   * caller that does not mark turns, while messages still wait, that is 1 ms ahead at
   * most: the next `now` is a new turn with a full budget.
   */
  tick(now: number): number {
    for (;;) {
      const peer = this.heap.takeDue(now);
      if (peer === undefined) break;
      for (let name = peer.timers.takeDue(now); name !== undefined; name = peer.timers.takeDue(now)) {
        this.io.event?.({ type: 'timer', peer: peer.name, timer: name });
        this.fire(peer, name, now);
      }
      this.reschedule(peer);
    }
    const next = this.heap.peek();
    if (this.handshakeQueue.length === 0 || this.drainHandshakes(now) === 0 || this.turnsMarked) return next;
    return Math.min(next, now + 1);
  }

  // --- Receiving -------------------------------------------------------------------

  private receiveTransport(data: Uint8Array, from: Endpoint, now: number): void {
    const entry = this.indexTable.get(receiverIndexOf(data));
    const kp = entry?.keypair;
    if (kp === undefined) return this.drop('unknown-index');
    const peer = entry!.peer;
    if (now - kp.created >= REJECT_AFTER_TIME) return this.drop('expired-keypair');
    const counter = transportCounterOf(data);
    if (counter < 0 || counter >= REJECT_AFTER_MESSAGES) return this.drop('counter-limit');
    if (!kp.replay.check(counter)) return this.drop('replay');
    const length = openTransport(this.b.aead, kp.receiveKey, counter, data);
    if (length < 0) return this.drop('bad-tag');
    if (!kp.replay.accept(counter)) return this.drop('replay');

    // Authenticated from here on.
    this.roam(peer, from);
    peer.rxBytes += data.length;
    const retired = peer.keypairs.confirm(kp);
    if (retired !== null) this.confirmed(peer, retired, now);
    this.keepKeyFreshReceiving(peer, now);
    peer.timers.anyAuthenticatedPacketTraversal(now, peer.persistentKeepalive);
    peer.timers.anyAuthenticatedPacketReceived();
    if (length === 0) return this.reschedule(peer); // keepalive
    peer.timers.dataReceived(now);
    this.reschedule(peer);

    const plaintext = data.subarray(TRANSPORT_HEADER_LENGTH, TRANSPORT_HEADER_LENGTH + length);
    const ip = parseIpPacket(plaintext);
    if (!ip.ok) return this.drop('bad-ip');
    if (this.allowedIps.lookup(ip.source) !== peer) return this.drop('source-not-allowed');
    this.io.write(plaintext.subarray(0, ip.length));
  }

  private receiveInitiation(identity: Identity, m: Initiation, from: Endpoint, now: number): void {
    let lowOrder = false;
    const consumed = consumeInitiation(this.b, identity, m, now, (remoteStatic) => {
      const peer = this.peersByKey.get(encodeKey(remoteStatic));
      if (peer === undefined) return undefined;
      const secrets = peer.secretsFor(this.b, identity);
      if (secrets === null) {
        lowOrder = true;
        return undefined;
      }
      return { peer, secrets, guard: peer.guard };
    });
    if (typeof consumed === 'string') return this.drop(lowOrder ? 'bad-peer-key' : consumed);
    const peer = consumed.peer.peer;
    this.roam(peer, from);
    peer.rxBytes += m.bytes.length;
    peer.timers.anyAuthenticatedPacketTraversal(now, peer.persistentKeepalive);
    peer.timers.anyAuthenticatedPacketReceived();

    // Answer with a response and keep the new keypair as `next` until the initiator uses it.
    this.clearHandshake(peer);
    const localIndex = this.indexTable.reserve(peer);
    const resp = createResponse(this.b, consumed, localIndex, this.b.dh.generatePrivateKey(this.random), peer.cookies.current(now));
    if (resp === null) {
      this.indexTable.free(peer, localIndex);
      return this.drop('bad-dh');
    }
    peer.cookies.sent(resp.mac1);
    this.install(peer, new Keypair(resp.keys, now));
    peer.timers.sessionDerived(now);
    this.sendTo(peer, resp.message, now);
    this.io.event?.({ type: 'handshake-complete', peer: peer.name, role: 'responder' });
    this.reschedule(peer);
  }

  private receiveResponse(identity: Identity, m: Response, from: Endpoint, now: number): void {
    const entry = this.indexTable.get(m.receiverIndex);
    const peer = entry?.peer;
    const hs = peer?.handshake;
    if (peer === undefined || entry!.keypair !== undefined || hs?.kind !== 'initiation-sent' || hs.localIndex !== m.receiverIndex) {
      return this.drop('unexpected-response');
    }
    const secrets = peer.secretsFor(this.b, identity);
    if (secrets === null) return this.drop('bad-peer-key');
    const keys = consumeResponse(this.b, identity, secrets, hs.initiator, m);
    if (typeof keys === 'string') return this.drop(keys);

    peer.handshake = noHandshake();
    this.install(peer, new Keypair(keys, now));

    this.roam(peer, from);
    peer.rxBytes += m.bytes.length;
    peer.lastHandshakeWall = this.wallAt(now);
    peer.timers.sessionDerived(now);
    peer.timers.handshakeComplete();
    peer.timers.anyAuthenticatedPacketTraversal(now, peer.persistentKeepalive);
    peer.timers.anyAuthenticatedPacketReceived();
    this.io.event?.({ type: 'handshake-complete', peer: peer.name, role: 'initiator' });
    // Prove the keypair to the responder at once: staged data, or a keepalive.
    this.sendKeepalive(peer, now);
    this.reschedule(peer);
  }

  private receiveCookieReply(index: number, reply: CookieReply, now: number): void {
    const peer = this.indexTable.get(index)?.peer;
    if (peer === undefined) return this.drop('unknown-index');
    if (!peer.cookies.consume(reply, now)) return this.drop('bad-cookie');
    this.io.event?.({ type: 'cookie-received', peer: peer.name });
  }

  // --- Sending ---------------------------------------------------------------------

  private sealAndSend(peer: Peer, kp: Keypair, buf: Uint8Array, length: number, now: number): void {
    if (peer.endpoint === undefined) return this.drop('no-endpoint');
    const counter = kp.sendCounter++;
    const n = sealTransport(this.b.aead, kp.sendKey, kp.remoteIndex, counter, buf, length, this.mtu);
    this.io.send(buf.subarray(0, n), peer.endpoint);
    peer.txBytes += n;
    peer.timers.anyAuthenticatedPacketTraversal(now, peer.persistentKeepalive);
    peer.timers.anyAuthenticatedPacketSent();
    if (length > 0) peer.timers.dataSent(now, this.jitterFn);
  }

  /** Sends a handshake message (allocated, rare) to the peer's endpoint. */
  private sendTo(peer: Peer, message: Uint8Array, now: number): void {
    peer.timers.anyAuthenticatedPacketTraversal(now, peer.persistentKeepalive);
    peer.timers.anyAuthenticatedPacketSent();
    if (peer.endpoint === undefined) return this.drop('no-endpoint');
    this.io.send(message, peer.endpoint);
    peer.txBytes += message.length;
  }

  /** Stages a copy (see staging.ts); what it pushes out is counted as 'staged-full'. */
  private stage(peer: Peer, buf: Uint8Array, length: number): void {
    // Room for the padding of any MTU (0: no cap), as the MTU may change before it is sent.
    const dropped = this.staging.push(peer, buf, length, sealedLength(length, 0));
    for (let i = dropped < 0 ? 1 : dropped; i > 0; i--) this.drop('staged-full');
  }

  private sendStaged(peer: Peer, now: number): void {
    const kp = peer.sendingKeypair(now, REJECT_AFTER_TIME, REJECT_AFTER_MESSAGES);
    if (kp === undefined) {
      this.initiateHandshake(peer, now, false);
      return;
    }
    for (const s of this.staging.take(peer) ?? []) this.sealAndSend(peer, kp, s.buf, s.length, now);
  }

  private dropStaged(peer: Peer): number {
    return this.staging.clear(peer);
  }

  /**
   * An empty packet. With a usable keypair it goes out at once, never staged (staged data,
   * if any, goes instead: it proves the keypair as well); without one it is staged so that
   * the handshake it starts carries it.
   */
  private sendKeepalive(peer: Peer, now: number): void {
    const kp = peer.sendingKeypair(now, REJECT_AFTER_TIME, REJECT_AFTER_MESSAGES);
    if (kp !== undefined && peer.staged === undefined) return this.sealAndSend(peer, kp, this.keepaliveBuf, 0, now);
    if (peer.staged === undefined) this.stage(peer, this.scratch, 0);
    this.sendStaged(peer, now);
  }

  private initiateHandshake(peer: Peer, now: number, isRetry: boolean): void {
    if (!isRetry) peer.timers.handshakeAttempts = 0;
    if (now - peer.lastSentHandshake < REKEY_TIMEOUT) return;
    const identity = this.identity;
    if (identity === undefined) {
      // No key, no handshake: what waited for one (a keepalive, say) is dropped.
      for (let i = Math.max(1, this.dropStaged(peer)); i > 0; i--) this.drop('no-identity');
      return;
    }
    const secrets = peer.secretsFor(this.b, identity);
    if (secrets === null) return this.drop('bad-peer-key');
    peer.lastSentHandshake = now;
    this.clearHandshake(peer);
    const localIndex = this.indexTable.reserve(peer);
    // Never older than the last timestamp sent to this peer, or the peer refuses it as a
    // replay: a wall clock stepped back (NTP) must not lock the peer out until it catches up.
    const wall = Math.max(this.wallAt(now), peer.lastInitiationWall + TIMESTAMP_STEP);
    peer.lastInitiationWall = wall;
    const init = createInitiation(this.b, identity, secrets, localIndex, this.b.dh.generatePrivateKey(this.random),
      tai64nFromMillis(wall), peer.cookies.current(now));
    if (init === null) {
      this.indexTable.free(peer, localIndex);
      return this.drop('bad-peer-key');
    }
    peer.handshake = { kind: 'initiation-sent', localIndex, initiator: init.state, sentAt: now };
    peer.cookies.sent(init.mac1);
    this.sendTo(peer, init.message, now);
    peer.timers.handshakeInitiated(now, this.jitter());
    this.io.event?.({ type: 'handshake-initiated', peer: peer.name, attempt: peer.timers.handshakeAttempts + 1 });
  }

  // --- Keys ------------------------------------------------------------------------

  /** A handshake made `kp`: it takes its slot (see KeypairSlots.install) and its index. */
  private install(peer: Peer, kp: Keypair): void {
    this.indexTable.attach(peer, kp);
    for (const old of peer.keypairs.install(kp)) this.retire(peer, old);
  }

  /** The initiator's first packet arrived on our `next` keypair: it became current. */
  private confirmed(peer: Peer, retired: readonly Keypair[], now: number): void {
    for (const old of retired) this.retire(peer, old);
    peer.lastHandshakeWall = this.wallAt(now);
    peer.timers.handshakeComplete();
    if (peer.staged !== undefined) this.sendStaged(peer, now);
  }

  private keepKeyFreshSending(peer: Peer, now: number): void {
    const kp = peer.keypairs.current;
    if (kp !== undefined && (kp.sendCounter > REKEY_AFTER_MESSAGES || (kp.isInitiator && now - kp.created > REKEY_AFTER_TIME))) {
      this.initiateHandshake(peer, now, false);
    }
  }

  private keepKeyFreshReceiving(peer: Peer, now: number): void {
    if (peer.timers.sentLastMinuteHandshake) return;
    const kp = peer.keypairs.current;
    if (kp !== undefined && kp.isInitiator && now - kp.created > REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT) {
      peer.timers.sentLastMinuteHandshake = true;
      this.initiateHandshake(peer, now, false);
    }
  }

  /** Wipes a keypair that left its slot and frees its index. */
  private retire(peer: Peer, kp: Keypair): void {
    this.indexTable.free(peer, kp.localIndex);
    kp.wipe();
  }

  private clearHandshake(peer: Peer): void {
    const hs = peer.handshake;
    if (hs.kind === 'initiation-sent') {
      this.indexTable.free(peer, hs.localIndex);
      hs.initiator.ephemeralPrivate.fill(0);
      hs.initiator.noise.chainingKey.fill(0);
    }
    peer.handshake = noHandshake();
  }

  /** Every keypair and the handshake state wiped (zeroKeyMaterial, key change, removal). */
  private zeroKeys(peer: Peer): void {
    for (const kp of peer.clearKeypairs()) this.retire(peer, kp);
    this.clearHandshake(peer);
    this.dropStaged(peer);
    peer.clearTimers();
    peer.clearCookies();
    peer.lastSentHandshake = -Infinity; // a new session may start at once (wireguard-go does the same)
  }

  // --- Timers ----------------------------------------------------------------------

  private fire(peer: Peer, name: TimerName, now: number): void {
    const t = peer.timers;
    switch (name) {
      case 'retransmitHandshake':
        if (t.attemptsExhausted()) {
          // REKEY_ATTEMPT_TIME has passed: give up, drop what waited for this handshake.
          t.sendKeepalive = Infinity;
          const dropped = this.dropStaged(peer);
          this.clearHandshake(peer);
          if (t.zeroKeyMaterial === Infinity) t.zeroKeyMaterial = now + 3 * REJECT_AFTER_TIME;
          this.io.event?.({ type: 'handshake-given-up', peer: peer.name, dropped });
        } else {
          t.handshakeAttempts++;
          this.initiateHandshake(peer, now, true);
        }
        break;
      case 'sendKeepalive':
        this.sendKeepalive(peer, now);
        if (t.needAnotherKeepalive) {
          t.needAnotherKeepalive = false;
          t.sendKeepalive = now + KEEPALIVE_TIMEOUT;
        }
        break;
      case 'newHandshake':
        this.initiateHandshake(peer, now, false);
        break;
      case 'zeroKeyMaterial':
        this.zeroKeys(peer);
        this.io.event?.({ type: 'keys-zeroed', peer: peer.name });
        break;
      case 'persistentKeepalive':
        if (peer.persistentKeepalive > 0) this.sendKeepalive(peer, now);
        break;
    }
  }

  private reschedule(peer: Peer): void {
    this.heap.schedule(peer, peer.nextDeadline());
  }

  private readonly jitterFn = (): number => this.jitter();

  /**
   * Two bytes of a pool drawn 64 at a time: newHandshake is armed again by the first data
   * packet sent after any packet received, so in a request-response exchange this runs
   * once per packet, and a draw from the system costs more than the packet's sealing.
   */
  private jitter(): number {
    if (this.jitterUsed === this.jitterPool.length) {
      this.random(this.jitterPool);
      this.jitterUsed = 0;
    }
    const i = this.jitterUsed;
    this.jitterUsed += 2;
    return jitterFrom((this.jitterPool[i]! << 8) | this.jitterPool[i + 1]!);
  }

  // --- Helpers ---------------------------------------------------------------------

  /** Wall-clock ms now: the injected clock, or the older fixed origin plus `now`. */
  private wallAt(now: number): number {
    const wall = this.wallClock === undefined ? this.wallClockAtZero + now : this.wallClock();
    return Number.isFinite(wall) && wall > 0 ? wall : 0;
  }

  /** The sender of an authenticated packet becomes the peer's endpoint, with the local address it wrote to. */
  private roam(peer: Peer, from: Endpoint): void {
    const was = peer.endpoint;
    if (sameEndpoint(was, from)) return;
    peer.endpoint = from.source === undefined ? { host: from.host, port: from.port } : { host: from.host, port: from.port, source: from.source };
    // Only the peer's address and port are news; our source follows silently.
    if (was === undefined || was.host !== from.host || was.port !== from.port) {
      this.io.event?.({ type: 'endpoint-changed', peer: peer.name, endpoint: peer.endpoint });
    }
  }

  /** True when `index` names a handshake of ours still waiting for its response. */
  private awaitsResponse(index: number): boolean {
    const entry = this.indexTable.get(index);
    return entry !== undefined && entry.keypair === undefined;
  }

  /** True while this turn's handshake work budget is not spent. */
  private hasHandshakeBudget(now: number): boolean {
    if (!this.turnsMarked && now !== this.turnNow) {
      this.turnNow = now;
      this.turnWork = 0;
    }
    return this.turnWork < this.handshakeWorkPerTurn;
  }

  /**
   * Whether to demand cookies now, as wireguard-go's IsUnderLoad: the queue behind the
   * message being handled is long, which keeps the device under load for
   * UNDER_LOAD_AFTER_TIME, or it was long less than that ago.
   */
  private underLoad(now: number): boolean {
    const backlog = this.handshakeQueue.length - (this.handlingQueued ? 1 : 0);
    if (backlog >= this.underLoadBacklog) this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
    return now < this.underLoadUntil;
  }

  /** The source a cookie is bound to: address and port (only under load, not per packet). */
  private sourceBytes(from: Endpoint): Uint8Array {
    return utf8Encode(`${from.host}|${from.port}`);
  }

  private drop(reason: DropReason): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }
}

/** The buffer size a caller needs for packets of up to `mtu` bytes through sendPacket. */
export const packetBufferSize = (mtu: number): number => sealedLength(mtu, mtu);
