// The tunnel's UDP sockets: one IPv4 and one IPv6 socket on the same port (the
// interface's ListenPort), optionally marked with SO_MARK so that policy routing keeps
// them out of the tunnel (wg-quick's fwmark).
//
// The sockets are the addon's (native/src/udp_socket.cc), not node:dgram's, so that the
// boundary with native code is crossed per batch (DESIGN.md, "The hot path"):
//   - receiving: libuv says the socket is readable, one recvmmsg fills up to RECV_BATCH
//     slots of a preallocated arena, and the handler gets a view of each slot with an
//     Endpoint from a bounded cache (no host string built per datagram);
//   - sending: send() copies the datagram into a per-socket arena (the engine reuses its
//     buffer as soon as send() returns) and one sendmmsg flushes the queue at the end of
//     the event-loop turn, or as soon as FLUSH_AT datagrams are waiting. If the socket
//     would block, the rest stays queued and is flushed when libuv says it is writable;
//     a datagram that finds the queue full is dropped and counted.

import type { Endpoint } from '../../tunnel/endpoint.js';
import { AddonError, loadAddon, type NativeAddon, type NativeUdpSocket } from './addon.js';

export type DatagramHandler = (data: Uint8Array, from: Endpoint) => void;
/** Called once before the datagrams of one readable event (one turn of the loop) are handled. */
export type TurnHandler = () => void;

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
/** Endpoint objects cached per address and port. */
const ENDPOINT_CACHE = 4096;
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
}

/** A parsed destination: the endpoint it was parsed from, the socket family and the address record for the addon. */
interface Destination extends Endpoint {
  readonly family: 4 | 6;
  readonly record: Uint8Array;
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
  return { host, port, family, record };
}

/** One socket and its send queue. */
class Socket {
  private readonly arena = new Uint8Array(SEND_BYTES);
  private readonly offsets = new Uint32Array(SEND_ENTRIES);
  private readonly lengths = new Uint32Array(SEND_ENTRIES);
  private readonly addrs = new Uint8Array(SEND_ENTRIES * ADDR);
  private head = 0;
  private tail = 0;
  private used = 0;
  private events = 0;
  closed = false;
  dropped = 0;

