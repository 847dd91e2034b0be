// `npm run bench -- server`: the server at 1,000 and 10,000 peers, end to end through the
// built CLI in a network namespace of its own (root needed; no traffic is sent):
//   - `burrow server up` until it reports ready (registry read, engine, TUN, NAT steps)
//   - the daemon's resident memory (VmRSS), and per peer from the difference 1k -> 10k
//   - `add-peer` (registry update + control socket) and `list-peers --json`
//   - in this process, after full GCs: the heap an idle peer costs the engine (a Device
//     given the peers as the session gives them), from the difference 1k -> 10k, and
//     the heap of the parsed registry (the Config a session is started with)
// Goals (issue 13): 10,000 peers up in under 2 s; add-peer well under a second; under
// 1 KiB of heap per idle peer. The registry's own parse is timed in-process beside it,
// as its share of both.
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

function registryText(n: number): string {
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
  console.log(`heap per idle peer (${a} -> ${b}, after full GCs): engine ${per(engine)} bytes; the parsed registry (the Config a session starts with) ${per(registry)} bytes`);
  keep.length = 0;
}

export async function runServerBench(counts = [1_000, 10_000]): Promise<void> {
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
  execFileSync('ip', ['netns', 'add', ns]);
  const rss: Record<number, number> = {};
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    for (const n of counts) {
      const text = registryText(n);
      let t = performance.now();
      parseRegistry(text, conf);
      const parse = ms(t);
      writeFileSync(conf, text, { mode: 0o600 });
      t = performance.now();
      inNs(['server', 'up', '--config', conf]);
      const up = ms(t);
      const pid = (JSON.parse(readFileSync(journalPath(ifname), 'utf8')) as { daemon: { pid: number } }).daemon.pid;
      await new Promise((r) => setTimeout(r, 2_000)); // settle: the first expiry check, GC
      rss[n] = rssKiB(pid);
      t = performance.now();
      inNs(['server', 'add-peer', 'bench-new', '--config', conf]);
      const add = ms(t);
      t = performance.now();
      const listed = JSON.parse(inNs(['server', 'list-peers', '--json', '--config', conf])) as unknown[];
      const list = ms(t);
      inNs(['server', 'down', '--config', conf]);
      console.log(`${String(n).padStart(6)} peers: up ${up} (registry parse ${parse} of it), RSS ${(rss[n]! / 1024).toFixed(1)} MiB, add-peer ${add}, list-peers --json ${list} (${listed.length} peers)`);
    }
    if (counts.length >= 2) {
      const [a, b] = [counts[0]!, counts[counts.length - 1]!];
      console.log(`resident memory per peer (${a} -> ${b}): ${(((rss[b]! - rss[a]!) * 1024) / (b - a)).toFixed(0)} bytes`);
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

if (process.argv[1] === fileURLToPath(import.meta.url)) await runServerBench();
