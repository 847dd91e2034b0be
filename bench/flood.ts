// A handshake flood against the engine, in process: two devices on an in-memory network
// with a fake clock, and a third that connects during the flood (issue 10, finding 2).
//
// The clock moves in turns of TURN_MS, as the runtime's event loop would turn: each turn
// the flooded device gets beginTurn(), then the turn's arrivals in a seeded random order:
// FLOOD_PER_SECOND * TURN_MS / 1000 junk initiations (random bytes with a valid mac1, or
// without) and the legitimate traffic, then one more turn for the handshake messages
// that wait in its queue (the runtime gives them a setImmediate turn). CPU time is measured over whole turns, so the
// figures say what one core sustains while the flood arrives at 20,000 a second:
//   - throughput: DATA_PER_TURN 1420-byte packets a turn from a to b (a seals, b opens),
//     as Mbit/s of packets per CPU second, with no flood and with each kind of flood;
//   - handshake: a new peer c sends one packet to b during the flood; the engine-clock
//     time until c's handshake completes (a lost attempt waits REKEY_TIMEOUT) and the
//     CPU time it took to simulate.
// node crypto backends, as the runtime uses. Several runs of each; the median is shown
// with every run beside it.
//   node --import tsx bench/flood.ts

import { mac1KeyFor, writeMacs } from '../tunnel/cookie.js';
import { Device, type DeviceEvent, type Endpoint, packetBufferSize } from '../tunnel/device.js';
import { INITIATION_MAC1_OFFSET } from '../tunnel/messages.js';
import { nodeAead, nodeDh } from '../src/runtime/node-crypto.js';
import { loadavg } from 'node:os';
import { median } from './lib.js';

const FLOOD_PER_SECOND = 20_000;
const TURN_MS = 10;
const JUNK_PER_TURN = (FLOOD_PER_SECOND * TURN_MS) / 1000;
const DATA_PER_TURN = 64;
const THROUGHPUT_TURNS = 100; // one second of engine time per run
const RUNS = 5;
const HANDSHAKE_GIVE_UP_MS = 60_000;
const PACKET = 1420;

type Flood = 'none' | 'invalid mac1' | 'valid mac1';
const FLOODS: readonly Flood[] = ['none', 'invalid mac1', 'valid mac1'];

/** xorshift32, seeded: the same arrival order in every run of one kind. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function ipv4(src: number, dst: number, length: number): Uint8Array {
  const p = new Uint8Array(length);
  p.set([0x45, 0, length >> 8, length & 0xff, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, src, 10, 0, 0, dst]);
  return p;
}

interface Host {
  device: Device;
  endpoint: Endpoint;
  inbox: { data: Uint8Array; from: Endpoint }[];
  events: DeviceEvent[];
  delivered: number;
}

/** Devices whose datagrams land in each other's inboxes; anything else goes nowhere. */
class Net {
  readonly hosts = new Map<string, Host>();

  add(name: string, options: { handshakesPerTurn?: number } = {}): Host {
    const endpoint: Endpoint = Object.freeze({ host: name, port: 51820 });
    const host: Host = { endpoint, inbox: [], events: [], delivered: 0, device: undefined as unknown as Device };
    host.device = new Device({ privateKey: nodeDh.generatePrivateKey(), aead: nodeAead, dh: nodeDh, wallClock: () => 1.8e12, ...options }, {
      send: (data, to) => this.hosts.get(to.host)?.inbox.push({ data: data.slice(), from: endpoint }),
      write: () => { host.delivered++; },
      event: (e) => host.events.push(e),
    });
    this.hosts.set(name, host);
    return host;
  }

  connect(x: Host, xAddress: number, y: Host, yAddress: number): void {
    x.device.setPeer(y.device.publicKey, { endpoint: y.endpoint, allowedIPs: [{ address: Uint8Array.of(10, 0, 0, yAddress), cidr: 32 }] });
    y.device.setPeer(x.device.publicKey, { endpoint: x.endpoint, allowedIPs: [{ address: Uint8Array.of(10, 0, 0, xAddress), cidr: 32 }] });
  }

