// The C host (native/jsc-host: the core in JavaScriptCore's C API, as the Mac's packet
// tunnel extension runs it) as a client, against wireguard-go and against a Burrow server
// (`burrow up`): a ping and a checksummed TCP transfer through the tunnel, with the core's
// noble ChaCha20-Poly1305 and X25519, and with OpenSSL's injected through the Aead and Dh seams.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { encodeKey, generatePrivateKey, publicKeyOf } from '../../crypto/keys.js';
import { cliBuilt, configDir, tcpTransfer, up, writeConf } from '../support/burrow.js';
import { BUNDLE, HOST, startHost } from '../support/jsc-host.js';
import { type Netns, netnsSuite, stopChild, uniqueName } from '../support/netns.js';
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

describe.skipIf(requireHost(['ip', 'ping', 'wireguard-go']))('the C host on JavaScriptCore in namespaces', () => {
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
});
