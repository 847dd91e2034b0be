// The interface's MTU, followed while running (issue 18, item 1): burrow-go against the
// latest wireguard-go, configured with `wg` and `ip` only, the MTU changed with `ip link`
// after both started (as wg-quick does). Jumbo pings cross in both directions, IPv4 and
// IPv6; the padding follows the MTU up and down, so each side sends a datagram of the
// same size for the same packet (wg show transfer); and an MTU above what one link
// frame carries works through outer fragmentation.
import { describe, expect, it } from 'vitest';
import { configDir, keys, writeConf } from '../support/burrow.js';
import { type Netns, netnsSuite, type Pair, uniqueName } from '../support/netns.js';
import { requireHost } from '../support/privileges.js';
import { pingCount, startUserspace, wg } from '../support/userspace.js';
import { requirePeer, startPeer } from '../support/wireguard-go.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sides {
  pair: Pair;
  gIf: string;
  bIf: string;
}

/** a: the latest wireguard-go (192.0.2.1); b: burrow-go (192.0.2.2), started keyless and set with `wg set`. */
async function sides(scope: ReturnType<typeof netnsSuite>): Promise<Sides> {
  const pair = await scope.pair({ prefix: 'mtu', mtu: 9000 });
  const dir = configDir(scope);
  const [gk, bk] = [keys(), keys()];
  const gIf = uniqueName('mg');
  const bIf = uniqueName('mb');
  const g = await startPeer(pair.a, {
    implementation: 'latest-wireguard-go', ifname: gIf, privateKey: gk.priv, listenPort: 51820, addresses: ['192.0.2.1/24', '2001:db8:c0de::1/64'],
    peers: [{ publicKey: bk.pub, endpoint: `${pair.bAddr4}:51820`, allowedIPs: ['192.0.2.2/32', '2001:db8:c0de::2/128'] }],
  });
  scope.defer(() => g.stop());
  await startUserspace(pair.b, 'burrow-go', bIf);
  const keyFile = writeConf(dir, 'bkey', [bk.priv]);
  expect(await wg(pair.b, ['set', bIf, 'private-key', keyFile, 'listen-port', '51820', 'peer', gk.pub, 'endpoint', `${pair.aAddr4}:51820`, 'allowed-ips', '192.0.2.1/32,2001:db8:c0de::1/128'])).toBe('');
  await pair.b.exec('ip', ['addr', 'add', '192.0.2.2/24', 'dev', bIf]);
  await pair.b.exec('ip', ['addr', 'add', '2001:db8:c0de::2/64', 'dev', bIf, 'nodad']);
  await pair.b.exec('ip', ['link', 'set', bIf, 'up']);
  return { pair, gIf, bIf };
}

async function setMtu(s: Sides, mtu: number): Promise<void> {
  await s.pair.a.exec('ip', ['link', 'set', 'dev', s.gIf, 'mtu', String(mtu)]);
  await s.pair.b.exec('ip', ['link', 'set', 'dev', s.bIf, 'mtu', String(mtu)]);
}

async function txBytes(ns: Netns, ifname: string): Promise<number> {
  return Number((await wg(ns, ['show', ifname, 'transfer'])).split('\t')[2]);
}

/**
 * Bytes each side sent for one echo of `payload` bytes from a (wireguard-go) to b
 * (Burrow): the request is wireguard-go's datagram, the reply Burrow's, for packets of
 * the same size.
 */
async function echoDatagrams(s: Sides, target: string, payload: number): Promise<{ wireguardGo: number; burrow: number }> {
  const [g0, b0] = [await txBytes(s.pair.a, s.gIf), await txBytes(s.pair.b, s.bIf)];
  expect(await pingCount(s.pair.a, target, 1, ['-s', String(payload)])).toBe(1);
  return { wireguardGo: (await txBytes(s.pair.a, s.gIf)) - g0, burrow: (await txBytes(s.pair.b, s.bIf)) - b0 };
}

describe.skipIf(requireHost(['ip', 'wg', 'ping']) || requirePeer('latest-wireguard-go'))('the MTU, followed while running, against wireguard-go', () => {
  const scope = netnsSuite();

  it('burrow-go starts with wireguard-go\'s MTU, 1420', async () => {
    const ns = await scope.create('mtu');
    const ifname = uniqueName('m0');
    await startUserspace(ns, 'burrow-go', ifname);
    expect(await ns.exec('cat', [`/sys/class/net/${ifname}/mtu`])).toBe('1420\n');
  }, 60_000);

  it('MTU 8000 on both sides after start: 7,900-byte pings cross both ways, IPv4 and IPv6; padding follows the MTU up and down', async () => {
    const s = await sides(scope);
    expect(await pingCount(s.pair.a, '192.0.2.2', 2)).toBeGreaterThanOrEqual(1); // handshake at 1420
    await setMtu(s, 8000);
    for (const target of ['192.0.2.2', '2001:db8:c0de::2']) expect(await pingCount(s.pair.a, target, 3, ['-s', '7900', '-M', 'do'])).toBe(3);
    for (const target of ['192.0.2.1', '2001:db8:c0de::1']) expect(await pingCount(s.pair.b, target, 3, ['-s', '7900', '-M', 'do'])).toBe(3);
    // A 7,928-byte IPv4 packet is padded to 7,936 under MTU 8000 (to 7,932 under 1420):
    // 7,968 bytes on the wire from each side.
    expect(await echoDatagrams(s, '192.0.2.2', 7900)).toEqual({ wireguardGo: 7968, burrow: 7968 });

    // Lowered: a 1,420-byte packet is not padded past the MTU (1,424 under 8000).
    await setMtu(s, 1420);
    await sleep(3_000); // Burrow reads a lowered MTU each second
    expect(await echoDatagrams(s, '192.0.2.2', 1392)).toEqual({ wireguardGo: 1452, burrow: 1452 });
  }, 120_000);

  it('MTU 65000: a 60,000-byte ping crosses both ways in outer fragments', async () => {
    const s = await sides(scope);
    await setMtu(s, 65000);
    expect(await pingCount(s.pair.a, '192.0.2.2', 2, ['-s', '60000'])).toBe(2);
    expect(await pingCount(s.pair.b, '192.0.2.1', 2, ['-s', '60000'])).toBe(2);
  }, 120_000);
});
