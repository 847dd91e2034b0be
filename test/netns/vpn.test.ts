// Burrow as a person runs it: `burrow up` with wg-quick files in two namespaces,
// Burrow to Burrow and Burrow with wireguard-go in both roles, pings and checksummed
// TCP transfers through the tunnel, `wg` reading and changing Burrow over its control
// socket, and bad input that leaves the system untouched.
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { encodeKey, generatePresharedKey } from '../../crypto/keys.js';
import { parseConfig } from '../../src/config/index.js';
import { burrow, keys, type Keys, cliBuilt, configDir, tcpTransfer, up, writeConf } from '../support/burrow.js';
import { type Netns, netnsSuite, run, uniqueName } from '../support/netns.js';
import { requireHost } from '../support/privileges.js';
import { startWireguardGo } from '../support/wireguard-go.js';

const TUN_A4 = '192.0.2.1';
const TUN_B4 = '192.0.2.2';
const TUN_A6 = '2001:db8:c0de::1';
const TUN_B6 = '2001:db8:c0de::2';

async function pingCount(ns: Netns, target: string, count = 3): Promise<number> {
  const out = await ns.exec('ping', ['-n', '-c', String(count), '-i', '0.2', '-W', '2', target], { timeoutMs: 15_000 }).catch((e: Error) => e.message);
  return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
}

/** A server config in `a` and a client config in `b`, both with Burrow's CLI. */
function serverConf(dir: string, ifname: string, server: Keys, client: Keys, psk?: string): string {
  return writeConf(dir, ifname, [
    '[Interface]', `PrivateKey = ${server.priv}`, `Address = ${TUN_A4}/24, ${TUN_A6}/64`, 'ListenPort = 51820', '',
    '[Peer]', `PublicKey = ${client.pub}`, ...(psk ? [`PresharedKey = ${psk}`] : []), `AllowedIPs = ${TUN_B4}/32, ${TUN_B6}/128`,
  ]);
}

function clientConf(dir: string, ifname: string, client: Keys, server: Keys, endpoint: string, psk?: string): string {
  return writeConf(dir, ifname, [
    '[Interface]', `PrivateKey = ${client.priv}`, `Address = ${TUN_B4}/24, ${TUN_B6}/64`, '',
    '[Peer]', `PublicKey = ${server.pub}`, ...(psk ? [`PresharedKey = ${psk}`] : []), `Endpoint = ${endpoint}`,
    `AllowedIPs = ${TUN_A4}/32, ${TUN_A6}/128`,
  ]);
}

