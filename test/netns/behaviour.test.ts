// Issue 18's behaviour suite: what a WireGuard user sees with `wg` and `ip`, run against
// Burrow (`burrow-go IF`) and against Debian's `wireguard-go IF`, with the same test body
// for each (describe.each). A test that passes on wireguard-go and fails on Burrow is a
// Burrow bug; one that fails on wireguard-go is a wrong test.
//
// Each tunnel joins the device under test (namespace a, the implementation of the column)
// to a reference wireguard-go (namespace b). The other side is always the reference, not
// the same implementation: then the two columns differ only in the device under test, a
// failure is that device's, and Burrow cannot agree with itself on a wrong behaviour. Every
// check is placed where the device under test is the one that must behave (it follows the
// MTU, answers from the address written to, roams, checks sources, routes in a loop).
//
// Namespaces: one veth pair per column (MTU 9000, for the jumbo pings) serves the tests
// that change nothing outside the tunnel interfaces they start; tests that move outer
// addresses (multi-homing, roaming) or need a router (NAT) build their own. Devices are
// stopped, and private namespaces destroyed, at the end of each test, failed or not.
//
// At the end, the table behaviour × implementation is printed and written to
// test-results/behaviour-table.md.

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configDir, keys, type Keys, writeConf } from '../support/burrow.js';
import { type Netns, type NetnsScope, netnsSuite, type Pair, run, stopChild, waitForChildExit, withNetns } from '../support/netns.js';
import { requireHost } from '../support/privileges.js';
import { formatEndpoint, requirePeer } from '../support/wireguard-go.js';
import { type Device, type DeviceOptions, type Implementation, IMPLEMENTATIONS, startDevice } from './behaviour/device.js';
import { captureUdp, nftCounter, ping, pingUntilAnswered, sendDatagrams, until } from './behaviour/net.js';
import { BehaviourTable } from './behaviour/table.js';

const skip = requireHost(['ip', 'wg', 'wireguard-go', 'iperf3', 'nft', 'tcpdump', 'ss']) || requirePeer('debian-wireguard-go');

/** The other side of every tunnel. */
const REFERENCE: Implementation = 'wireguard-go';

const DUT_PORT = 51820;
const REF_PORT = 51821;
const IN4 = { dut: '192.0.2.1', ref: '192.0.2.2' } as const;
const IN6 = { dut: '2001:db8:c0de::1', ref: '2001:db8:c0de::2' } as const;

// Message sizes, from the WireGuard paper (§5.4.2, §5.4.3, §5.4.6).
const INITIATION_BYTES = 148;
const RESPONSE_BYTES = 92;
/** A transport data message: 16-byte header, the packet zero-padded to a multiple of 16, a 16-byte tag. */
const transportBytes = (packetBytes: number): number => 16 + Math.ceil(packetBytes / 16) * 16 + 16;
/** An echo request or reply as ping sends it by default (56 bytes of data) inside IPv4 and IPv6. */
const ECHO4_BYTES = 20 + 8 + 56;
const ECHO6_BYTES = 40 + 8 + 56;
/** IPv4 + UDP headers around a datagram sent through a tunnel. */
const UDP4_OVERHEAD = 20 + 8;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const table = new BehaviourTable(IMPLEMENTATIONS);
afterAll(() => {
  table.publish();
});

interface Tunnel {
  dut: Device;
  ref: Device;
  dutKeys: Keys;
  refKeys: Keys;
}

interface TunnelOptions {
  /** The reference knows the device's endpoint too (by default only the device knows the reference's). */
  refKnowsDut?: boolean;
  /** The device's allowed IPs for the reference; by default its two inner addresses. */
  dutAllowedIPs?: string[];
}

