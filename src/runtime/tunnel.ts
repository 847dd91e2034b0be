// Binds the sans-I/O engine to real I/O: the TUN device (batched reads through the
// addon), the UDP sockets, the clock and one timer armed for the engine's next deadline.
//
//   TUN --readBatch--> Device.sendPacket (sealed in place in the batch slot) --> UDP
//   UDP --message----> Device.receiveDatagram (opened in place) --writePackets--> TUN
//   one setTimeout --> Device.tick(now) --> re-armed for the deadline it returns
//
// The MTU is the interface's, followed while running (wg-quick and `ip link` set it after
// the daemon starts): TUN slots and UDP receive slots hold the largest packet and datagram
// any MTU allows, so nothing is cut short when it rises; the engine's MTU (padding) is
// read again from sysfs when a packet longer than it comes out of the TUN, and each time
// the session polls the interface (followMtu).

import type { Aead } from '../../crypto/aead.js';
import type { Dh } from '../../crypto/x25519.js';
import { readFileSync } from 'node:fs';
import { DEFAULT_MTU, Device, MAX_MTU, type DeviceEvent, type Endpoint, type PeerUpdate } from '../../tunnel/device.js';
import { formatEndpoint } from '../../tunnel/endpoint.js';
import { TRANSPORT_HEADER_LENGTH } from '../../tunnel/constants.js';
import { sealedLength } from '../../tunnel/transport.js';
import { nodeAead, nodeDh } from './node-crypto.js';
import { PacketBatch, TunDevice } from './tun.js';
import { UdpTransport } from './udp.js';

export interface PeerSetup extends PeerUpdate {
  publicKey: Uint8Array;
}

export interface TunnelOptions {
  ifname: string;
  /**
   * null: a device that has no key of its own yet (burrow-go, before `wg setconf` gives
   * it one), as wireguard-go starts: it sends and answers no handshake until it has one.
   */
  privateKey: Uint8Array | null;
  listenPort: number;
  fwmark: number;
  /** The MTU the engine starts with; DEFAULT_MTU by default. Then the interface's is followed. */
  mtu?: number | undefined;
  peers: readonly PeerSetup[];
  /** Backends; node:crypto by default (measured faster, see bench/crypto.ts). */
  aead?: Aead;
  dh?: Dh;
  /** A line for the log, for errors of the TUN device; and each engine event when `event` is not given. */
  log?: (line: string) => void;
  /** Each handshake, timer and roaming event of the engine. */
  event?: (e: DeviceEvent) => void;
  /** Adopt this TUN instead of opening `ifname` (a descriptor handed in from outside). */
  tun?: TunDevice;
  /**
   * The engine's clock, monotonic milliseconds; performance.now() by default. Tests pass
   * one they can move forward, to reach the protocol's timers without waiting for them.
   * It counts from performance.timeOrigin as performance.now() does: the engine's wall
   * clock (TAI64N timestamps, `wg show` handshake times) is timeOrigin + now().
   */
  now?: () => number;
}

const BATCH = 64;
/** A TUN slot: the header room, the largest IP packet, padding and tag. */
const SLOT_SIZE = sealedLength(MAX_MTU, 0);

export class Tunnel {
  readonly device: Device;
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Infinity;
  private stopped = false;
  private readonly writeOne: Uint8Array[] = [new Uint8Array(0)];
  private readonly batch: PacketBatch;
  private readonly clock: () => number;
  /** sysfs's file for the interface's MTU; undefined once it cannot be read (an adopted fd). */
  private mtuPath: string | undefined;

  private constructor(readonly tun: TunDevice, readonly udp: UdpTransport, device: Device, clock: () => number) {
    this.device = device;
    this.clock = clock;
    this.batch = new PacketBatch({ capacity: BATCH, slotSize: SLOT_SIZE, headroom: TRANSPORT_HEADER_LENGTH });
    this.mtuPath = `/sys/class/net/${tun.name}/mtu`;
  }

  /** The engine's MTU (it follows the interface's). */
  get mtu(): number {
    return this.device.mtu;
  }

