// The deterministic network simulator: a server and 1-4 clients behind NAT on a seeded
// network that loses, duplicates, reorders, delays and corrupts datagrams, with clients
// that roam and get NAT-rebound, clocks that jump forward, nodes that restart, peers
// removed and re-added, and an adversary that records every datagram, withholds some,
// replays them (from their source or its own address) and injects mutated or crafted
// ones, floods included. The World (world.ts) checks its invariants on every input.
//
// After the chaos phase the network heals (no loss, no adversary, short delays; the
// configuration is re-applied: removed peers come back, each client sets its server
// endpoint again, since an adversary holding a withheld packet can legitimately steer
// an endpoint) and every pair of nodes pings once a second. Then:
//   recovery         within RECOVERY_BOUND of the heal, a packet sent after the heal has
//                    crossed every pair in each direction (a handshake completed within
//                    the timers' bounds: KEEPALIVE_TIMEOUT + REKEY_TIMEOUT retries);
//   steady-delivery  from then on, every packet arrives within STEADY_LATENCY, rekeys
//                    included. A clock that jumped forward ages that node's keypairs
//                    faster than its peer's: a responder's keypair can then expire before
//                    the initiator (whose clock did not jump) rekeys, and packets are lost
//                    until the responder notices (REJECT_AFTER_TIME, as the protocol has
//                    it). So steady delivery is checked only once every keypair that lived
//                    through a jump is gone: REJECT_AFTER_TIME + RECOVERY_BOUND after the
//                    last jump; the heal phase is lengthened to reach that point.
//                    Also forgiven: packets in flight to a node when it completes a
//                    handshake as initiator while holding an unconfirmed `next` keypair
//                    (say, from an initiation replayed after it restarted): it keeps
//                    `next` as `previous` and drops `current`, as the kernel and
//                    wireguard-go do, and what its peer sent on `current` until it
//                    learns of the new keypair is lost (pings sent within
//                    STEADY_LATENCY of that moment, on either side of it).
// One run is a pure function of the scenario: the same seed gives the same trace.

import {
  KEEPALIVE_TIMEOUT, MESSAGE_INITIATION, REJECT_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX,
} from '../../tunnel/constants.js';
import type { Endpoint } from '../../tunnel/device.js';
import { mutate, craftedInitiation } from './mutate.js';
import { v4, v6 } from './packets.js';
import { Prng } from './prng.js';
import { describeStep, type LinkState, PERFECT_LINK, type Scenario, type Step } from './scenario.js';
import { type CryptoChoice, InvariantError, type SimNode, type Violation, World, type WorldStats } from './world.js';

export const PING_INTERVAL = 1000;
/** Time after the heal by which every pair must have carried a packet. */
export const RECOVERY_BOUND = KEEPALIVE_TIMEOUT + 3 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX) + 2 * PING_INTERVAL;
/** After recovery, the longest a ping may take (the healed link's delay is <= 50 ms). */
export const STEADY_LATENCY = 1000;
/** Steady delivery is checked at least this long in every run. */
const STEADY_MIN = 30_000;

const SERVER_ENDPOINT: Endpoint = { host: '198.51.100.1', port: 51820 };
const ADVERSARY_HOST = '192.0.2.66';
const NOWHERE_V4 = v4('198.18.0.1');
const NOWHERE_V6 = v6(0x2001, 0xffff);
const TAPE_LENGTH = 2048;

export interface SimOptions {
  readonly trace?: (line: string) => void;
  /** Also trace every datagram sent and delivered. */
  readonly verbose?: boolean;
  readonly crypto?: CryptoChoice;
}

export interface SimStats extends WorldStats {
  simulatedMs: number;
  drops: Record<string, number>;
  /** Per pair, ms from the heal to the first delivery of a packet sent after it. */
  recoveryMs: number[];
}

export interface SimResult {
  readonly scenario: Scenario;
  readonly violation: Violation | undefined;
  readonly stats: SimStats;
}

interface InFlight {
  readonly at: number;
  readonly seq: number;
  readonly from: Endpoint;
  readonly to: Endpoint;
  readonly data: Uint8Array;
}

interface Recorded {
  readonly from: Endpoint;
  readonly to: Endpoint;
  readonly data: Uint8Array;
}

interface Pair {
  readonly from: SimNode;
  readonly to: SimNode;
  nextAt: number;
  v6: boolean;
  readonly sent: { tag: number; at: number }[];
  checked: number;
  recovered: boolean;
}

