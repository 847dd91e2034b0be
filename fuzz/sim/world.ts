// A world of engines under test: Devices with seeded keys and randomness, an
// instrumented AEAD in each, a mirror of the configuration the test gave them, a ledger
// of every tagged packet sent, and the invariants checked on every input. The network
// that carries datagrams between them is not here: the simulator (simulate.ts) and the
// model-based test (model.test.ts) each bring their own and call `deliver`, `tick`,
// `sendApp` and the configuration methods.
//
// Invariants (each violation names its rule):
//   throw          no input ever throws out of the engine
//   output         sends, writes and events happen only inside an input call
//   unknown-write  everything written to a TUN is a packet some node sent, byte for byte
//   duplicate      a packet reaches its destination at most once (and crosses a forwarding
//                  hop at most once)
//   misrouted      a packet is written only where its destination is (or at a forwarder)
//   write-source   the inner source of a written packet is in the allowed IPs of the
//                  peer whose keypair opened it
//   stale-peer     nothing is written from a peer that is not configured, or under a
//                  keypair older than the peer's latest (re)configuration
//   seal-route     nothing is sealed for a peer whose allowed IPs miss its destination
//   key-age        no transport message is sealed or opened under a keypair that is
//                  REJECT_AFTER_TIME old, or at a counter >= REJECT_AFTER_MESSAGES
//   nonce          a keypair never seals two messages with one counter, nor with a
//                  wiped (all-zero) key
//   replay         a keypair authenticates each counter at most once
//   forged         a datagram no honest node sent (bytes other than mac2 changed) is
//                  refused: exactly one drop counted, nothing written, no event, and
//                  nothing sent but a cookie reply
//   handshake-replay  the bytes of a handshake message complete a handshake or move an
//                  endpoint at most once per receiver
//   roam           an endpoint moves only to the source of the datagram being received
//   bounds         index table <= 4 entries per peer and names only live peers; staged
//                  packets <= MAX_STAGED_PACKETS per peer, staged bytes add up and stay
//                  <= MAX_STAGED_BYTES; the deadline heap stays bounded; one input
//                  writes at most one packet and sends at most MAX_STAGED_PACKETS + 4
//   timer-loop     tick(now) returns a deadline later than now
//   config         the device's peer count matches what the test configured

import { type Aead, nobleAead } from '../../crypto/aead.js';
import { encodeKey } from '../../crypto/keys.js';
import { type Dh, nobleDh } from '../../crypto/x25519.js';
import { createNodeAead, nodeDh } from '../../src/runtime/node-crypto.js';
import {
  INITIATION_LENGTH, MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME,
  RESPONSE_LENGTH,
} from '../../tunnel/constants.js';
import {
  Device, type DeviceEvent, type Endpoint, MAX_STAGED_BYTES, MAX_STAGED_PACKETS, packetBufferSize,
} from '../../tunnel/device.js';
import { INITIATION_MAC2_OFFSET, RESPONSE_MAC2_OFFSET } from '../../tunnel/messages.js';
import { instrumentedAead } from './aead.js';
import { type DeviceView, inspect, type KeypairView, keypairOfKey } from './internals.js';
import { addressText, fingerprint, hex, inAnyPrefix, type Prefix, readPacket, sameBytes, taggedPacket } from './packets.js';
import { Prng } from './prng.js';

export type CryptoChoice = 'node' | 'noble';

/** Wall clock at engine time 0 for every node: TAI64N timestamps come from it. */
export const WALL_CLOCK_AT_ZERO = 1_700_000_000_000;

export interface Violation {
  readonly rule: string;
  readonly message: string;
  /** Global simulated time (ms). */
  readonly time: number;
  readonly node: string | undefined;
}

export class InvariantError extends Error {
  constructor(readonly violation: Violation) {
    super(`[${violation.rule}] t=${violation.time} ${violation.node ?? ''}: ${violation.message}`);
  }
}

export interface PeerMirror {
  readonly node: SimNode;
  readonly allowed: Prefix[];
  /** The peer's latest (re)configuration, on this node's clock. */
  addedAt: number;
  endpoint: Endpoint | undefined;
  keepalive: number;
  /** Changes whenever the device forgets the peer's state (added anew, or a restart). */
  incarnation: number;
}

