// `npm run bench -- server`: the server at 1,000 and 10,000 peers, end to end through the
// built CLI in a network namespace of its own (root needed; no traffic is sent):
//   - `burrow server up` until it reports ready (registry read, engine, TUN, NAT steps)
//   - the daemon's resident memory (VmRSS), and per peer from the difference 1k -> 10k
//   - `add-peer` (registry update + control socket) and `list-peers --json`
//   - the daemon's own heap per idle peer: bench/server-heap.ts runs `server up` in a
//     process of its own, waits for its first expiry check and usage sample, collects
//     garbage and reports heapUsed; per peer from the difference 1k -> 10k
//   - in this process, after full GCs: the heap an idle peer costs the engine (a Device
//     given the peers as the session gives them), and the heap of a parsed registry
//     (what a process that reads the registry holds while it does)
// Every timing is taken --runs times (default 3), each run shown, with the median.
// Goals (issue 13): 10,000 peers up in under 2 s; add-peer well under a second; under
// 1 KiB of heap per idle peer. The registry's own parse is timed in-process beside it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../crypto/keys.js';
import { parseRegistry, sessionConfig } from '../server/registry.js';
import { nodeAead, nodeDh } from '../src/runtime/node-crypto.js';
import { Device } from '../tunnel/device.js';
import { journalPath, logPath } from '../src/runtime/journal.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'src', 'cli', 'main.js');
const HEAP_PROBE = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'bench', 'server-heap.js');

export function registryText(n: number): string {
  const lines = ['[Interface]', '# burrow-server: endpoint=192.0.2.1:51820 uplink=lo client-to-client=false', `PrivateKey = ${encodeKey(generatePrivateKey())}`, 'Address = 10.100.0.1/16, fd10:100::1/64', 'ListenPort = 51820'];
  const base = Buffer.from(publicKeyOf(generatePrivateKey()));
  for (let i = 0; i < n; i++) {
    const k = Buffer.from(base);
    k.writeUInt32BE(i, 0);
    const host = i + 2;
    lines.push('', '[Peer]', `# burrow: name=p${i} created=2026-12-01T00:00:00.000Z enabled=true rx=0 tx=0`, `PublicKey = ${k.toString('base64')}`, `AllowedIPs = 10.100.${host >> 8}.${host & 255}/32, fd10:100::${host.toString(16)}/128`);
  }
  return `${lines.join('\n')}\n`;
}

const ms = (t: number) => `${(performance.now() - t).toFixed(0)} ms`;

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? NaN : Number(m[1]);
}

