// Every tunnel side by side, in one run on the same machine, in namespaces (issue 17):
//   - bare veth, Debian's wireguard-go, the latest wireguard-go, boringtun, Burrow to
//     Burrow, and Burrow with the latest wireguard-go in each direction;
//   - TCP throughput with iperf3, 1 and 4 streams, alternating between the tunnels run by
//     run, so that a busy moment of the machine hits them all alike; median of the runs;
//   - UDP packets per second received, at 64- and 1420-byte IP packets (iperf3 -u -b 0);
//   - ping RTT through each (20 pings, average);
//   - CPU seconds per GB moved: utime + stime of both daemons from /proc, over the
//     single-stream runs, divided by the bytes iperf3 counted;
// then one table, with each tunnel's ratio to Debian's and to the latest wireguard-go;
// the handshakes per second a Burrow server and the latest wireguard-go answer under one
// generator's load (bench/handshakes.ts, o.runs runs); and the same as JSON (--json PATH; bench/out/throughput-TIMESTAMP.json by default).
//   node --import tsx bench/throughput.ts [--seconds 10] [--runs 3] [--quick] [--only NAME,NAME]
// --quick is 3 s x 1 run, for development. --only burrow,burrow-no-gro compares Burrow
// with and without GRO on its TUN writes (BURROW_TUN_GRO=0) in one run; burrow-no-gso
// without UDP GSO (BURROW_UDP_GSO=0), burrow-no-tso without TSO on its TUN reads
// (BURROW_TUN_TSO=0), burrow-no-udp-gro without UDP GRO on receive (BURROW_UDP_GRO=0),
// burrow-lazy-jit with V8's default tiering (BURROW_EAGER_JIT=0, see tierUpSooner in
// src/runtime/daemon.ts). --base DIR adds the Burrow built in another checkout, to measure
// a change against the code before it in one run. Needs root.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { logPath } from '../src/runtime/journal.js';
import { CLI, keys, writeConf } from '../test/support/burrow.js';
import { createPair, type Pair, uniqueName } from '../test/support/netns.js';
import { type PeerImplementation, peerSkipReason, startPeer } from '../test/support/wireguard-go.js';
import { idlePeerBytes } from './engine.js';
import { runHandshakesBench } from './handshakes.js';
import { argReader, median } from './lib.js';

const TUN_A = '192.0.2.1';
const TUN_B = '192.0.2.2';
const PORT = 51820;
/** IP packet sizes for the UDP rate; iperf3 is given the payload (minus 20 + 8 bytes of headers). */
const UDP_SIZES = [64, 1420] as const;
const CLK_TCK = 100; // USER_HZ on Linux: /proc/PID/stat counts in 1/100 s

export interface Options {
  seconds: number;
  runs: number;
  /** Tunnel names (see TUNNELS) to run; all when empty. */
  only: readonly string[];
  json: string | undefined;
  /** Another checkout whose Burrow is measured beside this one (baseTunnel). */
  base: string | undefined;
}

export function parseOptions(argv: readonly string[]): Options {
  const { value, number } = argReader(argv, 'bench');
  const quick = argv.includes('--quick');
  const only = (value('only') ?? '').split(',').filter((s) => s !== '');
  for (const name of only) {
    if (!TUNNELS.some((t) => t.name === name)) throw new Error(`bench: no tunnel named ${name}; have: ${TUNNELS.map((t) => t.name).join(', ')}`);
  }
  return { seconds: number('seconds', quick ? 3 : 10), runs: number('runs', quick ? 1 : 3), only, json: value('json'), base: value('base') };
}

/** A tunnel between two namespaces, up: traffic from b to `target` crosses it. */
export interface Up {
  pair: Pair;
  /** Where the iperf3 server listens (in a). */
  target: string;
  /** The processes that carry the tunnel, for their CPU time. */
  daemons: number[];
  stop(): Promise<void>;
}

type Side = 'burrow' | PeerImplementation;

