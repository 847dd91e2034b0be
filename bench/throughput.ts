// TCP throughput and ping RTT through the tunnel, Burrow to Burrow beside wireguard-go to
// wireguard-go (and the bare veth link), measured in one script on the same machine:
// iperf3 for 10 s, 3 runs each, medians, and the ratio to wireguard-go. Needs root.
//   node --import tsx bench/throughput.ts [--seconds 10] [--runs 3]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../crypto/keys.js';
import { logPath } from '../src/runtime/journal.js';
import { CLI, writeConf } from '../test/support/burrow.js';
import { createPair, type Netns, type Pair } from '../test/support/netns.js';
import { startWireguardGo } from '../test/support/wireguard-go.js';
import { median } from './lib.js';

const TUN_A = '192.0.2.1';
const TUN_B = '192.0.2.2';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

interface Sample { mbit: number[]; rttMs: number[] }

async function iperf(server: Netns, client: Netns, target: string, seconds: number, runs: number): Promise<number[]> {
  const out: number[] = [];
  for (let r = 0; r < runs; r++) {
    const srv = server.spawn('iperf3', ['-s', '-1', '-B', target]);
    await new Promise((res) => setTimeout(res, 300));
    const json = JSON.parse(await client.exec('iperf3', ['-c', target, '-t', String(seconds), '-J'], { timeoutMs: (seconds + 20) * 1000 })) as {
      end: { sum_received: { bits_per_second: number } };
    };
    out.push(json.end.sum_received.bits_per_second / 1e6);
    await new Promise((res) => srv.exitCode === null ? srv.once('exit', res) : res(undefined));
  }
  return out;
}

async function rtt(ns: Netns, target: string): Promise<number[]> {
  const out = await ns.exec('ping', ['-n', '-q', '-c', '20', '-i', '0.05', '-W', '1', target], { timeoutMs: 20_000 });
  const m = /= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(out);
  return m ? [Number(m[2])] : [];
}

async function withPair<T>(fn: (p: Pair) => Promise<T>): Promise<T> {
  const pair = await createPair({ prefix: 'bbn' });
  try {
    return await fn(pair);
  } finally {
    await pair.destroy();
  }
}

function keys() {
  const k = generatePrivateKey();
  return { priv: encodeKey(k), pub: encodeKey(publicKeyOf(k)) };
}

async function wireguardGo(seconds: number, runs: number): Promise<Sample> {
  return withPair(async (p) => {
    const [a, b] = [keys(), keys()];
    const ifA = `bbwga${process.pid % 10000}`;
    const ifB = `bbwgb${process.pid % 10000}`;
    const wa = await startWireguardGo(p.a, { ifname: ifA, privateKey: a.priv, listenPort: 51820, addresses: [`${TUN_A}/24`],
      peers: [{ publicKey: b.pub, allowedIPs: [`${TUN_B}/32`] }] });
    const wb = await startWireguardGo(p.b, { ifname: ifB, privateKey: b.priv, addresses: [`${TUN_B}/24`],
      peers: [{ publicKey: a.pub, endpoint: `${p.aAddr4}:51820`, allowedIPs: [`${TUN_A}/32`] }] });
    try {
      await p.b.exec('ping', ['-c', '1', '-W', '2', TUN_A]);
      return { mbit: await iperf(p.a, p.b, TUN_A, seconds, runs), rttMs: await rtt(p.b, TUN_A) };
    } finally {
      await wb.stop();
      await wa.stop();
    }
  });
}

async function burrow(seconds: number, runs: number): Promise<Sample> {
  return withPair(async (p) => {
    const dir = mkdtempSync(join(tmpdir(), 'burrow-bench-'));
    const [a, b] = [keys(), keys()];
    const ifA = `bbbua${process.pid % 10000}`;
    const ifB = `bbbub${process.pid % 10000}`;
    const confA = writeConf(dir, ifA, ['[Interface]', `PrivateKey = ${a.priv}`, `Address = ${TUN_A}/24`, 'ListenPort = 51820', '',
      '[Peer]', `PublicKey = ${b.pub}`, `AllowedIPs = ${TUN_B}/32`]);
    const confB = writeConf(dir, ifB, ['[Interface]', `PrivateKey = ${b.priv}`, `Address = ${TUN_B}/24`, '',
      '[Peer]', `PublicKey = ${a.pub}`, `Endpoint = ${p.aAddr4}:51820`, `AllowedIPs = ${TUN_A}/32`]);
    try {
      await p.a.exec(process.execPath, [CLI, 'up', confA]);
      await p.b.exec(process.execPath, [CLI, 'up', confB]);
      await p.b.exec('ping', ['-c', '1', '-W', '2', TUN_A]);
      return { mbit: await iperf(p.a, p.b, TUN_A, seconds, runs), rttMs: await rtt(p.b, TUN_A) };
    } finally {
      await p.b.exec(process.execPath, [CLI, 'down', ifB]).catch(() => undefined);
      await p.a.exec(process.execPath, [CLI, 'down', ifA]).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      for (const ifname of [ifA, ifB]) rmSync(logPath(ifname), { force: true });
    }
  });
}

async function bare(seconds: number): Promise<Sample> {
  return withPair(async (p) => ({ mbit: await iperf(p.a, p.b, p.aAddr4, seconds, 1), rttMs: await rtt(p.b, p.aAddr4) }));
}

export async function runThroughputBench(seconds = arg('seconds', 10), runs = arg('runs', 3)): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('throughput: skipped, needs root (network namespaces)');
    return;
  }
  const ref = await wireguardGo(seconds, runs);
  const ours = await burrow(seconds, runs);
  const link = await bare(Math.min(seconds, 5));
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' / ');
  console.log(`\nTCP through the tunnel (iperf3, ${seconds} s, ${runs} runs, median), namespaces on one machine`);
  console.log(`  wireguard-go <-> wireguard-go  ${median(ref.mbit).toFixed(0).padStart(6)} Mbit/s  reference          (runs ${fmt(ref.mbit)})`);
  console.log(`  Burrow <-> Burrow              ${median(ours.mbit).toFixed(0).padStart(6)} Mbit/s  ${(median(ours.mbit) / median(ref.mbit)).toFixed(2)}x reference    (runs ${fmt(ours.mbit)})`);
  console.log(`  bare veth link                 ${median(link.mbit).toFixed(0).padStart(6)} Mbit/s  (the ceiling)`);
  console.log('\nPing RTT through the tunnel (20 pings, average)');
  console.log(`  wireguard-go <-> wireguard-go  ${ref.rttMs[0]?.toFixed(3)} ms  reference`);
  console.log(`  Burrow <-> Burrow              ${ours.rttMs[0]?.toFixed(3)} ms  ${((ours.rttMs[0] ?? 0) / (ref.rttMs[0] ?? 1)).toFixed(2)}x reference`);
  console.log(`  bare veth link                 ${link.rttMs[0]?.toFixed(3)} ms`);
}

if (import.meta.url === `file://${process.argv[1]}`) await runThroughputBench();
