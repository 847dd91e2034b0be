// `npm run bench -- handshakes`: handshakes per second a responder answers, the Burrow
// server (`burrow server up`, the real daemon) beside the latest wireguard-go, under the
// same load from one generator (bench/handshake-generator.ts), in the same run. Root is
// needed: the responder and the generator are two network namespaces joined by a veth
// pair, and no packet leaves them.
//
// Both responders have the same private key and the same PEERS peers, so the generator
// makes its initiations once and plays them to each; each measurement starts a fresh
// responder (it has seen none of the timestamps). A measurement keeps WINDOW initiations
// in flight for MS milliseconds; rates are responses per second. Responders alternate
// within each run, so a change in the machine's load hits both. Cookie replies and lost
// initiations are shown beside the rate: a responder that thinks itself under load asks
// for cookies, then limits each source address to 20 initiations a second (wireguard-go
// and Burrow alike), so one generator's rate collapses once that happens.
//   node --import tsx bench/handshakes.ts [--runs 3] [--ms 3000] [--window 32] [--profile DIR]
// --profile DIR runs the Burrow server in the foreground under node --cpu-prof (one
// profile per measurement in DIR) and prints where its time went.

import { type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../crypto/keys.js';
import { logPath } from '../src/runtime/journal.js';
import { nodeDh } from '../src/runtime/node-crypto.js';
import { CLI } from '../test/support/burrow.js';
import { createPair, type Netns, uniqueName, waitForChildExit } from '../test/support/netns.js';
import { peerSkipReason, startWireguardGo } from '../test/support/wireguard-go.js';
import type { GeneratorResult } from './handshake-generator.js';
import { median } from './lib.js';
import { type CpuProfile, selfTimes } from './profile.js';

const GENERATOR = join(dirname(fileURLToPath(import.meta.url)), 'handshake-generator.ts');
const PEERS = 256;
const PER_PEER = 64;
const PORT = 51820;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function textArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

export type Responder = 'wireguard-go' | 'burrow';

/** Lines of a child's standard output, one at a time. */
function lines(child: ChildProcess): () => Promise<string> {
  const queue: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else queue.push(line);
  });
  return () => {
    const line = queue.shift();
    return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => waiting.push(resolve));
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function registry(serverKey: string, peerKeys: string[]): string {
  const out = ['[Interface]', '# burrow-server: endpoint=198.51.100.1:51820 uplink=lo client-to-client=false', `PrivateKey = ${serverKey}`, 'Address = 10.99.0.1/16', `ListenPort = ${PORT}`];
  peerKeys.forEach((k, i) => {
    out.push('', '[Peer]', `# burrow: name=g${i} created=2026-12-01T00:00:00.000Z enabled=true rx=0 tx=0`, `PublicKey = ${k}`, `AllowedIPs = 10.99.${(i + 2) >> 8}.${(i + 2) & 255}/32`);
  });
  return `${out.join('\n')}\n`;
}

/**
 * `server up --foreground` under node --cpu-prof, as our child: ready once its interface
 * has its address; stopped by PID with SIGTERM, and it writes its profile as it exits.
 */
async function startProfiledServer(ns: Netns, conf: string, ifname: string, profileDir: string): Promise<() => Promise<void>> {
  const child = ns.spawn(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, CLI, 'server', 'up', '--config', conf, '--foreground']);
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`burrow server up ${ifname} exited: ${ns.outputOf(child)}`);
    if ((await ns.exec('ip', ['-o', 'addr', 'show', 'dev', ifname]).catch(() => '')).includes('10.99.0.1')) break;
    if (i > 300) throw new Error(`burrow server up ${ifname}: no interface after 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return async () => {
    child.kill('SIGTERM');
    await waitForChildExit(child, 30_000);
    rmSync(logPath(ifname), { force: true });
  };
}

/** The functions with the most self time over every profile in `dir`. */
function printProfiles(dir: string): void {
  const totals = new Map<string, number>();
  let samples = 0;
  for (const f of readdirSync(dir)) {
    const profile = JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile;
    samples += profile.samples.length;
    for (const { where, share } of selfTimes(profile)) totals.set(where, (totals.get(where) ?? 0) + share * profile.samples.length);
  }
  console.log(`
Burrow server under --cpu-prof: top self time over ${samples} samples (profiles in ${dir})`);
  for (const [where, n] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${((n / samples) * 100).toFixed(1).padStart(5)}%  ${where}`);
}