export interface Tunnel {
  name: string;
  label: string;
  /** Who runs side a (receives, runs the iperf3 server) and side b; none: the bare link. */
  sides?: readonly [Side, Side];
  /** The implementation a row needs installed (skipped, and said so, when missing). */
  needs: readonly PeerImplementation[];
  /** Burrow's daemons get this environment (to compare its own options in one run). */
  env?: Record<string, string>;
  /** Measured only when named in --only. */
  optional?: true;
  /** Burrow's CLI for its sides: another build's, to compare two builds in one run (--base). */
  cli?: string;
}

/**
 * Burrow from another checkout, built (npm run setup there): `--base DIR` adds it as
 * "burrow-base", so that a change is measured against the code before it in one run.
 */
export function baseTunnel(dir: string): Tunnel {
  const cli = join(resolve(dir), 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(cli)) throw new Error(`bench: --base ${dir}: no ${cli}; build that checkout first (npm run setup)`);
  return { name: 'burrow-base', label: 'Burrow <-> Burrow, base build', sides: ['burrow', 'burrow'], needs: [], cli };
}

export const TUNNELS: readonly Tunnel[] = [
  { name: 'veth', label: 'bare veth link', needs: [] },
  { name: 'debian-wg-go', label: "Debian's wireguard-go <-> itself", sides: ['debian-wireguard-go', 'debian-wireguard-go'], needs: ['debian-wireguard-go'] },
  { name: 'latest-wg-go', label: 'latest wireguard-go <-> itself', sides: ['latest-wireguard-go', 'latest-wireguard-go'], needs: ['latest-wireguard-go'] },
  { name: 'boringtun', label: 'boringtun <-> itself', sides: ['boringtun', 'boringtun'], needs: ['boringtun'] },
  { name: 'burrow', label: 'Burrow <-> Burrow', sides: ['burrow', 'burrow'], needs: [] },
  { name: 'burrow-no-gro', label: 'Burrow <-> Burrow, GRO off', sides: ['burrow', 'burrow'], needs: [], env: { BURROW_TUN_GRO: '0' }, optional: true },
  { name: 'burrow-no-udp-gro', label: 'Burrow <-> Burrow, UDP GRO off', sides: ['burrow', 'burrow'], needs: [], env: { BURROW_UDP_GRO: '0' }, optional: true },
  { name: 'burrow-lazy-jit', label: 'Burrow <-> Burrow, V8 default tiering', sides: ['burrow', 'burrow'], needs: [], env: { BURROW_EAGER_JIT: '0' }, optional: true },
  { name: 'burrow-no-gso', label: 'Burrow <-> Burrow, UDP GSO off', sides: ['burrow', 'burrow'], needs: [], env: { BURROW_UDP_GSO: '0' }, optional: true },
  { name: 'burrow-no-tso', label: 'Burrow <-> Burrow, TSO off', sides: ['burrow', 'burrow'], needs: [], env: { BURROW_TUN_TSO: '0' }, optional: true },
  { name: 'burrow-to-wg-go', label: 'Burrow sending to latest wg-go', sides: ['latest-wireguard-go', 'burrow'], needs: ['latest-wireguard-go'] },
  { name: 'wg-go-to-burrow', label: 'latest wg-go sending to Burrow', sides: ['burrow', 'latest-wireguard-go'], needs: ['latest-wireguard-go'] },
];

interface Sides {
  pair: Pair;
  ifA: string;
  ifB: string;
  dir: string;
}

