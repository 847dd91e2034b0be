// The C host (native/jsc-host: the core in JavaScriptCore's C API, as the Mac's packet
// tunnel extension runs it) as a client, against wireguard-go and against a Burrow server
// (`burrow up`): a ping and a checksummed TCP transfer through the tunnel, with the core's
// noble ChaCha20-Poly1305 and X25519, and with OpenSSL's injected through the Aead and Dh seams.
// And a full tunnel in the test topology, as NEPacketTunnelNetworkSettings would set it up:
// the default routes into the tunnel, the endpoint kept outside, the DNS servers in the
// namespace's resolv.conf; all of it gone after SIGTERM, and after a SIGKILL with --recover.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../crypto/keys.js';
import { cliBuilt, configDir, tcpTransfer, up, writeConf } from '../support/burrow.js';
import { BUNDLE, HOST, startHost } from '../support/jsc-host.js';
import { type Netns, netnsSuite, stopChild, uniqueName, waitForChildExit } from '../support/netns.js';
import { ADDR, buildTopology, reach, startListener, type Topology, TUNNEL_PORT } from '../support/topology.js';
import { requireHost } from '../support/privileges.js';
import { startWireguardGo } from '../support/wireguard-go.js';

const SERVER = '10.123.0.1';
const CLIENT = '10.123.0.2';

interface Keys { priv: string; pub: string }
function keys(): Keys {
  const k = generatePrivateKey();
  return { priv: encodeKey(k), pub: encodeKey(publicKeyOf(k)) };
}

async function pingCount(ns: Netns, target: string, count = 3): Promise<number> {
  const out = await ns.exec('ping', ['-n', '-c', String(count), '-i', '0.2', '-W', '2', target], { timeoutMs: 15_000 }).catch((e: Error) => e.message);
  return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
}

function clientConf(dir: string, name: string, client: Keys, server: Keys, endpoint: string): string {
  return writeConf(dir, name, [
    '[Interface]', `PrivateKey = ${client.priv}`, `Address = ${CLIENT}/24`, '',
    '[Peer]', `PublicKey = ${server.pub}`, `Endpoint = ${endpoint}`, `AllowedIPs = ${SERVER}/32`, 'PersistentKeepalive = 25',
  ]);
}