/** A binary min-heap of datagrams by (arrival time, sequence). */
class Flights {
  private readonly items: InFlight[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): InFlight | undefined {
    return this.items[0];
  }

  private less(a: InFlight, b: InFlight): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  push(f: InFlight): void {
    const h = this.items;
    h.push(f);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): InFlight | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

const key = (e: Endpoint): string => `${e.host}:${e.port}`;

/** Type, length and the indices a datagram names, for verbose traces. */
function describeDatagram(d: Uint8Array): string {
  const u32 = (o: number): number => (d.length >= o + 4 ? (d[o]! | (d[o + 1]! << 8) | (d[o + 2]! << 16) | (d[o + 3]! << 24)) >>> 0 : -1);
  switch (d[0]) {
    case 1: return `initiation sender=${u32(4)} ${d.length}B`;
    case 2: return `response sender=${u32(4)} receiver=${u32(8)} ${d.length}B`;
    case 3: return `cookie-reply receiver=${u32(4)} ${d.length}B`;
    case 4: return `transport receiver=${u32(4)} counter=${u32(8) + u32(12) * 2 ** 32} ${d.length}B`;
    default: return `type ${d[0]} ${d.length}B`;
  }
}
const fmt = (e: Endpoint): string => `${e.host}:${e.port}`;

export function simulate(scenario: Scenario, options: SimOptions = {}): SimResult {
  return new Simulation(scenario, options).run();
}

class Simulation {
  private readonly world: World;
  private readonly net: Prng;
  private readonly adversary: Prng;
  private readonly flights = new Flights();
  private readonly owners = new Map<string, SimNode>();
  private readonly tape: Recorded[] = [];
  private readonly deadlines: number[] = [];
  private readonly partitionedUntil: number[] = [];
  private readonly removed = new Set<number>();
  private readonly nodes: SimNode[] = [];
  private readonly pairs: Pair[] = [];
  private link: LinkState;
  private interceptUntil = -Infinity;
  private interceptRate = 0;
  private healed = false;
  private seq = 0;
  private nextPort = 40_000;
  private readonly healAt: number;
  private readonly end: number;
  /** Steady delivery is checked for packets sent from here on. */
  private readonly steadyFrom: number;
  private readonly recoveryMs: number[] = [];

  constructor(private readonly s: Scenario, private readonly options: SimOptions) {
    this.net = new Prng(s.seed, 2);
    this.adversary = new Prng(s.seed, 3);
    this.link = s.link;
    this.healAt = s.chaosMs;
    const lastJump = s.steps.reduce((t, st) => (st.kind === 'jump' && st.at < s.chaosMs ? Math.max(t, st.at) : t), -Infinity);
    this.steadyFrom = Math.max(this.healAt + RECOVERY_BOUND, lastJump + REJECT_AFTER_TIME + RECOVERY_BOUND);
    this.end = Math.max(s.chaosMs + s.healMs, this.steadyFrom + STEADY_MIN);
    this.world = new World({
      seed: s.seed, crypto: options.crypto ?? 'node', underLoadBacklog: s.underLoadBacklog,
      onSend: (from, data, to) => this.send(from, data, to),
      ...(options.trace === undefined ? {} : { trace: options.trace }),
    });
    this.build();
  }

  private trace(line: string): void {
    this.world.trace(line);
  }

  private build(): void {
    const w = this.world;
    const server = w.addNode('server', v4('10.0.0.1'), v6(0xfd00, 1), SERVER_ENDPOINT, this.s.forwarding);
    this.nodes.push(server);
    this.owners.set(key(SERVER_ENDPOINT), server);
    for (let i = 1; i <= this.s.clients; i++) {
      const endpoint = { host: `203.0.113.${i}`, port: this.nextPort++ };
      const c = w.addNode(`c${i}`, v4(`10.0.0.${i + 1}`), v6(0xfd00, i + 1), endpoint);
      this.nodes.push(c);
      this.owners.set(key(endpoint), c);
    }
    for (let i = 1; i <= this.s.clients; i++) this.configureClient(i);
    this.trace(`scenario seed=${this.s.seed} clients=${this.s.clients} chaos=${this.s.chaosMs}ms heal=${this.s.healMs}ms `
      + `forwarding=${this.s.forwarding} serverKnowsClients=${this.s.serverKnowsClients} keepalive=${this.s.keepalive.slice(1).join(',')} `
      + `underLoad=${this.s.underLoadBacklog} steps=${this.s.steps.length}`);
    for (const n of this.nodes) this.deadlines[n.index] = this.world.tick(n);
  }

