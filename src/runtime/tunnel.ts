// Binds the sans-I/O engine to real I/O: the TUN device (batched reads through the
// addon), the UDP sockets, the clock and one timer armed for the engine's next deadline.
//
//   TUN --readBatch--> Device.sendPacket (sealed in place in the batch slot) --> UDP,
//       corked: one sendmmsg when the TUN has no more packets
//       a TCP/UDP super-packet (TSO, tso.ts) is cut into one pooled slot, segment by
//       segment, each sealed there and copied into the UDP send queue before the next
//   UDP --message----> Device.receiveDatagram (opened in place in the UDP slot)
//       --> queued as a view --GRO (gro.ts), writePackets once per recvmmsg batch--> TUN
//   one setTimeout --> Device.tick(now) --> re-armed for the deadline it returns
//   handshake messages past a turn's budget wait in the engine's queue; setImmediate
//   turns (after each poll of the sockets, so data goes between them) drain it
//
// Latency (bench/rtt.ts): a lone packet, a ping, crosses with no extra loop turn and no
// timer or microtask of its own: its reply leaves in the same callback that read it, and
// the timeout moves only when a deadline comes earlier (deadline-timer.ts).
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
import { loadAddon } from './addon.js';
import { createAddonAead } from './addon-crypto.js';
import { nodeDh, nodeHmac } from './node-crypto.js';
import { DeadlineTimer } from './deadline-timer.js';
import { Coalescer, VNET_HDR_LENGTH } from './gro.js';
import { IN_PLACE, REFUSED, Segmenter } from './tso.js';
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
  /**
   * Backends. AEAD: the addon's, on OpenSSL, by default (4x node:crypto's per packet,
   * see bench/crypto.ts; the runtime needs the addon for its TUN anyway); X25519 and the
   * handshake's HMAC-BLAKE2s: node:crypto.
   */
  aead?: Aead;
  dh?: Dh;
  /** A line for the log, for errors of the TUN device; and each engine event when `event` is not given. */
  log?: (line: string) => void;
  /** Each handshake, timer and roaming event of the engine. */
  event?: (e: DeviceEvent) => void;
  /**
   * GRO on the TUN write (gro.ts): open the TUN with IFF_VNET_HDR and coalesce each
   * batch's TCP segments. Default on, unless BURROW_TUN_GRO=0 (to compare, in bench/).
   * An adopted TUN keeps the mode it was opened with.
   */
  gro?: boolean;
  /**
   * TSO on the TUN read (tso.ts): TUNSETOFFLOAD, so that the kernel hands over TCP (and
   * UDP) super-packets of up to 64 KiB, cut here. Default on, unless BURROW_TUN_TSO=0.
   * Needs IFF_VNET_HDR: a TUN opened here gets it when GRO or TSO is on; an adopted one
   * without it goes without. A kernel that refuses the offloads: without, and logged.
   */
  tso?: boolean;
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
/** Segments cut from super-packets per readable event at most, so that the UDP side gets its turn. */
const TSO_SEGMENTS_PER_TURN = 1024;
/** Opened packets queued for one write to the TUN at most (a recvmmsg batch is 64). */
const TUN_WRITE_BATCH = 64;
const EMPTY = new Uint8Array(0);
/** GRO's arena holds a batch of 64 packets of up to 16 KiB; a batch with more bytes goes out uncoalesced. */
const MAX_DATAGRAM = 16384;
/** A TUN slot: the header room, the largest IP packet, padding and tag. */
const SLOT_SIZE = sealedLength(MAX_MTU, 0);

