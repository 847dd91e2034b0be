// `npm run bench -- server-clients`: TCP throughput through a server with three clients
// at once, the Burrow server (`burrow server up`, NAT and all) beside the latest
// wireguard-go as the server (with the same forwarding and masquerade), in the same run.
// Root is needed; everything happens in network namespaces:
//
//   client1 ─┐  198.18.1.0/24                       203.0.113.0/24
//   client2 ─┼─ (one veth each; RFC 2544 range) ─ server ─────────── internet (iperf3 -s ×3)
//   client3 ─┘
//
// The clients are the latest wireguard-go in both cases, so only the server differs; each
// measurement starts a fresh server and fresh clients, then runs three iperf3 clients at
// once for SECONDS (one per client, each to its own iperf3 server on the internet host)
// and sums what the receivers got. The two servers alternate within each run.
//   node --import tsx bench/server-clients.ts [--seconds 10] [--runs 3]

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../crypto/keys.js';
import { logPath } from '../src/runtime/journal.js';
import { nodeDh } from '../src/runtime/node-crypto.js';
import { CLI } from '../test/support/burrow.js';
import { Netns, uniqueName } from '../test/support/netns.js';
import { peerSkipReason, startWireguardGo, type WireguardGo } from '../test/support/wireguard-go.js';
import { median } from './lib.js';

const CLIENTS = 3;
const PORT = 51820;
const INTERNET = '203.0.113.2';
const SUBNET = '10.99.0.0/24';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

type Server = 'wireguard-go' | 'burrow';

interface Hosts {
  server: Netns;
  internet: Netns;
  clients: Netns[];
  /** The server's link to the internet host. */
  uplink: string;
}

