// Two or more engines on an in-memory network with a test-owned clock: datagrams sent by
// one device are queued and delivered by the test (or dropped, reordered, replayed).
import { Device, type DeviceEvent, type DeviceOptions, type Endpoint, packetBufferSize } from '../../tunnel/device.js';
import { nobleDh } from '../../crypto/x25519.js';
import { decodeKey } from '../../crypto/keys.js';
import { icmpEcho } from './packets.js';

export interface Wire {
  from: Endpoint;
  to: Endpoint;
  data: Uint8Array;
}

export interface Node {
  name: string;
  device: Device;
  endpoint: Endpoint;
  address: string;
  /** Packets the device wrote to its tunnel interface. */
  delivered: Uint8Array[];
  events: DeviceEvent[];
}

export class MemNet {
  now = 0;
  readonly inFlight: Wire[] = [];
  readonly nodes = new Map<string, Node>();

  add(name: string, address: string, options: Partial<DeviceOptions> = {}): Node {
    const endpoint: Endpoint = { host: name, port: 51820 };
    const node: Node = { name, endpoint, address, delivered: [], events: [], device: undefined as unknown as Device };
    node.device = new Device({ privateKey: nobleDh.generatePrivateKey(), wallClockAtZero: 1_700_000_000_000, ...options }, {
      send: (data, to) => this.inFlight.push({ from: node.endpoint, to, data: data.slice() }),
      write: (packet) => node.delivered.push(packet.slice()),
      event: (e) => node.events.push(e),
    });
    this.nodes.set(name, node);
    return node;
  }

  /** Makes a and b peers of each other, each with the other's tunnel address as allowed IP. */
  connect(a: Node, b: Node, opts: { psk?: Uint8Array; endpointOnA?: boolean; endpointOnB?: boolean } = {}): void {
    const v4 = (s: string) => Uint8Array.from(s.split('.').map(Number));
    a.device.setPeer(b.device.publicKey, {
      presharedKey: opts.psk ?? null, allowedIPs: [{ address: v4(b.address), cidr: 32 }],
      ...(opts.endpointOnA === false ? {} : { endpoint: b.endpoint }),
    });
    b.device.setPeer(a.device.publicKey, {
      presharedKey: opts.psk ?? null, allowedIPs: [{ address: v4(a.address), cidr: 32 }],
      ...(opts.endpointOnB === false ? {} : { endpoint: a.endpoint }),
    });
  }

  /** Sends an ICMP echo from `from` to `to` through from's device. */
  ping(from: Node, to: Node, seq: number, payload = new Uint8Array(32)): Uint8Array {
    const pkt = icmpEcho(from.address, to.address, 1, seq, payload);
    this.sendPacket(from, pkt);
    return pkt;
  }

  sendPacket(from: Node, pkt: Uint8Array): void {
    const buf = new Uint8Array(packetBufferSize(from.device.mtu) + pkt.length);
    buf.set(pkt, 16);
    from.device.sendPacket(buf, pkt.length, this.now);
  }

  /** Delivers datagrams in flight (and the ones they cause) until none are left. */
  deliverAll(filter: (w: Wire) => boolean = () => true, limit = 10_000): number {
    let n = 0;
    while (this.inFlight.length > 0 && n < limit) {
      const w = this.inFlight.shift()!;
      n++;
      if (!filter(w)) continue;
      this.deliver(w);
    }
    return n;
  }

  deliver(w: Wire, from: Endpoint = w.from): void {
    const node = this.nodes.get(w.to.host);
    if (node === undefined) return;
    node.device.receiveDatagram(w.data.slice(), from, this.now);
  }

  /** Moves the clock to `t`, ticking every device at each deadline on the way. */
  advanceTo(t: number, deliver = true): void {
    for (let guard = 0; guard < 100_000; guard++) {
      let next = Infinity;
      for (const n of this.nodes.values()) next = Math.min(next, n.device.tick(this.now));
      if (deliver) this.deliverAll();
      if (next > t) break;
      this.now = Math.max(this.now, next);
    }
    this.now = t;
    for (const n of this.nodes.values()) n.device.tick(t);
    if (deliver) this.deliverAll();
  }
}

export const keyOf = (n: Node): Uint8Array => n.device.publicKey;

/** Two devices, a (192.0.2.1) and b (192.0.2.2), that know each other: the unit tests' usual start. */
export function memPair(connect: Parameters<MemNet['connect']>[2] = undefined) {
  const net = new MemNet();
  const a = net.add('a', '192.0.2.1');
  const b = net.add('b', '192.0.2.2');
  net.connect(a, b, connect);
  return { net, a, b };
}
export { decodeKey };
