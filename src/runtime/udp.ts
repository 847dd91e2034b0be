// The tunnel's UDP sockets: one IPv4 and one IPv6 socket on the same port (the
// interface's ListenPort), optionally marked with SO_MARK so that policy routing keeps
// them out of the tunnel (wg-quick's fwmark).
//
// The sockets are the addon's (native/src/udp_socket.cc), not node:dgram's, so that the
// boundary with native code is crossed per batch (DESIGN.md, "The hot path"):
//   - receiving: libuv says the socket is readable, one recvmmsg fills up to RECV_BATCH
//     slots of a preallocated arena, and the handler gets a view of each slot with an
//     Endpoint from a bounded cache (no host string built per datagram). With UDP GRO
//     (UDP_GRO, as wireguard-go: on unless BURROW_UDP_GRO=0) the kernel may put a run of
//     datagrams from one sender in one slot, with their segment size: a sender's UDP GSO
//     run then crosses the receiving stack as one packet, and the slot is split back into
//     its datagrams (forEachDatagram) before the handler sees them;
//   - sending: send() copies the datagram into a per-socket arena (the engine reuses its
//     buffer as soon as send() returns) and one sendmmsg flushes the queue when the work
//     that queued it is done, or as soon as FLUSH_AT datagrams are waiting: at the end of
//     a receive (replies), at uncork() (the tunnel corks while it reads its TUN), or
//     else in a microtask at the end of the callback that sent. If the socket
//     would block, the rest stays queued and is flushed when libuv says it is writable;
//     a datagram that finds the queue full is dropped and counted. A run of queued
//     datagrams to one address, from one source, of one length (the last may be
//     shorter), goes as one message with UDP_SEGMENT (UDP GSO): the kernel cuts it.
//   - sticky source addresses: each datagram's Endpoint carries the local address it
//     arrived on (IP_PKTINFO / IPV6_PKTINFO), and a datagram sent to an Endpoint with a
//     `source` leaves from that address. When the kernel refuses a source (the address
//     was removed), the addon sends the datagram again from the kernel's choice, and the
//     source is not used again until a datagram arrives on it ("sticky, but not too
//     sticky", as the kernel's WireGuard).

import type { Endpoint } from '../../tunnel/endpoint.js';
import { AddonError, loadAddon, type NativeAddon, type NativeUdpSocket } from './addon.js';

export type DatagramHandler = (data: Uint8Array, from: Endpoint) => void;
/** Called once before the datagrams of one readable event (one turn of the loop) are handled. */
export type TurnHandler = () => void;
/**
 * Called after the datagrams of each recvmmsg batch were handled, before the next batch
 * overwrites their slots: the views the handler was given are valid until then.
 */
export type BatchEndHandler = () => void;

