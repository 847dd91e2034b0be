// Replies from the address the peer wrote to (issue 18, item 2): a host whose link has
// two addresses, the peer (the latest wireguard-go) configured with the one the kernel
// would not pick as the source of a reply. The
// implementation under test (burrow-go, and wireguard-go itself as the reference) must
// answer from that address, or the peer roams to the kernel's default choice; and when
// the address is removed, replies must still flow, from the one that is left ("sticky,
// but not too sticky"). Seen from the peer, with `wg show`: its endpoint for us is the
// source of our authenticated packets.
//
// The reference is Debian's wireguard-go (0.0.20220316, its own sticky bind for Linux),
// over IPv6; over IPv4 it answers from the address written to but sends nothing once that
// address is removed (too sticky), so IPv4 runs on Burrow only, which does what the
// kernel's WireGuard does. The latest wireguard-go (the standard bind) is not sticky at
// all here: it answers from the kernel's choice in both families.
import { describe, expect, it } from 'vitest';
import { configDir, keys, writeConf } from '../support/burrow.js';
import { netnsSuite, uniqueName } from '../support/netns.js';
import { requireHost } from '../support/privileges.js';
import { pingCount, startUserspace, type Userspace, wg } from '../support/userspace.js';
import { requirePeer, startPeer } from '../support/wireguard-go.js';

const FAMILIES = {
  ipv4: { first: '10.77.0.1', second: '10.77.0.2', peer: '10.77.0.9', len: 24, endpoint: (a: string) => `${a}:51820` },
  ipv6: { first: 'fd77::1', second: 'fd77::2', peer: 'fd77::9', len: 64, endpoint: (a: string) => `[${a}]:51820` },
} as const;

describe.skipIf(requireHost(['ip', 'wg', 'ping', 'wireguard-go']) || requirePeer('latest-wireguard-go'))('sticky source addresses on a multi-homed host', () => {
  const scope = netnsSuite();

  for (const impl of ['burrow-go', 'debian-wireguard-go'] as Userspace[]) {
    for (const [family, f] of Object.entries(FAMILIES)) {
      if (impl !== 'burrow-go' && family === 'ipv4') continue; // see above
      it(`${impl}, ${family}: replies from the address written to; after it is removed, from the one left`, async () => {
        const pair = family === 'ipv4'
          ? await scope.pair({ prefix: 'st', aAddr4: f.peer, bAddr4: f.first, prefixLength4: f.len })
          : await scope.pair({ prefix: 'st', aAddr6: f.peer, bAddr6: f.first, prefixLength6: f.len });
        const extra = family === 'ipv6' ? ['nodad'] : [];
        await pair.b.exec('ip', ['addr', 'add', `${f.second}/${f.len}`, 'dev', pair.bIf, ...extra]);
        // The peer writes to the address the kernel would not choose for a reply, so that a
        // reply from the right one proves the source was set.
        const route = await pair.b.exec('ip', ['route', 'get', f.peer]);
        const kernelChoice = /\bsrc (\S+)/.exec(route)?.[1];
        expect([f.first, f.second]).toContain(kernelChoice);
        const written = kernelChoice === f.first ? f.second : f.first;
        const dir = configDir(scope);
        const [gk, bk] = [keys(), keys()];
        const gIf = uniqueName('sg');
        const bIf = uniqueName('sb');
        const g = await startPeer(pair.a, {
          implementation: 'latest-wireguard-go', ifname: gIf, privateKey: gk.priv, listenPort: 51820, addresses: ['192.0.2.1/24'],
          peers: [{ publicKey: bk.pub, endpoint: f.endpoint(written), allowedIPs: ['192.0.2.2/32'] }],
        });
        scope.defer(() => g.stop());
        await startUserspace(pair.b, impl, bIf);
        const keyFile = writeConf(dir, 'bkey', [bk.priv]);
        expect(await wg(pair.b, ['set', bIf, 'private-key', keyFile, 'listen-port', '51820', 'peer', gk.pub, 'allowed-ips', '192.0.2.1/32'])).toBe('');
        await pair.b.exec('ip', ['addr', 'add', '192.0.2.2/24', 'dev', bIf]);
        await pair.b.exec('ip', ['link', 'set', bIf, 'up']);
        const peerEndpoint = async () => (await g.show()).peers[0]!.endpoint;

        // Every reply comes from the address written to.
        expect(await pingCount(pair.a, '192.0.2.2', 3)).toBe(3);
        expect(await peerEndpoint()).toBe(f.endpoint(written));
        // Our own traffic (not only replies) leaves from it too.
        expect(await pingCount(pair.b, '192.0.2.1', 2)).toBe(2);
        expect(await peerEndpoint()).toBe(f.endpoint(written));

        // The address goes away: our packets leave from the one left, and the peer follows.
        await pair.b.exec('ip', ['addr', 'del', `${written}/${f.len}`, 'dev', pair.bIf]);
        expect(await pingCount(pair.b, '192.0.2.1', 3)).toBeGreaterThanOrEqual(2);
        expect(await peerEndpoint()).toBe(f.endpoint(kernelChoice!));
        expect(await pingCount(pair.a, '192.0.2.2', 2)).toBe(2);
      }, 120_000);
    }
  }
});