/** Starts `side` in ns with the tunnel address `self`, the peer at `peerAddr` (and its endpoint, when known). */
async function startSide(
  s: Sides, side: Side, which: 'a' | 'b', own: ReturnType<typeof keys>, peer: ReturnType<typeof keys>, env: Record<string, string> = {},
  cli = CLI,
): Promise<void> {
  const ns = which === 'a' ? s.pair.a : s.pair.b;
  const ifname = which === 'a' ? s.ifA : s.ifB;
  const self = which === 'a' ? TUN_A : TUN_B;
  const other = which === 'a' ? TUN_B : TUN_A;
  const endpoint = which === 'b' ? `${s.pair.aAddr4}:${PORT}` : undefined;
  if (side === 'burrow') {
    const conf = writeConf(s.dir, ifname, [
      '[Interface]', `PrivateKey = ${own.priv}`, `Address = ${self}/24`, ...(which === 'a' ? [`ListenPort = ${PORT}`] : []), '',
      '[Peer]', `PublicKey = ${peer.pub}`, ...(endpoint === undefined ? [] : [`Endpoint = ${endpoint}`]), `AllowedIPs = ${other}/32`,
    ]);
    await ns.exec(process.execPath, [cli, 'up', conf], { timeoutMs: 60_000, env });
    ns.onDestroy(async () => {
      await ns.exec(process.execPath, [cli, 'down', ifname], { timeoutMs: 60_000 }).catch(() => undefined);
      rmSync(logPath(ifname), { force: true });
    });
    return;
  }
  await startPeer(ns, {
    implementation: side, ifname, privateKey: own.priv, addresses: [`${self}/24`],
    ...(which === 'a' ? { listenPort: PORT } : {}),
    peers: [{ publicKey: peer.pub, allowedIPs: [`${other}/32`], ...(endpoint === undefined ? {} : { endpoint }) }],
  });
}

export async function bringUp(t: Tunnel): Promise<Up> {
  const pair = await createPair({ prefix: 'bbn' });
  const dir = mkdtempSync(join(tmpdir(), 'burrow-bench-'));
  const stop = async (): Promise<void> => {
    try {
      await pair.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    if (t.sides === undefined) return { pair, target: pair.aAddr4, daemons: [], stop };
    const s: Sides = { pair, ifA: uniqueName('bba'), ifB: uniqueName('bbb'), dir };
    const [ka, kb] = [keys(), keys()];
    await startSide(s, t.sides[0], 'a', ka, kb, t.env, t.cli);
    await startSide(s, t.sides[1], 'b', kb, ka, t.env, t.cli);
    // The first packet starts the handshake; wait until one gets through.
    await retry(() => pair.b.exec('ping', ['-c', '1', '-W', '2', TUN_A]), 5);
    const daemons = [...(await pair.a.pids()), ...(await pair.b.pids())].filter((pid) => pid !== process.pid);
    return { pair, target: TUN_A, daemons, stop };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}

async function retry<T>(fn: () => Promise<T>, attempts: number): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (i >= attempts) throw e;
    }
  }
}

/** utime + stime of `pids` in seconds (those that have exited count 0). */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of proc(5)
    } catch {
      // gone
    }
  }
  return ticks / CLK_TCK;
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface IperfResult {
  end: {
    sum_received?: { bits_per_second: number; bytes: number };
    sum?: { packets: number; lost_packets: number; seconds: number };
  };
}

/** One iperf3 run from b to a; the server is started for this one run (-1). */
async function iperf(pair: Pair, target: string, args: readonly string[], seconds: number): Promise<IperfResult> {
  const server = pair.a.spawn('iperf3', ['-s', '-1', '-B', target]);
  try {
    await pause(300);
    const out = await pair.b.exec('iperf3', ['-c', target, '-t', String(seconds), '-J', ...args], { timeoutMs: (seconds + 30) * 1000 });
    return JSON.parse(out) as IperfResult;
  } finally {
    if (server.exitCode === null && server.signalCode === null) {
      await Promise.race([new Promise((r) => server.once('exit', r)), pause(5_000)]);
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    }
  }
}

async function tcp(pair: Pair, up: Up, streams: number, seconds: number): Promise<{ mbit: number; cpuPerGB: number }> {
  const before = cpuSeconds(up.daemons);
  const r = await iperf(pair, up.target, ['-P', String(streams)], seconds);
  const cpu = cpuSeconds(up.daemons) - before;
  const sum = r.end.sum_received!;
  return { mbit: sum.bits_per_second / 1e6, cpuPerGB: up.daemons.length === 0 ? NaN : cpu / (sum.bytes / 1e9) };
}

