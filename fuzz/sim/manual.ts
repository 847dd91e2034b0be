// A hand-driven network for the property suites: datagrams wait in `inFlight` until the
// test delivers, drops, duplicates or damages them, and time moves only when the test
// says. The World under it checks the same invariants as in the simulator.

import type { Endpoint } from '../../tunnel/device.js';
import { v4, v6 } from './packets.js';
import { type CryptoChoice, type SimNode, World } from './world.js';

export interface Wire {
  readonly sender: SimNode;
  readonly from: Endpoint;
  readonly to: Endpoint;
  readonly data: Uint8Array;
}

export interface ManualNetOptions {
  readonly seed: number;
  readonly nodes: number;
  readonly crypto?: CryptoChoice;
  readonly underLoadBacklog?: number;
  readonly trace?: (line: string) => void;
}

export class ManualNet {
  readonly world: World;
  readonly nodes: SimNode[] = [];
  readonly inFlight: Wire[] = [];
  /** Every datagram ever sent, for replays. */
  readonly history: Wire[] = [];
  private readonly deadlines: number[] = [];
  private readonly owners = new Map<string, SimNode>();

  constructor(o: ManualNetOptions) {
    this.world = new World({
      seed: o.seed, crypto: o.crypto ?? 'node',
      ...(o.underLoadBacklog === undefined ? {} : { underLoadBacklog: o.underLoadBacklog }),
      ...(o.trace === undefined ? {} : { trace: o.trace }),
      onSend: (sender, data, to) => {
        const w: Wire = { sender, from: sender.endpoint, to, data };
        this.inFlight.push(w);
        this.history.push(w);
      },
    });
    for (let i = 0; i < o.nodes; i++) {
      const endpoint = { host: `192.0.2.${i + 1}`, port: 51820 };
      const n = this.world.addNode(String.fromCharCode(97 + i), v4(`10.0.0.${i + 1}`), v6(0xfd00, i + 1), endpoint);
      this.nodes.push(n);
      this.owners.set(`${endpoint.host}:${endpoint.port}`, n);
    }
    this.refresh();
  }

  node(i: number): SimNode {
    return this.nodes[i]!;
  }

  /** x gets y as a peer: y's two addresses as allowed IPs, y's endpoint. */
  configure(x: SimNode, y: SimNode, endpoint = true): void {
    this.world.configure(x, y, { allowed: [{ address: y.v4, cidr: 32 }, { address: y.v6, cidr: 128 }], endpoint: endpoint ? y.endpoint : undefined });
    this.refresh();
  }

  connect(x: SimNode, y: SimNode): void {
    this.configure(x, y);
    this.configure(y, x);
  }

  unconfigure(x: SimNode, y: SimNode): void {
    this.world.unconfigure(x, y);
    this.refresh();
  }

  send(x: SimNode, y: SimNode, size = 64, useV6 = false): number {
    const tag = this.world.sendApp(x, useV6 ? y.v6 : y.v4, size);
    this.refresh();
    return tag;
  }

  ownerOf(e: Endpoint): SimNode | undefined {
    return this.owners.get(`${e.host}:${e.port}`);
  }

  /** Delivers `data` (by default the wire's own bytes) to the wire's destination. */
  deliver(w: Wire, data: Uint8Array = w.data, from: Endpoint = w.from): void {
    const node = this.ownerOf(w.to);
    if (node === undefined) return;
    this.world.deliver(node, data, from);
    this.refresh();
  }

  /** Delivers the in-flight datagram at `index` (removing it). */
  deliverAt(index: number): void {
    const [w] = this.inFlight.splice(index, 1);
    if (w !== undefined) this.deliver(w);
  }

  /** Delivers everything in flight, in order, and whatever that causes, up to `limit` datagrams. */
  deliverAll(limit = 10_000): void {
    for (let n = 0; n < limit && this.inFlight.length > 0; n++) this.deliverAt(0);
  }

  /** Moves the clock by `ms`, firing every timer on the way; datagrams stay in flight. */
  advance(ms: number): void {
    const target = this.world.now + ms;
    for (;;) {
      const next = Math.min(...this.deadlines);
      if (next > target) break;
      this.world.now = Math.max(this.world.now, next);
      this.refresh();
    }
    this.world.now = target;
    this.refresh();
  }

  /** Ticks every node (firing what is due) and notes its next deadline. */
  refresh(): void {
    for (const n of this.nodes) this.deadlines[n.index] = this.world.tick(n);
  }
}