describe.skipIf(requireHost(['ip', 'ping', 'wg', 'wireguard-go']))('burrow up/down in namespaces', () => {
  const scope = netnsSuite();
  cliBuilt();

  for (const outer of ['IPv4', 'IPv6'] as const) {
    it(`Burrow to Burrow over ${outer}: ping IPv4 and IPv6 inside, 100 MB over TCP with a matching checksum`, async () => {
      const pair = await scope.pair({ prefix: 'bvb' });
      const dir = configDir(scope);
      const [s, c] = [keys(), keys()];
      const sIf = uniqueName('bs');
      const cIf = uniqueName('bc');
      const endpoint = outer === 'IPv4' ? `${pair.aAddr4}:51820` : `[${pair.aAddr6}]:51820`;
      await up(scope, pair.a, serverConf(dir, sIf, s, c), sIf);
      await up(scope, pair.b, clientConf(dir, cIf, c, s, endpoint), cIf);
      expect(await pingCount(pair.b, TUN_A4)).toBe(3);
      expect(await pingCount(pair.b, TUN_A6)).toBe(3);
      const size = outer === 'IPv4' ? 100 * 1024 * 1024 : 20 * 1024 * 1024;
      const t = await tcpTransfer(pair.a, pair.b, TUN_A4, size);
      expect(t.bytes).toBe(size);
      expect(t.receivedSha256).toBe(t.sentSha256);
      const show = await burrow(pair.b, ['show', cIf, '--json']);
      const status = JSON.parse(show.stdout) as { peers: { endpoint: string; lastHandshake: number; rxBytes: number }[] };
      expect(status.peers[0]!.endpoint).toBe(endpoint);
      expect(status.peers[0]!.lastHandshake).toBeGreaterThan(0);
      expect(status.peers[0]!.rxBytes).toBeGreaterThan(size);
    }, 180_000);
  }

  for (const withPsk of [false, true]) {
    const label = withPsk ? 'with a preshared key' : 'without a preshared key';

    it(`Burrow client, wireguard-go server, ${label}: ping and a checksummed transfer`, async () => {
      const pair = await scope.pair({ prefix: 'bcw' });
      const dir = configDir(scope);
      const [s, c] = [keys(), keys()];
      const psk = withPsk ? encodeKey(generatePresharedKey()) : undefined;
      const wg = await startWireguardGo(pair.a, {
        ifname: uniqueName('wg'), privateKey: s.priv, listenPort: 51820, addresses: [`${TUN_A4}/24`, `${TUN_A6}/64`],
        peers: [{ publicKey: c.pub, allowedIPs: [`${TUN_B4}/32`, `${TUN_B6}/128`], ...(psk ? { presharedKey: psk } : {}) }],
      });
      scope.defer(() => wg.stop());
      const cIf = uniqueName('bc');
      await up(scope, pair.b, clientConf(dir, cIf, c, s, `${pair.aAddr4}:51820`, psk), cIf);
      expect(await pingCount(pair.b, TUN_A4)).toBe(3);
      expect(await pingCount(pair.b, TUN_A6)).toBe(3);
      const t = await tcpTransfer(pair.a, pair.b, TUN_A4, 10 * 1024 * 1024);
      expect(t.receivedSha256).toBe(t.sentSha256);
      expect((await wg.show()).peers[0]!.hasPresharedKey).toBe(withPsk);
    }, 120_000);

    it(`wireguard-go client, Burrow server, ${label}: ping, transfer, wg show on Burrow's socket`, async () => {
      const pair = await scope.pair({ prefix: 'bsw' });
      const dir = configDir(scope);
      const [s, c] = [keys(), keys()];
      const psk = withPsk ? encodeKey(generatePresharedKey()) : undefined;
      const sIf = uniqueName('bs');
      await up(scope, pair.a, serverConf(dir, sIf, s, c, psk), sIf);
      const wg = await startWireguardGo(pair.b, {
        ifname: uniqueName('wg'), privateKey: c.priv, addresses: [`${TUN_B4}/24`, `${TUN_B6}/64`],
        peers: [{ publicKey: s.pub, endpoint: `${pair.aAddr4}:51820`, allowedIPs: [`${TUN_A4}/32`, `${TUN_A6}/128`], ...(psk ? { presharedKey: psk } : {}) }],
      });
      scope.defer(() => wg.stop());
      expect(await pingCount(pair.b, TUN_A4)).toBe(3);
      expect(await pingCount(pair.b, TUN_A6)).toBe(3);
      const t = await tcpTransfer(pair.b, pair.a, TUN_B4, 10 * 1024 * 1024);
      expect(t.receivedSha256).toBe(t.sentSha256);
      // wireguard-tools reads Burrow's control socket.
      const dump = await run('wg', ['show', sIf, 'dump']);
      const [iface, peer] = dump.trim().split('\n').map((l) => l.split('\t'));
      expect(iface![1]).toBe(s.pub);
      expect(iface![2]).toBe('51820');
      expect(peer![0]).toBe(c.pub);
      expect(peer![1]).toBe(withPsk ? psk : '(none)');
      expect(peer![2]).toBe(`${pair.bAddr4}:${wg.listenPort}`);
      expect(Number(peer![4])).toBeGreaterThan(0);
      expect(Number(peer![5])).toBeGreaterThan(10 * 1024 * 1024);
    }, 120_000);
  }

  it('wg set adds a peer to a running Burrow, which then carries its traffic', async () => {
    const pair = await scope.pair({ prefix: 'bws' });
    const dir = configDir(scope);
    const [s, c, other] = [keys(), keys(), keys()];
    const sIf = uniqueName('bs');
    // The server starts knowing only some other peer.
    await up(scope, pair.a, serverConf(dir, sIf, s, other), sIf);
    const wg = await startWireguardGo(pair.b, {
      ifname: uniqueName('wg'), privateKey: c.priv, addresses: [`${TUN_B4}/24`],
      peers: [{ publicKey: s.pub, endpoint: `${pair.aAddr4}:51820`, allowedIPs: [`${TUN_A4}/32`] }],
    });
    scope.defer(() => wg.stop());
    expect(await pingCount(pair.b, TUN_A4, 1)).toBe(0);
    await run('wg', ['set', sIf, 'peer', c.pub, 'allowed-ips', `${TUN_B4}/32`]);
    // wireguard-go retries its refused handshake only every REKEY_TIMEOUT (5 s).
    let replies = 0;
    for (let i = 0; i < 4 && replies === 0; i++) replies = await pingCount(pair.b, TUN_A4, 3);
    expect(replies).toBeGreaterThan(0);
    expect(await pingCount(pair.b, TUN_A4)).toBe(3);
    const dump = await run('wg', ['show', sIf, 'peers']);
    expect(dump.trim().split('\n').sort()).toEqual([c.pub, other.pub].sort());
  }, 60_000);

  it('a full tunnel (0.0.0.0/0, ::/0) keeps its own UDP out of the tunnel and leaves no rule behind', async () => {
    const pair = await scope.pair({ prefix: 'bft' });
    const dir = configDir(scope);
    const [s, c] = [keys(), keys()];
    const sIf = uniqueName('bs');
    const cIf = uniqueName('bc');
    // The server is reached through the client's default route, as across the internet.
    const serverPublic = '203.0.113.1';
    await pair.a.exec('ip', ['addr', 'add', `${serverPublic}/32`, 'dev', 'veth-a']);
    await pair.b.exec('ip', ['route', 'add', 'default', 'via', pair.aAddr4]);
    await up(scope, pair.a, serverConf(dir, sIf, s, c), sIf);
    const rulesBefore = await pair.b.exec('ip', ['rule']);
    // Link-local routes come and go with the kernel's IPv6 autoconfiguration: not ours.
    const routes = async () => (await pair.b.exec('ip', ['route', 'show', 'table', 'all'])).split('\n').filter((l) => !l.includes('fe80:')).join('\n');
    const routesBefore = await routes();
    const conf = writeConf(dir, cIf, [
      '[Interface]', `PrivateKey = ${c.priv}`, `Address = ${TUN_B4}/24, ${TUN_B6}/64`, '',
      '[Peer]', `PublicKey = ${s.pub}`, `Endpoint = ${serverPublic}:51820`, 'AllowedIPs = 0.0.0.0/0, ::/0',
    ]);
    await up(scope, pair.b, conf, cIf);
    // Everything unmarked now goes into the tunnel, the endpoint's address too...
    expect(await pair.b.exec('ip', ['route', 'get', serverPublic])).toContain(`dev ${cIf}`);
    // ...but Burrow's own socket is marked, and marked packets take the old default route.
    const mark = Number((await run('wg', ['show', cIf, 'fwmark'])).trim());
    expect(mark).toBeGreaterThan(0);
    expect(await pair.b.exec('ip', ['route', 'get', serverPublic, 'mark', String(mark)])).toContain('dev veth-b');
    // So the handshake and the data reach the server.
    expect(await pingCount(pair.b, TUN_A4)).toBe(3);
    expect(await pingCount(pair.b, TUN_A6)).toBe(3);
    expect((await burrow(pair.b, ['down', cIf])).code).toBe(0);
    expect(await pair.b.exec('ip', ['rule'])).toBe(rulesBefore);
    expect(await routes()).toBe(routesBefore);
  }, 60_000);

  it('SaveConfig = true writes peers added at run time back to the file at down', async () => {
    const ns = await scope.create('bsave');
    const dir = configDir(scope);
    const [me, added] = [keys(), keys()];
    const ifname = uniqueName('bsv');
    const conf = writeConf(dir, ifname, ['[Interface]', `PrivateKey = ${me.priv}`, 'Address = 192.0.2.9/24', 'ListenPort = 51999', 'SaveConfig = true']);
    await up(scope, ns, conf, ifname);
    await run('wg', ['set', ifname, 'peer', added.pub, 'allowed-ips', '192.0.2.77/32', 'persistent-keepalive', '15']);
    expect((await burrow(ns, ['down', ifname])).code).toBe(0);
    const saved = parseConfig(readFileSync(conf, 'utf8'), conf);
    expect(saved.interface.saveConfig).toBe(true);
    expect(saved.interface.listenPort).toBe(51999);
    expect(saved.peers.map((p) => encodeKey(p.publicKey))).toEqual([added.pub]);
    expect(saved.peers[0]!.allowedIPs.map((a) => a.text)).toEqual(['192.0.2.77/32']);
    expect(saved.peers[0]!.persistentKeepalive).toBe(15);
    expect(statSync(conf).mode & 0o777).toBe(0o600);
  });

  it('deleting the control socket brings the tunnel down, as wg-quick down does for userspace daemons', async () => {
    const ns = await scope.create('bsock');
    const dir = configDir(scope);
    const ifname = uniqueName('bso');
    await up(scope, ns, writeConf(dir, ifname, ['[Interface]', `PrivateKey = ${keys().priv}`, 'Address = 192.0.2.9/24']), ifname);
    expect(await ns.exec('ip', ['-o', 'link'])).toContain(ifname);
    rmSync(`/var/run/wireguard/${ifname}.sock`);
    const deadline = Date.now() + 10_000;
    while ((await ns.exec('ip', ['-o', 'link'])).includes(ifname) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await ns.exec('ip', ['-o', 'link'])).not.toContain(ifname);
    expect((await burrow(ns, ['down', ifname])).code).toBe(1);
  });

  describe('bad input leaves the system untouched', () => {
    const good = keys();
    const cases: [string, string[], RegExp][] = [
      ['a broken key', ['[Interface]', 'PrivateKey = notakey', 'Address = 192.0.2.9/24'], /:2: PrivateKey: /],
      ['a missing [Interface] section', ['[Peer]', `PublicKey = ${good.pub}`, 'AllowedIPs = 192.0.2.0/24'], /Interface/],
      ['an unknown key', ['[Interface]', `PrivateKey = ${good.priv}`, 'Adress = 192.0.2.9/24'], /:3: .*Adress/],
      ['an unresolvable endpoint', ['[Interface]', `PrivateKey = ${good.priv}`, '', '[Peer]', `PublicKey = ${keys().pub}`,
        'Endpoint = no-such-host.invalid:51820', 'AllowedIPs = 192.0.2.0/24'], /no-such-host\.invalid.*cannot resolve/],
    ];
    for (const [what, lines, message] of cases) {
      it(`refuses ${what} with one clear error`, async () => {
        const ns = await scope.create('bbad');
        const dir = configDir(scope);
        const ifname = uniqueName('bx');
        const conf = writeConf(dir, ifname, lines);
        const linksBefore = await ns.exec('ip', ['-o', 'link']);
        const r = await burrow(ns, ['up', conf]);
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(message);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).not.toContain(good.priv);
        expect(await ns.exec('ip', ['-o', 'link'])).toBe(linksBefore);
        expect(existsSync(`/var/run/wireguard/${ifname}.sock`)).toBe(false);
      });
    }

    it('refuses a second up of the same interface, and down of one that is not up', async () => {
      const ns = await scope.create('bdup');
      const dir = configDir(scope);
      const ifname = uniqueName('bd');
      const conf = writeConf(dir, ifname, ['[Interface]', `PrivateKey = ${good.priv}`, 'Address = 192.0.2.9/24']);
      await up(scope, ns, conf, ifname);
      const again = await burrow(ns, ['up', conf]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/already up/);
      expect((await burrow(ns, ['down', ifname])).code).toBe(0);
      const downAgain = await burrow(ns, ['down', ifname]);
      expect(downAgain.code).toBe(1);
      expect(downAgain.stderr).toMatch(new RegExp(`${ifname} is not up`));
      expect(await ns.exec('ip', ['-o', 'link'])).not.toContain(ifname);
    });
  });
});

