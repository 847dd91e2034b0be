// Model-based test of the peer lifecycle and the handshake state machine (fast-check
// `commands`): three engines on a hand-driven network, and a small model of what the
// test configured. Commands: configure a peer, remove it, send a packet, deliver /
// lose / duplicate / replay / corrupt a datagram in flight, let time pass, and settle
// (run a clean network until a pair talks).
//
// What must hold, besides the World's invariants on every input (fuzz/sim/world.ts):
//   - a packet to a destination no configured peer covers is dropped as 'no-peer' and
//     nothing leaves the device;
//   - a packet is written only at its destination, unaltered, at most once, and only if
//     the receiver has the sender configured and had it when the session began ("after
//     removePeer nothing is delivered from that peer", even if it is added back), and its
//     source is in the sender's allowed IPs (spoofed sources never get through);
//   - settle: when x and y have each other configured, a clean network carries x's
//     packets to y within RECOVERY_BOUND; and once one has arrived, a packet sent while
//     the session is usable is delivered exactly once.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fcParams } from './budget.js';
import { ManualNet } from './sim/manual.js';
import { PING_INTERVAL, RECOVERY_BOUND } from './sim/simulate.js';

const NODES = 3;

/** What the runs exercised, so the suite can show it did more than refuse preconditions. */
const coverage = { runs: 0, commands: 0, settles: 0, handshakes: 0, delivered: 0, refused: 0 };

function tally(net: ManualNet, commands: number): void {
  const s = net.world.stats;
  coverage.runs++;
  coverage.commands += commands;
  coverage.handshakes += s.handshakes;
  coverage.delivered += s.delivered;
  coverage.refused += s.forged;
}

interface Model {
  /** configured[x][y]: x has y as a peer. */
  readonly configured: boolean[][];
}

interface Real {
  readonly net: ManualNet;
}

type Cmd = fc.Command<Model, Real>;

const name = (i: number): string => String.fromCharCode(97 + i);

class Configure implements Cmd {
  constructor(readonly x: number, readonly y: number) {}
  check(m: Readonly<Model>): boolean {
    return this.x !== this.y;
  }
  run(m: Model, r: Real): void {
    r.net.configure(r.net.node(this.x), r.net.node(this.y));
    m.configured[this.x]![this.y] = true;
  }
  toString(): string {
    return `configure(${name(this.x)} has ${name(this.y)})`;
  }
}

/** x and y get each other as peers. */
class Connect implements Cmd {
  constructor(readonly x: number, readonly y: number) {}
  check(): boolean {
    return this.x !== this.y;
  }
  run(m: Model, r: Real): void {
    r.net.connect(r.net.node(this.x), r.net.node(this.y));
    m.configured[this.x]![this.y] = true;
    m.configured[this.y]![this.x] = true;
  }
  toString(): string {
    return `connect(${name(this.x)} <-> ${name(this.y)})`;
  }
}

class Remove implements Cmd {
  constructor(readonly x: number, readonly y: number) {}
  check(m: Readonly<Model>): boolean {
    return m.configured[this.x]![this.y] === true;
  }
  run(m: Model, r: Real): void {
    r.net.unconfigure(r.net.node(this.x), r.net.node(this.y));
    m.configured[this.x]![this.y] = false;
  }
  toString(): string {
    return `remove(${name(this.x)} drops ${name(this.y)})`;
  }
}

class Send implements Cmd {
  constructor(readonly x: number, readonly y: number, readonly size: number, readonly v6: boolean) {}
  check(): boolean {
    return this.x !== this.y;
  }
  run(m: Model, r: Real): void {
    const x = r.net.node(this.x);
    const noPeer = x.device.drops['no-peer'] ?? 0;
    const inFlight = r.net.inFlight.length;
    r.net.send(x, r.net.node(this.y), this.size, this.v6);
    if (m.configured[this.x]![this.y] !== true) {
      expect(x.device.drops['no-peer'] ?? 0).toBe(noPeer + 1);
      expect(r.net.inFlight.length).toBe(inFlight);
    }
  }
  toString(): string {
    return `send(${name(this.x)} -> ${name(this.y)}, ${this.size} B${this.v6 ? ', v6' : ''})`;
  }
}

