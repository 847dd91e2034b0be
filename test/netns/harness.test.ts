// The namespace harness, proven on the reference: two hosts joined by a veth link, each
// running wireguard-go, ping each other through the tunnel over IPv4 and IPv6. Every
// interop test and benchmark builds on this, and measures Burrow against this pair.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeKey, encodeKey, publicKeyOf } from '../../crypto/keys.js';
import { listNetns, MAX_IFNAME_LENGTH, type Netns, netnsSuite, type Pair, uniqueName, withNetns } from '../support/netns.js';
import { requireHost } from '../support/privileges.js';
import { formatEndpoint, startWireguardGo, type WireguardGo, wgGenKeyPair, wgGenPsk } from '../support/wireguard-go.js';

const PORT_A = 51820;
const PORT_B = 51821;
// Tunnel addresses: TEST-NET-1 and a documentation /64, apart from the veth's TEST-NET-2.
const TUN_A4 = '192.0.2.1';
const TUN_B4 = '192.0.2.2';
const TUN_A6 = '2001:db8:c0de::1';
const TUN_B6 = '2001:db8:c0de::2';

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

/** `ping -c 3` bounded in count and time; returns how many replies came back. */
async function ping(ns: Netns, target: string): Promise<number> {
  const out = await ns.exec('ping', ['-n', '-c', '3', '-i', '0.2', '-W', '1', target], { timeoutMs: 10_000 });
  const received = /(\d+) received/.exec(out);
  return Number(received?.[1] ?? 0);
}

describe('uniqueName', () => {
  it('gives short names, unique within the run and tagged with the pid', () => {
    const names = Array.from({ length: 200 }, () => uniqueName('wg'));
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) {
      expect(name.length).toBeLessThanOrEqual(MAX_IFNAME_LENGTH);
      expect(name).toMatch(new RegExp(`^wg-${process.pid.toString(36)}-[0-9a-z]+$`));
    }
    expect(() => uniqueName('toolong')).toThrow(RangeError);
    expect(() => uniqueName('Bad')).toThrow(RangeError);
  });
});

describe.skipIf(requireHost(['ip', 'wg', 'wireguard-go', 'ping']))('netns harness with wireguard-go on both ends', () => {
  const suite = netnsSuite();
  let pair: Pair;
  let wgA: WireguardGo;
  let wgB: WireguardGo;
  let privateKeyA: string;

  it('creates two namespaces joined by a veth pair, with a private resolv.conf', async () => {
    pair = await suite.pair();
    const names = await listNetns();
    expect(names).toContain(pair.a.name);
    expect(names).toContain(pair.b.name);
    // /etc/resolv.conf inside is the namespace's own file, not the host's.
    expect(await pair.a.exec('cat', ['/etc/resolv.conf'])).toContain(pair.a.name);
    expect(await ping(pair.a, pair.bAddr4)).toBe(3);
    expect(await ping(pair.b, pair.aAddr6)).toBe(3);
  });

  it('starts wireguard-go in each and configures them as peers', async () => {
    const keysA = await wgGenKeyPair();
    const keysB = await wgGenKeyPair();
    const psk = await wgGenPsk();
    privateKeyA = keysA.privateKey;
    // A knows where B is; B learns A's endpoint from A's handshake initiation.
    wgA = await startWireguardGo(pair.a, {
      ifname: uniqueName('wg'),
      privateKey: keysA.privateKey,
      listenPort: PORT_A,
      addresses: [`${TUN_A4}/24`, `${TUN_A6}/64`],
      peers: [
        {
          publicKey: keysB.publicKey,
          presharedKey: psk,
          endpoint: formatEndpoint(pair.bAddr4, PORT_B),
          allowedIPs: [`${TUN_B4}/32`, `${TUN_B6}/128`],
        },
      ],
    });
    wgB = await startWireguardGo(pair.b, {
      ifname: uniqueName('wg'),
      privateKey: keysB.privateKey,
      listenPort: PORT_B,
      addresses: [`${TUN_B4}/24`, `${TUN_B6}/64`],
      peers: [{ publicKey: keysA.publicKey, presharedKey: psk, allowedIPs: [`${TUN_A4}/32`, `${TUN_A6}/128`] }],
    });
    expect(wgA.publicKey).toBe(keysA.publicKey);
    expect(wgB.publicKey).toBe(keysB.publicKey);
    expect(wgA.listenPort).toBe(PORT_A);
    const a = await wgA.show();
    expect(a.peers).toHaveLength(1);
    expect(a.peers[0]).toMatchObject({
      publicKey: keysB.publicKey,
      hasPresharedKey: true,
      endpoint: `${pair.bAddr4}:${PORT_B}`,
      latestHandshake: 0,
    });
    expect(a.peers[0]?.allowedIPs.sort()).toEqual([`${TUN_B4}/32`, `${TUN_B6}/128`].sort());
  });

  it("derives the same public key as Burrow's crypto/keys.ts", () => {
    expect(encodeKey(publicKeyOf(decodeKey(privateKeyA)))).toBe(wgA.publicKey);
  });

  it('pings across the tunnel over IPv4 and IPv6, in both directions', async () => {
    expect(await ping(pair.a, TUN_B4)).toBe(3);
    expect(await ping(pair.a, TUN_B6)).toBe(3);
    expect(await ping(pair.b, TUN_A4)).toBe(3);
    expect(await ping(pair.b, TUN_A6)).toBe(3);
  });

  it('reports a recent handshake, the learned endpoint and traffic in wg show dump', async () => {
    const now = Date.now() / 1000;
    const [peerOfA] = (await wgA.show()).peers;
    const [peerOfB] = (await wgB.show()).peers;
    for (const peer of [peerOfA, peerOfB]) {
      expect(peer).toBeDefined();
      expect(peer!.latestHandshake).toBeGreaterThan(now - 30);
      expect(peer!.latestHandshake).toBeLessThanOrEqual(now + 1);
      // Each side sent and received 12 ICMP packets of 84 (IPv4) or 104 (IPv6) bytes,
      // each grown by 32 bytes of WireGuard framing, besides the handshake.
      expect(peer!.rxBytes).toBeGreaterThan(500);
      expect(peer!.txBytes).toBeGreaterThan(500);
    }
    expect(peerOfB!.endpoint).toBe(`${pair.aAddr4}:${PORT_A}`);
  });

  it('tears down: no namespace, no wireguard-go process, no control socket left', async () => {
    const pids = [wgA.pid, wgB.pid];
    const sockets = [wgA.socketPath, wgB.socketPath];
    await wgA.stop();
    expect(gone(wgA.pid)).toBe(true);
    // B is left running: destroying its namespace must stop it.
    await pair.destroy();
    const names = await listNetns();
    expect(names).not.toContain(pair.a.name);
    expect(names).not.toContain(pair.b.name);
    for (const pid of pids) expect(gone(pid)).toBe(true);
    for (const path of [...sockets, pair.a.etcDir, pair.b.etcDir]) expect(existsSync(path)).toBe(false);
  });

  it('withNetns tears down even when the test body throws', async () => {
    let name = '';
    let pid = 0;
    await expect(
      withNetns(async (scope) => {
        const ns = await scope.create();
        name = ns.name;
        pid = ns.spawn('sleep', ['30']).pid!;
        throw new Error('the test failed');
      }),
    ).rejects.toThrow('the test failed');
    expect(await listNetns()).not.toContain(name);
    expect(gone(pid)).toBe(true);
  });
});