export class SimNode {
  device!: Device;
  /** This node's clock = world time + offset; only ever grows (clock jumps forward). */
  offset = 0;
  /** Restarts so far (each restart is a fresh Device with the same key). */
  generation = 0;
  /** Configured peers, by node name: what the test told the device. */
  readonly peers = new Map<string, PeerMirror>();
  readonly keyName: string;

  constructor(
    readonly name: string,
    readonly index: number,
    readonly privateKey: Uint8Array,
    readonly publicKey: Uint8Array,
    readonly v4: Uint8Array,
    readonly v6: Uint8Array,
    /** Where the others reach it: for a node behind NAT, its current public mapping. */
    public endpoint: Endpoint,
    /** Forwards packets not addressed to it (a server routing between clients). */
    readonly forward: boolean,
  ) {
    this.keyName = encodeKey(publicKey);
  }

  owns(address: Uint8Array): boolean {
    return sameBytes(address, this.v4) || sameBytes(address, this.v6);
  }
}

export interface TagRecord {
  readonly tag: number;
  readonly bytes: Uint8Array;
  readonly from: string;
  /** The node whose address is the destination, if any. */
  readonly to: string | undefined;
  readonly sentAt: number;
  deliveredAt: number | undefined;
  readonly hops: Set<string>;
}

interface Input {
  readonly node: SimNode;
  readonly kind: 'datagram' | 'packet' | 'tick' | 'config';
  readonly now: number;
  readonly from: Endpoint | undefined;
  /** For datagrams: sent by an honest node (mac2 aside). */
  readonly honest: boolean;
  readonly fp: number;
  readonly type: number;
  readonly dropsBefore: number;
  sends: number;
  nonCookieSends: number;
  writes: number;
  events: DeviceEvent[];
  lastOpen: { peer: string; created: number } | undefined;
}

export interface WorldOptions {
  readonly seed: number;
  readonly crypto?: CryptoChoice;
  readonly mtu?: number;
  readonly underLoadBacklog?: number;
  /** A datagram leaves `from` for `to`; `data` is a copy the callee may keep. */
  readonly onSend: (from: SimNode, data: Uint8Array, to: Endpoint) => void;
  readonly trace?: (line: string) => void;
}

export interface WorldStats {
  inputs: number;
  datagrams: number;
  forged: number;
  writes: number;
  delivered: number;
  handshakes: number;
  maxIndexEntriesPerPeer: number;
  maxHeap: number;
  maxStaged: number;
}

/** Heap entries allowed per peer ever configured, plus a constant (lazy deletion leaves stale entries). */
export const HEAP_SLACK_PER_PEER = 64;

const dropTotal = (d: Device): number => Object.values(d.drops).reduce<number>((a, b) => a + (b ?? 0), 0);

/** The fingerprint of a datagram with a handshake message's mac2 zeroed: mac2 may change on the way. */
export function maskedFingerprint(data: Uint8Array): number {
  const type = data[0];
  if (type === MESSAGE_INITIATION && data.length === INITIATION_LENGTH) {
    const copy = data.slice();
    copy.fill(0, INITIATION_MAC2_OFFSET);
    return fingerprint(copy);
  }
  if (type === MESSAGE_RESPONSE && data.length === RESPONSE_LENGTH) {
    const copy = data.slice();
    copy.fill(0, RESPONSE_MAC2_OFFSET);
    return fingerprint(copy);
  }
  return fingerprint(data);
}

export class World {
  /** Global simulated time, ms. */
  now = 0;
  readonly nodes: SimNode[] = [];
  readonly tags = new Map<number, TagRecord>();
  readonly stats: WorldStats = {
    inputs: 0, datagrams: 0, forged: 0, writes: 0, delivered: 0, handshakes: 0, maxIndexEntriesPerPeer: 0, maxHeap: 0, maxStaged: 0,
  };
  violation: Violation | undefined;
  /**
   * Times a node, completing a handshake as initiator while it held an unconfirmed `next`
   * keypair, kept that one as `previous` and dropped its `current` (as the kernel's
   * add_new_keypair and wireguard-go's BeginSymmetricSession do): what the peer had in
   * flight on the dropped keypair is lost. The simulator forgives exactly those losses.
   */
  readonly discards: { node: string; peer: string; time: number }[] = [];

