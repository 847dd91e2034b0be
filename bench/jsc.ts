// The JavaScriptCore host (native/jsc-host) beside the Node runtime (`burrow up`) and
// wireguard-go, as the client of the same wireguard-go server, in one run: a checksummed
// TCP download through the tunnel (server -> client), so each client decrypts and writes
// to its TUN and seals the ACKs. The C host runs once with the core's noble
// ChaCha20-Poly1305 and once with OpenSSL's through the Aead seam. Needs root.
//   npm run bench -- jsc, or node --import tsx bench/jsc.ts [--mb 32] [--runs 3]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../crypto/keys.js';
import { CLI, tcpTransfer, writeConf } from '../test/support/burrow.js';
import { startHost } from '../test/support/jsc-host.js';
import { createPair, type Pair, stopChild, uniqueName } from '../test/support/netns.js';
import { startWireguardGo } from '../test/support/wireguard-go.js';
import { median } from './lib.js';

const SERVER = '10.124.0.1';
const CLIENT = '10.124.0.2';
type Client = 'jsc-noble' | 'jsc-openssl' | 'node' | 'wireguard-go';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function keys() {
  const k = generatePrivateKey();
  return { priv: encodeKey(k), pub: encodeKey(publicKeyOf(k)) };
}

/** MB/s of each of `runs` downloads of `mb` MB through one tunnel, with `client` as the client. */
async function measure(client: Client, mb: number, runs: number): Promise<number[]> {
  const pair: Pair = await createPair({ prefix: 'bjb' });
  const dir = mkdtempSync(join(tmpdir(), 'burrow-bench-'));
  const stops: (() => Promise<unknown>)[] = [];
  try {
    const [s, c] = [keys(), keys()];
    const server = await startWireguardGo(pair.a, {
      ifname: uniqueName('wg'), privateKey: s.priv, listenPort: 51820, addresses: [`${SERVER}/24`],
      peers: [{ publicKey: c.pub, allowedIPs: [`${CLIENT}/32`] }],
    });
    stops.push(() => server.stop());
    const ifname = uniqueName('bj');
    const conf = writeConf(dir, ifname, [
      '[Interface]', `PrivateKey = ${c.priv}`, `Address = ${CLIENT}/24`, '',
      '[Peer]', `PublicKey = ${s.pub}`, `Endpoint = ${pair.aAddr4}:51820`, `AllowedIPs = ${SERVER}/32`,
    ]);
    if (client === 'jsc-noble' || client === 'jsc-openssl') {
      const host = await startHost(pair.b, conf, ifname, client === 'jsc-noble' ? 'noble' : 'openssl');
      stops.push(() => stopChild(host.child));
    } else if (client === 'node') {
      await pair.b.exec(process.execPath, [CLI, 'up', conf], { timeoutMs: 30_000 });
      stops.push(() => pair.b.exec(process.execPath, [CLI, 'down', ifname], { timeoutMs: 30_000 }));
    } else {
      const wg = await startWireguardGo(pair.b, {
        ifname, privateKey: c.priv, addresses: [`${CLIENT}/24`],
        peers: [{ publicKey: s.pub, endpoint: `${pair.aAddr4}:51820`, allowedIPs: [`${SERVER}/32`] }],
      });
      stops.push(() => wg.stop());
    }
    await pair.b.exec('ping', ['-n', '-c', '1', '-W', '5', SERVER], { timeoutMs: 10_000 });
    const rates: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t = await tcpTransfer(pair.a, pair.b, SERVER, mb * 1024 * 1024);
      if (t.receivedSha256 !== t.sentSha256) throw new Error(`${client}: checksum mismatch`);
      rates.push(t.bytes / 1024 / 1024 / (t.ms / 1000));
    }
    return rates;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await pair.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runJscBench(): Promise<void> {
  const mb = arg('mb', 32);
  const runs = arg('runs', 3);
  console.log(`TCP download through the tunnel, ${mb} MB, median of ${runs}; server: wireguard-go; 2 cores shared`);
  const results: [Client, number][] = [];
  for (const client of ['wireguard-go', 'node', 'jsc-openssl', 'jsc-noble'] as const) {
    const rates = await measure(client, mb, runs);
    const rate = median(rates);
    results.push([client, rate]);
    console.log(`  client ${client.padEnd(12)} ${rate.toFixed(1).padStart(7)} MB/s  (runs: ${rates.map((r) => r.toFixed(1)).join(', ')})`);
  }
  const wg = results[0]![1];
  console.log(`  ratio to wireguard-go: ${results.slice(1).map(([c, r]) => `${c} ${(r / wg).toFixed(2)}`).join(', ')}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await runJscBench();