  private configureClient(i: number): void {
    const server = this.nodes[0]!;
    const c = this.nodes[i]!;
    this.world.configure(c, server, {
      allowed: [{ address: v4('10.0.0.0'), cidr: 24 }, { address: v6(0xfd00, 0), cidr: 64 }],
      endpoint: SERVER_ENDPOINT, keepalive: this.s.keepalive[i] ?? 0,
    });
    this.configureServerSide(i, this.s.serverKnowsClients ? c.endpoint : undefined);
  }

  private configureServerSide(i: number, endpoint: Endpoint | undefined): void {
    const c = this.nodes[i]!;
    this.world.configure(this.nodes[0]!, c, { allowed: [{ address: c.v4, cidr: 32 }, { address: c.v6, cidr: 128 }], endpoint });
  }

  // --- The network -------------------------------------------------------------------------

  private partitioned(node: SimNode | undefined): boolean {
    return node !== undefined && node.index > 0 && (this.partitionedUntil[node.index] ?? -Infinity) > this.world.now;
  }

  private send(from: SimNode, data: Uint8Array, to: Endpoint): void {
    const src = from.endpoint;
    const rec: Recorded = { from: src, to, data };
    if (this.tape.length >= TAPE_LENGTH) this.tape.splice(0, TAPE_LENGTH / 4);
    this.tape.push(rec);
    const verbose = this.options.verbose === true;
    const dest = this.owners.get(key(to));
    if (this.partitioned(from) || this.partitioned(dest)) {
      if (verbose) this.trace(`net: ${from.name} -> ${fmt(to)} ${describeDatagram(data)} lost (partition)`);
      return;
    }
    if (this.world.now < this.interceptUntil && this.net.chance(this.interceptRate)) {
      if (verbose) this.trace(`net: ${from.name} -> ${fmt(to)} ${describeDatagram(data)} withheld by the adversary`);
      return;
    }
    if (this.net.chance(this.link.loss)) {
      if (verbose) this.trace(`net: ${from.name} -> ${fmt(to)} ${describeDatagram(data)} lost`);
      return;
    }
    const copies = this.net.chance(this.link.dup) ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      let bytes = data;
      if (this.net.chance(this.link.corrupt)) bytes = mutate(data, this.net.pick(['flip', 'flip', 'truncate', 'extend'] as const), this.net, { publicKey: new Uint8Array(32) });
      const delay = this.link.delayMin + this.net.int(this.link.delayMax - this.link.delayMin + 1);
      this.flights.push({ at: this.world.now + delay, seq: this.seq++, from: src, to, data: bytes });
      if (verbose) this.trace(`net: ${from.name} -> ${fmt(to)} ${describeDatagram(data)}, arrives in ${delay}ms${bytes === data ? '' : ' CORRUPTED'}`);
    }
  }

  private arrive(f: InFlight): void {
    const node = this.owners.get(key(f.to));
    if (node === undefined || this.partitioned(node)) {
      if (this.options.verbose === true) this.trace(`net: datagram to ${fmt(f.to)} has no one to go to`);
      return;
    }
    if (this.options.verbose === true) this.trace(`net: ${node.name} <- ${fmt(f.from)} ${describeDatagram(f.data)}`);
    this.world.deliver(node, f.data, f.from);
    this.refresh(node);
  }

  /** The adversary puts a datagram on the wire: it arrives after 0-4 ms, unharmed. */
  private inject(data: Uint8Array, from: Endpoint, to: Endpoint): void {
    this.flights.push({ at: this.world.now + this.adversary.int(5), seq: this.seq++, from, to, data });
  }

  private adversaryEndpoint(): Endpoint {
    return { host: ADVERSARY_HOST, port: 1024 + this.adversary.int(60_000) };
  }

  private refresh(node: SimNode): void {
    this.deadlines[node.index] = this.world.tick(node);
  }

  // --- Steps -----------------------------------------------------------------------------