  private readonly rng: Prng;
  private readonly dh: Dh;
  private readonly mtu: number;
  private readonly byKey = new Map<string, SimNode>();
  private readonly honest = new Set<number>();
  /** `${node}|${fp}` of handshake messages that took effect at that node. */
  private readonly handshakeEffects = new Set<string>();
  private readonly sealCounters = new WeakMap<KeypairView, number>();
  private readonly sealByKeyBytes = new Map<string, number>();
  private readonly opened = new WeakMap<KeypairView, Set<number>>();
  private readonly peersEver = new Map<string, number>();
  private readonly pendingForward: { node: SimNode; packet: Uint8Array }[] = [];
  private input: Input | undefined;
  private nextTag = 1;
  private incarnations = 0;

  constructor(private readonly options: WorldOptions) {
    this.rng = new Prng(options.seed, 1);
    this.dh = options.crypto === 'noble' ? nobleDh : nodeDh;
    this.mtu = options.mtu ?? 1420;
  }

  // --- Building --------------------------------------------------------------------

  addNode(name: string, v4: Uint8Array, v6: Uint8Array, endpoint: Endpoint, forward = false): SimNode {
    const privateKey = this.dh.generatePrivateKey((out) => this.rng.fill(out));
    const node = new SimNode(name, this.nodes.length, privateKey, this.dh.publicKey(privateKey), v4, v6, endpoint, forward);
    this.nodes.push(node);
    this.byKey.set(node.keyName, node);
    this.peersEver.set(name, 0);
    this.makeDevice(node);
    return node;
  }

  private makeDevice(node: SimNode): void {
    const random = new Prng(this.options.seed, 1000 + node.index * 64 + node.generation);
    const base: Aead = this.options.crypto === 'noble' ? nobleAead : createNodeAead();
    const aead = instrumentedAead(base, {
      sealed: (key, counter, plaintext) => this.onSeal(node, key, counter, plaintext),
      opened: (key, counter, plaintext) => this.onOpen(node, key, counter, plaintext),
    });
    node.device = new Device({
      privateKey: node.privateKey, random: random.source, dh: this.dh, aead, mtu: this.mtu,
      wallClockAtZero: WALL_CLOCK_AT_ZERO,
      // Each handshake message is handled within the input that delivers it, so that the
      // invariants can hold that datagram to account for its effects. The handshake queue,
      // which defers messages past a turn's budget to later turns, is tested on its own
      // (test/unit/hardening.test.ts).
      handshakeWorkPerTurn: Infinity,
      ...(this.options.underLoadBacklog === undefined ? {} : { underLoadBacklog: this.options.underLoadBacklog }),
    }, {
      send: (data, to) => this.onDeviceSend(node, data, to),
      write: (packet) => this.onWrite(node, packet),
      event: (e) => this.onEvent(node, e),
    });
  }

  localNow(node: SimNode): number {
    return this.now + node.offset;
  }

  trace(line: string): void {
    this.options.trace?.(`${(this.now / 1000).toFixed(3).padStart(9)}s ${line}`);
  }

  // --- Configuration -------------------------------------------------------------------

  /** Makes `y` a peer of `x` (or updates it): allowed IPs `allowed`, optional endpoint and keepalive (s). */
  configure(x: SimNode, y: SimNode, opts: { allowed: Prefix[]; endpoint?: Endpoint | undefined; keepalive?: number }): void {
    const existing = x.peers.get(y.name);
    const mirror: PeerMirror = {
      node: y, allowed: opts.allowed.map((p) => ({ address: p.address.slice(), cidr: p.cidr })), addedAt: existing?.addedAt ?? this.localNow(x),
      endpoint: opts.endpoint, keepalive: opts.keepalive ?? 0, incarnation: existing?.incarnation ?? this.incarnations++,
    };
    x.peers.set(y.name, mirror);
    if (existing === undefined) this.peersEver.set(x.name, (this.peersEver.get(x.name) ?? 0) + 1);
    this.apply(x, mirror, true);
  }

  private apply(x: SimNode, m: PeerMirror, replace: boolean): void {
    this.run(x, 'config', () => this.setPeer(x, m, replace));
  }

  private setPeer(x: SimNode, m: PeerMirror, replace: boolean): void {
    x.device.setPeer(m.node.publicKey, {
      allowedIPs: m.allowed, replaceAllowedIPs: replace, persistentKeepalive: m.keepalive,
      ...(m.endpoint === undefined ? {} : { endpoint: m.endpoint }),
    });
  }