/** Starts a responder in `ns`, returns how to stop it. */
async function startResponder(which: Responder, ns: Netns, dir: string, serverKey: string, peerKeys: string[], profileDir?: string): Promise<() => Promise<void>> {
  if (which === 'wireguard-go') {
    const wg = await startWireguardGo(ns, {
      implementation: 'latest-wireguard-go',
      ifname: uniqueName('bhw'),
      privateKey: serverKey,
      listenPort: PORT,
      addresses: ['10.99.0.1/16'],
      peers: peerKeys.map((k, i) => ({ publicKey: k, allowedIPs: [`10.99.${(i + 2) >> 8}.${(i + 2) & 255}/32`] })),
      startTimeoutMs: 30_000,
    });
    return () => wg.stop();
  }
  const ifname = uniqueName('bhb');
  const conf = join(dir, `${ifname}.conf`);
  writeFileSync(conf, registry(serverKey, peerKeys), { mode: 0o600 });
  if (profileDir !== undefined) return startProfiledServer(ns, conf, ifname, profileDir);
  await ns.exec(process.execPath, [CLI, 'server', 'up', '--config', conf], { timeoutMs: 60_000 });
  return async () => {
    await ns.exec(process.execPath, [CLI, 'server', 'down', '--config', conf], { timeoutMs: 60_000 }).catch(() => undefined);
    rmSync(logPath(ifname), { force: true });
  };
}

/** What one measurement found, for the JSON of bench/throughput.ts: medians, the ratio, every run. */
export interface HandshakeRates {
  perSecond: { latestWireguardGo: number; burrow: number };
  ratioToLatestWireguardGo: number;
  runs: Record<Responder, GeneratorResult[]>;
}

/**
 * Measures and prints the table (one row per responder); returns the figures, or null
 * when it cannot run here (not root, no latest wireguard-go).
 */
export async function runHandshakesBench(runs = arg('runs', 3), ms = arg('ms', 3000), window = arg('window', 32), profileDir = textArg('profile')): Promise<HandshakeRates | null> {
  if (process.getuid?.() !== 0) {
    console.log('handshakes: skipped, needs root (network namespaces)');
    return null;
  }
  const skip = peerSkipReason('latest-wireguard-go');
  if (skip !== undefined) {
    console.log(`handshakes: skipped, ${skip}`);
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), 'burrow-bench-hs-')); // 0700: the key file is inside
  const pair = await createPair({ prefix: 'bhs' });
  let generator: ChildProcess | undefined;
  try {
    const server = generatePrivateKey(nodeDh);
    const serverKey = encodeKey(server);
    const clients = Array.from({ length: PEERS }, () => generatePrivateKey(nodeDh));
    const peerKeys = clients.map((k) => encodeKey(publicKeyOf(k, nodeDh)));
    const keyFile = join(dir, 'generator.json');
    writeFileSync(keyFile, JSON.stringify({ server: encodeKey(publicKeyOf(server, nodeDh)), peers: clients.map(encodeKey) }), { mode: 0o600 });
    generator = pair.b.spawn(process.execPath, ['--import', 'tsx', GENERATOR, keyFile, String(PER_PEER)], { stdio: ['pipe', 'pipe', 'pipe'] });
    const next = lines(generator);
    const ready = JSON.parse(await withTimeout(next(), 300_000, 'the generator')) as { ready: number };
    rmSync(keyFile);
    const results: Record<Responder, GeneratorResult[]> = { 'wireguard-go': [], burrow: [] };
    for (let r = 0; r < runs; r++) {
      const order: Responder[] = r % 2 === 0 ? ['wireguard-go', 'burrow'] : ['burrow', 'wireguard-go'];
      for (const which of order) {
        if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });
        const stop = await startResponder(which, pair.a, dir, serverKey, peerKeys, profileDir);
        try {
          generator.stdin!.write(`run ${pair.aAddr4} ${PORT} ${ms} ${window}\n`);
          results[which].push(JSON.parse(await withTimeout(next(), ms + 60_000, 'the generator')) as GeneratorResult);
        } finally {
          await stop();
        }
      }
    }
    const rate = (x: GeneratorResult) => (x.responses * 1000) / x.elapsedMs;
    const ref = median(results['wireguard-go'].map(rate));
    const burrow = median(results.burrow.map(rate));
    console.log(`\nHandshakes per second answered, one generator (${PEERS} peers, ${window} initiations in flight, ${ms / 1000} s, ${ready.ready} initiations made beforehand), median of ${runs} runs`);
    console.log('| responder | handshakes/s | vs latest wireguard-go | runs: rate (cookie replies, lost, verified) |');
    console.log('|---|---:|---:|---|');
    for (const which of ['wireguard-go', 'burrow'] as const) {
      const xs = results[which];
      const m = median(xs.map(rate));
      const label = which === 'wireguard-go' ? 'latest wireguard-go' : 'Burrow server';
      const each = xs.map((x) => `${rate(x).toFixed(0)} (${x.cookieReplies}, ${x.lost}, ${x.verified})`).join(' / ');
      console.log(`| ${label} | ${m.toFixed(0)} | ${(m / ref).toFixed(2)}x | ${each} |`);
    }
    if (profileDir !== undefined) printProfiles(profileDir);
    return { perSecond: { latestWireguardGo: ref, burrow }, ratioToLatestWireguardGo: Number((burrow / ref).toFixed(3)), runs: results };
  } finally {
    if (generator !== undefined && generator.exitCode === null) {
      generator.stdin?.end();
      generator.kill('SIGTERM');
    }
    await pair.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await runHandshakesBench();