  constructor(readonly native: NativeUdpSocket, readonly family: 4 | 6, private readonly onReadable: (s: Socket) => void) {
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
  push(data: Uint8Array, record: Uint8Array): boolean {
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
    this.tail -= head;
    this.head = 0;
    this.used -= delta;
  }

  /** Sends what is queued in one sendmmsg; what would block waits for writability. */
  flush(): void {
    if (this.closed || this.head === this.tail) return;
    const n = this.native.sendBatch(this.arena, this.offsets, this.lengths, this.addrs, this.head, this.tail - this.head);
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

function bindError(e: unknown, what: string): UdpError {
  const code = (e as { code?: unknown }).code;
  return new UdpError(typeof code === 'string' ? code : 'ERR_UDP', `${what}: ${(e as Error).message}`);
}

export class UdpTransport {
  private mark = 0;
  private listenPort: number;
  private closed = false;
  private flushScheduled = false;
  private readonly recvArena = new Uint8Array(RECV_BATCH * RECV_SLOT);
  private readonly recvLengths = new Uint32Array(RECV_BATCH);
  private readonly recvAddrs = new Uint8Array(RECV_BATCH * ADDR);
  private readonly recvViews: Uint8Array[] = [];
  private readonly endpoints4 = new Map<number, Endpoint>();
  private readonly endpoints6 = new Map<number, { record: Uint8Array; endpoint: Endpoint }>();
  private readonly destinations = new WeakMap<Endpoint, Destination>();
  private v4!: Socket;
  private v6: Socket | undefined;
  private unroutable = 0;
  private droppedBefore = 0;
  private nativeBefore = { failedSends: 0, truncatedReceives: 0 };
  private readonly onReadable = (s: Socket): void => this.receive(s);
  private readonly flushAll = (): void => {
    this.flushScheduled = false;
    if (this.closed) return;
    this.v4.flush();
    this.v6?.flush();
  };

  private constructor(
    pair: [NativeUdpSocket, NativeUdpSocket | undefined], private readonly handler: DatagramHandler, private readonly onTurn: TurnHandler | undefined,
  ) {
    for (let i = 0; i < RECV_BATCH; i++) this.recvViews.push(this.recvArena.subarray(i * RECV_SLOT, (i + 1) * RECV_SLOT));
    this.listenPort = pair[0].port;
    this.attach(pair);
  }

  /**
   * Binds both families on `port` (0 = any free port, the same for both). `onTurn`, if
   * given, is called before each readable event's datagrams (the engine's beginTurn).
   */
  static async open(port: number, handler: DatagramHandler, onTurn?: TurnHandler): Promise<UdpTransport> {
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UdpError('ERR_UDP_PORT', `listen port must be 0 to 65535, got ${port}`);
    if (typeof handler !== 'function') throw new UdpError('ERR_UDP_HANDLER', 'the datagram handler must be a function');
    if (onTurn !== undefined && typeof onTurn !== 'function') throw new UdpError('ERR_UDP_HANDLER', 'the turn handler must be a function');
    return new UdpTransport(UdpTransport.bindPair(port), handler, onTurn);
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
      this.v4 = new Socket(v4, 4, this.onReadable);
      this.v6 = v6 === undefined ? undefined : new Socket(v6, 6, this.onReadable);
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
   * Queues a copy of `data` (the engine reuses its buffer as soon as this returns) for
   * the end of this event-loop turn. Dropped and counted if the destination is not an
   * IP address or the queue is full.
   */
  send(data: Uint8Array, to: Endpoint): void {
    if (this.closed) return;
    let dest = this.destinations.get(to);
    if (dest === undefined || dest.host !== to.host || dest.port !== to.port) {
      dest = parseDestination(to);
      if (dest === undefined) {
        this.unroutable++;
        return;
      }
      this.destinations.set(to, dest);
    }
    const sock = dest.family === 4 ? this.v4 : this.v6;
    if (sock === undefined) return;
    if (!sock.push(data, dest.record)) return;
    if (sock.queued >= FLUSH_AT) sock.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushAll);
    }
  }

  /** Drains what a readable socket has queued, in batches, then flushes the replies. */
  private receive(sock: Socket): void {
    const { recvArena, recvLengths, recvAddrs, recvViews } = this;
    this.onTurn?.();
    for (let round = 0; round < RECV_ROUNDS && !sock.closed; round++) {
      const n = sock.native.recvBatch(recvArena, RECV_SLOT, recvLengths, recvAddrs, RECV_BATCH);
      for (let i = 0; i < n && !sock.closed; i++) {
        const length = recvLengths[i]!;
        if (length === 0) continue; // longer than a slot (counted), or empty: nothing for WireGuard
        const from = sock.family === 4 ? this.endpoint4(i) : this.endpoint6(i);
        this.handler(recvViews[i]!.subarray(0, length), from);
      }
      if (n < RECV_BATCH) break;
    }
    if (!this.closed) {
      this.v4.flush();
      this.v6?.flush();
    }
  }

  private endpoint4(i: number): Endpoint {
    const a = this.recvAddrs;
    const o = i * ADDR;
    const port = (a[o + 16]! << 8) | a[o + 17]!;
    const key = ((a[o]! << 24) | (a[o + 1]! << 16) | (a[o + 2]! << 8) | a[o + 3]!) * 65536 + port + 0x8000_0000 * 65536;
    let e = this.endpoints4.get(key);
    if (e === undefined) {
      if (this.endpoints4.size >= ENDPOINT_CACHE) this.endpoints4.clear();
      e = Object.freeze({ host: `${a[o]}.${a[o + 1]}.${a[o + 2]}.${a[o + 3]}`, port });
      this.endpoints4.set(key, e);
    }
    return e;
  }

  private endpoint6(i: number): Endpoint {
    const a = this.recvAddrs;
    const o = i * ADDR;
    // Keyed by a hash of the record, checked byte for byte: no string per datagram.
    let h = 0x811c9dc5;
    for (let k = o; k < o + ADDR; k++) h = Math.imul(h ^ a[k]!, 0x01000193);
    const cached = this.endpoints6.get(h);
    if (cached !== undefined) {
      const r = cached.record;
      let k = 0;
      while (k < ADDR && r[k] === a[o + k]) k++;
      if (k === ADDR) return cached.endpoint;
    }
    if (this.endpoints6.size >= ENDPOINT_CACHE) this.endpoints6.clear();
    const record = a.slice(o, o + ADDR);
    const scope = (record[20]! | (record[21]! << 8) | (record[22]! << 16) | (record[23]! << 24)) >>> 0;
    const host = addon().formatAddress(record.subarray(0, 16)) + (scope === 0 ? '' : `%${scope}`);
    const endpoint: Endpoint = Object.freeze({ host, port: (record[16]! << 8) | record[17]! });
    this.endpoints6.set(h, { record, endpoint });
    return endpoint;
  }

  /** Counters since open (they survive rebind). */
  stats(): UdpStats {
    let failedSends = this.nativeBefore.failedSends;
    let truncatedReceives = this.nativeBefore.truncatedReceives;
    let droppedSends = this.droppedBefore;
    if (!this.closed) {
      for (const s of [this.v4, this.v6]) {
        if (s === undefined) continue;
        const n = s.native.stats();
        failedSends += n.failedSends;
        truncatedReceives += n.truncatedReceives;
        droppedSends += s.dropped;
      }
    }
    return { droppedSends, unroutableSends: this.unroutable, failedSends, truncatedReceives };
  }

  private closeSockets(): void {
    for (const s of [this.v4, this.v6]) {
      if (s === undefined) continue;
      const n = s.native.stats();
      this.nativeBefore.failedSends += n.failedSends;
      this.nativeBefore.truncatedReceives += n.truncatedReceives;
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
