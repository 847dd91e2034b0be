// Where the daemon's time goes under load: Burrow <-> Burrow in namespaces, both
// daemons under node --cpu-prof, one iperf3 TCP stream from b to a, then the functions
// with the most self time in each daemon's profile (the sender b, the receiver a).
//   node --import tsx bench/profile.ts [--seconds 10] [--keep DIR]
// The .cpuprofile files open in Chrome's DevTools; --keep says where to leave them.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logPath } from '../src/runtime/journal.js';
import { CLI, keys, writeConf } from '../test/support/burrow.js';
import { type ChildProcess } from 'node:child_process';
import { createPair, type Netns, uniqueName, waitForChildExit } from '../test/support/netns.js';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
export interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

/** Self time per function (name, file and line), as a share of all samples, highest first. */
export function selfTimes(profile: CpuProfile): { where: string; share: number }[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const counts = new Map<string, number>();
  for (const id of profile.samples) {
    const f = byId.get(id)!.callFrame;
    const file = f.url.replace(/^file:\/\/.*?\/(?=(src|tunnel|crypto|node_modules)\/)/, '').replace(/^node:/, 'node:');
    const where = `${f.functionName || '(anonymous)'} ${file === '' ? '' : `${file}:${f.lineNumber + 1}`}`.trim();
    counts.set(where, (counts.get(where) ?? 0) + 1);
  }
  const total = profile.samples.length;
  return [...counts].map(([where, n]) => ({ where, share: n / total })).sort((a, b) => b.share - a.share);
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/profile.ts needs root (network namespaces)');
  const seconds = Number(arg('seconds') ?? 10);
  const keep = arg('keep');
  const dir = mkdtempSync(join(tmpdir(), 'burrow-prof-'));
  const pair = await createPair({ prefix: 'bpf' });
  const [ka, kb] = [keys(), keys()];
  const ifA = uniqueName('bpa');
  const ifB = uniqueName('bpb');
  // `up --foreground` under node --cpu-prof (NODE_OPTIONS may not carry it): the
  // daemon is our child, stopped by PID with SIGTERM on destroy, and writes its profile
  // as it exits.
  const daemons: ChildProcess[] = [];
  const up = async (ns: Netns, ifname: string, lines: string[], side: string): Promise<void> => {
    const conf = writeConf(dir, ifname, lines);
    const child = ns.spawn(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${join(dir, side)}`, CLI, 'up', conf, '--foreground']);
    daemons.push(child);
    ns.onDestroy(() => rmSync(logPath(ifname), { force: true }));
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`burrow up ${ifname} exited: ${ns.outputOf(child)}`);
      const links = await ns.exec('ip', ['-o', 'addr', 'show']);
      if (links.includes(ifname) && links.includes('192.0.2.')) break;
      if (i > 300) throw new Error(`burrow up ${ifname}: no interface after 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    await up(pair.a, ifA, ['[Interface]', `PrivateKey = ${ka.priv}`, 'Address = 192.0.2.1/24', 'ListenPort = 51820', '',
      '[Peer]', `PublicKey = ${kb.pub}`, 'AllowedIPs = 192.0.2.2/32'], 'receiver');
    await up(pair.b, ifB, ['[Interface]', `PrivateKey = ${kb.priv}`, 'Address = 192.0.2.2/24', '',
      '[Peer]', `PublicKey = ${ka.pub}`, `Endpoint = ${pair.aAddr4}:51820`, 'AllowedIPs = 192.0.2.1/32'], 'sender');
    await pair.b.exec('ping', ['-c', '1', '-W', '3', '192.0.2.1']);
    const server = pair.a.spawn('iperf3', ['-s', '-1', '-B', '192.0.2.1']);
    await new Promise((r) => setTimeout(r, 300));
    const out = JSON.parse(await pair.b.exec('iperf3', ['-c', '192.0.2.1', '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 })) as {
      end: { sum_received: { bits_per_second: number } };
    };
    console.log(`iperf3 through Burrow under --cpu-prof: ${(out.end.sum_received.bits_per_second / 1e6).toFixed(0)} Mbit/s`);
    await new Promise((r) => (server.exitCode === null ? server.once('exit', r) : r(undefined)));
  } finally {
    // SIGTERM by PID, with time to take the tunnel down and write the profile.
    for (const child of daemons) {
      child.kill('SIGTERM');
      await waitForChildExit(child, 30_000);
    }
    await pair.destroy();
  }
  for (const side of ['sender', 'receiver']) {
    const files = readdirSync(join(dir, side)).map((f) => join(dir, side, f));
    const biggest = files.map((f) => ({ f, profile: JSON.parse(readFileSync(f, 'utf8')) as CpuProfile }))
      .sort((x, y) => y.profile.samples.length - x.profile.samples.length)[0]!;
    console.log(`\n${side} daemon: top self time (${biggest.f})`);
    for (const { where, share } of selfTimes(biggest.profile).slice(0, 18)) console.log(`  ${(share * 100).toFixed(1).padStart(5)}%  ${where}`);
  }
  if (keep === undefined) rmSync(dir, { recursive: true, force: true });
  else console.log(`\nprofiles kept in ${dir}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