  /** Sets the endpoint `x` has for `y`, as `wg set … endpoint` would. */
  setEndpoint(x: SimNode, y: SimNode, endpoint: Endpoint): void {
    const m = x.peers.get(y.name);
    if (m === undefined) return;
    m.endpoint = endpoint;
    this.run(x, 'config', () => x.device.setPeer(y.publicKey, { endpoint }));
  }

  unconfigure(x: SimNode, y: SimNode): void {
    if (!x.peers.delete(y.name)) return;
    this.run(x, 'config', () => {
      x.device.removePeer(y.publicKey);
    });
  }

  /** A fresh Device with the same key and configuration: every session is forgotten. */
  restart(x: SimNode): void {
    x.generation++;
    this.makeDevice(x);
    this.run(x, 'config', () => {
      for (const m of x.peers.values()) {
        m.addedAt = this.localNow(x);
        m.incarnation = this.incarnations++;
        this.setPeer(x, m, true);
      }
    });
  }

  // --- Inputs ----------------------------------------------------------------------------

  /**
   * `from` sends a tagged packet of `size` bytes to `destination` (an address), with its
   * own source address unless `source` is given (a spoofed source). Returns the tag.
   */
  sendApp(from: SimNode, destination: Uint8Array, size: number, source?: Uint8Array): number {
    const tag = this.nextTag++;
    const src = source ?? (destination.length === 4 ? from.v4 : from.v6);
    const packet = taggedPacket(src, destination, tag, Math.min(size, this.mtu), this.rng);
    const to = this.nodes.find((n) => n.owns(destination));
    this.tags.set(tag, { tag, bytes: packet, from: from.name, to: to?.name, sentAt: this.now, deliveredAt: undefined, hops: new Set() });
    this.sendPacket(from, packet);
    return tag;
  }

  private sendPacket(node: SimNode, packet: Uint8Array): void {
    const buf = new Uint8Array(packetBufferSize(this.mtu));
    buf.set(packet, 16);
    this.run(node, 'packet', () => node.device.sendPacket(buf, packet.length, this.localNow(node)));
  }

  /** Delivers `data` (the callee keeps nothing of it) to `node` as if from `from`. */
  deliver(node: SimNode, data: Uint8Array, from: Endpoint): void {
    const fp = maskedFingerprint(data);
    const honest = this.honest.has(fp);
    this.stats.datagrams++;
    if (!honest) this.stats.forged++;
    this.run(node, 'datagram', () => node.device.receiveDatagram(data.slice(), from, this.localNow(node)), { from, honest, fp, type: data[0] ?? -1 });
    this.flushForwarded();
  }

  /** Fires the node's due timers; returns its next deadline on the world clock. */
  tick(node: SimNode): number {
    let next = Infinity;
    const now = this.localNow(node);
    this.run(node, 'tick', () => {
      next = node.device.tick(now);
    });
    if (!(next > now)) this.fail('timer-loop', node, `tick(${now}) returned ${next}, not later than now`);
    this.flushForwarded();
    return next - node.offset;
  }

  /** True when `x` would accept `data` as coming from an honest node. */
  isHonest(data: Uint8Array): boolean {
    return this.honest.has(maskedFingerprint(data));
  }

  private flushForwarded(): void {
    while (this.pendingForward.length > 0) {
      const { node, packet } = this.pendingForward.shift()!;
      this.sendPacket(node, packet);
    }
  }

  private run(node: SimNode, kind: Input['kind'], body: () => void, d?: { from: Endpoint; honest: boolean; fp: number; type: number }): void {
    if (this.input !== undefined) this.fail('output', node, `re-entered the engine during a ${this.input.kind} input`);
    const input: Input = {
      node, kind, now: this.localNow(node), from: d?.from, honest: d?.honest ?? true, fp: d?.fp ?? 0, type: d?.type ?? -1,
      dropsBefore: dropTotal(node.device), sends: 0, nonCookieSends: 0, writes: 0, events: [], lastOpen: undefined,
    };
    this.input = input;
    this.stats.inputs++;
    const pendingNext = input.type === MESSAGE_RESPONSE
      ? new Set([...inspect(node.device).peers.values()].filter((p) => p.keypairs.next !== undefined).map((p) => p.name))
      : undefined;
    try {
      body();
    } catch (error) {
      this.input = undefined;
      if (error instanceof InvariantError) throw error;
      const e = error as Error;
      this.fail('throw', node, `${kind} input threw ${e?.name}: ${e?.message}\n${e?.stack ?? ''}`);
    }
    this.input = undefined;
    for (const e of input.events) {
      if (e.type === 'handshake-complete' && e.role === 'initiator' && pendingNext?.has(e.peer) === true) {
        const peer = this.byKey.get(e.peer)?.name ?? '?';
        this.discards.push({ node: node.name, peer, time: this.now });
        this.trace(`${node.name}: its unconfirmed next keypair for ${peer} became previous; current dropped (kernel and wireguard-go do the same)`);
      }
    }
    this.afterInput(input);
  }