/** x sends to y a packet whose source is the third node's address: y must never write it. */
class Spoof implements Cmd {
  constructor(readonly x: number, readonly y: number, readonly v6: boolean) {}
  check(): boolean {
    return this.x !== this.y;
  }
  run(_m: Model, r: Real): void {
    const [x, y] = [r.net.node(this.x), r.net.node(this.y)];
    const z = r.net.nodes.find((n) => n !== x && n !== y)!;
    r.net.world.sendApp(x, this.v6 ? y.v6 : y.v4, 100, this.v6 ? z.v6 : z.v4);
    r.net.refresh();
  }
  toString(): string {
    return `spoof(${name(this.x)} -> ${name(this.y)} claiming to be the third node${this.v6 ? ', v6' : ''})`;
  }
}

/** What happens to the in-flight datagram at `index` (mod their number). */
class Network implements Cmd {
  constructor(readonly action: 'deliver' | 'lose' | 'duplicate' | 'corrupt', readonly index: number, readonly bit: number) {}
  check(): boolean {
    return true;
  }
  run(_m: Model, r: Real): void {
    const n = r.net.inFlight.length;
    if (n === 0) return;
    const i = this.index % n;
    const w = r.net.inFlight[i]!;
    switch (this.action) {
      case 'deliver':
        r.net.deliverAt(i);
        break;
      case 'lose':
        r.net.inFlight.splice(i, 1);
        break;
      case 'duplicate':
        r.net.deliver(w);
        break;
      case 'corrupt': {
        const data = w.data.slice();
        data[(this.bit >>> 3) % data.length]! ^= 1 << (this.bit & 7);
        r.net.deliver(w, data);
        break;
      }
    }
  }
  toString(): string {
    return `${this.action}(#${this.index}${this.action === 'corrupt' ? `, bit ${this.bit}` : ''})`;
  }
}

/** An adversary sends an old datagram again, from its first source or from elsewhere. */
class Replay implements Cmd {
  constructor(readonly index: number, readonly elsewhere: boolean) {}
  check(): boolean {
    return true;
  }
  run(_m: Model, r: Real): void {
    const h = r.net.history;
    if (h.length === 0) return;
    const w = h[this.index % h.length]!;
    r.net.deliver(w, w.data, this.elsewhere ? { host: '192.0.2.66', port: 6666 } : w.from);
  }
  toString(): string {
    return `replay(history #${this.index}${this.elsewhere ? ', from 192.0.2.66' : ''})`;
  }
}

class Advance implements Cmd {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  run(_m: Model, r: Real): void {
    r.net.advance(this.ms);
  }
  toString(): string {
    return `advance(${this.ms} ms)`;
  }
}

/**
 * A clean network: everything in flight is delivered, x pings y every PING_INTERVAL, and
 * a ping must arrive within RECOVERY_BOUND. Then one more ping, sent while the session
 * is known to be usable, must arrive at once, exactly once.
 */
class Settle implements Cmd {
  constructor(readonly x: number, readonly y: number) {}
  check(m: Readonly<Model>): boolean {
    return this.x !== this.y && m.configured[this.x]![this.y] === true && m.configured[this.y]![this.x] === true;
  }
  run(_m: Model, r: Real): void {
    const [x, y] = [r.net.node(this.x), r.net.node(this.y)];
    const world = r.net.world;
    const start = world.now;
    const tags: number[] = [];
    const arrived = (): boolean => tags.some((t) => world.tags.get(t)!.deliveredAt !== undefined);
    // The endpoints may have been moved by replays from elsewhere: set them as configured.
    world.setEndpoint(x, y, y.endpoint);
    world.setEndpoint(y, x, x.endpoint);
    while (!arrived()) {
      expect(world.now - start, `no packet from ${x.name} reached ${y.name} within ${RECOVERY_BOUND} ms`).toBeLessThanOrEqual(RECOVERY_BOUND);
      tags.push(r.net.send(x, y, 80));
      r.net.deliverAll();
      if (!arrived()) {
        r.net.advance(PING_INTERVAL);
        r.net.deliverAll();
      }
    }
    const tag = r.net.send(x, y, 90);
    r.net.deliverAll();
    expect(world.tags.get(tag)!.deliveredAt, `a packet sent on a usable session from ${x.name} to ${y.name} was not delivered`).toBe(world.now);
    coverage.settles++;
  }
  toString(): string {
    return `settle(${name(this.x)} -> ${name(this.y)})`;
  }
}

