// The engine's data path on one core: packets per second through sendPacket
// (encapsulate) and receiveDatagram (decapsulate), for 1420- and 64-byte packets, beside
// the bare AEAD doing the same seal/open in the same run (the floor the engine adds to).
// And the heap an idle configured peer costs, at 10,000 and 100,000 peers.
//   node --expose-gc --import tsx bench/engine.ts
import { type Aead, nobleAead } from '../crypto/aead.js';
import { nobleDh } from '../crypto/x25519.js';
import { createAddonAead } from '../src/runtime/addon-crypto.js';
import { nodeAead } from '../src/runtime/node-crypto.js';
import { Device, packetBufferSize } from '../tunnel/device.js';
import { median, measure, type Rate, report } from './lib.js';

function ipv4Packet(size: number): Uint8Array {
  const p = new Uint8Array(size);
  p[0] = 0x45;
  p[2] = size >> 8;
  p[3] = size & 255;
  p[9] = 17;
  p.set([192, 0, 2, 1], 12);
  p.set([192, 0, 2, 2], 16);
  return p;
}

/** Two devices with a completed handshake; `sink` collects what a sends. */
function connected(aead: Aead) {
  let toB: Uint8Array[] = [];
  let toA: Uint8Array[] = [];
  let capture = true;
  const a = new Device({ privateKey: nobleDh.generatePrivateKey(), aead }, {
    send: (d) => { if (capture) toB.push(d.slice()); }, write: () => {},
  });
  const b = new Device({ privateKey: nobleDh.generatePrivateKey(), aead }, { send: (d) => toA.push(d.slice()), write: () => {} });
  a.setPeer(b.publicKey, { endpoint: { host: 'b', port: 1 }, allowedIPs: [{ address: Uint8Array.of(192, 0, 2, 2), cidr: 32 }] });
  b.setPeer(a.publicKey, { endpoint: { host: 'a', port: 1 }, allowedIPs: [{ address: Uint8Array.of(192, 0, 2, 1), cidr: 32 }] });
  const buf = new Uint8Array(packetBufferSize(1420));
  const pkt = ipv4Packet(64);
  buf.set(pkt, 16);
  a.sendPacket(buf, pkt.length, 0);
  for (let i = 0; i < 4 && (toB.length > 0 || toA.length > 0); i++) {
    for (const d of toB.splice(0)) b.receiveDatagram(d, { host: 'a', port: 1 }, 0);
    for (const d of toA.splice(0)) a.receiveDatagram(d, { host: 'b', port: 1 }, 0);
  }
  return { a, b, take: () => { const t = toB; toB = []; return t; }, setCapture: (c: boolean) => { capture = c; } };
}

function encapsulate(aead: Aead, size: number, label: string): Rate {
  const { a, setCapture } = connected(aead);
  setCapture(false);
  const buf = new Uint8Array(packetBufferSize(1420));
  const pkt = ipv4Packet(size);
  return measure(label, () => { buf.set(pkt, 16); a.sendPacket(buf, size, 1); }, { ms: 300 });
}

function decapsulate(aead: Aead, size: number, label: string): Rate {
  const { a, b, take } = connected(aead);
  const buf = new Uint8Array(packetBufferSize(1420));
  const pkt = ipv4Packet(size);
  const count = size > 1000 ? 20_000 : 50_000;
  const rates: number[] = [];
  for (let run = -1; run < 5; run++) {
    for (let i = 0; i < count; i++) { buf.set(pkt, 16); a.sendPacket(buf, size, 1); }
    const msgs = take();
    const from = { host: 'a', port: 1 };
    const t0 = performance.now();
    for (const m of msgs) b.receiveDatagram(m, from, 1);
    const dt = performance.now() - t0;
    if (run >= 0) rates.push((msgs.length * 1000) / dt);
  }
  return { name: label, perSecond: median(rates), runs: rates };
}

function bareAead(aead: Aead, size: number, label: string, op: 'seal' | 'open'): Rate {
  const key = new Uint8Array(32).fill(1);
  const padded = (size + 15) & ~15;
  const buf = new Uint8Array(padded + 16);
  const empty = new Uint8Array(0);
  aead.seal(key, 3, buf.subarray(0, padded), empty, buf);
  const sealed = buf.slice();
  const out = new Uint8Array(padded);
  let c = 0;
  return measure(label, op === 'seal'
    ? () => { aead.seal(key, c++, buf.subarray(0, padded), empty, buf); }
    : () => { aead.open(key, 3, sealed, empty, out); }, { ms: 300 });
}

/** Heap bytes one idle configured peer costs, among `peers` of them (needs --expose-gc). */
export function idlePeerBytes(peers: number): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with node --expose-gc');
  const heap = () => {
    gc();
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const device = new Device({ privateKey: nobleDh.generatePrivateKey() }, { send: () => {}, write: () => {} });
  const add = (i: number, key: Uint8Array) => device.setPeer(key, {
    endpoint: { host: `198.51.${(i >> 8) & 255}.${i & 255}`, port: 51820 },
    allowedIPs: [{ address: Uint8Array.of(10, (i >> 16) & 255, (i >> 8) & 255, i & 255), cidr: 32 }],
  });
  // Warm up every code path (and the Map's first growth) outside the measurement.
  for (let i = 0; i < 1000; i++) add(peers + i, crypto.getRandomValues(new Uint8Array(32)));
  const keys = Array.from({ length: peers }, () => crypto.getRandomValues(new Uint8Array(32)));
  const before = heap();
  for (let i = 0; i < peers; i++) add(i, keys[i]!);
  const after = heap();
  if (device.peerCount !== peers + 1000) throw new Error('peer count');
  return (after - before) / peers;
}

export function runEngineBench(parts: readonly ('data' | 'memory')[] = ['data', 'memory']): void {
  if (parts.includes('data')) dataPath();
  if (parts.includes('memory')) idlePeers();
}

function dataPath(): void {
  for (const size of [1420, 64]) {
    for (const [aead, name] of [[nobleAead, '@noble'], [nodeAead, 'node:crypto'], [createAddonAead(), 'addon']] as const) {
      const bareSeal = bareAead(aead, size, `bare ${name} seal`, 'seal');
      const enc = encapsulate(aead, size, `engine sendPacket (${name})`);
      report(`Encapsulate, ${size}-byte packets, one core`, 'pkt/s', bareSeal, [enc]);
      const bareOpen = bareAead(aead, size, `bare ${name} open`, 'open');
      const dec = decapsulate(aead, size, `engine receiveDatagram (${name})`);
      report(`Decapsulate, ${size}-byte packets, one core`, 'pkt/s', bareOpen, [dec]);
    }
  }
}

function idlePeers(): void {
  console.log('\nHeap per idle configured peer (public key, endpoint, one /32 allowed IP)');
  for (const n of [10_000, 100_000]) {
    const runs = [idlePeerBytes(n), idlePeerBytes(n), idlePeerBytes(n)];
    console.log(`  ${n.toLocaleString('en-US').padStart(7)} peers: ${Math.round(median(runs))} bytes/peer (runs ${runs.map(Math.round).join(' / ')}; goal < 1024)`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) runEngineBench(process.argv.includes('--memory') ? ['memory'] : undefined);