async function udpRate(pair: Pair, up: Up, size: number, seconds: number): Promise<number> {
  const r = await iperf(pair, up.target, ['-u', '-b', '0', '-l', String(size - 28)], seconds);
  const sum = r.end.sum!;
  return (sum.packets - sum.lost_packets) / sum.seconds;
}

async function rtt(pair: Pair, target: string): Promise<number> {
  const out = await pair.b.exec('ping', ['-n', '-q', '-c', '20', '-i', '0.05', '-W', '1', target], { timeoutMs: 30_000 });
  const m = /= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(out);
  return m ? Number(m[2]) : NaN;
}

export interface Row {
  name: string;
  label: string;
  tcp1: number[];
  tcp4: number[];
  udp64: number[];
  udp1420: number[];
  rttMs: number[];
  cpuPerGB: number[];
}

const emptyRow = (t: Tunnel): Row => ({ name: t.name, label: t.label, tcp1: [], tcp4: [], udp64: [], udp1420: [], rttMs: [], cpuPerGB: [] });

/** Brings every tunnel up, then measures them in turn, run after run. */
export async function measureTunnels(o: Options, log: (line: string) => void = console.log): Promise<{ rows: Row[]; skipped: string[] }> {
  const chosen = TUNNELS.filter((t) => (o.only.length === 0 && t.optional !== true) || o.only.includes(t.name));
  if (o.base !== undefined) chosen.push(baseTunnel(o.base));
  const skipped: string[] = [];
  const live: { t: Tunnel; up: Up; pair: Pair; row: Row }[] = [];
  try {
    for (const t of chosen) {
      const reason = t.needs.map(peerSkipReason).find((r) => r !== undefined);
      if (reason !== undefined) {
        skipped.push(`${t.label}: ${reason}`);
        continue;
      }
      const up = await bringUp(t);
      live.push({ t, up, pair: up.pair, row: emptyRow(t) });
    }
    const udpSeconds = Math.min(o.seconds, 3);
    for (let run = 0; run < o.runs; run++) {
      for (const { t, up, pair, row } of live) {
        log(`  run ${run + 1}/${o.runs}: ${t.label} (load ${loadavg()[0]!.toFixed(2)})`);
        const one = await tcp(pair, up, 1, o.seconds);
        row.tcp1.push(one.mbit);
        row.cpuPerGB.push(one.cpuPerGB);
        row.tcp4.push((await tcp(pair, up, 4, o.seconds)).mbit);
        row.udp64.push(await udpRate(pair, up, 64, udpSeconds));
        row.udp1420.push(await udpRate(pair, up, 1420, udpSeconds));
        row.rttMs.push(await rtt(pair, up.target));
      }
    }
  } finally {
    for (const { up } of live.reverse()) await up.stop().catch((e: unknown) => log(`  teardown: ${(e as Error).message}`));
  }
  return { rows: live.map((l) => l.row).reverse(), skipped };
}

const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const fmtRuns = (xs: readonly number[], f: (n: number) => string): string => xs.map(f).join(' / ');

/** The table and the ratios (median over median) to Debian's and the latest wireguard-go. */
export function summarize(rows: readonly Row[]) {
  const ref = (name: string) => rows.find((r) => r.name === name);
  const debian = ref('debian-wg-go');
  const latest = ref('latest-wg-go');
  const ratio = (r: Row, to: Row | undefined, key: 'tcp1' | 'tcp4' | 'udp64' | 'udp1420' | 'rttMs') =>
    to === undefined || to[key].length === 0 ? null : Number((median(r[key]) / median(to[key])).toFixed(3));
  return rows.map((r) => ({
    name: r.name,
    label: r.label,
    medians: {
      tcp1Mbit: median(r.tcp1), tcp4Mbit: median(r.tcp4), udp64Pps: median(r.udp64), udp1420Pps: median(r.udp1420),
      rttMs: median(r.rttMs), cpuSecondsPerGB: median(r.cpuPerGB),
    },
    runs: r,
    ratioToDebianWireguardGo: { tcp1: ratio(r, debian, 'tcp1'), tcp4: ratio(r, debian, 'tcp4'), udp64: ratio(r, debian, 'udp64'), udp1420: ratio(r, debian, 'udp1420'), rtt: ratio(r, debian, 'rttMs') },
    ratioToLatestWireguardGo: { tcp1: ratio(r, latest, 'tcp1'), tcp4: ratio(r, latest, 'tcp4'), udp64: ratio(r, latest, 'udp64'), udp1420: ratio(r, latest, 'udp1420'), rtt: ratio(r, latest, 'rttMs') },
  }));
}