  private step(st: Step): void {
    this.trace(`step ${describeStep(st)}`);
    const w = this.world;
    switch (st.kind) {
      case 'send': {
        const from = this.nodes[st.from]!;
        const to = st.to === 'nowhere' ? undefined : this.nodes[st.to]!;
        const dst = to === undefined ? (st.v6 ? NOWHERE_V6 : NOWHERE_V4) : st.v6 ? to.v6 : to.v4;
        let spoof: Uint8Array | undefined;
        if (st.spoof) {
          const other = this.nodes.find((n) => n !== from && n.index > 0);
          spoof = st.v6 ? (other?.v6 ?? v6(0xfd00, 200)) : (other?.v4 ?? v4('10.0.0.200'));
        }
        for (let i = 0; i < st.count; i++) w.sendApp(from, dst, st.size, spoof);
        this.refresh(from);
        break;
      }
      case 'link':
        this.link = st.link;
        break;
      case 'partition':
        this.partitionedUntil[st.client] = w.now + st.ms;
        break;
      case 'rebind':
      case 'roam': {
        const c = this.nodes[st.client]!;
        this.owners.delete(key(c.endpoint));
        const host = st.kind === 'roam' ? `203.0.113.${100 + ((st.id * 7 + st.client) % 150)}` : c.endpoint.host;
        c.endpoint = { host, port: this.nextPort++ };
        this.owners.set(key(c.endpoint), c);
        this.trace(`${c.name} is now ${fmt(c.endpoint)}`);
        break;
      }
      case 'jump': {
        const n = this.nodes[st.node]!;
        n.offset += st.ms;
        this.refresh(n);
        break;
      }
      case 'intercept':
        this.interceptUntil = w.now + st.ms;
        this.interceptRate = st.rate;
        break;
      case 'replay': {
        if (this.tape.length === 0) break;
        for (let i = 0; i < st.count; i++) {
          const rec = this.tape[(st.pick + i * 7919) % this.tape.length]!;
          const to = st.retarget === undefined ? rec.to : this.nodes[st.retarget]!.endpoint;
          this.inject(rec.data, st.fromAdversary ? this.adversaryEndpoint() : rec.from, to);
        }
        break;
      }
      case 'inject': {
        const target = this.nodes[st.target]!;
        const r = new Prng(st.noise, 11);
        const original = this.tape.length === 0 ? r.bytes(64) : this.tape[st.pick % this.tape.length]!.data;
        const data = mutate(original, st.mutation, r, target);
        this.inject(data, r.chance(0.5) ? this.adversaryEndpoint() : target.endpoint, target.endpoint);
        break;
      }
      case 'flood': {
        const target = this.nodes[st.target]!;
        const r = new Prng(st.pick, 12);
        const initiations = this.tape.filter((t) => t.data[0] === MESSAGE_INITIATION);
        for (let i = 0; i < st.count; i++) {
          const data = initiations.length > 0 && r.chance(0.5) ? initiations[r.int(initiations.length)]!.data : craftedInitiation(target.publicKey, r);
          this.flights.push({ at: w.now + i % 50, seq: this.seq++, from: this.adversaryEndpoint(), to: target.endpoint, data });
        }
        break;
      }
      case 'restart': {
        const n = this.nodes[st.node]!;
        w.restart(n);
        this.refresh(n);
        break;
      }
      case 'remove': {
        if (this.removed.has(st.client)) break;
        this.removed.add(st.client);
        w.unconfigure(this.nodes[0]!, this.nodes[st.client]!);
        this.refresh(this.nodes[0]!);
        break;
      }
      case 'readd': {
        if (!this.removed.delete(st.client)) break;
        this.configureServerSide(st.client, this.s.serverKnowsClients ? this.nodes[st.client]!.endpoint : undefined);
        this.refresh(this.nodes[0]!);
        break;
      }
    }
  }

  private heal(): void {
    this.healed = true;
    this.trace('--- the network heals: no loss, no adversary; configuration re-applied ---');
    this.link = PERFECT_LINK;
    this.partitionedUntil.length = 0;
    this.interceptUntil = -Infinity;
    for (const i of [...this.removed]) {
      this.removed.delete(i);
      this.configureServerSide(i, this.s.serverKnowsClients ? this.nodes[i]!.endpoint : undefined);
    }
    const server = this.nodes[0]!;
    for (let i = 1; i <= this.s.clients; i++) {
      const c = this.nodes[i]!;
      this.world.setEndpoint(c, server, SERVER_ENDPOINT);
      this.refresh(c);
    }
    this.refresh(server);
    const add = (from: SimNode, to: SimNode, k: number): void => {
      this.pairs.push({ from, to, nextAt: this.world.now + 1 + k * 37, v6: k % 2 === 1, sent: [], checked: 0, recovered: false });
    };
    let k = 0;
    for (let i = 1; i <= this.s.clients; i++) {
      add(this.nodes[i]!, server, k++);
      add(server, this.nodes[i]!, k++);
    }
    if (this.s.forwarding) {
      for (let i = 1; i <= this.s.clients; i++) add(this.nodes[i]!, this.nodes[(i % this.s.clients) + 1]!, k++);
    }
  }

