// The kill switch (IncludeAllNetworks, ExcludeLocalNetworks) enforced for real: a client
// host with a LAN neighbour, a router that stands for the internet and counts every
// packet from the client that is not the tunnel, a server (Burrow, and once
// wireguard-go), and an internet host beyond. Nothing that should have gone through the
// tunnel may reach the router, while the tunnel is up, while its server is gone, after
// the daemon is SIGKILLed, and after an `up` that failed half way.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { journalPath } from '../../src/runtime/journal.js';
import { burrow, cliBuilt, keys, configDir, up, writeConf } from '../support/burrow.js';
import { type Netns, netnsSuite, run, uniqueName, waitForExit } from '../support/netns.js';
import { requireHost } from '../support/privileges.js';
import { ADDR, buildTopology, reach, startListener, type Topology, TUNNEL_PORT } from '../support/topology.js';
import { startWireguardGo } from '../support/wireguard-go.js';

const TCP_PORT = 8080;
const UDP_PORT = 5353;

/** Everything `up` may change on the client, as text: exactly this must come back after `down`. */
async function clientState(ns: Netns): Promise<Record<string, string>> {
  const noLinkLocal = (t: string) => t.split('\n').filter((l) => !l.includes('fe80:')).join('\n');
  return {
    ruleset: await ns.exec('nft', ['list', 'ruleset']),
    rules4: await ns.exec('ip', ['-4', 'rule']),
    rules6: await ns.exec('ip', ['-6', 'rule']),
    routes4: await ns.exec('ip', ['-4', 'route', 'show', 'table', 'all']),
    routes6: noLinkLocal(await ns.exec('ip', ['-6', 'route', 'show', 'table', 'all'])),
    resolvConf: await ns.exec('cat', ['/etc/resolv.conf']),
  };
}

/** What the client tries towards the internet host: each is true when it got an answer. */
async function tryInternet(t: Topology): Promise<Record<string, boolean>> {
  const c = t.client;
  const [ping4, ping6, tcp4, tcp6, udp4, udp6, dns4, dnsTcp4] = await Promise.all([
    reach(c, 'ping', ADDR.internet4),
    reach(c, 'ping', ADDR.internet6),
    reach(c, 'tcp', ADDR.internet4, TCP_PORT),
    reach(c, 'tcp', ADDR.internet6, TCP_PORT),
    reach(c, 'udp', ADDR.internet4, UDP_PORT),
    reach(c, 'udp', ADDR.internet6, UDP_PORT),
    reach(c, 'udp', ADDR.internet4, 53),
    reach(c, 'tcp', ADDR.internet4, 53),
  ]);
  return { ping4, ping6, tcp4, tcp6, udp4, udp6, dns4, dnsTcp4 };
}

const all = (value: boolean, keysOf: Record<string, boolean>) => Object.fromEntries(Object.keys(keysOf).map((k) => [k, value]));