/** The heap after full collections (gc exposed here if node was started without --expose-gc). */
function heapUsed(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Heap per idle peer: the engine's (as the session sets peers up) and the parsed registry's. */
function heapPerPeer(counts: readonly number[]): void {
  const config = sessionConfig(parseRegistry(registryText(counts[counts.length - 1]!), 'bench'));
  const setups = config.peers.map((p) => ({ key: p.publicKey, setup: { presharedKey: p.presharedKey ?? null, persistentKeepalive: 0, allowedIPs: p.allowedIPs.map((a) => ({ address: a.address, cidr: a.prefixLength })) } }));
  const engine: Record<number, number> = {};
  const registry: Record<number, number> = {};
  const keep: unknown[] = [];
  for (const n of counts) {
    let before = heapUsed();
    const device = new Device({ privateKey: nodeDh.generatePrivateKey(), dh: nodeDh, aead: nodeAead }, { send: () => undefined, write: () => undefined });
    for (const p of setups.slice(0, n)) device.setPeer(p.key, p.setup);
    engine[n] = heapUsed() - before;
    keep.push(device);
    const text = registryText(n);
    before = heapUsed();
    keep.push(sessionConfig(parseRegistry(text, 'bench')));
    registry[n] = heapUsed() - before;
  }
  const [a, b] = [counts[0]!, counts[counts.length - 1]!];
  const per = (m: Record<number, number>) => ((m[b]! - m[a]!) / (b - a)).toFixed(0);
  console.log(`heap per idle peer (${a} -> ${b}, after full GCs, in this process): engine ${per(engine)} bytes; a parsed registry ${per(registry)} bytes`);
  keep.length = 0;
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const runsText = (xs: readonly number[]): string => `${median(xs).toFixed(0)} ms (runs: ${xs.map((x) => x.toFixed(0)).join(', ')})`;

function runsOption(options: readonly string[]): number {
  const i = options.indexOf('--runs');
  if (i < 0) return 3;
  const n = Number(options[i + 1]);
  if (!Number.isInteger(n) || n < 1 || n > 20) throw new Error(`--runs: expected 1 to 20, got ${options[i + 1]}`);
  return n;
}

export async function runServerBench(options: readonly string[] = [], counts = [1_000, 10_000]): Promise<void> {
  const runs = runsOption(options);
  heapPerPeer(counts);
  if (process.getuid?.() !== 0) {
    console.log('server: skipped (needs root for a network namespace)');
    return;
  }
  const ns = `bsb${process.pid.toString(36)}`;
  const ifname = `bsv${process.pid.toString(36)}`.slice(0, 15);
  const dir = mkdtempSync(join(tmpdir(), 'burrow-bench-server-'));
  const conf = join(dir, `${ifname}.conf`);
  const inNs = (args: string[]) => execFileSync('ip', ['netns', 'exec', ns, process.execPath, CLI, ...args], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
  const timed = (args: string[]): [number, string] => {
    const t = performance.now();
    const out = inNs(args);
    return [performance.now() - t, out];
  };
  execFileSync('ip', ['netns', 'add', ns]);
  const rss: Record<number, number> = {};
  const heap: Record<number, number> = {};
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    for (const n of counts) {
      const text = registryText(n);
      const parse: number[] = [];
      const up: number[] = [];
      const add: number[] = [];
      const list: number[] = [];
      let listed = 0;
      for (let run = 0; run < runs; run++) {
        let t = performance.now();
        parseRegistry(text, conf);
        parse.push(performance.now() - t);
        writeFileSync(conf, text, { mode: 0o600 });
        rmSync(join(dir, `${ifname}.usage.json`), { force: true });
        up.push(timed(['server', 'up', '--config', conf])[0]);
        const pid = (JSON.parse(readFileSync(journalPath(ifname), 'utf8')) as { daemon: { pid: number } }).daemon.pid;
        await new Promise((r) => setTimeout(r, 2_000)); // settle: the first expiry check and usage sample, GC
        if (run === 0) rss[n] = rssKiB(pid);
        add.push(timed(['server', 'add-peer', 'bench-new', '--config', conf])[0]);
        const [took, out] = timed(['server', 'list-peers', '--json', '--config', conf]);
        list.push(took);
        listed = (JSON.parse(out) as unknown[]).length;
        inNs(['server', 'down', '--config', conf]);
      }
      // The daemon's own heap, in a process that runs the same up and reports it.
      writeFileSync(conf, text, { mode: 0o600 });
      rmSync(join(dir, `${ifname}.usage.json`), { force: true });
      const probe = execFileSync('ip', ['netns', 'exec', ns, process.execPath, '--expose-gc', HEAP_PROBE, conf], { encoding: 'utf8', timeout: 180_000 });
      heap[n] = (JSON.parse(probe.trim().split('\n').pop()!) as { heapUsed: number }).heapUsed;
      console.log(`${String(n).padStart(6)} peers: up ${runsText(up)} (registry parse ${runsText(parse)} of it); RSS ${(rss[n]! / 1024).toFixed(1)} MiB; daemon heap ${(heap[n]! / 1048576).toFixed(1)} MiB`);
      console.log(`${' '.repeat(13)} add-peer ${runsText(add)}; list-peers --json ${runsText(list)} (${listed} peers)`);
    }
    if (counts.length >= 2) {
      const [a, b] = [counts[0]!, counts[counts.length - 1]!];
      console.log(`resident memory per peer (${a} -> ${b}): ${(((rss[b]! - rss[a]!) * 1024) / (b - a)).toFixed(0)} bytes`);
      console.log(`daemon heap per idle peer (${a} -> ${b}, after GC; goal under 1,024): ${((heap[b]! - heap[a]!) / (b - a)).toFixed(0)} bytes`);
    }
    console.log('each command time includes starting Node for the CLI (about 0.15-0.3 s here)');
  } finally {
    try {
      inNs(['server', 'down', '--config', conf]);
    } catch {
      // already down
    }
    execFileSync('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
    rmSync(logPath(ifname), { force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await runServerBench(process.argv.slice(2));