async function link(a: Netns, aIf: string, aAddr: string, b: Netns, bIf: string, bAddr: string): Promise<void> {
  await a.exec('ip', ['link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name]);
  for (const [ns, ifname, addr] of [[a, aIf, aAddr], [b, bIf, bAddr]] as const) {
    await ns.exec('ip', ['addr', 'add', addr, 'dev', ifname]);
    await ns.exec('ip', ['link', 'set', 'dev', ifname, 'up']);
  }
}

async function topology(made: Netns[]): Promise<Hosts> {
  const create = async () => {
    const ns = await Netns.create('bsc');
    made.push(ns);
    return ns;
  };
  const server = await create();
  const internet = await create();
  await link(server, 'up0', '203.0.113.1/24', internet, 'eth0', `${INTERNET}/24`);
  const clients: Netns[] = [];
  for (let i = 1; i <= CLIENTS; i++) {
    const c = await create();
    await link(server, `c${i}`, `198.18.${i}.1/24`, c, 'eth0', `198.18.${i}.2/24`);
    clients.push(c);
  }
  return { server, internet, clients, uplink: 'up0' };
}

interface Keys {
  server: string;
  serverPublic: string;
  clients: { priv: string; pub: string }[];
}

/** Starts the server; returns how to stop it. */
async function startServer(which: Server, h: Hosts, k: Keys, dir: string): Promise<() => Promise<void>> {
  const peers = k.clients.map((c, i) => ({ pub: c.pub, ip: `10.99.0.${i + 2}/32` }));
  if (which === 'burrow') {
    const ifname = uniqueName('bsb');
    const conf = join(dir, `${ifname}.conf`);
    const text = [
      '[Interface]', `# burrow-server: endpoint=198.18.1.1:${PORT} uplink=${h.uplink} client-to-client=false`, `PrivateKey = ${k.server}`, 'Address = 10.99.0.1/24', `ListenPort = ${PORT}`,
      ...peers.flatMap((p, i) => ['', '[Peer]', `# burrow: name=c${i + 1} created=2026-12-01T00:00:00.000Z enabled=true rx=0 tx=0`, `PublicKey = ${p.pub}`, `AllowedIPs = ${p.ip}`]),
    ];
    writeFileSync(conf, `${text.join('\n')}\n`, { mode: 0o600 });
    await h.server.exec(process.execPath, [CLI, 'server', 'up', '--config', conf], { timeoutMs: 60_000 });
    return async () => {
      await h.server.exec(process.execPath, [CLI, 'server', 'down', '--config', conf], { timeoutMs: 60_000 }).catch(() => undefined);
      rmSync(logPath(ifname), { force: true });
    };
  }
  // The same forwarding and masquerade as Burrow's server steps, by hand.
  const wg = await startWireguardGo(h.server, {
    implementation: 'latest-wireguard-go', ifname: uniqueName('bsw'), privateKey: k.server, listenPort: PORT, addresses: ['10.99.0.1/24'],
    peers: peers.map((p) => ({ publicKey: p.pub, allowedIPs: [p.ip] })),
  });
  await h.server.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  const table = `table ip bsc_nat {\n  chain post {\n    type nat hook postrouting priority srcnat;\n    ip saddr ${SUBNET} oifname "${h.uplink}" masquerade\n  }\n}\n`;
  await h.server.exec('nft', ['-f', '-'], { input: table });
  return async () => {
    await h.server.exec('nft', ['delete', 'table', 'ip', 'bsc_nat']).catch(() => undefined);
    await h.server.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=0']).catch(() => undefined);
    await wg.stop();
  };
}

async function startClients(h: Hosts, k: Keys): Promise<WireguardGo[]> {
  const out: WireguardGo[] = [];
  try {
    for (let i = 0; i < CLIENTS; i++) {
      const ns = h.clients[i]!;
      const wg = await startWireguardGo(ns, {
        implementation: 'latest-wireguard-go', ifname: uniqueName('bsc'), privateKey: k.clients[i]!.priv, addresses: [`10.99.0.${i + 2}/24`],
        peers: [{ publicKey: k.serverPublic, endpoint: `198.18.${i + 1}.1:${PORT}`, allowedIPs: ['0.0.0.0/0'], persistentKeepalive: 25 }],
      });
      out.push(wg);
      await ns.exec('ip', ['route', 'add', '203.0.113.0/24', 'dev', wg.ifname]);
      await ns.exec('ping', ['-c', '1', '-W', '5', INTERNET], { timeoutMs: 20_000 });
    }
    return out;
  } catch (e) {
    for (const wg of out) await wg.stop();
    throw e;
  }
}

/** Three iperf3 clients at once; the sum of what their receivers got, Mbit/s. */
async function measure(h: Hosts, seconds: number): Promise<number> {
  const servers = h.clients.map((_, i) => h.internet.spawn('iperf3', ['-s', '-1', '-B', INTERNET, '-p', String(5201 + i)]));
  try {
    await new Promise((r) => setTimeout(r, 500));
    const results = await Promise.all(
      h.clients.map((c, i) => c.exec('iperf3', ['-c', INTERNET, '-p', String(5201 + i), '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 })),
    );
    return results.reduce((sum, json) => sum + (JSON.parse(json) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e6, 0);
  } finally {
    for (const s of servers) if (s.exitCode === null) s.kill('SIGTERM');
  }
}

export async function runServerClientsBench(seconds = arg('seconds', 10), runs = arg('runs', 3)): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('server-clients: skipped, needs root (network namespaces)');
    return;
  }
  const skip = peerSkipReason('latest-wireguard-go');
  if (skip !== undefined) {
    console.log(`server-clients: skipped, ${skip}`);
    return;
  }
  const made: Netns[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'burrow-bench-sc-'));
  try {
    const h = await topology(made);
    const server = generatePrivateKey(nodeDh);
    const keys: Keys = {
      server: encodeKey(server),
      serverPublic: encodeKey(publicKeyOf(server, nodeDh)),
      clients: Array.from({ length: CLIENTS }, () => {
        const c = generatePrivateKey(nodeDh);
        return { priv: encodeKey(c), pub: encodeKey(publicKeyOf(c, nodeDh)) };
      }),
    };
    const mbit: Record<Server, number[]> = { 'wireguard-go': [], burrow: [] };
    for (let r = 0; r < runs; r++) {
      for (const which of r % 2 === 0 ? (['wireguard-go', 'burrow'] as const) : (['burrow', 'wireguard-go'] as const)) {
        const stop = await startServer(which, h, keys, dir);
        try {
          const clients = await startClients(h, keys);
          try {
            mbit[which].push(await measure(h, seconds));
          } finally {
            for (const c of clients) await c.stop();
          }
        } finally {
          await stop();
        }
      }
    }
    const ref = median(mbit['wireguard-go']);
    console.log(`\nTCP through the server, ${CLIENTS} clients at once (latest wireguard-go clients; iperf3 to a host behind the server's NAT, ${seconds} s, sum of the ${CLIENTS}), median of ${runs} runs`);
    for (const which of ['wireguard-go', 'burrow'] as const) {
      const m = median(mbit[which]);
      const label = which === 'wireguard-go' ? 'latest wireguard-go' : 'Burrow server';
      const ratio = which === 'wireguard-go' ? 'reference' : `${(m / ref).toFixed(2)}x reference`;
      console.log(`  ${label.padEnd(20)} ${m.toFixed(0).padStart(6)} Mbit/s  ${ratio.padEnd(16)} runs: ${mbit[which].map((x) => x.toFixed(0)).join(' / ')}`);
    }
  } finally {
    for (const ns of made.reverse()) await ns.destroy().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await runServerClientsBench();