  /** Delivers everything in flight except to `except` (whose inbox the turn loop drains). */
  settle(now: number, except?: Host): void {
    for (let round = 0; round < 8; round++) {
      let moved = 0;
      for (const h of this.hosts.values()) {
        if (h === except) continue;
        for (const m of h.inbox.splice(0)) {
          h.device.receiveDatagram(m.data, m.from, now);
          moved++;
        }
      }
      if (moved === 0) return;
    }
  }
}

/** Junk initiations: random bytes, type 1, and a valid mac1 for `to` when asked. */
function junkPool(kind: Flood, to: Uint8Array, size = 512): Uint8Array[] {
  if (kind === 'none') return [];
  const key = mac1KeyFor(to);
  return Array.from({ length: size }, () => {
    const m = crypto.getRandomValues(new Uint8Array(148));
    m.set([1, 0, 0, 0]);
    if (kind === 'valid mac1') writeMacs(m, INITIATION_MAC1_OFFSET, key);
    return m;
  });
}

/** Spoofed sources: 4096 addresses in 198.18.0.0/15, each on its own port. */
const SOURCES: Endpoint[] = Array.from({ length: 4096 }, (_, i) => Object.freeze({ host: `198.18.${i >> 8}.${i & 255}`, port: 1024 + i }));

/** One turn at the flooded host `b`: junk and the legitimate datagrams, shuffled. */
function turn(b: Host, now: number, junk: Uint8Array[], legit: { data: Uint8Array; from: Endpoint }[], next: () => number, scratch: Uint8Array): void {
  b.device.beginTurn();
  const jn = junk.length === 0 ? 0 : JUNK_PER_TURN;
  let j = 0;
  let l = 0;
  while (j < jn || l < legit.length) {
    const takeJunk = l >= legit.length || (j < jn && next() * (jn - j + legit.length - l) < jn - j);
    if (takeJunk) {
      const k = Math.floor(next() * junk.length);
      scratch.set(junk[k]!);
      b.device.receiveDatagram(scratch, SOURCES[Math.floor(next() * SOURCES.length)]!, now);
      j++;
    } else {
      const m = legit[l++]!;
      b.device.receiveDatagram(m.data, m.from, now);
    }
  }
  b.device.beginTurn();
  b.device.drainHandshakes(now);
}

interface Throughput { mbps: number; queueDrops: number; delivered: number }

function throughputRun(kind: Flood, seed: number): Throughput {
  const net = new Net();
  const a = net.add('a');
  const b = net.add('b');
  net.connect(a, 1, b, 2);
  const buf = new Uint8Array(packetBufferSize(PACKET));
  const pkt = ipv4(1, 2, PACKET);
  buf.set(pkt, 16);
  a.device.sendPacket(buf, PACKET, 0);
  net.settle(0);
  b.delivered = 0;
  const junk = junkPool(kind, b.device.publicKey);
  const next = rng(seed);
  const scratch = new Uint8Array(148);
  const t0 = performance.now();
  for (let t = 1; t <= THROUGHPUT_TURNS; t++) {
    const now = t * TURN_MS;
    a.device.beginTurn();
    for (let i = 0; i < DATA_PER_TURN; i++) {
      buf.set(pkt, 16);
      a.device.sendPacket(buf, PACKET, now);
    }
    turn(b, now, junk, b.inbox.splice(0), next, scratch);
    a.device.tick(now);
    b.device.tick(now);
    net.settle(now, b);
  }
  const seconds = (performance.now() - t0) / 1000;
  return { mbps: (b.delivered * PACKET * 8) / seconds / 1e6, queueDrops: b.device.drops['handshake-queue-full'] ?? 0, delivered: b.delivered };
}

interface Handshake { engineMs: number; cpuMs: number; attempts: number; done: boolean }