describe.skipIf(requireHost(['ip', 'nft', 'ping', 'wg', 'wireguard-go']))('the kill switch in namespaces', () => {
  const scope = netnsSuite();
  cliBuilt();

  async function world(opts: { server: 'burrow' | 'wireguard-go'; excludeLocal?: boolean; clientV6?: boolean; postUp?: string }) {
    const t = await buildTopology(scope);
    const dir = configDir(scope);
    const [s, c] = [keys(), keys()];
    const sIf = uniqueName('ks');
    const cIf = uniqueName('kc');
    const internet = await startListener(t.internet, { tcp: [TCP_PORT, 53], udp: [UDP_PORT, 53] });
    const lan = await startListener(t.lan, { tcp: [53], udp: [53] });
    if (opts.server === 'burrow') {
      await up(scope, t.server, writeConf(dir, sIf, [
        '[Interface]', `PrivateKey = ${s.priv}`, 'Address = 10.99.0.1/24, fd99::1/64', `ListenPort = ${TUNNEL_PORT}`, '',
        '[Peer]', `PublicKey = ${c.pub}`, 'AllowedIPs = 10.99.0.2/32, fd99::2/128',
      ]), sIf);
    } else {
      const g = await startWireguardGo(t.server, {
        ifname: sIf, privateKey: s.priv, listenPort: TUNNEL_PORT, addresses: ['10.99.0.1/24', 'fd99::1/64'],
        peers: [{ publicKey: c.pub, allowedIPs: ['10.99.0.2/32', 'fd99::2/128'] }],
      });
      scope.defer(() => g.stop());
    }
    const conf = writeConf(dir, cIf, [
      '[Interface]', `PrivateKey = ${c.priv}`, `Address = 10.99.0.2/24${opts.clientV6 === false ? '' : ', fd99::2/64'}`, `DNS = ${ADDR.internet4}`,
      'IncludeAllNetworks = true', ...(opts.excludeLocal ? ['ExcludeLocalNetworks = true'] : []), ...(opts.postUp ? [`PostUp = ${opts.postUp}`] : []), '',
      '[Peer]', `PublicKey = ${s.pub}`, `Endpoint = ${ADDR.server4}:${TUNNEL_PORT}`, 'AllowedIPs = 0.0.0.0/0, ::/0',
    ]);
    return { t, conf, sIf, cIf, internet, lan };
  }

  it('up: everything goes through the tunnel; server gone: nothing goes; SIGKILL: still nothing; down: exactly as before', async () => {
    const { t, conf, sIf, cIf, internet } = await world({ server: 'burrow' });
    const before = await clientState(t.client);
    await up(scope, t.client, conf, cIf);
    const through = await tryInternet(t);
    expect(through).toEqual(all(true, through));
    // The internet host saw only the server's addresses.
    const sources = new Set(internet.seen().map((l) => l.split(' ')[2]));
    expect([...sources].sort()).toEqual([ADDR.server4, ADDR.server6].sort());
    // Another resolver, even the router, is never asked; the LAN is out of reach without ExcludeLocalNetworks.
    expect(await reach(t.client, 'udp', ADDR.routerC4, 53)).toBe(false);
    expect(await reach(t.client, 'tcp', ADDR.routerC4, 853)).toBe(false);
    expect(await reach(t.client, 'ping', ADDR.lan4)).toBe(false);
    expect(await t.leaks()).toBe(0);
    const shown = JSON.parse((await burrow(t.client, ['show', cIf, '--json'])).stdout) as { killSwitch?: { on: boolean; blocking: boolean } };
    expect(shown.killSwitch).toEqual({ on: true, blocking: false });
    expect((await burrow(t.client, ['show', cIf])).stdout).toContain('kill switch: on, not blocking');

    // A second tunnel with a kill switch in the same host is refused before it replaces
    // the table (it would lift this tunnel's kill switch); this one's table stays.
    const other = uniqueName('kd');
    const second = await burrow(t.client, ['up', writeConf(configDir(scope), other, readFileSync(conf, 'utf8').trimEnd().split('\n'))]);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(/belongs to another tunnel .*kill switch for /);
    expect(await t.client.exec('nft', ['list', 'table', 'inet', 'burrow'])).toContain(`removed by burrow down ${cIf}`);
    expect(await tryInternet(t)).toEqual(through);
    expect(await t.leaks()).toBe(0);

    // The server goes away; Burrow keeps running and keeps trying.
    expect((await burrow(t.server, ['down', sIf])).code).toBe(0);
    const serverGone = await tryInternet(t);
    expect(serverGone).toEqual(all(false, serverGone));
    expect(await t.leaks()).toBe(0);

    // Burrow dies: the table stays (fails closed).
    const pid = (JSON.parse(readFileSync(journalPath(cIf), 'utf8')) as { daemon: { pid: number } }).daemon.pid;
    process.kill(pid, 'SIGKILL');
    expect(await waitForExit(pid, 10_000)).toBe(true);
    const killed = await tryInternet(t);
    expect(killed).toEqual(all(false, killed));
    expect(await t.client.exec('nft', ['list', 'tables'])).toContain('table inet burrow');
    expect(await t.leaks()).toBe(0);

    // Up again after the crash, while something keeps pinging the internet directly: the
    // dead daemon's table is adopted and replaced, never lifted in between.
    const pinger = t.client.spawn('ping', ['-n', '-i', '0.05', '-w', '20', ADDR.internet4]);
    await new Promise((r) => setTimeout(r, 300));
    const again = await burrow(t.client, ['up', conf]);
    expect(again.code, again.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    pinger.kill('SIGINT');
    const journal = JSON.parse(readFileSync(journalPath(cIf), 'utf8')) as { entries: { undo: { argv?: string[] } }[] };
    expect(journal.entries.filter((e) => e.undo.argv?.[0] === 'nft')).toHaveLength(1);
    expect(await t.leaks()).toBe(0);
    const pid2 = (JSON.parse(readFileSync(journalPath(cIf), 'utf8')) as { daemon: { pid: number } }).daemon.pid;
    process.kill(pid2, 'SIGKILL');
    expect(await waitForExit(pid2, 10_000)).toBe(true);

    // Only down lifts it; then the client reaches the internet directly (and the router counts it).
    const down = await burrow(t.client, ['down', cIf]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain('firewall table');
    expect(await reach(t.client, 'ping', ADDR.internet4)).toBe(true);
    expect(await t.leaks()).toBeGreaterThan(0);
    expect(await clientState(t.client)).toEqual(before);
  }, 120_000);

  it('ExcludeLocalNetworks: the LAN neighbour is reachable directly, its DNS resolver never used; a failed up stays closed until down', async () => {
    const { t, conf, cIf, lan } = await world({ server: 'burrow', excludeLocal: true });
    const before = await clientState(t.client);
    await up(scope, t.client, conf, cIf);
    expect(await reach(t.client, 'ping', ADDR.lan4)).toBe(true);
    expect(await reach(t.client, 'tcp', ADDR.lan4, 53)).toBe(false);
    expect(await reach(t.client, 'udp', ADDR.lan4, 53)).toBe(false);
    expect(lan.seen()).toEqual([]);
    expect(await reach(t.client, 'ping', ADDR.internet4)).toBe(true);
    expect(await t.leaks()).toBe(0);
    expect((await burrow(t.client, ['down', cIf])).code).toBe(0);
    expect(await clientState(t.client)).toEqual(before);

    // An up that fails after the table is in place (here its PostUp fails): closed, and it says how to open.
    const dir = configDir(scope);
    const failing = writeConf(dir, cIf, readFileSync(conf, 'utf8').replace('IncludeAllNetworks = true', 'IncludeAllNetworks = true\nPostUp = false').trimEnd().split('\n'));
    const r = await burrow(t.client, ['up', failing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`the kill switch stays in place and blocks all traffic until: burrow down ${cIf}`);
    expect(await reach(t.client, 'ping', ADDR.internet4)).toBe(false);
    expect(await reach(t.client, 'tcp', ADDR.internet4, TCP_PORT)).toBe(false);
    expect(await t.leaks()).toBe(0);
    const down = await burrow(t.client, ['down', cIf]);
    expect(down.code, down.stderr).toBe(0);
    expect(await reach(t.client, 'ping', ADDR.internet4)).toBe(true);
    expect(await clientState(t.client)).toEqual(before);
  }, 120_000);

  it('against wireguard-go: the endpoint set follows wg set … endpoint, and a tunnel without IPv6 blocks IPv6 entirely', async () => {
    const { t, conf, cIf, internet } = await world({ server: 'wireguard-go', clientV6: false });
    await up(scope, t.client, conf, cIf);
    expect(await reach(t.client, 'ping', ADDR.internet4)).toBe(true);
    expect(await reach(t.client, 'tcp', ADDR.internet4, TCP_PORT)).toBe(true);
    expect(await reach(t.client, 'ping', ADDR.internet6)).toBe(false);
    expect(await reach(t.client, 'tcp', ADDR.internet6, TCP_PORT)).toBe(false);
    expect(await reach(t.client, 'udp', ADDR.internet6, UDP_PORT)).toBe(false);
    expect(internet.seen().every((l) => l.endsWith(ADDR.server4))).toBe(true);

    const endpoints = () => t.client.exec('nft', ['list', 'set', 'inet', 'burrow', 'endpoints4']);
    expect(await endpoints()).toContain(`${ADDR.server4} . ${TUNNEL_PORT}`);
    await run('wg', ['set', cIf, 'peer', (await run('wg', ['show', cIf, 'peers'])).trim(), 'endpoint', `${ADDR.server4b}:${TUNNEL_PORT}`]);
    const deadline = Date.now() + 5_000;
    while (!(await endpoints()).includes(ADDR.server4b) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const set = await endpoints();
    expect(set).toContain(`${ADDR.server4b} . ${TUNNEL_PORT}`);
    expect(set).not.toContain(`${ADDR.server4} . `);
    // Traffic flows through the new endpoint, and wireguard-go answers from it (it keeps the address it was reached on).
    expect(await reach(t.client, 'tcp', ADDR.internet4, TCP_PORT)).toBe(true);
    expect((await run('wg', ['show', cIf, 'endpoints'])).trim().endsWith(`${ADDR.server4b}:${TUNNEL_PORT}`)).toBe(true);
    expect(await t.leaks()).toBe(0);
  }, 120_000);
});