  // --- Outputs from the engine -----------------------------------------------------------

  private current(node: SimNode, what: string): Input {
    const input = this.input;
    if (input === undefined || input.node !== node) this.fail('output', node, `${what} outside an input call to this node`);
    return input;
  }

  private onDeviceSend(node: SimNode, data: Uint8Array, to: Endpoint): void {
    const input = this.current(node, 'send');
    input.sends++;
    const isCookie = data[0] === MESSAGE_COOKIE_REPLY;
    if (!isCookie) input.nonCookieSends++;
    const copy = data.slice();
    this.honest.add(maskedFingerprint(copy));
    this.options.onSend(node, copy, { host: to.host, port: to.port });
  }

  private onWrite(node: SimNode, packet: Uint8Array): void {
    const input = this.current(node, 'write');
    input.writes++;
    this.stats.writes++;
    const info = readPacket(packet);
    const tag = info?.tag === undefined ? undefined : this.tags.get(info.tag);
    if (info === undefined || tag === undefined) return this.fail('unknown-write', node, `wrote a packet no node sent (${packet.length} bytes)`);
    if (!sameBytes(packet, tag.bytes)) return this.fail('unknown-write', node, `tag ${tag.tag}: written bytes differ from the bytes sent`);
    const opened = input.lastOpen;
    if (input.kind !== 'datagram' || opened === undefined) return this.fail('unknown-write', node, `tag ${tag.tag} written without a datagram opened first`);
    const peerNode = this.byKey.get(opened.peer);
    const mirror = peerNode === undefined ? undefined : node.peers.get(peerNode.name);
    if (mirror === undefined) return this.fail('stale-peer', node, `tag ${tag.tag} written from ${peerNode?.name ?? 'an unknown key'}, which is not a configured peer`);
    if (opened.created < mirror.addedAt) {
      return this.fail('stale-peer', node, `tag ${tag.tag} opened under a keypair made at ${opened.created}, before ${peerNode!.name} was configured at ${mirror.addedAt}`);
    }
    if (!inAnyPrefix(info.source, mirror.allowed)) {
      return this.fail('write-source', node, `tag ${tag.tag} from ${peerNode!.name} has source ${addressText(info.source)}, outside its allowed IPs`);
    }
    if (node.owns(info.destination)) {
      if (tag.to !== node.name) return this.fail('misrouted', node, `tag ${tag.tag} for ${tag.to} written here`);
      if (tag.deliveredAt !== undefined) return this.fail('duplicate', node, `tag ${tag.tag} delivered a second time (first at ${tag.deliveredAt})`);
      tag.deliveredAt = this.now;
      this.stats.delivered++;
      this.trace(`${node.name} <- tag ${tag.tag} from ${tag.from} (${packet.length} B, sent ${((this.now - tag.sentAt) / 1000).toFixed(3)}s ago)`);
    } else {
      if (!node.forward) return this.fail('misrouted', node, `tag ${tag.tag} to ${addressText(info.destination)} written at a node that does not forward`);
      if (tag.hops.has(node.name)) return this.fail('duplicate', node, `tag ${tag.tag} crossed ${node.name} twice`);
      tag.hops.add(node.name);
      this.pendingForward.push({ node, packet: packet.slice() });
    }
  }

  private onEvent(node: SimNode, e: DeviceEvent): void {
    const input = this.current(node, `event ${e.type}`);
    input.events.push(e);
    if (e.type === 'timer') return;
    const peer = this.byKey.get(e.peer)?.name ?? '?';
    if (e.type === 'endpoint-changed') this.trace(`${node.name}: endpoint of ${peer} -> ${e.endpoint.host}:${e.endpoint.port}`);
    else if (e.type === 'handshake-initiated') this.trace(`${node.name}: initiation #${e.attempt} to ${peer}`);
    else if (e.type === 'handshake-complete') this.trace(`${node.name}: handshake with ${peer} complete (${e.role})`);
    else if (e.type === 'handshake-given-up') this.trace(`${node.name}: gave up on ${peer}, ${e.dropped} packets dropped`);
    else this.trace(`${node.name}: ${e.type} ${peer}`);
    if (e.type === 'handshake-complete') this.stats.handshakes++;
  }