export class Tunnel {
  readonly device: Device;
  private readonly timer: DeadlineTimer;
  private stopped = false;
  /** Opened packets waiting for the TUN: views into the UDP receive slots, written per batch. */
  private readonly toTun: Uint8Array[] = [];
  private toTunCount = 0;
  private toTunFlushScheduled = false;
  private readonly flushToTun = (): void => {
    this.toTunFlushScheduled = false;
    this.writeQueued();
  };
  private handshakeTurnScheduled = false;
  private readonly handshakeTurn = (): void => {
    this.handshakeTurnScheduled = false;
    if (this.stopped) return;
    this.device.beginTurn();
    this.device.drainHandshakes(this.now());
    this.rearm();
    this.scheduleHandshakes();
  };
  /** Coalesces what goes to a vnetHdr TUN; undefined for a plain one. */
  private readonly gro: Coalescer | undefined;
  private readonly batch: PacketBatch;
  /** With TSO: cuts super-packets; the virtio_net_hdr of each packet read; the slot segments are cut into. */
  private readonly tso: Segmenter | undefined;
  private readonly readHeaders: Uint8Array | undefined;
  private readonly segmentSlot: Uint8Array;
  private readonly clock: () => number;
  /** sysfs's file for the interface's MTU; undefined once it cannot be read (an adopted fd). */
  private mtuPath: string | undefined;