  private ping(p: Pair): void {
    p.nextAt += PING_INTERVAL;
    if (this.world.now > this.end - 2 * STEADY_LATENCY) return;
    const size = 60 + this.net.int(1300);
    const tag = this.world.sendApp(p.from, p.v6 ? p.to.v6 : p.to.v4, size);
    p.v6 = !p.v6;
    p.sent.push({ tag, at: this.world.now });
    this.refresh(p.from);
  }

  private checkLiveness(): void {
    const now = this.world.now;
    const w = this.world;
    for (const p of this.pairs) {
      if (!p.recovered) {
        const first = Math.min(...p.sent.map((s) => w.tags.get(s.tag)!.deliveredAt ?? Infinity));
        if (first !== Infinity) {
          p.recovered = true;
          this.recoveryMs.push(first - this.healAt);
        } else if (now >= this.healAt + RECOVERY_BOUND) {
          w.fail('recovery', p.from, `no packet from ${p.from.name} reached ${p.to.name} within ${RECOVERY_BOUND} ms of the heal (${p.sent.length} sent)`);
        }
      }
      while (p.checked < p.sent.length) {
        const s = p.sent[p.checked]!;
        if (s.at < this.steadyFrom) {
          p.checked++;
          continue;
        }
        if (now < s.at + STEADY_LATENCY) break;
        const rec = w.tags.get(s.tag)!;
        const forgiven = w.discards.some((d) => (d.node === p.to.name || (d.node === 'server' && p.from.index > 0 && p.to.index > 0))
          && Math.abs(d.time - s.at) <= STEADY_LATENCY);
        if (!forgiven && (rec.deliveredAt === undefined || rec.deliveredAt > s.at + STEADY_LATENCY)) {
          w.fail('steady-delivery', p.from, `tag ${s.tag} from ${p.from.name} to ${p.to.name}, sent at ${s.at}, not delivered within ${STEADY_LATENCY} ms`);
        }
        p.checked++;
      }
    }
  }

  // --- The loop ----------------------------------------------------------------------------

  run(): SimResult {
    const w = this.world;
    let stepIndex = 0;
    const steps = this.s.steps;
    let violation: Violation | undefined;
    try {
      for (;;) {
        // The earliest event; ties: heal and steps, then arrivals, then timers, then pings.
        let t = Infinity;
        let what: 'heal' | 'step' | 'arrive' | 'timer' | 'ping' | undefined;
        let timerNode = -1;
        let pair: Pair | undefined;
        if (!this.healed && this.healAt < t) { t = this.healAt; what = 'heal'; }
        const st = steps[stepIndex];
        if (st !== undefined && st.at < this.healAt && st.at < t) { t = st.at; what = 'step'; }
        const f = this.flights.peek();
        if (f !== undefined && f.at < t) { t = f.at; what = 'arrive'; }
        for (let i = 0; i < this.deadlines.length; i++) {
          const d = this.deadlines[i]!;
          if (d < t) { t = d; what = 'timer'; timerNode = i; }
        }
        for (const p of this.pairs) {
          if (p.nextAt < t) { t = p.nextAt; what = 'ping'; pair = p; }
        }
        if (what === undefined || t > this.end) break;
        w.now = Math.max(w.now, t);
        switch (what) {
          case 'heal': this.heal(); break;
          case 'step': stepIndex++; this.step(st!); break;
          case 'arrive': this.arrive(this.flights.pop()!); break;
          case 'timer': this.refresh(this.nodes[timerNode]!); break;
          case 'ping': this.ping(pair!); break;
        }
        if (st !== undefined && stepIndex < steps.length && steps[stepIndex]!.at >= this.healAt) stepIndex = steps.length;
        if (this.healed) this.checkLiveness();
      }
      w.now = Math.max(w.now, this.end);
      if (this.healed) this.checkLiveness();
    } catch (error) {
      if (!(error instanceof InvariantError)) throw error;
      violation = error.violation;
    }
    const drops: Record<string, number> = {};
    for (const n of this.nodes) {
      for (const [reason, count] of Object.entries(n.device.drops)) drops[reason] = (drops[reason] ?? 0) + (count ?? 0);
    }
    if (violation === undefined) this.trace(`end: ${w.stats.delivered} packets delivered, ${w.stats.handshakes} handshakes, ${w.stats.forged} forged datagrams refused`);
    return { scenario: this.s, violation, stats: { ...w.stats, simulatedMs: w.now, drops, recoveryMs: this.recoveryMs } };
  }
}