  private onSeal(node: SimNode, key: Uint8Array, counter: number, plaintext: Uint8Array): void {
    const input = this.current(node, 'seal');
    const view = inspect(node.device);
    const entry = keypairOfKey(view, key, 'send');
    if (entry === undefined || entry.keypair === undefined) return this.fail('nonce', node, 'sealed under a key that belongs to no keypair of this device');
    const kp = entry.keypair;
    if (key.every((b) => b === 0)) return this.fail('nonce', node, `sealed under a wiped (all-zero) key, counter ${counter}`);
    const age = input.now - kp.created;
    if (age >= REJECT_AFTER_TIME) return this.fail('key-age', node, `sealed under a keypair ${age} ms old`);
    if (counter >= REJECT_AFTER_MESSAGES) return this.fail('key-age', node, `sealed at counter ${counter}`);
    const last = this.sealCounters.get(kp) ?? -1;
    if (counter <= last) return this.fail('nonce', node, `keypair ${kp.localIndex} sealed counter ${counter} after ${last}`);
    this.sealCounters.set(kp, counter);
    const keyId = hex(key);
    const lastByBytes = this.sealByKeyBytes.get(keyId) ?? -1;
    if (counter <= lastByBytes) return this.fail('nonce', node, `one key sealed counter ${counter} after ${lastByBytes} (two keypairs share a key)`);
    this.sealByKeyBytes.set(keyId, counter);
    if (plaintext.length === 0) return; // keepalive
    const info = readPacket(plaintext);
    const peerNode = this.byKey.get(entry.peer.name);
    const mirror = peerNode === undefined ? undefined : node.peers.get(peerNode.name);
    if (info === undefined) return this.fail('seal-route', node, 'sealed a packet that is not IP');
    if (mirror === undefined) return this.fail('seal-route', node, `sealed for ${peerNode?.name ?? 'an unknown key'}, not a configured peer`);
    if (!inAnyPrefix(info.destination, mirror.allowed)) {
      return this.fail('seal-route', node, `sealed a packet to ${addressText(info.destination)} for ${peerNode!.name}, whose allowed IPs miss it`);
    }
  }

  private onOpen(node: SimNode, key: Uint8Array, counter: number, _plaintext: Uint8Array): void {
    const input = this.current(node, 'open');
    const entry = keypairOfKey(inspect(node.device), key, 'receive');
    if (entry === undefined || entry.keypair === undefined) return this.fail('replay', node, 'opened under a key that belongs to no keypair of this device');
    const kp = entry.keypair;
    const age = input.now - kp.created;
    if (age >= REJECT_AFTER_TIME) return this.fail('key-age', node, `opened under a keypair ${age} ms old (counter ${counter})`);
    if (counter >= REJECT_AFTER_MESSAGES) return this.fail('key-age', node, `opened counter ${counter}`);
    let seen = this.opened.get(kp);
    if (seen === undefined) this.opened.set(kp, (seen = new Set()));
    if (seen.has(counter)) return this.fail('replay', node, `keypair ${kp.localIndex} authenticated counter ${counter} twice`);
    seen.add(counter);
    input.lastOpen = { peer: entry.peer.name, created: kp.created };
  }

  // --- Checks after every input ----------------------------------------------------------