export function printTable(rows: readonly Row[], o: Options): void {
  const s = summarize(rows);
  const ratio = (x: number | null) => (x === null ? '-' : `${x.toFixed(2)}x`);
  const header = ['tunnel', 'TCP 1 (Mbit/s)', 'TCP 4', 'UDP 64 B (pkt/s)', 'UDP 1420 B', 'RTT ms', 'CPU s/GB', 'TCP1 vs Deb/latest', 'TCP4 vs Deb/latest'];
  const body = s.map((r) => [
    r.label, fmtInt(r.medians.tcp1Mbit), fmtInt(r.medians.tcp4Mbit), fmtInt(r.medians.udp64Pps), fmtInt(r.medians.udp1420Pps),
    r.medians.rttMs.toFixed(3), Number.isFinite(r.medians.cpuSecondsPerGB) ? r.medians.cpuSecondsPerGB.toFixed(2) : '-',
    `${ratio(r.ratioToDebianWireguardGo.tcp1)} / ${ratio(r.ratioToLatestWireguardGo.tcp1)}`,
    `${ratio(r.ratioToDebianWireguardGo.tcp4)} / ${ratio(r.ratioToLatestWireguardGo.tcp4)}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(`\nTunnels side by side: iperf3 ${o.seconds} s x ${o.runs} runs alternating, medians; UDP 3 s; ping 20 x; CPU of both daemons per GB (1 stream)`);
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const b of body) console.log(line(b));
  console.log('\nEvery run (Mbit/s, 1 stream | 4 streams):');
  for (const r of rows) console.log(`  ${r.label.padEnd(34)} ${fmtRuns(r.tcp1, fmtInt)} | ${fmtRuns(r.tcp4, fmtInt)}`);
}

/** The engine's heap per idle peer at 10,000 peers, 3 runs, when the GC is exposed (npm run bench does). */
function idlePeerMemory(): { median: number; runs: number[] } | null {
  if ((globalThis as { gc?: unknown }).gc === undefined) {
    console.log('\nMemory per idle peer: skipped, run with node --expose-gc (npm run bench does)');
    return null;
  }
  const runs = [0, 1, 2].map(() => Math.round(idlePeerBytes(10_000)));
  console.log(`\nMemory per idle peer (Burrow's engine, 10,000 peers): ${median(runs)} bytes (runs ${runs.join(' / ')})`);
  return { median: median(runs), runs };
}

export async function runThroughputBench(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('throughput: skipped, needs root (network namespaces)');
    return;
  }
  const o = parseOptions(argv);
  console.log(`throughput: load average before ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const { rows, skipped } = await measureTunnels(o);
  for (const s of skipped) console.log(`  skipped ${s}`);
  printTable(rows, o);
  const idle = idlePeerMemory();
  const handshakes = await runHandshakesBench(o.runs, 3000, 32, undefined); // handshakes/s answered, beside latest wireguard-go
  const path = o.json ?? join(dirname(fileURLToPath(import.meta.url)), 'out', `throughput-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify({ date: new Date().toISOString(), seconds: o.seconds, runs: o.runs, loadAfter: loadavg(), skipped, tunnels: summarize(rows), idlePeerBytes: idle, handshakes }, null, 2)}\n`);
  console.log(`\nJSON with the ratios: ${path}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await runThroughputBench();
