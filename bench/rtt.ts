// Round-trip time through each tunnel, with enough pings for a median and a p99 (issue 17,
// goal 1: "added RTT no worse than Debian's wireguard-go"). The tunnels are brought up as
// bench/throughput.ts does, each in its own pair of namespaces, all at once; then round
// after round each gets `count` pings at `interval` ms from b to a, in turn, so that a
// busy moment of the machine hits them all alike. A ping every 10 ms leaves each daemon
// idle between packets: this is the latency of one packet that wakes it up, not of a
// packet behind a queue.
//
// Beside the RTT: the CPU time both daemons spent per ping, from /proc (the machine's load
// delays a packet; it does not add to its CPU time).
//
// Added RTT is the tunnel's median minus the bare veth link's median in the same run; the
// ratios are of medians (and of added medians) to Debian's and to the latest wireguard-go.
//   node --import tsx bench/rtt.ts [--count 500] [--rounds 4] [--interval 10] [--only NAME,NAME] [--base DIR]
// --warm N floods N pings through each tunnel first (a steady state, the JIT warm);
// --quick is 200 pings x 2 rounds. Names are bench/throughput.ts's tunnels; by default
// veth, debian-wg-go, latest-wg-go and burrow. --base DIR adds the Burrow built in another
// checkout (a change against the code before it, in one run). Needs root.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { argReader, median } from './lib.js';
import { baseTunnel, bringUp, cpuSeconds, TUNNELS, type Tunnel, type Up } from './throughput.js';
import { peerSkipReason } from '../test/support/wireguard-go.js';

const DEFAULT_ONLY = ['veth', 'debian-wg-go', 'latest-wg-go', 'burrow'];
/** Bounds, so that one invocation stays well inside the bench lock's few minutes. */
const MAX_COUNT = 5000;
const MAX_ROUNDS = 20;

export interface RttOptions {
  count: number;
  rounds: number;
  intervalMs: number;
  /** Flood pings through each tunnel before measuring (0: only 20 at the interval). */
  warm: number;
  only: readonly string[];
  json: string | undefined;
  /** Another checkout whose Burrow is measured beside this one (bench/throughput.ts's baseTunnel). */
  base: string | undefined;
}

export function parseRttOptions(argv: readonly string[]): RttOptions {
  const { value, number } = argReader(argv, 'rtt');
  const quick = argv.includes('--quick');
  const only = (value('only') ?? DEFAULT_ONLY.join(',')).split(',').filter((s) => s !== '');
  for (const name of only) {
    if (!TUNNELS.some((t) => t.name === name)) throw new Error(`rtt: no tunnel named ${name}; have: ${TUNNELS.map((t) => t.name).join(', ')}`);
  }
  return {
    count: number('count', quick ? 200 : 500, 1, MAX_COUNT),
    rounds: number('rounds', quick ? 2 : 4, 1, MAX_ROUNDS),
    intervalMs: number('interval', 10, 2, 1000),
    warm: number('warm', 0, 0, 100_000),
    only,
    json: value('json'),
    base: value('base'),
  };
}

/** The RTTs (ms) of `count` pings from b to the tunnel's far side; lost ones are left out. */
async function pings(up: Up, o: RttOptions): Promise<{ samples: number[]; lost: number }> {
  const args = ['-n', '-c', String(o.count), '-i', String(o.intervalMs / 1000), '-W', '1', up.target];
  const out = await up.pair.b.exec('ping', args, { timeoutMs: o.count * (o.intervalMs + 5) + 30_000 }).catch((e: { stdout?: string }) => e.stdout ?? '');
  const samples = [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  return { samples, lost: o.count - samples.length };
}

/** The p-th percentile (0..100) by nearest rank. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export interface RttRow {
  name: string;
  label: string;
  /** Every sample, in ms, all rounds. */
  samples: number[];
  /** Each round's median. */
  roundMedians: number[];
  lost: number;
  /** CPU time of both daemons (utime + stime, /proc) per ping, in µs, each round. */
  cpuPerPing: number[];
}

export function summarizeRtt(rows: readonly RttRow[]) {
  const med = (name: string) => {
    const r = rows.find((x) => x.name === name);
    return r === undefined || r.samples.length === 0 ? undefined : median(r.samples);
  };
  const veth = med('veth') ?? 0;
  const debian = med('debian-wg-go');
  const latest = med('latest-wg-go');
  const ratio = (a: number, b: number | undefined) => (b === undefined ? null : Number((a / b).toFixed(3)));
  return rows.map((r) => {
    const m = median(r.samples);
    return {
      name: r.name,
      label: r.label,
      medianMs: m,
      p90Ms: percentile(r.samples, 90),
      p99Ms: percentile(r.samples, 99),
      addedMs: m - veth,
      roundMedians: r.roundMedians,
      cpuUsPerPing: r.cpuPerPing.length === 0 ? NaN : median(r.cpuPerPing),
      cpuUsPerPingRounds: r.cpuPerPing,
      pings: r.samples.length,
      lost: r.lost,
      ratioToDebian: ratio(m, debian),
      ratioToLatest: ratio(m, latest),
      addedRatioToDebian: debian === undefined ? null : ratio(m - veth, debian - veth),
      addedRatioToLatest: latest === undefined ? null : ratio(m - veth, latest - veth),
    };
  });
}