export class UdpError extends Error {
  override readonly name = 'UdpError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Datagrams read per recvmmsg, and recvmmsg calls per readable event at most. */
const RECV_BATCH = 64;
const RECV_ROUNDS = 16;
/** Bytes per receive slot: any UDP datagram (65,527 bytes of payload at most, over IPv6), so any tunnel MTU. */
const RECV_SLOT = 65536;
/** Send queue, per socket: datagrams and bytes. */
const SEND_ENTRIES = 1024;
const SEND_BYTES = 1 << 20;
/** Queued datagrams that trigger a flush before the end of the turn. */
const FLUSH_AT = 64;
/** Kernel socket buffers, as node:dgram's recvBufferSize/sendBufferSize were. */
const SOCKET_BUFFER = 4 << 20;
/** Endpoint objects cached per address and port (and per local address, at most LOCAL_CACHE of them). */
const ENDPOINT_CACHE = 4096;
const LOCAL_CACHE = 64;
/** Sources the kernel refused, remembered until a datagram arrives on them again. */
const STALE_SOURCES = 256;
/** Byte 20 of a local-address record (udp_socket.h). */
const SOURCE_SET = 1;
const SOURCE_CLEARED = 2;
/** Bytes per address record shared with the addon (see udp_socket.h). */
const ADDR = 24;
const UV_READABLE = 1;
const UV_WRITABLE = 2;

/** The addon, or a UdpError that says how to build it. */
function addon(): NativeAddon {
  try {
    return loadAddon();
  } catch (cause) {
    if (cause instanceof AddonError) throw new UdpError('ERR_UDP_NO_ADDON', cause.message);
    throw cause;
  }
}

export interface UdpStats {
  /** Datagrams dropped because the send queue was full. */
  droppedSends: number;
  /** Datagrams dropped because their destination is not an IP address and port. */
  unroutableSends: number;
  /** Datagrams the kernel refused (no route, firewall...), skipped. */
  failedSends: number;
  /** Datagrams received that were longer than a receive slot, dropped. */
  truncatedReceives: number;
  /** Receives that carried a run of datagrams as one (UDP GRO, UDP_GRO). */
  groReceives: number;
  /** Sends that carried a run of datagrams as one (UDP GSO, UDP_SEGMENT). */
  gsoSends: number;
  /** Datagrams whose source address the kernel refused (gone), sent again from its choice. */
  clearedSources: number;
}

/** A parsed destination: the endpoint it was parsed from, the socket family, the address record for the addon, and the source's, if any. */
interface Destination extends Endpoint {
  readonly family: 4 | 6;
  readonly record: Uint8Array;
  readonly sourceRecord: Uint8Array | undefined;
}

/** The local-address record of `source` ("a.b.c.d", or IPv6 with "%ifindex"), if it is of `family`. */
function parseSource(source: string | undefined, family: 4 | 6): Uint8Array | undefined {
  if (source === undefined) return undefined;
  const percent = source.indexOf('%');
  const text = percent < 0 ? source : source.slice(0, percent);
  const ifindex = percent < 0 ? 0 : Number(source.slice(percent + 1));
  const record = new Uint8Array(ADDR);
  if (addon().parseAddress(text, record) !== family || !Number.isInteger(ifindex) || ifindex < 0 || ifindex > 0xffff_ffff) return undefined;
  new DataView(record.buffer).setUint32(16, ifindex, true);
  record[20] = SOURCE_SET;
  return record;
}

/** Parses `to` into an address record; undefined if it is not an IP address and port. */
function parseDestination(to: Endpoint): Destination | undefined {
  const { host, port } = to;
  if (typeof host !== 'string' || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  const record = new Uint8Array(ADDR);
  let text = host;
  let scope = 0;
  const percent = host.indexOf('%');
  if (percent >= 0) {
    text = host.slice(0, percent);
    const zone = host.slice(percent + 1);
    if (zone === '') return undefined;
    scope = /^\d+$/u.test(zone) ? Number(zone) : addon().ifNameToIndex(zone);
    if (!Number.isInteger(scope) || scope <= 0 || scope > 0xffff_ffff) return undefined;
  }
  const kind = addon().parseAddress(text, record);
  let family: 4 | 6;
  if (kind === 4 && percent < 0) {
    family = 4;
  } else if (kind === 6) {
    const mapped = record.subarray(0, 12).every((b, i) => b === (i < 10 ? 0 : 0xff));
    if (mapped && percent < 0) {
      // ::ffff:a.b.c.d goes out of the IPv4 socket (the IPv6 one is IPv6-only).
      record.copyWithin(0, 12, 16);
      record.fill(0, 4, 16);
      family = 4;
    } else {
      family = 6;
    }
  } else {
    return undefined;
  }
  record[16] = port >>> 8;
  record[17] = port & 0xff;
  record[20] = scope & 0xff;
  record[21] = (scope >>> 8) & 0xff;
  record[22] = (scope >>> 16) & 0xff;
  record[23] = scope >>> 24;
  return { host, port, source: to.source, family, record, sourceRecord: parseSource(to.source, family) };
}

/** One socket and its send queue. */
class Socket {
  private readonly arena = new Uint8Array(SEND_BYTES);
  private readonly offsets = new Uint32Array(SEND_ENTRIES);
  private readonly lengths = new Uint32Array(SEND_ENTRIES);
  private readonly addrs = new Uint8Array(SEND_ENTRIES * ADDR);
  /** Each queued datagram's source record (byte 20: 0 none, 1 set, 2 cleared by the addon) and text. */
  private readonly sources = new Uint8Array(SEND_ENTRIES * ADDR);
  private readonly sourceTexts: (string | undefined)[] = new Array<string | undefined>(SEND_ENTRIES).fill(undefined);
  private head = 0;
  private tail = 0;
  private used = 0;
  private events = 0;
  closed = false;
  dropped = 0;

  constructor(
    readonly native: NativeUdpSocket, readonly family: 4 | 6, private readonly onReadable: (s: Socket) => void,
    private readonly onSourceCleared: (source: string) => void,
  ) {
    this.setEvents(UV_READABLE);
  }

  get queued(): number {
    return this.tail - this.head;
  }

  private readonly onPoll = (events: number): void => {
    if (this.closed) return;
    // events -1: polling failed and has stopped (not expected for a UDP socket); the
    // engine's timers retry, as they did when node:dgram reported socket errors.
    if (events < 0) {
      this.events = 0;
      return;
    }
    if (events & UV_WRITABLE) this.flush();
    if (events & UV_READABLE) this.onReadable(this);
  };

  private setEvents(events: number): void {
    if (events === this.events || this.closed) return;
    this.native.watch(this.onPoll, events);
    this.events = events;
  }

  /** Copies a datagram into the queue; false (and counted) if the queue is full. */
  push(data: Uint8Array, record: Uint8Array, source: Uint8Array | undefined, sourceText: string | undefined): boolean {
    const length = data.byteLength;
    if (this.tail === SEND_ENTRIES || this.used + length > SEND_BYTES) {
      this.compact();
      if (this.tail === SEND_ENTRIES || this.used + length > SEND_BYTES) {
        this.dropped++;
        return false;
      }
    }
    const i = this.tail++;
    this.arena.set(data, this.used);
    this.offsets[i] = this.used;
    this.lengths[i] = length;
    this.addrs.set(record, i * ADDR);
    if (source === undefined) {
      this.sources[i * ADDR + 20] = 0;
    } else {
      this.sources.set(source, i * ADDR);
      this.sourceTexts[i] = sourceText;
    }
    this.used += length;
    return true;
  }

  /** Moves the queued datagrams to the front of the arena. */
  private compact(): void {
    const head = this.head;
    if (head === 0) return;
    const delta = head === this.tail ? this.used : this.offsets[head]!;
    this.arena.copyWithin(0, delta, this.used);
    for (let i = head; i < this.tail; i++) this.offsets[i - head] = this.offsets[i]! - delta;
    this.lengths.copyWithin(0, head, this.tail);
    this.addrs.copyWithin(0, head * ADDR, this.tail * ADDR);
    this.sources.copyWithin(0, head * ADDR, this.tail * ADDR);
    this.sourceTexts.copyWithin(0, head, this.tail);
    this.tail -= head;
    this.head = 0;
    this.used -= delta;
  }

  /** Sends what is queued in one sendmmsg; what would block waits for writability. */
  flush(): void {
    if (this.closed || this.head === this.tail) return;
    const start = this.head;
    const n = this.native.sendBatch(this.arena, this.offsets, this.lengths, this.addrs, start, this.tail - start, this.sources);
    for (let i = start; i < start + n; i++) {
      if (this.sources[i * ADDR + 20] === SOURCE_CLEARED) this.onSourceCleared(this.sourceTexts[i]!);
    }
    this.head += n;
    if (this.head === this.tail) {
      this.head = this.tail = this.used = 0;
      this.setEvents(UV_READABLE);
    } else {
      this.setEvents(UV_READABLE | UV_WRITABLE);
    }
  }

  close(): void {
    if (this.closed) return;
    try {
      this.flush(); // best effort, as closing a dgram socket did not recall sent datagrams
    } catch {
      // closing anyway
    }
    this.closed = true;
    this.head = this.tail = this.used = 0;
    this.native.close();
  }
}

/**
 * Calls `fn` with each datagram of a receive slot that UDP GRO filled: `length` bytes of
 * datagrams of `segment` bytes one after the other, the last one possibly shorter, as
 * the sender's UDP GSO cut them. Returns how many. Views, no copies.
 */
export function forEachDatagram(slot: Uint8Array, length: number, segment: number, fn: (datagram: Uint8Array) => void): number {
  if (!Number.isInteger(segment) || segment <= 0) throw new RangeError(`segment size must be a positive integer, got ${segment}`);
  if (!Number.isInteger(length) || length < 0 || length > slot.length) throw new RangeError(`length ${length} does not fit a slot of ${slot.length}`);
  let count = 0;
  for (let start = 0; start < length; start += segment) {
    fn(slot.subarray(start, Math.min(start + segment, length)));
    count++;
  }
  return count;
}

function bindError(e: unknown, what: string): UdpError {
  const code = (e as { code?: unknown }).code;
  return new UdpError(typeof code === 'string' ? code : 'ERR_UDP', `${what}: ${(e as Error).message}`);
}

export class UdpTransport {
  private mark = 0;
  private listenPort: number;
  private closed = false;
  private flushScheduled = false;
  /** Between cork() and uncork(), and while receiving: what is sent waits for their end. */
  private corked = false;
  private inReceive = false;
  private readonly recvArena = new Uint8Array(RECV_BATCH * RECV_SLOT);
  private readonly recvLengths = new Uint32Array(RECV_BATCH);
  private readonly recvAddrs = new Uint8Array(RECV_BATCH * ADDR);
  /** Where each datagram arrived: local-address records. */
  private readonly recvLocals = new Uint8Array(RECV_BATCH * ADDR);
  /** Each slot's UDP GRO segment size (0: one datagram). */
  private readonly recvSegments = new Uint32Array(RECV_BATCH);
  private groReceives = 0;
  /** The handler for each datagram of a GRO slot, all from `deliverFrom`. */
  private readonly deliver = (data: Uint8Array): void => this.handler(data, this.deliverFrom!);
  private deliverFrom: Endpoint | undefined;
  private readonly recvViews: Uint8Array[] = [];
  /** IPv4 endpoints, per local address (-1: none reported), then per address and port. */
  private readonly endpoints4 = new Map<number, Map<number, Endpoint>>();
  private lastLocal4 = NaN;
  private lastEndpoints4: Map<number, Endpoint> | undefined;
  private readonly endpoints6 = new Map<number, { record: Uint8Array; endpoint: Endpoint }>();
  /** Sources the kernel refused: sent without until a datagram arrives on them. */
  private readonly staleSources = new Set<string>();
  private readonly onSourceCleared = (source: string): void => {
    if (this.staleSources.size >= STALE_SOURCES) this.staleSources.clear();
    this.staleSources.add(source);
  };
  private readonly destinations = new WeakMap<Endpoint, Destination>();
  private v4!: Socket;
  private v6: Socket | undefined;
  private unroutable = 0;
  private droppedBefore = 0;
  private nativeBefore = { failedSends: 0, truncatedReceives: 0, clearedSources: 0, gsoSends: 0 };
  private readonly onReadable = (s: Socket): void => this.receive(s);
  /** Sends what both sockets have queued (also the microtask that send() schedules). */
  private readonly flushAll = (): void => {
    this.flushScheduled = false;
    if (this.closed) return;
    this.v4.flush();
    this.v6?.flush();
  };

  private constructor(
    pair: [NativeUdpSocket, NativeUdpSocket | undefined], private readonly handler: DatagramHandler, private readonly onTurn: TurnHandler | undefined,
    private readonly onBatchEnd: BatchEndHandler | undefined,
  ) {
    for (let i = 0; i < RECV_BATCH; i++) this.recvViews.push(this.recvArena.subarray(i * RECV_SLOT, (i + 1) * RECV_SLOT));
    this.listenPort = pair[0].port;
    this.attach(pair);
  }

  /**
   * Binds both families on `port` (0 = any free port, the same for both). `onTurn`, if
   * given, is called before each readable event's datagrams (the engine's beginTurn);
   * `onBatchEnd` after each recvmmsg batch's (the tunnel writes the batch to its TUN).
   */
  static async open(port: number, handler: DatagramHandler, onTurn?: TurnHandler, onBatchEnd?: BatchEndHandler): Promise<UdpTransport> {
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UdpError('ERR_UDP_PORT', `listen port must be 0 to 65535, got ${port}`);
    if (typeof handler !== 'function') throw new UdpError('ERR_UDP_HANDLER', 'the datagram handler must be a function');
    if (onTurn !== undefined && typeof onTurn !== 'function') throw new UdpError('ERR_UDP_HANDLER', 'the turn handler must be a function');
    if (onBatchEnd !== undefined && typeof onBatchEnd !== 'function') throw new UdpError('ERR_UDP_HANDLER', 'the batch-end handler must be a function');
    return new UdpTransport(UdpTransport.bindPair(port), handler, onTurn, onBatchEnd);
  }

  private static bindPair(port: number): [NativeUdpSocket, NativeUdpSocket | undefined] {
    const { UdpSocket } = addon();
    for (let attempt = 0; attempt < 10; attempt++) {
      let v4: NativeUdpSocket;
      try {
        v4 = new UdpSocket(4, port, SOCKET_BUFFER);
      } catch (e) {
        if ((e as { code?: unknown }).code === 'EADDRINUSE') throw new UdpError('EADDRINUSE', `UDP port ${port} is in use: choose another ListenPort`);
        throw bindError(e, 'cannot open a UDP socket');
      }
      const chosen = v4.port;
      try {
        return [v4, new UdpSocket(6, chosen, SOCKET_BUFFER)];
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL') return [v4, undefined]; // no IPv6 here
        v4.close();
        if (code === 'EADDRINUSE' && port === 0) continue; // the v6 twin of a random port was taken: try another
        throw bindError(e, `cannot open the IPv6 UDP socket on port ${chosen}`);
      }
    }
    throw new UdpError('EADDRINUSE', 'no UDP port free for both IPv4 and IPv6');
  }

  private attach([v4, v6]: [NativeUdpSocket, NativeUdpSocket | undefined]): void {
    try {
      // BURROW_UDP_GSO=0 sends every datagram alone, BURROW_UDP_GRO=0 receives every
      // datagram alone (to compare, in bench/).
      if (process.env.BURROW_UDP_GSO === '0') for (const s of [v4, v6]) s?.setGso(false);
      if (process.env.BURROW_UDP_GRO !== '0') for (const s of [v4, v6]) s?.setGro(true);
      this.v4 = new Socket(v4, 4, this.onReadable, this.onSourceCleared);
      this.v6 = v6 === undefined ? undefined : new Socket(v6, 6, this.onReadable, this.onSourceCleared);
    } catch (e) {
      v4.close();
      v6?.close();
      throw bindError(e, 'cannot watch the UDP sockets');
    }
    this.listenPort = v4.port;
  }

  get port(): number {
    return this.listenPort;
  }

  get fwmark(): number {
    return this.mark;
  }

  /** SO_MARK on both sockets (0 clears it). */
  setMark(mark: number): void {
    if (!Number.isInteger(mark) || mark < 0 || mark > 0xffff_ffff) throw new UdpError('ERR_UDP_MARK', 'fwmark must be a 32-bit number');
    if (this.closed) throw new UdpError('ERR_UDP_CLOSED', 'the UDP sockets are closed');
    const native = addon();
    for (const s of [this.v4, this.v6]) if (s) native.setSocketMark(s.native.fd, mark);
    this.mark = mark;
  }

  /** Rebinds to a new port (`wg set listen-port`), keeping the mark. */
  async rebind(port: number): Promise<void> {
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UdpError('ERR_UDP_PORT', `listen port must be 0 to 65535, got ${port}`);
    if (this.closed) throw new UdpError('ERR_UDP_CLOSED', 'the UDP sockets are closed');
    const pair = UdpTransport.bindPair(port);
    this.closeSockets();
    this.attach(pair);
    if (this.mark !== 0) this.setMark(this.mark);
  }

  /**
   * Holds what send() queues until uncork(), which sends it in one sendmmsg per socket:
   * no microtask per datagram. Not counted: one uncork() ends any number of cork()s.
   */
  cork(): void {
    this.corked = true;
  }

  uncork(): void {
    this.corked = false;
    if (!this.inReceive) this.flushAll();
  }

  /** True while datagrams are being handed to the handler (replies are flushed after). */
  get receiving(): boolean {
    return this.inReceive;
  }

  /**
   * Queues a copy of `data` (the engine reuses its buffer as soon as this returns) until
   * the work that sends it is done (see cork(); a microtask otherwise). Dropped and
   * counted if the destination is not an IP address or the queue is full.
   */
  send(data: Uint8Array, to: Endpoint): void {
    if (this.closed) return;
    let dest = this.destinations.get(to);
    if (dest === undefined || dest.host !== to.host || dest.port !== to.port || dest.source !== to.source) {
      dest = parseDestination(to);
      if (dest === undefined) {
        this.unroutable++;
        return;
      }
      this.destinations.set(to, dest);
    }
    const sock = dest.family === 4 ? this.v4 : this.v6;
    if (sock === undefined) return;
    let source = dest.sourceRecord;
    if (source !== undefined && this.staleSources.size > 0 && this.staleSources.has(dest.source!)) source = undefined;
    if (!sock.push(data, dest.record, source, dest.source)) return;
    if (sock.queued >= FLUSH_AT) sock.flush();
    else if (!this.flushScheduled && !this.corked && !this.inReceive) {
      this.flushScheduled = true;
      queueMicrotask(this.flushAll);
    }
  }

  /** Drains what a readable socket has queued, in batches, then flushes the replies. */
  private receive(sock: Socket): void {
    this.onTurn?.();
    this.inReceive = true;
    try {
      this.receiveRounds(sock);
    } finally {
      this.inReceive = false;
    }
    if (!this.closed) this.flushAll();
  }

  private receiveRounds(sock: Socket): void {
    const { recvArena, recvLengths, recvAddrs, recvViews } = this;
    for (let round = 0; round < RECV_ROUNDS && !sock.closed; round++) {
      const n = sock.native.recvBatch(recvArena, RECV_SLOT, recvLengths, recvAddrs, RECV_BATCH, this.recvLocals, this.recvSegments);
      for (let i = 0; i < n && !sock.closed; i++) {
        const length = recvLengths[i]!;
        if (length === 0) continue; // longer than a slot (counted), or empty: nothing for WireGuard
        const from = sock.family === 4 ? this.endpoint4(i) : this.endpoint6(i);
        // A datagram arrived on it: the address is ours again.
        if (this.staleSources.size > 0 && from.source !== undefined) this.staleSources.delete(from.source);
        const segment = this.recvSegments[i]!;
        if (segment === 0 || segment >= length) {
          this.handler(recvViews[i]!.subarray(0, length), from);
        } else {
          this.groReceives++;
          this.deliverFrom = from;
          forEachDatagram(recvViews[i]!, length, segment, this.deliver);
        }
      }
      this.onBatchEnd?.();
      if (n < RECV_BATCH) break;
    }
  }

  private endpoint4(i: number): Endpoint {
    const a = this.recvAddrs;
    const l = this.recvLocals;
    const o = i * ADDR;
    const local = l[o + 20] === SOURCE_SET ? ((l[o]! << 24) | (l[o + 1]! << 16) | (l[o + 2]! << 8) | l[o + 3]!) >>> 0 : -1;
    let cache = this.lastEndpoints4;
    if (local !== this.lastLocal4 || cache === undefined) {
      cache = this.endpoints4.get(local);
      if (cache === undefined) {
        if (this.endpoints4.size >= LOCAL_CACHE) this.endpoints4.clear();
        cache = new Map();
        this.endpoints4.set(local, cache);
      }
      this.lastLocal4 = local;
      this.lastEndpoints4 = cache;
    }
    const port = (a[o + 16]! << 8) | a[o + 17]!;
    const key = ((a[o]! << 24) | (a[o + 1]! << 16) | (a[o + 2]! << 8) | a[o + 3]!) * 65536 + port + 0x8000_0000 * 65536;
    let e = cache.get(key);
    if (e === undefined) {
      if (cache.size >= ENDPOINT_CACHE) cache.clear();
      const host = `${a[o]}.${a[o + 1]}.${a[o + 2]}.${a[o + 3]}`;
      e = Object.freeze(local < 0 ? { host, port } : { host, port, source: `${l[o]}.${l[o + 1]}.${l[o + 2]}.${l[o + 3]}` });
      cache.set(key, e);
    }
    return e;
  }

  private endpoint6(i: number): Endpoint {
    const a = this.recvAddrs;
    const l = this.recvLocals;
    const o = i * ADDR;
    // Keyed by a hash of the address record and the local one, checked byte for byte:
    // no string per datagram.
    let h = 0x811c9dc5;
    for (let k = o; k < o + ADDR; k++) h = Math.imul(h ^ a[k]!, 0x01000193);
    for (let k = o; k < o + ADDR; k++) h = Math.imul(h ^ l[k]!, 0x01000193);
    const cached = this.endpoints6.get(h);
    if (cached !== undefined) {
      const r = cached.record;
      let k = 0;
      while (k < ADDR && r[k] === a[o + k]) k++;
      while (k < 2 * ADDR && r[k] === l[o + k - ADDR]) k++;
      if (k === 2 * ADDR) return cached.endpoint;
    }
    if (this.endpoints6.size >= ENDPOINT_CACHE) this.endpoints6.clear();
    const record = new Uint8Array(2 * ADDR);
    record.set(a.subarray(o, o + ADDR));
    record.set(l.subarray(o, o + ADDR), ADDR);
    const view = new DataView(record.buffer);
    const scope = view.getUint32(20, true);
    const host = addon().formatAddress(record.subarray(0, 16)) + (scope === 0 ? '' : `%${scope}`);
    const port = (record[16]! << 8) | record[17]!;
    let endpoint: Endpoint;
    if (record[ADDR + 20] === SOURCE_SET) {
      const local = record.subarray(ADDR, ADDR + 16);
      const linkLocal = local[0] === 0xfe && (local[1]! & 0xc0) === 0x80;
      const source = addon().formatAddress(local) + (linkLocal ? `%${view.getUint32(ADDR + 16, true)}` : '');
      endpoint = Object.freeze({ host, port, source });
    } else {
      endpoint = Object.freeze({ host, port });
    }
    this.endpoints6.set(h, { record, endpoint });
    return endpoint;
  }

  /** Counters since open (they survive rebind). */
  stats(): UdpStats {
    let failedSends = this.nativeBefore.failedSends;
    let truncatedReceives = this.nativeBefore.truncatedReceives;
    let gsoSends = this.nativeBefore.gsoSends;
    const groReceives = this.groReceives;
    let clearedSources = this.nativeBefore.clearedSources;
    let droppedSends = this.droppedBefore;
    if (!this.closed) {
      for (const s of [this.v4, this.v6]) {
        if (s === undefined) continue;
        const n = s.native.stats();
        failedSends += n.failedSends;
        truncatedReceives += n.truncatedReceives;
        clearedSources += n.clearedSources;
        gsoSends += n.gsoSends;
        droppedSends += s.dropped;
      }
    }
    return { droppedSends, unroutableSends: this.unroutable, failedSends, truncatedReceives, groReceives, clearedSources, gsoSends };
  }

  private closeSockets(): void {
    for (const s of [this.v4, this.v6]) {
      if (s === undefined) continue;
      const n = s.native.stats();
      this.nativeBefore.failedSends += n.failedSends;
      this.nativeBefore.truncatedReceives += n.truncatedReceives;
      this.nativeBefore.gsoSends += n.gsoSends;
      this.nativeBefore.clearedSources += n.clearedSources;
      s.close();
      this.droppedBefore += s.dropped;
    }
    this.v6 = undefined;
  }

  /** Flushes what is queued and closes both sockets. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closeSockets();
    this.closed = true;
  }
}