  private constructor(readonly tun: TunDevice, readonly udp: UdpTransport, device: Device, clock: () => number, offloads: { gro: boolean; tso: boolean; uso: boolean }) {
    this.device = device;
    this.clock = clock;
    this.timer = new DeadlineTimer(clock, () => this.rearm());
    this.gro = tun.vnetHdr && offloads.gro ? new Coalescer(TUN_WRITE_BATCH, TUN_WRITE_BATCH * MAX_DATAGRAM) : undefined;
    this.batch = new PacketBatch({ capacity: BATCH, slotSize: SLOT_SIZE, headroom: TRANSPORT_HEADER_LENGTH });
    this.tso = offloads.tso ? new Segmenter(MAX_MTU, offloads.uso, loadAddon().checksumChunks) : undefined;
    this.readHeaders = offloads.tso ? new Uint8Array(BATCH * VNET_HDR_LENGTH) : undefined;
    this.segmentSlot = new Uint8Array(offloads.tso ? SLOT_SIZE : 0);
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
    const gro = o.gro ?? process.env.BURROW_TUN_GRO !== '0';
    const tso = o.tso ?? process.env.BURROW_TUN_TSO !== '0';
    const tun = o.tun ?? TunDevice.open(o.ifname, { vnetHdr: gro || tso });
    let udp: UdpTransport | undefined;
    try {
      let tunnel: Tunnel | undefined;
      udp = await UdpTransport.open(o.listenPort, (data, from) => tunnel?.onDatagram(data, from), () => tunnel?.device.beginTurn(),
        () => tunnel?.onBatchEnd());
      if (o.fwmark !== 0) udp.setMark(o.fwmark);
      const device = new Device(
        {
          privateKey: o.privateKey, mtu, aead: o.aead ?? createAddonAead(), dh: o.dh ?? nodeDh, hmac: nodeHmac, wallClock: Date.now,
          listenPort: () => udp!.port,
        },
        {
          send: (data, to) => udp!.send(data, to),
          write: (packet) => tunnel?.writePacket(packet),
          event,
        },
      );
      for (const p of o.peers) device.setPeer(p.publicKey, p);
      tunnel = new Tunnel(tun, udp, device, o.now ?? (() => performance.now()), { gro, ...setOffloads(tun, tso, log) });
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
    const { batch, tso, readHeaders, segmentSlot } = this;
    let segments = 0;
    this.udp.cork();
    for (let rounds = 0; rounds < 16; rounds++) {
      const n = this.tun.readBatch(batch, batch.capacity, readHeaders);
      const now = this.now();
      for (let i = 0; i < n; i++) {
        const length = batch.lengths[i]!;
        if (tso !== undefined) {
          const cuts = tso.prepare(batch.buffer, batch.offset(i), length, readHeaders!, i * VNET_HDR_LENGTH);
          if (cuts === REFUSED) continue;
          if (cuts > IN_PLACE) {
            // One slot for every segment: the engine seals it in place and the UDP
            // transport copies the datagram out before sendPacket returns.
            for (let k = 0; k < cuts; k++) {
              const len = tso.cut(k, segmentSlot, TRANSPORT_HEADER_LENGTH);
              if (len > this.device.mtu) this.followMtu();
              this.device.sendPacket(segmentSlot, len, now);
            }
            segments += cuts;
            continue;
          }
        }
        // Longer than the engine's MTU: the interface's has risen since it was read.
        if (length > this.device.mtu) this.followMtu();
        this.device.sendPacket(batch.slot(i), length, now);
      }
      if (n < batch.capacity || segments >= TSO_SEGMENTS_PER_TURN) break;
    }
    this.udp.uncork();
    this.rearm();
  }

  private onDatagram(data: Uint8Array, from: Endpoint): void {
    this.device.receiveDatagram(data, from, this.now());
  }

  /**
   * After each recvmmsg batch: its opened packets go to the TUN, the timers follow, and
   * waiting handshakes get a turn.
   */
  private onBatchEnd(): void {
    this.writeQueued();
    this.rearm();
    this.scheduleHandshakes();
  }

  /** A turn of its own for the handshake messages waiting in the engine, while any wait. */
  private scheduleHandshakes(): void {
    if (this.handshakeTurnScheduled || this.stopped || this.device.queuedHandshakes === 0) return;
    this.handshakeTurnScheduled = true;
    setImmediate(this.handshakeTurn);
  }

  /**
   * Queues an opened packet for the TUN. It is a view into a UDP receive slot, valid
   * until the next recvmmsg: the UDP transport calls onBatchEnd() after each batch,
   * before it reads the next; a microtask covers a packet written outside a batch.
   */
  private writePacket(packet: Uint8Array): void {
    if (this.toTunCount === TUN_WRITE_BATCH) this.writeQueued();
    this.toTun[this.toTunCount++] = packet;
    if (!this.toTunFlushScheduled && !this.udp.receiving) {
      this.toTunFlushScheduled = true;
      queueMicrotask(this.flushToTun);
    }
  }

  /** Writes the queued packets to the TUN in one native call. */
  private writeQueued(): void {
    const n = this.toTunCount;
    if (n === 0) return;
    this.toTunCount = 0;
    if (this.stopped) return;
    // A TUN takes packets as fast as they come; one it would not take now is dropped,
    // as a full queue drops it (the sender's TCP retransmits).
    const gro = this.gro;
    if (gro === undefined) {
      this.tun.writePackets(this.toTun, 0, n);
    } else {
      const m = gro.coalesce(this.toTun, n);
      this.tun.writePackets(gro.packets, 0, m, gro.headers);
      gro.packets.fill(EMPTY, 0, m);
    }
    this.toTun.fill(EMPTY, 0, n); // no view keeps a slot's plaintext reachable
  }

  /** Runs due timers and makes sure the timeout fires by the next deadline. */
  rearm(): void {
    if (this.stopped) return;
    this.timer.ensure(this.device.tick(this.now()));
  }

  /** Stops moving packets and closes the TUN and the sockets. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.toTunCount = 0;
    this.timer.stop();
    this.device.removeAllPeers(); // wipes every key
    this.udp.close();
    this.tun.close();
  }
}

/**
 * Switches TSO on for `tun` (TUNSETOFFLOAD), with UDP's where the kernel has it (6.2 on);
 * says what is on. Off, and logged, when the device has no vnet header or the kernel refuses.
 */
function setOffloads(tun: TunDevice, wanted: boolean, log: (line: string) => void): { tso: boolean; uso: boolean } {
  if (!wanted || !tun.vnetHdr) return { tso: false, uso: false };
  try {
    tun.setOffload({ tcp: true, udp: true });
    return { tso: true, uso: true };
  } catch {
    // A kernel before 6.2 does not know UDP's flags, and refuses them all.
  }
  try {
    tun.setOffload({ tcp: true });
    return { tso: true, uso: false };
  } catch (e) {
    log(`tun: no segmentation offload on ${tun.name} (${(e as Error).message}); reading packet by packet`);
    return { tso: false, uso: false };
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
    case 'peer-removed': return `${who}: removed (${e.rxBytes} B received, ${e.txBytes} B sent)`;
  }
}