  /**
   * Reads the interface's MTU and gives it to the engine; returns it. Where it cannot be
   * read (a descriptor adopted from outside), the engine keeps the MTU it has.
   */
  followMtu(): number {
    if (this.mtuPath === undefined) return this.device.mtu;
    let mtu: number;
    try {
      mtu = Number(readFileSync(this.mtuPath, 'utf8'));
    } catch {
      this.mtuPath = undefined;
      return this.device.mtu;
    }
    if (Number.isInteger(mtu) && mtu !== this.device.mtu) {
      try {
        this.device.setMtu(mtu);
      } catch {
        // An MTU the engine does not take (below 68): padding keeps the one it has.
      }
    }
    return this.device.mtu;
  }

  /** Opens the TUN and the sockets and starts moving packets. Undoes what it made on failure. */
  static async start(o: TunnelOptions): Promise<Tunnel> {
    const log = o.log ?? (() => undefined);
    const event = o.event ?? ((e: DeviceEvent) => log(describeEvent(e)));
    const mtu = o.mtu ?? DEFAULT_MTU;
    const tun = o.tun ?? TunDevice.open(o.ifname);
    let udp: UdpTransport | undefined;
    try {
      let tunnel: Tunnel | undefined;
      udp = await UdpTransport.open(o.listenPort, (data, from) => tunnel?.onDatagram(data, from), () => tunnel?.device.beginTurn());
      if (o.fwmark !== 0) udp.setMark(o.fwmark);
      const device = new Device(
        { privateKey: o.privateKey, mtu, aead: o.aead ?? nodeAead, dh: o.dh ?? nodeDh, wallClock: Date.now },
        {
          send: (data, to) => udp!.send(data, to),
          write: (packet) => tunnel?.writePacket(packet),
          event,
        },
      );
      for (const p of o.peers) device.setPeer(p.publicKey, p);
      tunnel = new Tunnel(tun, udp, device, o.now ?? (() => performance.now()));
      tun.onReadable((error) => {
        if (error) log(`tun: ${error.message}`);
        else tunnel!.onTunReadable();
      });
      tunnel.rearm();
      return tunnel;
    } catch (e) {
      udp?.close();
      if (o.tun === undefined) tun.close();
      throw e;
    }
  }

  /** The engine's clock: monotonic milliseconds. */
  now(): number {
    return this.clock();
  }

  private onTunReadable(): void {
    const batch = this.batch;
    for (let rounds = 0; rounds < 16; rounds++) {
      const n = this.tun.readBatch(batch);
      const now = this.now();
      for (let i = 0; i < n; i++) {
        const length = batch.lengths[i]!;
        // Longer than the engine's MTU: the interface's has risen since it was read.
        if (length > this.device.mtu) this.followMtu();
        this.device.sendPacket(batch.slot(i), length, now);
      }
      if (n < batch.capacity) break;
    }
    this.rearm();
  }

  private onDatagram(data: Uint8Array, from: Endpoint): void {
    this.device.receiveDatagram(data, from, this.now());
    this.rearm();
  }

  private writePacket(packet: Uint8Array): void {
    this.writeOne[0] = packet;
    this.tun.writePackets(this.writeOne, 0, 1);
  }

  /** Runs due timers and arms the one timeout for the next deadline. */
  rearm(): void {
    if (this.stopped) return;
    const next = this.device.tick(this.now());
    if (next === this.armedAt) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedAt = next;
    this.timer = next === Infinity ? undefined : setTimeout(() => {
      this.armedAt = Infinity;
      this.timer = undefined;
      this.rearm();
    }, Math.max(0, Math.ceil(next - this.now())));
  }

  /** Stops moving packets and closes the TUN and the sockets. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.device.removeAllPeers(); // wipes every key
    this.udp.close();
    this.tun.close();
  }
}

export function describeEvent(e: DeviceEvent): string {
  const who = 'peer' in e ? `peer ${e.peer.slice(0, 8)}…` : '';
  switch (e.type) {
    case 'handshake-initiated': return `${who}: sending handshake initiation (attempt ${e.attempt})`;
    case 'handshake-complete': return `${who}: handshake complete (${e.role})`;
    case 'handshake-given-up': return `${who}: no handshake after ${90} s, giving up; ${e.dropped} queued packets dropped`;
    case 'keys-zeroed': return `${who}: session keys wiped after 540 s without a new handshake`;
    case 'endpoint-changed': return `${who}: endpoint is now ${formatEndpoint(e.endpoint)}`;
    case 'cookie-received': return `${who}: cookie received (the peer is under load)`;
    case 'timer': return `${who}: timer ${e.timer} fired`;
  }
}
