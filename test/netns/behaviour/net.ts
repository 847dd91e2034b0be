// What the behaviour suite does on the wire around the devices: pings, a packet capture
// of WireGuard datagrams (to replay them), and datagrams sent from an address of our
// choosing (to spoof them). Everything runs inside the test's namespaces.

import { readFileSync } from 'node:fs';
import { type Netns, waitForChildExit } from '../../support/netns.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface PingOptions {
  count?: number;
  /** Seconds between pings; default 0.2. */
  interval?: number;
  /** Payload bytes (ping's -s); default 56. */
  size?: number;
  /** Seconds to wait for the last answer; default 2. */
  wait?: number;
  /** Forbid fragmentation (-M do), so the packet crosses the tunnel at its full size. */
  dontFragment?: boolean;
}

/** How many of `count` pings from `ns` to `target` were answered (0 when ping fails). */
export async function ping(ns: Netns, target: string, o: PingOptions = {}): Promise<number> {
  const count = o.count ?? 3;
  const interval = o.interval ?? 0.2;
  const wait = o.wait ?? 2;
  const args = ['-n', '-q', '-c', String(count), '-i', String(interval), '-W', String(wait), '-s', String(o.size ?? 56)];
  if (o.dontFragment === true) args.push('-M', 'do');
  const out = await ns
    .exec('ping', [...args, target], { timeoutMs: 15_000 + count * (interval + wait) * 1000 })
    .catch((e: Error & { stdout?: string }) => e.stdout ?? '');
  return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
}

/** Pings once a second until one is answered, up to `attempts` times; true when one was. */
export async function pingUntilAnswered(ns: Netns, target: string, attempts: number): Promise<boolean> {
  for (let i = 0; i < attempts; i++) if ((await ping(ns, target, { count: 1, wait: 1 })) === 1) return true;
  return false;
}

/** Waits until `check` holds, polling; throws `what` after `ms`. */
export async function until(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

export interface Capture {
  /** Waits until `count` datagrams were captured; their UDP payloads, in order. */
  payloads(timeoutMs: number): Promise<Uint8Array[]>;
}

/**
 * Starts tcpdump on `ifname` in `ns` for the first `count` IPv4 UDP datagrams matching
 * `filter` (pcap syntax), written to `file`; resolves once it listens.
 */
export async function captureUdp(ns: Netns, ifname: string, filter: string, count: number, file: string): Promise<Capture> {
  const child = ns.spawn('tcpdump', ['-n', '-U', '-i', ifname, '-c', String(count), '-w', file, `ip and udp and (${filter})`]);
  await until(`tcpdump on ${ifname} in ${ns.name} to listen`, () => ns.outputOf(child).includes('listening on') || child.exitCode !== null);
  if (child.exitCode !== null) throw new Error(`tcpdump failed: ${ns.outputOf(child)}`);
  return {
    async payloads(timeoutMs) {
      if (!(await waitForChildExit(child, timeoutMs))) throw new Error(`tcpdump did not capture ${count} datagrams in ${timeoutMs} ms`);
      return udpPayloads(readFileSync(file));
    },
  };
}

/** The UDP payloads of a classic pcap file of Ethernet frames carrying IPv4. */
export function udpPayloads(pcap: Uint8Array): Uint8Array[] {
  const view = new DataView(pcap.buffer, pcap.byteOffset, pcap.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) throw new Error(`not a little-endian pcap file (magic ${magic.toString(16)})`);
  if (view.getUint32(20, true) !== 1) throw new Error(`pcap link type ${view.getUint32(20, true)}, expected Ethernet (1)`);
  const out: Uint8Array[] = [];
  for (let at = 24; at + 16 <= pcap.byteLength;) {
    const length = view.getUint32(at + 8, true);
    const frame = pcap.subarray(at + 16, at + 16 + length);
    at += 16 + length;
    const ip = frame.subarray(14);
    const headerLength = (ip[0]! & 0x0f) * 4;
    out.push(ip.subarray(headerLength + 8));
  }
  return out;
}

/** Sends each datagram from `fromHost:fromPort` to `toHost:toPort`, from inside `ns`. */
export async function sendDatagrams(ns: Netns, from: [string, number], to: [string, number], datagrams: readonly Uint8Array[]): Promise<void> {
  const code = `
    const [host, port, toHost, toPort, ...hex] = process.argv.slice(1);
    const s = require('node:dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
    s.bind(+port, host, async () => {
      for (const h of hex) await new Promise((r, j) => s.send(Buffer.from(h, 'hex'), +toPort, toHost, (e) => (e ? j(e) : r())));
      s.close();
    });`;
  const hex = datagrams.map((d) => Buffer.from(d).toString('hex'));
  await ns.exec(process.execPath, ['-e', code, from[0], String(from[1]), to[0], String(to[1]), ...hex]);
}

/**
 * A named nftables counter in `ns` for the packets `match` selects at `hook` (input or
 * output), in a table of its own that the returned scope-style cleanup deletes. Reads the
 * packet count.
 */
export async function nftCounter(ns: Netns, hook: 'input' | 'output', match: string): Promise<{ packets(): Promise<number>; remove(): Promise<void> }> {
  nftTables += 1;
  const table = `bh${process.pid}n${nftTables}`;
  await ns.exec('nft', ['-f', '-'], {
    input: `table inet ${table} {
      counter seen { }
      chain watch {
        type filter hook ${hook} priority 0; policy accept;
        ${match} counter name seen
      }
    }\n`,
  });
  return {
    async packets() {
      const out = JSON.parse(await ns.exec('nft', ['-j', 'list', 'counter', 'inet', table, 'seen'])) as { nftables: { counter?: { packets: number } }[] };
      return out.nftables.find((x) => x.counter !== undefined)!.counter!.packets;
    },
    async remove() {
      await ns.exec('nft', ['delete', 'table', 'inet', table]);
    },
  };
}
let nftTables = 0;