const node = fc.integer({ min: 0, max: NODES - 1 });
const send = fc.tuple(node, node, fc.integer({ min: 20, max: 1420 }), fc.boolean()).map(([x, y, s, v]) => new Send(x, y, s, v));
const spoof = fc.tuple(node, node, fc.boolean()).map(([x, y, v]) => new Spoof(x, y, v));
const network = fc.tuple(fc.constantFrom('deliver', 'deliver', 'deliver', 'lose', 'duplicate', 'corrupt') as fc.Arbitrary<Network['action']>, fc.nat(), fc.nat())
  .map(([a, i, b]) => new Network(a, i, b));
const replay = fc.tuple(fc.nat(), fc.boolean()).map(([i, e]) => new Replay(i, e));
const advance = fc.constantFrom(1, 50, 1_000, 5_000, 15_000, 60_000, 125_000, 181_000, 600_000).map((ms) => new Advance(ms));
const settle = fc.tuple(node, node).map(([x, y]) => new Settle(x, y));
/** Traffic, faults and time only: the configuration stays as it is. */
const abuse = [send, send, spoof, network, network, network, replay, advance];
const commands = [
  fc.tuple(node, node).map(([x, y]) => new Connect(x, y)),
  fc.tuple(node, node).map(([x, y]) => new Connect(x, y)),
  fc.tuple(node, node).map(([x, y]) => new Configure(x, y)),
  fc.tuple(node, node).map(([x, y]) => new Remove(x, y)),
  ...abuse,
  settle,
  settle,
];

describe('model: peer lifecycle and handshakes against a reference model', () => {
  it('holds for any sequence of configuration, traffic, network faults and time', () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 60, size: 'large' }), fc.nat(), (cmds, seed) => {
        const net = new ManualNet({ seed, nodes: NODES });
        const model: Model = { configured: Array.from({ length: NODES }, () => Array<boolean>(NODES).fill(false)) };
        fc.modelRun(() => ({ model, real: { net } }), cmds);
        tally(net, [...cmds].length);
      }),
      fcParams(),
    );
  });

  it('a fully connected trio settles every pair after arbitrary abuse', () => {
    fc.assert(
      fc.property(fc.commands(abuse, { maxCommands: 40, size: 'large' }), fc.nat(), (cmds, seed) => {
        const net = new ManualNet({ seed, nodes: NODES });
        const model: Model = { configured: Array.from({ length: NODES }, (_, x) => Array.from({ length: NODES }, (_, y) => x !== y)) };
        for (let x = 0; x < NODES; x++) for (let y = 0; y < NODES; y++) if (x !== y) net.configure(net.node(x), net.node(y));
        fc.modelRun(() => ({ model, real: { net } }), cmds);
        for (let x = 0; x < NODES; x++) for (let y = 0; y < NODES; y++) if (x !== y) new Settle(x, y).run(model, { net });
        tally(net, [...cmds].length);
      }),
      fcParams(Math.ceil(fcParams().numRuns / 2)),
    );
  });

  it('exercised handshakes, deliveries and settles (not only refused preconditions)', () => {
    console.log(`model coverage: ${JSON.stringify(coverage)}`);
    expect(coverage.handshakes).toBeGreaterThan(coverage.runs / 2);
    expect(coverage.delivered).toBeGreaterThan(coverage.runs);
    expect(coverage.settles).toBeGreaterThan(coverage.runs);
  });
});