describe.skipIf(skip).each(IMPLEMENTATIONS)('%s', (impl) => {
  const suite = netnsSuite();
  let pair: Pair;
  beforeAll(async () => {
    pair = await suite.pair({ prefix: 'bh', mtu: 9000 });
  });

  /**
   * A test whose outcome goes to the table; `t` holds what it starts, undone at its end;
   * `note` adds what it measured to its cell.
   */
  const behaviour = (name: string, body: (t: NetnsScope, note: (text: string) => void) => Promise<void>, timeoutMs = 90_000): void => {
    it(name, async () => {
      let ok = false;
      const notes: string[] = [];
      try {
        await withNetns((t) => body(t, (text) => void notes.push(text)));
        ok = true;
      } finally {
        table.record(name, impl, ok, notes.join('; '));
      }
    }, timeoutMs);
  };

  /** A device stopped with the test. */
  const device = async (t: NetnsScope, ns: Netns, implementation: Implementation, o: DeviceOptions): Promise<Device> => {
    const d = await startDevice(ns, implementation, o);
    t.defer(() => d.stop());
    return d;
  };

  /** The device under test in a and the reference in b, over the outer IPv4 addresses of `p`. */
  const tunnel = async (t: NetnsScope, p: Pair, o: TunnelOptions = {}): Promise<Tunnel> => {
    const [dutKeys, refKeys] = [keys(), keys()];
    const ref = await device(t, p.b, REFERENCE, {
      privateKey: refKeys.priv,
      listenPort: REF_PORT,
      addresses: [`${IN4.ref}/24`, `${IN6.ref}/64`],
      peers: [{
        publicKey: dutKeys.pub,
        allowedIPs: [`${IN4.dut}/32`, `${IN6.dut}/128`],
        ...(o.refKnowsDut === true ? { endpoint: formatEndpoint(p.aAddr4, DUT_PORT) } : {}),
      }],
    });
    const dut = await device(t, p.a, impl, {
      privateKey: dutKeys.priv,
      listenPort: DUT_PORT,
      addresses: [`${IN4.dut}/24`, `${IN6.dut}/64`],
      peers: [{
        publicKey: refKeys.pub,
        endpoint: formatEndpoint(p.bAddr4, REF_PORT),
        allowedIPs: o.dutAllowedIPs ?? [`${IN4.ref}/32`, `${IN6.ref}/128`],
      }],
    });
    return { dut, ref, dutKeys, refKeys };
  };

  const counters = async (d: Device, publicKey: string): Promise<{ rxBytes: number; txBytes: number }> => {
    const { rxBytes, txBytes } = await d.peer(publicKey);
    return { rxBytes, txBytes };
  };

  // --- Issue 18, points 1 to 6 -------------------------------------------------------

  behaviour('1. MTU raised with `ip link` after start is followed (7,900-byte pings at MTU 8,000)', async (t) => {
    const tun = await tunnel(t, pair);
    expect(await ping(pair.a, IN4.ref)).toBe(3);
    for (const d of [tun.dut, tun.ref]) await d.ns.exec('ip', ['link', 'set', 'dev', d.ifname, 'mtu', '8000']);
    // -M do: no fragmentation, so each packet crosses at its full size, 7,928 and 7,948 bytes.
    expect(await ping(pair.a, IN4.ref, { size: 7900, dontFragment: true })).toBe(3);
    expect(await ping(pair.a, IN6.ref, { size: 7900, dontFragment: true })).toBe(3);
    expect(await ping(pair.b, IN4.dut, { size: 7900, dontFragment: true })).toBe(3);
  });

  behaviour('2. multi-homed: replies come from the address the peer wrote to (IPv4, IPv6), and from the kernel\'s choice once it goes (IPv6)', async (t) => {
    const p = await t.pair({ prefix: 'bhm' });
    const extra = { 4: '198.51.100.3', 6: '2001:db8:5100::3' } as const;
    await p.a.exec('ip', ['address', 'add', `${extra[4]}/24`, 'dev', p.aIf]);
    await p.a.exec('ip', ['address', 'add', `${extra[6]}/64`, 'dev', p.aIf, 'nodad']);
    const tun = await tunnel(t, p);
    const kernels = { 4: '', 6: '' };
    const writtenTo = { 4: '', 6: '' };
    for (const family of [4, 6] as const) {
      // The kernel's own choice of source towards the peer; the peer writes to the other address.
      const own = family === 4 ? p.aAddr4 : p.aAddr6;
      kernels[family] = /\bsrc (\S+)/.exec(await p.a.exec('ip', [`-${family}`, 'route', 'get', family === 4 ? p.bAddr4 : p.bAddr6]))?.[1] ?? '';
      expect([own, extra[family]]).toContain(kernels[family]);
      writtenTo[family] = kernels[family] === own ? extra[family] : own;
      const endpoint = formatEndpoint(writtenTo[family], DUT_PORT);
      await tun.ref.setPeer({ publicKey: tun.dutKeys.pub, endpoint, allowedIPs: [`${IN4.dut}/32`, `${IN6.dut}/128`] });
      expect(await ping(p.b, IN4.dut)).toBe(3);
      expect((await tun.ref.peer(tun.dutKeys.pub)).endpoint).toBe(endpoint);
      expect(await ping(p.a, IN4.ref)).toBe(3);
      expect((await tun.ref.peer(tun.dutKeys.pub)).endpoint).toBe(endpoint);
    }
    // "Sticky, but not too sticky": once that address is gone the device sends from the
    // kernel's choice. IPv6 only: Debian's wireguard-go keeps trying a vanished IPv4
    // source (this kernel refuses it with ENETUNREACH, where wireguard-go retries on EINVAL).
    await p.a.exec('ip', ['address', 'del', `${writtenTo[6]}/64`, 'dev', p.aIf]);
    expect(await pingUntilAnswered(p.a, IN4.ref, 5)).toBe(true);
    expect((await tun.ref.peer(tun.dutKeys.pub)).endpoint).toBe(formatEndpoint(kernels[6], DUT_PORT));
  });

  behaviour('3. a device without a private key: setconf and /dev/null accepted, (none), silent until a key is set', async (t, note) => {
    const [dutKeys, refKeys] = [keys(), keys()];
    const ref = await device(t, pair.b, REFERENCE, {
      privateKey: refKeys.priv,
      listenPort: REF_PORT,
      addresses: [`${IN4.ref}/24`],
      peers: [{ publicKey: dutKeys.pub, endpoint: formatEndpoint(pair.aAddr4, DUT_PORT), allowedIPs: [`${IN4.dut}/32`] }],
    });
    const dut = await device(t, pair.a, impl, { addresses: [`${IN4.dut}/24`] });
    const conf = writeConf(configDir(t), 'peers', [
      '[Interface]', `ListenPort = ${DUT_PORT}`, '',
      '[Peer]', `PublicKey = ${refKeys.pub}`, `Endpoint = ${formatEndpoint(pair.bAddr4, REF_PORT)}`, `AllowedIPs = ${IN4.ref}/32`,
    ]);
    await dut.wg(['setconf', dut.ifname, conf]);
    const privateKey = async (): Promise<string> => (await dut.wg(['show', dut.ifname, 'private-key'])).trim();
    expect(await privateKey()).toBe('(none)');
    // Handshake responses and initiations from the device's port that reach the reference's host.
    const fromDut = `ip saddr ${pair.aAddr4} udp sport ${DUT_PORT}`;
    const responses = await nftCounter(pair.b, 'input', `${fromDut} udp length ${RESPONSE_BYTES + 8}`);
    t.defer(() => responses.remove());
    const initiations = await nftCounter(pair.b, 'input', `${fromDut} udp length ${INITIATION_BYTES + 8}`);
    t.defer(() => initiations.remove());
    const handshake = async (): Promise<number> => (await ref.peer(dutKeys.pub)).latestHandshake;
    // No session either way, and no answer to the reference's initiations. Whether a
    // keyless device sends initiations is noted, not checked: the kernel sends none, but
    // Debian's and the latest wireguard-go send one made with an all-zero key.
    expect(await ping(pair.a, IN4.ref, { count: 2, wait: 1 })).toBe(0);
    expect(await ping(pair.b, IN4.dut, { count: 2, wait: 1 })).toBe(0);
    expect(await responses.packets()).toBe(0);
    expect(await handshake()).toBe(0);
    note(`${await initiations.packets()} initiations sent while keyless`);

    await dut.setPrivateKey(dutKeys.priv);
    expect((await dut.wg(['show', dut.ifname, 'public-key'])).trim()).toBe(dutKeys.pub);
    expect(await pingUntilAnswered(pair.a, IN4.ref, 10)).toBe(true);

    await dut.wg(['set', dut.ifname, 'private-key', '/dev/null']);
    expect(await privateKey()).toBe('(none)');
    const [responsesBefore, handshakeBefore] = [await responses.packets(), await handshake()];
    expect(await ping(pair.a, IN4.ref, { count: 2, wait: 1 })).toBe(0);
    expect(await responses.packets()).toBe(responsesBefore);
    expect(await handshake()).toBe(handshakeBefore);
  });

  behaviour('4. a private key is stored clamped: wg show and showconf print the clamped key', async (t) => {
    const raw = randomBytes(32);
    raw[0] = 0xff; // the low three bits that X25519 clears are set: base64 "/…"
    raw[31] = 0xff; // the top bit set and bit 254 too
    const given = raw.toString('base64');
    const clamped = Buffer.from(raw);
    clamped[0] = clamped[0]! & 248;
    clamped[31] = (clamped[31]! & 127) | 64;
    const expected = clamped.toString('base64');
    expect([given[0], expected[0]]).toEqual(['/', '+']);
    const dut = await device(t, pair.a, impl, { privateKey: given });
    expect((await dut.wg(['show', dut.ifname, 'private-key'])).trim()).toBe(expected);
    expect(await dut.wg(['showconf', dut.ifname])).toContain(`PrivateKey = ${expected}\n`);
    expect((await dut.wg(['show', dut.ifname, 'public-key'])).trim()).toBe((await run('wg', ['pubkey'], { input: `${given}\n` })).trim());
  });

  behaviour('5. one wg setconf with a peer and 130,560 allowed IPs; wg show allowed-ips lists them all', async (t) => {
    const dut = await device(t, pair.a, impl, {});
    const peer = keys();
    // As WireGuard's selftest: 255 × 256 IPv4 /16s and as many IPv6 /128s, written as `wg` prints them.
    const prefixes: string[] = [];
    for (let i = 1; i <= 255; i++) {
      for (let j = 0; j <= 255; j++) prefixes.push(`${i}.${j}.0.0/16`, `2001:db8::${i.toString(16)}:${j.toString(16)}/128`);
    }
    expect(prefixes).toHaveLength(130_560);
    const conf = writeConf(configDir(t), 'bulk', [
      '[Interface]', `PrivateKey = ${keys().priv}`, '', '[Peer]', `PublicKey = ${peer.pub}`, ...prefixes.map((x) => `AllowedIPs = ${x}`),
    ]);
    await dut.wg(['setconf', dut.ifname, conf], 120_000);
    const [line, ...rest] = (await dut.wg(['show', dut.ifname, 'allowed-ips'], 60_000)).trim().split('\n');
    expect(rest).toEqual([]);
    const [publicKey, list] = line!.split('\t');
    expect(publicKey).toBe(peer.pub);
    const listed = new Set(list!.split(' '));
    expect(listed.size).toBe(prefixes.length);
    expect(prefixes.filter((x) => !listed.has(x)).slice(0, 5)).toEqual([]);
  }, 180_000);

  behaviour('6. ip link del: the daemon exits and removes its control socket', async (t) => {
    const dut = await device(t, pair.a, impl, { privateKey: keys().priv });
    await pair.a.exec('ip', ['link', 'del', 'dev', dut.ifname]);
    expect(await waitForChildExit(dut.child, 15_000)).toBe(true);
    await until(`${dut.socketPath} to be removed`, () => !existsSync(dut.socketPath), 5_000);
  });

  // --- The rest of the list ----------------------------------------------------

  behaviour('transfer accounting exact to the byte after ten pings (IPv4, then IPv6, handshake included)', async (t) => {
    const tun = await tunnel(t, pair);
    // The device initiates: it sends the initiation and receives the response. Checked
    // within the 10 s after which an idle side would send a keepalive.
    expect(await ping(pair.a, IN4.ref, { count: 10 })).toBe(10);
    let data = 10 * transportBytes(ECHO4_BYTES);
    expect(await counters(tun.dut, tun.refKeys.pub)).toEqual({ rxBytes: RESPONSE_BYTES + data, txBytes: INITIATION_BYTES + data });
    expect(await counters(tun.ref, tun.dutKeys.pub)).toEqual({ rxBytes: INITIATION_BYTES + data, txBytes: RESPONSE_BYTES + data });
    expect(await ping(pair.a, IN6.ref, { count: 10 })).toBe(10);
    data += 10 * transportBytes(ECHO6_BYTES);
    expect(await counters(tun.dut, tun.refKeys.pub)).toEqual({ rxBytes: RESPONSE_BYTES + data, txBytes: INITIATION_BYTES + data });
    expect(await counters(tun.ref, tun.dutKeys.pub)).toEqual({ rxBytes: INITIATION_BYTES + data, txBytes: RESPONSE_BYTES + data });
  });

  behaviour('IPv4 and IPv6 inside, over IPv6 and IPv4 outside', async (t) => {
    const tun = await tunnel(t, pair);
    for (const [dutOuter, refOuter] of [[pair.aAddr6, pair.bAddr6], [pair.aAddr4, pair.bAddr4]] as const) {
      await tun.dut.setPeer({ publicKey: tun.refKeys.pub, endpoint: formatEndpoint(refOuter, REF_PORT), allowedIPs: [`${IN4.ref}/32`, `${IN6.ref}/128`] });
      expect(await ping(pair.a, IN4.ref)).toBe(3);
      expect(await ping(pair.a, IN6.ref)).toBe(3);
      expect((await tun.ref.peer(tun.dutKeys.pub)).endpoint).toBe(formatEndpoint(dutOuter, DUT_PORT));
    }
  });

  behaviour('TCP (IPv4 inside) and UDP (IPv6 inside) iperf3 for 2 s', async (t, note) => {
    await tunnel(t, pair);
    const server = pair.b.spawn('iperf3', ['-s', '-p', '5201']);
    t.defer(() => stopChild(server));
    await until('iperf3 to listen', async () => (await pair.b.exec('ss', ['-Hltn', 'sport = :5201'])).includes('5201'));
    const iperf = async (args: string[]): Promise<{ end: Record<string, { bytes: number; bits_per_second: number; packets?: number; lost_percent?: number }> }> =>
      JSON.parse(await pair.a.exec('iperf3', ['-p', '5201', '-t', '2', '-J', ...args], { timeoutMs: 60_000 })) as never;
    const tcp = await iperf(['-c', IN4.ref]);
    expect(tcp.end.sum_received!.bytes).toBeGreaterThan(0);
    const udp = await iperf(['-c', IN6.ref, '-u', '-b', '10M']);
    expect(udp.end.sum!.packets).toBeGreaterThan(0);
    // Loose: a datagram lost now and then on a busy machine is no fault of the tunnel.
    expect(udp.end.sum!.lost_percent).toBeLessThan(50);
    note(`TCP ${(tcp.end.sum_received!.bits_per_second / 1e6).toFixed(0)} Mbit/s, UDP 10 Mbit/s lost ${udp.end.sum!.lost_percent!.toFixed(1)}%`);
  });

  behaviour('roaming to a new address and port follows authenticated packets only (replays and forgeries do not move it)', async (t) => {
    const p = await t.pair({ prefix: 'bhr' });
    const [dutKeys, refKeys] = [keys(), keys()];
    const dut = await device(t, p.a, impl, {
      privateKey: dutKeys.priv, listenPort: DUT_PORT, addresses: [`${IN4.dut}/24`], peers: [{ publicKey: refKeys.pub, allowedIPs: [`${IN4.ref}/32`] }],
    });
    const ref = await device(t, p.b, REFERENCE, {
      privateKey: refKeys.priv, listenPort: REF_PORT, addresses: [`${IN4.ref}/24`],
      peers: [{ publicKey: dutKeys.pub, endpoint: formatEndpoint(p.aAddr4, DUT_PORT), allowedIPs: [`${IN4.dut}/32`] }],
    });
    const capture = await captureUdp(p.b, p.bIf, `dst host ${p.aAddr4} and dst port ${DUT_PORT}`, 2, join(configDir(t), 'ref.pcap'));
    expect(await ping(p.b, IN4.dut)).toBe(3);
    const [initiation, data] = await capture.payloads(10_000);
    expect([initiation![0], initiation!.length, data![0]]).toEqual([1, INITIATION_BYTES, 4]);
    const home = formatEndpoint(p.bAddr4, REF_PORT);
    expect((await dut.peer(refKeys.pub)).endpoint).toBe(home);

    // From a new address and port: the initiation replayed, the first data packet replayed, and a forgery of it.
    const spoofer = '198.51.100.5';
    await p.b.exec('ip', ['address', 'add', `${spoofer}/24`, 'dev', p.bIf]);
    const forged = Uint8Array.from(data!);
    forged[forged.length - 1]! ^= 1;
    const rxBefore = (await dut.peer(refKeys.pub)).rxBytes;
    await sendDatagrams(p.b, [spoofer, 40_000], [p.aAddr4, DUT_PORT], [initiation!, data!, forged]);
    await sleep(500);
    expect((await dut.peer(refKeys.pub)).endpoint).toBe(home);
    expect((await dut.peer(refKeys.pub)).rxBytes).toBe(rxBefore);
    expect(await ping(p.a, IN4.ref)).toBe(3);
    expect((await dut.peer(refKeys.pub)).endpoint).toBe(home);

    // The reference really moves, to a new address and a new port.
    await p.b.exec('ip', ['address', 'del', `${spoofer}/24`, 'dev', p.bIf]);
    await p.b.exec('ip', ['address', 'del', `${p.bAddr4}/24`, 'dev', p.bIf]);
    await p.b.exec('ip', ['address', 'add', '198.51.100.4/24', 'dev', p.bIf]);
    await ref.wg(['set', ref.ifname, 'listen-port', '51841']);
    expect(await pingUntilAnswered(p.b, IN4.dut, 5)).toBe(true);
    expect((await dut.peer(refKeys.pub)).endpoint).toBe('198.51.100.4:51841');
    expect(await ping(p.a, IN4.ref)).toBe(3);
  });

  behaviour('allowed-IPs source check: a more specific prefix for another peer takes the source away', async (t) => {
    const tun = await tunnel(t, pair, { refKnowsDut: true, dutAllowedIPs: ['192.0.2.0/24', '2001:db8:c0de::/64'] });
    expect(await ping(pair.b, IN4.dut)).toBe(3);
    expect(await ping(pair.b, IN6.dut)).toBe(3);
    const other = keys();
    await tun.dut.setPeer({ publicKey: other.pub, allowedIPs: [`${IN4.ref}/32`, `${IN6.ref}/128`] });
    const delivered = (await tun.dut.linkStats()).rxPackets;
    expect(await ping(pair.b, IN4.dut, { count: 2, wait: 1 })).toBe(0);
    expect(await ping(pair.b, IN6.dut, { count: 2, wait: 1 })).toBe(0);
    // Decrypted, but from a source that now belongs to another peer: nothing reached the interface.
    expect((await tun.dut.linkStats()).rxPackets).toBe(delivered);
    expect((await tun.dut.peer(tun.refKeys.pub)).allowedIPs.sort()).toEqual(['192.0.2.0/24', '2001:db8:c0de::/64']);
    await tun.dut.wg(['set', tun.dut.ifname, 'peer', other.pub, 'remove']);
    expect(await ping(pair.b, IN4.dut)).toBe(3);
    expect(await ping(pair.b, IN6.dut)).toBe(3);
  });

  behaviour('a private-key change is followed by an immediate handshake with the new key', async (t) => {
    const tun = await tunnel(t, pair);
    expect(await ping(pair.a, IN4.ref)).toBe(3);
    const fresh = keys();
    await tun.dut.setPrivateKey(fresh.priv);
    await tun.ref.wg(['set', tun.ref.ifname, 'peer', tun.dutKeys.pub, 'remove']);
    await tun.ref.setPeer({ publicKey: fresh.pub, allowedIPs: [`${IN4.dut}/32`, `${IN6.dut}/128`] });
    expect((await tun.dut.wg(['show', tun.dut.ifname, 'public-key'])).trim()).toBe(fresh.pub);
    // The old session is gone with the old key: the first packet starts a handshake at
    // once, well before a stale session would time out (Keepalive-Timeout + Rekey-Timeout, 15 s).
    expect(await ping(pair.a, IN4.ref, { count: 1, wait: 4 })).toBe(1);
    expect((await tun.ref.peer(fresh.pub)).latestHandshake).toBeGreaterThan(0);
  });

  behaviour('wg addconf adds a peer; wg syncconf removes it and leaves the unchanged peer its session', async (t) => {
    const tun = await tunnel(t, pair);
    expect(await ping(pair.a, IN4.ref)).toBe(3);
    const handshake = (await tun.ref.peer(tun.dutKeys.pub)).latestHandshake;
    const extra = keys();
    const dir = configDir(t);
    await tun.dut.wg(['addconf', tun.dut.ifname, writeConf(dir, 'add', ['[Peer]', `PublicKey = ${extra.pub}`, 'AllowedIPs = 198.18.0.0/15'])]);
    expect((await tun.dut.show()).peers.map((x) => [x.publicKey, x.allowedIPs])).toEqual([
      [tun.refKeys.pub, [`${IN4.ref}/32`, `${IN6.ref}/128`]],
      [extra.pub, ['198.18.0.0/15']],
    ]);
    await tun.dut.wg(['syncconf', tun.dut.ifname, writeConf(dir, 'sync', [
      '[Interface]', `PrivateKey = ${tun.dutKeys.priv}`, `ListenPort = ${DUT_PORT}`, '',
      '[Peer]', `PublicKey = ${tun.refKeys.pub}`, `Endpoint = ${formatEndpoint(pair.bAddr4, REF_PORT)}`, `AllowedIPs = ${IN4.ref}/32, ${IN6.ref}/128`,
    ])]);
    expect((await tun.dut.show()).peers.map((x) => x.publicKey)).toEqual([tun.refKeys.pub]);
    // The same key and peer: the session goes on, with no new handshake.
    expect(await ping(pair.a, IN4.ref)).toBe(3);
    expect((await tun.ref.peer(tun.dutKeys.pub)).latestHandshake).toBe(handshake);
  });

  behaviour('fwmark: set and shown with wg, carried by every outer datagram, and off again', async (t) => {
    const tun = await tunnel(t, pair);
    const marked = await nftCounter(pair.a, 'output', `meta mark 0x00001234 udp dport ${REF_PORT}`);
    t.defer(() => marked.remove());
    const all = await nftCounter(pair.a, 'output', `udp dport ${REF_PORT}`);
    t.defer(() => all.remove());
    await tun.dut.wg(['set', tun.dut.ifname, 'fwmark', '0x1234']);
    expect((await tun.dut.wg(['show', tun.dut.ifname, 'fwmark'])).trim()).toBe('0x1234');
    expect(await ping(pair.a, IN4.ref)).toBe(3);
    const sent = await all.packets();
    expect(sent).toBeGreaterThanOrEqual(4); // the initiation and three pings at least
    expect(await marked.packets()).toBe(sent);
    await tun.dut.wg(['set', tun.dut.ifname, 'fwmark', '0']);
    expect((await tun.dut.wg(['show', tun.dut.ifname, 'fwmark'])).trim()).toBe('off');
    expect(await ping(pair.a, IN4.ref)).toBe(3);
    expect(await all.packets()).toBeGreaterThanOrEqual(sent + 3);
    expect(await marked.packets()).toBe(sent);
  });

  behaviour('a peer with a low-order public key is accepted, and never sent a handshake', async (t) => {
    // A point of order 8 on Curve25519: every X25519 result with it is all zeros.
    const lowOrder = Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex').toString('base64');
    const dut = await device(t, pair.a, impl, { privateKey: keys().priv, listenPort: DUT_PORT, addresses: [`${IN4.dut}/24`] });
    await dut.setPeer({ publicKey: lowOrder, endpoint: formatEndpoint(pair.bAddr4, REF_PORT), allowedIPs: [`${IN4.ref}/32`] });
    expect((await dut.show()).peers.map((x) => [x.publicKey, x.endpoint])).toEqual([[lowOrder, formatEndpoint(pair.bAddr4, REF_PORT)]]);
    const sent = await nftCounter(pair.a, 'output', `ip daddr ${pair.bAddr4} udp dport ${REF_PORT}`);
    t.defer(() => sent.remove());
    expect(await ping(pair.a, IN4.ref, { count: 2, wait: 1 })).toBe(0);
    expect(await sent.packets()).toBe(0);
  });

  behaviour('a tunnel routed through another tunnel', async (t) => {
    const outer = await tunnel(t, pair);
    const [k1, k2] = [keys(), keys()];
    const INNER = { dut: '203.0.113.1', ref: '203.0.113.2' };
    // The outer tunnel's MTU (1420) less WireGuard's IPv6 overhead (80).
    const mtu = 1340;
    const ref2 = await device(t, pair.b, REFERENCE, {
      privateKey: k2.priv, listenPort: REF_PORT + 10, addresses: [`${INNER.ref}/24`], mtu,
      peers: [{ publicKey: k1.pub, allowedIPs: [`${INNER.dut}/32`] }],
    });
    await device(t, pair.a, impl, {
      privateKey: k1.priv, listenPort: DUT_PORT + 10, addresses: [`${INNER.dut}/24`], mtu,
      peers: [{ publicKey: k2.pub, endpoint: formatEndpoint(IN4.ref, REF_PORT + 10), allowedIPs: [`${INNER.ref}/32`] }],
    });
    expect(await ping(pair.a, INNER.ref)).toBe(3);
    // The reference saw the inner tunnel's datagrams come out of the outer one.
    expect((await ref2.peer(k1.pub)).endpoint).toBe(formatEndpoint(IN4.dut, DUT_PORT + 10));
    const carried = (await outer.dut.peer(outer.refKeys.pub)).txBytes;
    expect(carried).toBeGreaterThanOrEqual(3 * transportBytes(UDP4_OVERHEAD + transportBytes(ECHO4_BYTES)));
  });

  behaviour('NAT between the peers: a persistent keepalive keeps the mapping alive', async (t) => {
    const [c, r, s] = (await Promise.all(['bhc', 'bhn', 'bhs'].map((x) => t.create(x)))) as [Netns, Netns, Netns];
    const link = async (x: Netns, xIf: string, xAddr: string, y: Netns, yIf: string, yAddr: string): Promise<void> => {
      await x.exec('ip', ['link', 'add', xIf, 'type', 'veth', 'peer', 'name', yIf, 'netns', y.name]);
      for (const [ns, ifname, addr] of [[x, xIf, xAddr], [y, yIf, yAddr]] as const) {
        await ns.exec('ip', ['address', 'add', addr, 'dev', ifname]);
        await ns.exec('ip', ['link', 'set', ifname, 'up']);
      }
    };
    await link(c, 'up0', '198.51.100.2/24', r, 'rc', '198.51.100.1/24');
    await link(r, 'rs', '203.0.113.1/24', s, 'up0', '203.0.113.2/24');
    await c.exec('ip', ['route', 'add', 'default', 'via', '198.51.100.1']);
    await r.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    await r.exec('nft', ['-f', '-'], {
      input: 'table ip nat {\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname "rs" masquerade\n  }\n}\n',
    });
    // The router forgets an idle UDP mapping after this many seconds.
    const conntrackTimeout = 3;
    await r.exec('sysctl', ['-q', '-w', `net.netfilter.nf_conntrack_udp_timeout=${conntrackTimeout}`, `net.netfilter.nf_conntrack_udp_timeout_stream=${conntrackTimeout}`]);
    const [dutKeys, refKeys] = [keys(), keys()];
    const ref = await device(t, s, REFERENCE, {
      privateKey: refKeys.priv, listenPort: REF_PORT, addresses: [`${IN4.ref}/24`], peers: [{ publicKey: dutKeys.pub, allowedIPs: [`${IN4.dut}/32`] }],
    });
    const refPeer = { publicKey: refKeys.pub, endpoint: formatEndpoint('203.0.113.2', REF_PORT), allowedIPs: [`${IN4.ref}/32`] };
    const dut = await device(t, c, impl, { privateKey: dutKeys.priv, listenPort: DUT_PORT, addresses: [`${IN4.dut}/24`], peers: [refPeer] });
    expect(await ping(c, IN4.ref)).toBe(3);
    expect((await ref.peer(dutKeys.pub)).endpoint).toMatch(/^203\.0\.113\.1:\d+$/);
    // Idle past the router's timeout (and short of the 10 s passive keepalive): the server can no longer reach the client.
    await sleep((conntrackTimeout + 2) * 1000);
    expect(await ping(s, IN4.dut, { count: 1, wait: 1 })).toBe(0);
    // With a keepalive every second the mapping stays, however long the tunnel is idle.
    await dut.setPeer({ ...refPeer, persistentKeepalive: 1 });
    expect((await dut.peer(refKeys.pub)).persistentKeepalive).toBe(1);
    await sleep(2 * (conntrackTimeout + 1) * 1000);
    expect(await ping(s, IN4.dut, { count: 2, wait: 2 })).toBe(2);
  });

  behaviour('a routing loop (endpoint reachable only through its own tunnel): bounded bytes, no core pinned', async (t, note) => {
    const [dutKeys, peer] = [keys(), keys()];
    const dut = await device(t, pair.a, impl, {
      privateKey: dutKeys.priv, listenPort: DUT_PORT, addresses: [`${IN4.dut}/24`],
      peers: [{ publicKey: peer.pub, endpoint: formatEndpoint(IN4.ref, REF_PORT), allowedIPs: ['192.0.2.0/24'] }],
    });
    expect(await pair.a.exec('ip', ['-4', 'route', 'get', IN4.ref])).toContain(`dev ${dut.ifname}`);
    const [cpu0, link0, t0] = [dut.cpuSeconds(), await dut.linkStats(), Date.now()];
    expect(await ping(pair.a, IN4.ref, { count: 15, wait: 1 })).toBe(0);
    await sleep(2_000);
    const windowS = (Date.now() - t0) / 1000;
    const cpuS = dut.cpuSeconds() - cpu0;
    const link1 = await dut.linkStats();
    expect(dut.running()).toBe(true);
    // Everything the kernel routed into the tunnel in the window: the 15 pings and what
    // the daemon's own datagrams added by looping. A loop that feeds itself sends
    // megabytes a second; the pings and a few handshake initiations are about 2 KiB.
    const looped = link1.txBytes - link0.txBytes;
    note(`${(looped / 1024).toFixed(1)} KiB routed into the tunnel, ${cpuS.toFixed(2)} s CPU in ${windowS.toFixed(1)} s`);
    expect(looped).toBeLessThan(64 * 1024);
    expect(cpuS).toBeLessThan(windowS / 2);
  });
});