export function printRtt(rows: readonly RttRow[], o: RttOptions): void {
  const s = summarizeRtt(rows);
  const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '-');
  const fr = (x: number | null) => (x === null ? '-' : `${x.toFixed(2)}x`);
  const header = ['tunnel', 'median ms', 'p90', 'p99', 'added ms', 'vs Deb', 'vs latest', 'added vs Deb', 'added vs latest', 'CPU us/ping', 'lost'];
  const body = s.map((r) => [r.label, f3(r.medianMs), f3(r.p90Ms), f3(r.p99Ms), f3(r.addedMs), fr(r.ratioToDebian), fr(r.ratioToLatest),
    fr(r.addedRatioToDebian), fr(r.addedRatioToLatest), Number.isFinite(r.cpuUsPerPing) ? String(Math.round(r.cpuUsPerPing)) : '-', String(r.lost)]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(`\nPing RTT: ${o.rounds} rounds x ${o.count} pings every ${o.intervalMs} ms, alternating${o.warm > 0 ? `, after ${o.warm} flood pings` : ''}; added = minus the bare veth median`);
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const b of body) console.log(line(b));
  console.log('\nEach round\'s median (ms) | both daemons\' CPU per ping (us, /proc, 10 ms ticks):');
  for (const r of s) console.log(`  ${r.label.padEnd(34)} ${r.roundMedians.map(f3).join(' / ')} | ${r.cpuUsPerPingRounds.map((x) => String(Math.round(x))).join(' / ')}`);
}

export async function measureRtt(o: RttOptions, log: (line: string) => void = console.log): Promise<{ rows: RttRow[]; skipped: string[] }> {
  const chosen = o.only.map((n) => TUNNELS.find((t) => t.name === n)!) as Tunnel[];
  if (o.base !== undefined) chosen.push(baseTunnel(o.base));
  const skipped: string[] = [];
  const live: { t: Tunnel; up: Up; row: RttRow }[] = [];
  try {
    for (const t of chosen) {
      const reason = t.needs.map(peerSkipReason).find((r) => r !== undefined);
      if (reason !== undefined) {
        skipped.push(`${t.label}: ${reason}`);
        continue;
      }
      live.push({ t, up: await bringUp(t), row: { name: t.name, label: t.label, samples: [], roundMedians: [], lost: 0, cpuPerPing: [] } });
    }
    for (const { up } of live) {
      await pings(up, { ...o, count: 20 }); // handshakes done, caches filled
      // Many packets first: a JIT (Burrow's V8) has compiled the hot path by then.
      if (o.warm > 0) await up.pair.b.exec('ping', ['-n', '-q', '-f', '-c', String(o.warm), '-W', '1', up.target], { timeoutMs: 120_000 }).catch(() => '');
    }
    for (let round = 0; round < o.rounds; round++) {
      for (const { t, up, row } of live) {
        log(`  round ${round + 1}/${o.rounds}: ${t.label} (load ${loadavg()[0]!.toFixed(2)})`);
        const cpuBefore = cpuSeconds(up.daemons);
        const { samples, lost } = await pings(up, o);
        if (up.daemons.length > 0) row.cpuPerPing.push(((cpuSeconds(up.daemons) - cpuBefore) / o.count) * 1e6);
        row.samples.push(...samples);
        row.roundMedians.push(median(samples));
        row.lost += lost;
      }
    }
  } finally {
    for (const { up } of live.reverse()) await up.stop().catch((e: unknown) => log(`  teardown: ${(e as Error).message}`));
  }
  return { rows: live.map((l) => l.row).reverse(), skipped };
}

export async function runRttBench(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('rtt: skipped, needs root (network namespaces)');
    return;
  }
  const o = parseRttOptions(argv);
  console.log(`rtt: load average before ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const { rows, skipped } = await measureRtt(o);
  for (const s of skipped) console.log(`  skipped ${s}`);
  printRtt(rows, o);
  const path = o.json ?? join(dirname(fileURLToPath(import.meta.url)), 'out', `rtt-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify({ date: new Date().toISOString(), ...o, loadAfter: loadavg(), skipped, tunnels: summarizeRtt(rows) }, null, 2)}\n`);
  console.log(`\nJSON: ${path}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await runRttBench();