  private afterInput(input: Input): void {
    const node = input.node;
    const device = node.device;
    const drops = dropTotal(device) - input.dropsBefore;
    if (drops > 0 && this.options.trace !== undefined) {
      const now = Object.entries(device.drops).map(([k, v]) => `${k}=${v}`).join(' ');
      this.trace(`${node.name}: dropped ${drops} on a ${input.kind} input (${input.honest ? '' : 'forged, '}totals ${now})`);
    }
    if (input.kind === 'datagram') {
      const effects = input.events.filter((e) => e.type === 'handshake-complete' || e.type === 'endpoint-changed' || e.type === 'cookie-received');
      if (!input.honest) {
        if (drops !== 1) this.fail('forged', node, `a forged datagram (type ${input.type}) counted ${drops} drops, expected exactly 1`);
        if (input.writes > 0) this.fail('forged', node, 'a forged datagram wrote a packet');
        if (input.events.length > 0) this.fail('forged', node, `a forged datagram caused ${input.events.map((e) => e.type).join(', ')}`);
        if (input.nonCookieSends > 0) this.fail('forged', node, `a forged datagram caused ${input.nonCookieSends} sends`);
      } else if (input.type === MESSAGE_INITIATION || input.type === MESSAGE_RESPONSE || input.type === MESSAGE_COOKIE_REPLY) {
        if (effects.length > 0) {
          // A device that restarted, or a peer removed and added again, has forgotten the
          // peer's last timestamp: a replayed initiation may then take effect once more
          // (as in every WireGuard implementation). Within one incarnation it may not.
          const peer = effects.map((e) => this.byKey.get((e as { peer: string }).peer)?.name).find((p) => p !== undefined);
          const incarnation = peer === undefined ? -1 : (node.peers.get(peer)?.incarnation ?? -1);
          const id = `${node.name}|${incarnation}|${input.fp}`;
          if (this.handshakeEffects.has(id)) {
            this.fail('handshake-replay', node, `a replayed handshake message (type ${input.type}) caused ${effects.map((e) => e.type).join(', ')} again`);
          }
          this.handshakeEffects.add(id);
        }
      }
      for (const e of input.events) {
        if (e.type === 'endpoint-changed' && (e.endpoint.host !== input.from!.host || e.endpoint.port !== input.from!.port)) {
          this.fail('roam', node, `endpoint moved to ${e.endpoint.host}:${e.endpoint.port}, not the datagram's source`);
        }
      }
    } else {
      for (const e of input.events) {
        if (e.type === 'endpoint-changed' || e.type === 'cookie-received' || (e.type === 'handshake-complete')) {
          this.fail('roam', node, `${e.type} outside a datagram input (${input.kind})`);
        }
      }
    }
    if (input.writes > 1) this.fail('bounds', node, `one input wrote ${input.writes} packets`);
    if (input.sends > MAX_STAGED_PACKETS + 4) this.fail('bounds', node, `one input sent ${input.sends} datagrams`);
    this.checkBounds(node, inspect(device));
  }

  private checkBounds(node: SimNode, view: DeviceView): void {
    const device = node.device;
    if (device.peerCount !== node.peers.size) this.fail('config', node, `device has ${device.peerCount} peers, configured ${node.peers.size}`);
    const peers = Math.max(1, view.peers.size);
    if (view.indexTable.size > 4 * view.peers.size) {
      this.fail('bounds', node, `index table has ${view.indexTable.size} entries for ${view.peers.size} peers`);
    }
    this.stats.maxIndexEntriesPerPeer = Math.max(this.stats.maxIndexEntriesPerPeer, view.indexTable.size / peers);
    for (const [index, entry] of view.indexTable) {
      if (view.peers.get(entry.peer.name) !== entry.peer) this.fail('bounds', node, `index ${index} names a removed peer`);
      if (entry.keypair !== undefined && entry.keypair.localIndex !== index) this.fail('bounds', node, `index ${index} holds keypair ${entry.keypair.localIndex}`);
    }
    let bytes = 0;
    for (const peer of view.peers.values()) {
      const n = peer.staged?.length ?? 0;
      if (n > MAX_STAGED_PACKETS) this.fail('bounds', node, `${n} packets staged for one peer`);
      this.stats.maxStaged = Math.max(this.stats.maxStaged, n);
      for (const s of peer.staged ?? []) bytes += s.buf.length;
    }
    if (bytes !== view.stagedBytes) this.fail('bounds', node, `staged bytes counted ${view.stagedBytes}, staged ${bytes}`);
    if (bytes > MAX_STAGED_BYTES) this.fail('bounds', node, `${bytes} bytes staged`);
    this.stats.maxHeap = Math.max(this.stats.maxHeap, view.heapLength);
    const heapBound = HEAP_SLACK_PER_PEER * ((this.peersEver.get(node.name) ?? 0) + 1);
    if (view.heapLength > heapBound) this.fail('bounds', node, `deadline heap holds ${view.heapLength} entries (bound ${heapBound})`);
  }

  fail(rule: string, node: SimNode | undefined, message: string): never {
    const violation: Violation = { rule, message, time: this.now, node: node?.name };
    this.violation ??= violation;
    this.trace(`VIOLATION [${rule}] ${node?.name ?? ''}: ${message}`);
    throw new InvariantError(violation);
  }
}