describe.skipIf(requireHost(['ip', 'ping', 'wireguard-go', 'unshare', 'nsenter']))('the C host on JavaScriptCore in namespaces', () => {
  const scope = netnsSuite();
  cliBuilt();
  if (!existsSync(HOST) || !existsSync(BUNDLE)) throw new Error(`${HOST} or ${BUNDLE} is missing: run npm run setup`);

  for (const aead of ['noble', 'openssl'] as const) {
    it(`C host client (${aead} AEAD and X25519), wireguard-go server: ping and a checksummed 4 MB transfer`, async () => {
      const pair = await scope.pair({ prefix: 'jhw' });
      const dir = configDir(scope);
      const [s, c] = [keys(), keys()];
      const wg = await startWireguardGo(pair.a, {
        ifname: uniqueName('wg'), privateKey: s.priv, listenPort: 51820, addresses: [`${SERVER}/24`],
        peers: [{ publicKey: c.pub, allowedIPs: [`${CLIENT}/32`] }],
      });
      scope.defer(() => wg.stop());
      const ifname = uniqueName('jh');
      const host = await startHost(pair.b, clientConf(dir, ifname, c, s, `${pair.aAddr4}:51820`), ifname, aead);
      scope.defer(() => stopChild(host.child));
      expect(host.settings.apple.ipv4Settings.addresses).toEqual([CLIENT]);
      expect(host.settings.aead).toBe(aead === 'openssl' ? 'openssl' : '@noble/ciphers');
      expect(host.settings.dh).toBe(aead === 'openssl' ? 'host' : '@noble/curves');
      expect(await pingCount(pair.b, SERVER)).toBe(3);
      const t = await tcpTransfer(pair.a, pair.b, SERVER, 4 * 1024 * 1024);
      expect(t.bytes).toBe(4 * 1024 * 1024);
      expect(t.receivedSha256).toBe(t.sentSha256);
      const peer = (await wg.show()).peers[0]!;
      expect(peer.latestHandshake).toBeGreaterThan(0);
      expect(peer.endpoint).toBe(`${pair.bAddr4}:${peer.endpoint!.split(':').at(-1)}`);
      const [status] = await host.status();
      expect(status!.publicKey).toBe(s.pub);
      expect(status!.allowedIPs).toEqual([`${SERVER}/32`]);
      expect(status!.lastHandshake).toBeGreaterThan(Date.now() - 60_000);
      expect(status!.rxBytes).toBeGreaterThan(4 * 1024 * 1024);
    }, 120_000);
  }

  it('C host client (OpenSSL AEAD and X25519), Burrow server over IPv6: ping and a checksummed 4 MB transfer', async () => {
    const pair = await scope.pair({ prefix: 'jhb' });
    const dir = configDir(scope);
    const [s, c] = [keys(), keys()];
    const sIf = uniqueName('bs');
    await up(scope, pair.a, writeConf(dir, sIf, [
      '[Interface]', `PrivateKey = ${s.priv}`, `Address = ${SERVER}/24`, 'ListenPort = 51820', '',
      '[Peer]', `PublicKey = ${c.pub}`, `AllowedIPs = ${CLIENT}/32`,
    ]), sIf);
    const ifname = uniqueName('jh');
    const host = await startHost(pair.b, clientConf(dir, ifname, c, s, `[${pair.aAddr6}]:51820`), ifname, 'openssl');
    scope.defer(() => stopChild(host.child));
    expect(await pingCount(pair.b, SERVER)).toBe(3);
    const t = await tcpTransfer(pair.a, pair.b, SERVER, 4 * 1024 * 1024);
    expect(t.receivedSha256).toBe(t.sentSha256);
  }, 120_000);

  describe('a full tunnel through a wireguard-go server that forwards to the internet host', () => {
    const TUN4 = '10.125.0.2';
    const TUN6 = 'fd00:125::2';
    let t: Topology;
    let dir: string;
    let client: Keys;
    let server: Keys;
    let listener: Awaited<ReturnType<typeof startListener>>;

    const fullTunnel = (ifname: string): string => writeConf(dir, ifname, [
      '[Interface]', `PrivateKey = ${client.priv}`, `Address = ${TUN4}/24, ${TUN6}/64`, 'DNS = 10.125.0.1, fd00:125::1, corp.example',
      '', '[Peer]', `PublicKey = ${server.pub}`, `Endpoint = ${ADDR.server4}:${TUNNEL_PORT}`, 'AllowedIPs = 0.0.0.0/0, ::/0', 'PersistentKeepalive = 25',
    ]);
    const resolvConf = (): string => readFileSync(`${t.client.etcDir}/resolv.conf`, 'utf8');
    const routeGet = async (address: string) => (JSON.parse(await t.client.exec('ip', ['-j', 'route', 'get', address])) as { dev: string; gateway?: string }[])[0]!;
    const pinned = async (): Promise<unknown[]> => JSON.parse(await t.client.exec('ip', ['-4', '-j', 'route', 'show', 'table', 'main', 'exact', `${ADDR.server4}/32`])) as unknown[];
    const halves = async (): Promise<string> => (await t.client.exec('ip', ['route', 'show'])) + (await t.client.exec('ip', ['-6', 'route', 'show']));
    const statePath = (ifname: string): string => `/run/burrow/${ifname}.jsc-host.state`;
    const recoverHost = (ifname: string) => t.client.exec(HOST, ['--ifname', ifname, '--recover'], { timeoutMs: 15_000 });

    it('builds the topology and the server', async () => {
      t = await buildTopology(scope);
      dir = configDir(scope);
      [client, server] = [keys(), keys()];
      const wg = await startWireguardGo(t.server, {
        ifname: uniqueName('wg'), privateKey: server.priv, listenPort: TUNNEL_PORT, addresses: ['10.125.0.1/24', 'fd00:125::1/64'],
        peers: [{ publicKey: client.pub, allowedIPs: [`${TUN4}/32`, `${TUN6}/128`] }],
      });
      scope.defer(() => wg.stop());
      listener = await startListener(t.internet, { tcp: [8080], udp: [] });
      scope.defer(() => stopChild(listener.child));
    }, 60_000);

    it('the internet through the tunnel, the endpoint outside it, DNS in resolv.conf; all taken back on SIGTERM', async () => {
      const before = resolvConf();
      const ifname = uniqueName('jf');
      scope.defer(() => rmSync(statePath(ifname), { force: true }));
      const host = await startHost(t.client, fullTunnel(ifname), ifname, 'openssl');
      scope.defer(() => stopChild(host.child));

      expect(resolvConf()).toBe(`# Written by burrow-jsc-host for ${ifname}; the previous content is put back when it stops.\n`
        + 'nameserver 10.125.0.1\nnameserver fd00:125::1\nsearch corp.example\n');
      expect((await routeGet(ADDR.internet4)).dev).toBe(ifname);
      expect((await routeGet(ADDR.internet6)).dev).toBe(ifname);
      expect(await routeGet(ADDR.server4)).toMatchObject({ dev: 'up0', gateway: ADDR.routerC4 });
      expect(JSON.parse(readFileSync(statePath(ifname), 'utf8'))).toMatchObject({ ifname, pid: host.child.pid, undo: [['-4', 'route', 'del', `${ADDR.server4}/32`, 'via', ADDR.routerC4, 'dev', 'up0']] });

      // The first packet waits for the handshake: three pings, two seconds each to answer.
      expect(await pingCount(t.client, ADDR.internet4)).toBe(3);
      expect(await pingCount(t.client, ADDR.internet6)).toBe(3);
      expect(await reach(t.client, 'tcp', ADDR.internet4, 8080)).toBe(true);
      expect(await reach(t.client, 'tcp', ADDR.internet6, 8080)).toBe(true);
      // The internet host saw the server's addresses (its NAT), and the router nothing but the tunnel.
      expect(listener.seen()).toEqual([`tcp 8080 ${ADDR.server4}`, `tcp 8080 ${ADDR.server6}`]);
      expect(await t.leaks()).toBe(0);

      await stopChild(host.child);
      expect(host.child.exitCode).toBe(0);
      expect(resolvConf()).toBe(before);
      expect(await pinned()).toEqual([]);
      expect(await halves()).not.toContain(ifname);
      expect(existsSync(statePath(ifname))).toBe(false);
      // Direct again, and the router counts it: the zero above was a real count.
      expect((await routeGet(ADDR.internet4)).dev).toBe('up0');
      expect(await reach(t.client, 'ping', ADDR.internet4)).toBe(true);
      expect(await t.leaks()).toBeGreaterThan(0);
    }, 120_000);

    it('killed with SIGKILL, the host leaves its state file; --recover (or its next start) takes everything back', async () => {
      const before = resolvConf();
      const ifname = uniqueName('jk');
      scope.defer(() => rmSync(statePath(ifname), { force: true }));
      const host = await startHost(t.client, fullTunnel(ifname), ifname, 'noble');
      scope.defer(() => stopChild(host.child));
      expect(await pinned()).toHaveLength(1);
      host.child.kill('SIGKILL');
      expect(await waitForChildExit(host.child, 10_000)).toBe(true);
      expect(resolvConf()).not.toBe(before);
      expect(await pinned()).toHaveLength(1);
      expect(existsSync(statePath(ifname))).toBe(true);

      await recoverHost(ifname);
      expect(resolvConf()).toBe(before);
      expect(await pinned()).toEqual([]);
      expect(existsSync(statePath(ifname))).toBe(false);
      expect(await recoverHost(ifname)).toBe(''); // nothing left: says so on stderr, exits 0

      // The next start recovers by itself: kill again, start again, stop cleanly.
      const again = await startHost(t.client, fullTunnel(ifname), ifname, 'noble');
      scope.defer(() => stopChild(again.child));
      again.child.kill('SIGKILL');
      await waitForChildExit(again.child, 10_000);
      const third = await startHost(t.client, fullTunnel(ifname), ifname, 'noble');
      scope.defer(() => stopChild(third.child));
      expect(await pingCount(t.client, ADDR.internet4)).toBe(3);
      expect(await pinned()).toHaveLength(1);
      // Whoever read its output has gone: the undo it logs must not kill it (SIGPIPE).
      third.child.stdout!.destroy();
      third.child.stderr!.destroy();
      await stopChild(third.child);
      expect(third.child.exitCode).toBe(0);
      expect(resolvConf()).toBe(before);
      expect(await pinned()).toEqual([]);
    }, 120_000);

    it("refuses, before changing anything, to write a resolv.conf that is not its namespace's own", async () => {
      // The client's network namespace, but /etc/resolv.conf bind-mounted from a scratch
      // file in a private mount namespace (not /etc/netns/NAME/resolv.conf): had the
      // check been wrong, the scratch file would be written, never the host's.
      const scratch = join(dir, 'scratch-resolv.conf');
      writeFileSync(scratch, 'nameserver 192.0.2.53\n', { mode: 0o644 });
      const ifname = uniqueName('jr');
      scope.defer(() => rmSync(statePath(ifname), { force: true }));
      const script = 'mount --bind "$0" /etc/resolv.conf && exec nsenter --net="/run/netns/$1" "$2" --bundle "$3" --config "$4" --ifname "$5"';
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        execFile('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, scratch, t.client.name, HOST, BUNDLE, fullTunnel(ifname), ifname],
          { encoding: 'utf8', timeout: 30_000 }, (error, _stdout, stderr) => resolve({ code: error === null ? 0 : (error.code as number | null), stderr }));
      });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain("the configuration has DNS servers, and /etc/resolv.conf is not a namespace's own");
      expect(readFileSync(scratch, 'utf8')).toBe('nameserver 192.0.2.53\n');
      expect(await t.client.exec('ip', ['link', 'show'])).not.toContain(ifname);
      expect(await pinned()).toEqual([]);
      expect(existsSync(statePath(ifname))).toBe(false);
    }, 60_000);
  });
});