function handshakeRun(kind: Flood, seed: number): Handshake {
  const net = new Net();
  const b = net.add('b');
  const c = net.add('c');
  net.connect(c, 3, b, 2);
  const junk = junkPool(kind, b.device.publicKey);
  const next = rng(seed);
  const scratch = new Uint8Array(148);
  const t0 = performance.now();
  // Half a second of flood first: b is under load (a valid-mac1 flood) when c arrives.
  let now = 0;
  for (; now < 500; now += TURN_MS) {
    turn(b, now, junk, [], next, scratch);
    b.device.tick(now);
  }
  const start = now;
  const buf = new Uint8Array(packetBufferSize(PACKET));
  const pkt = ipv4(3, 2, 100);
  buf.set(pkt, 16);
  c.device.sendPacket(buf, pkt.length, now);
  const complete = () => c.events.some((e) => e.type === 'handshake-complete');
  while (!complete() && now - start < HANDSHAKE_GIVE_UP_MS) {
    now += TURN_MS;
    c.device.tick(now);
    turn(b, now, junk, b.inbox.splice(0), next, scratch);
    b.device.tick(now);
    net.settle(now, b);
  }
  return {
    engineMs: now - start, cpuMs: performance.now() - t0, done: complete(),
    attempts: c.events.filter((e) => e.type === 'handshake-initiated').length,
  };
}

const fmt = (xs: number[], digits = 0) => xs.map((x) => x.toFixed(digits)).join(' / ');

export function runFloodBench(): void {
  console.log(`\nHandshake flood: ${FLOOD_PER_SECOND.toLocaleString('en-US')} junk initiations/s, turns of ${TURN_MS} ms `
    + `(${JUNK_PER_TURN} junk + ${DATA_PER_TURN} data packets a turn), one core, node crypto, ${RUNS} runs each, `
    + `interleaved; load average ${loadavg()[0]!.toFixed(1)} at start`);
  throughputRun('none', 1); // warm-up
  console.log('\n  legitimate data a->b, 1420-byte packets, Mbit/s per CPU second');
  // Run r of every kind, then run r + 1: a machine whose load drifts affects each kind alike.
  const all = new Map<Flood, Throughput[]>(FLOODS.map((k) => [k, []]));
  for (let r = 0; r < RUNS; r++) for (const kind of FLOODS) all.get(kind)!.push(throughputRun(kind, 100 + r));
  let base = 0;
  for (const kind of FLOODS) {
    const runs = all.get(kind)!;
    const m = median(runs.map((r) => r.mbps));
    if (kind === 'none') base = m;
    const lost = runs.reduce((s, r) => s + (DATA_PER_TURN * THROUGHPUT_TURNS - r.delivered), 0);
    console.log(`    ${kind.padEnd(13)} ${m.toFixed(0).padStart(6)} Mbit/s  ${(m / base).toFixed(2)}x no flood   `
      + `(runs ${fmt(runs.map((r) => r.mbps))}; data lost ${lost}; handshake queue full ${fmt(runs.map((r) => r.queueDrops))})`);
  }
  console.log('\n  a new peer c connects to b during the flood: engine time to its handshake, CPU time simulated');
  for (const kind of FLOODS) {
    const runs = Array.from({ length: RUNS }, (_, r) => handshakeRun(kind, 200 + r));
    const failed = runs.filter((r) => !r.done).length;
    console.log(`    ${kind.padEnd(13)} ${median(runs.map((r) => r.engineMs)).toFixed(0).padStart(6)} ms engine  `
      + `(runs ${fmt(runs.map((r) => r.engineMs))} ms; attempts ${fmt(runs.map((r) => r.attempts))}; `
      + `CPU ${fmt(runs.map((r) => r.cpuMs))} ms${failed > 0 ? `; ${failed} gave up after ${HANDSHAKE_GIVE_UP_MS / 1000} s` : ''})`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) runFloodBench();
