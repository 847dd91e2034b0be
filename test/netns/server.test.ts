// The Linux server for real: the topology's server host runs `burrow server`, three
// clients (two Burrow, one wg-quick with wireguard-go) bring up the client configs that
// `add-peer` printed, unedited, and reach the internet host through the server's NAT
// over IPv4 and IPv6. Then: clients cannot reach each other; a peer added while a ping
// flows costs no packet; disable and remove cut a peer off at once and enable brings it
// back; an expiry passing disables; transfer totals survive a restart; a SIGKILLed
// server is cleaned up by `burrow server down`; client to client works once allowed.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { journalPath, logPath } from '../../src/runtime/journal.js';
import { burrow, cliBuilt, configDir, up } from '../support/burrow.js';
import { type Netns, netnsSuite, run, uniqueName, waitForExit } from '../support/netns.js';
import { requireHost } from '../support/privileges.js';
import { ADDR, buildTopology, reach, startListener, type Topology } from '../support/topology.js';

const TCP_PORT = 8080;
const SUBNET = '10.77.0.0/24';
const SUBNET6 = 'fd77:77::/64';

interface PeerJson {
  name: string;
  addresses: string[];
  enabled: boolean;
  expires: string | null;
  rxBytes: number;
  txBytes: number;
  lastHandshake: number | null;
}

/** A client host beside the topology's own: its own link to the router, documentation-free test addresses. */
async function extraClient(t: Topology, scope: ReturnType<typeof netnsSuite>, n: number): Promise<Netns> {
  const ns = await scope.create(`tc${n}`);
  const rIf = `rc${n}`;
  await t.router.exec('ip', ['link', 'add', rIf, 'type', 'veth', 'peer', 'name', 'up0', 'netns', ns.name]);
  await t.router.exec('ip', ['address', 'add', `198.18.${n}.1/24`, 'dev', rIf]);
  await t.router.exec('ip', ['address', 'add', `2001:db8:10${n}::1/64`, 'dev', rIf, 'nodad']);
  await t.router.exec('ip', ['link', 'set', rIf, 'up']);
  await ns.exec('ip', ['address', 'add', `198.18.${n}.2/24`, 'dev', 'up0']);
  await ns.exec('ip', ['address', 'add', `2001:db8:10${n}::2/64`, 'dev', 'up0', 'nodad']);
  await ns.exec('ip', ['link', 'set', 'up0', 'up']);
  await ns.exec('ip', ['route', 'add', 'default', 'via', `198.18.${n}.1`]);
  await ns.exec('ip', ['-6', 'route', 'add', 'default', 'via', `2001:db8:10${n}::1`]);
  return ns;
}

/** Polls `check` until it is true or `ms` pass. */
async function eventually(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe.skipIf(requireHost(['ip', 'nft', 'ping', 'wg', 'wg-quick', 'wireguard-go']))('burrow server in namespaces', () => {
  const scope = netnsSuite();
  cliBuilt();
  let t: Topology;
  let c2: Netns;
  let c3: Netns;
  let dir: string;
  let registry: string;
  let sIf: string;
  const cIf: Record<string, string> = {};
  let internet: Awaited<ReturnType<typeof startListener>>;
  const server = (args: string[]) => burrow(t.server, ['server', ...args, '--config', registry]);
  const peers = async (): Promise<PeerJson[]> => JSON.parse((await server(['list-peers', '--json'])).stdout) as PeerJson[];
  const tunnelAddress = async (name: string, family: 4 | 6) => (await peers()).find((p) => p.name === name)!.addresses.find((a) => a.includes(':') === (family === 6))!.split('/')[0]!;
  const sysctls = async () => (await t.server.exec('sysctl', ['-n', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding'])).split('\n').filter((l) => l !== '');

  async function addClient(name: string): Promise<string> {
    const r = await server(['add-peer', name]);
    expect(r.code, r.stderr).toBe(0);
    cIf[name] = uniqueName(name.slice(0, 5));
    const path = join(dir, `${cIf[name]}.conf`);
    writeFileSync(path, r.stdout, { mode: 0o600 });
    return path;
  }

  it('init, up: three clients (Burrow, Burrow, wg-quick with wireguard-go) reach the internet host through NAT, over IPv4 and IPv6', async () => {
    t = await buildTopology(scope);
    // The topology's server forwards and masquerades for other tests: this one starts from a host that does neither.
    await t.server.exec('nft', ['flush', 'ruleset']);
    await t.server.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=0', 'net.ipv6.conf.all.forwarding=0']);
    c2 = await extraClient(t, scope, 2);
    c3 = await extraClient(t, scope, 3);
    internet = await startListener(t.internet, { tcp: [TCP_PORT], udp: [] });
    dir = configDir(scope);
    sIf = uniqueName('srv');
    registry = join(dir, `${sIf}.conf`);
    const init = await burrow(t.server, ['server', 'init', '--dir', dir, '-i', sIf, '--endpoint', ADDR.server4, '--subnet', SUBNET, '--subnet6', SUBNET6]);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toContain('uplink: up0');
    const upped = await burrow(t.server, ['server', 'up', '--config', registry]);
    expect(upped.code, upped.stderr).toBe(0);
    scope.defer(async () => {
      await burrow(t.server, ['server', 'down', '--config', registry]);
      rmSync(logPath(sIf), { force: true });
    });
    expect(await sysctls()).toEqual(['1', '1']);

    const c1conf = await addClient('one');
    const c2conf = await addClient('two');
    const c3conf = await addClient('three');
    await up(scope, t.client, c1conf, cIf.one!);
    await up(scope, c2, c2conf, cIf.two!);
    await c3.exec('wg-quick', ['up', c3conf], { env: { WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go' }, timeoutMs: 30_000 });
    scope.defer(async () => {
      await c3.exec('wg-quick', ['down', c3conf], { timeoutMs: 30_000 }).catch(() => undefined);
    });
    expect(await c3.exec('wg', ['show', cIf.three!, 'endpoints'])).toContain(`${ADDR.server4}:51820`);
    expect(existsSync(`/var/run/wireguard/${cIf.three}.sock`)).toBe(true); // wireguard-go, not a kernel module

    for (const ns of [t.client, c2, c3]) {
      expect(await reach(ns, 'ping', ADDR.internet4), ns.name).toBe(true);
      expect(await reach(ns, 'ping', ADDR.internet6), ns.name).toBe(true);
      expect(await reach(ns, 'tcp', ADDR.internet4, TCP_PORT), ns.name).toBe(true);
      expect(await reach(ns, 'tcp', ADDR.internet6, TCP_PORT), ns.name).toBe(true);
    }
    // NAT: the internet host saw only the server's own addresses.
    const sources = new Set(internet.seen().map((l) => l.split(' ')[2]));
    expect([...sources].sort()).toEqual([ADDR.server4, ADDR.server6].sort());
    const listed = await peers();
    expect(listed.map((p) => [p.name, p.enabled])).toEqual([['one', true], ['two', true], ['three', true]]);
    expect(listed.every((p) => p.lastHandshake !== null && p.rxBytes > 0 && p.txBytes > 0)).toBe(true);
  }, 180_000);

  it('clients cannot reach each other (client to client is off by default)', async () => {
    expect(await reach(t.client, 'ping', await tunnelAddress('two', 4))).toBe(false);
    expect(await reach(c2, 'ping', await tunnelAddress('three', 6))).toBe(false);
    expect(await reach(c3, 'ping', await tunnelAddress('one', 4))).toBe(false);
    // The server itself answers on the tunnel.
    expect(await reach(t.client, 'ping', '10.77.0.1')).toBe(true);
  }, 60_000);

  it('a peer added while a ping flows costs none of its packets', async () => {
    const ping = t.client.spawn('ping', ['-n', '-i', '0.1', '-c', '40', ADDR.internet4]);
    await new Promise((r) => setTimeout(r, 500));
    for (const name of ['late1', 'late2']) expect((await server(['add-peer', name])).code).toBe(0);
    // Under load the two add-peers may outlast the ping: it may have exited already.
    if (ping.exitCode === null && ping.signalCode === null) await new Promise<void>((resolve) => ping.once('exit', () => resolve()));
    const out = t.client.outputOf(ping);
    expect(out, out).toMatch(/40 packets transmitted, 40 received, 0% packet loss/);
    expect((await peers()).map((p) => p.name)).toContain('late2');
    // The new peers are on the running device too.
    expect((await run('wg', ['show', sIf, 'allowed-ips'])).split('\n').filter((l) => l.includes('10.77.0.')).length).toBe(5);
  }, 60_000);

  it('disable cuts a peer off at once and enable brings it back; remove-peer cuts off at once', async () => {
    const d = await server(['disable', 'two']);
    expect(d.code, d.stderr).toBe(0);
    expect(await reach(c2, 'ping', ADDR.internet4)).toBe(false);
    expect(await reach(t.client, 'ping', ADDR.internet4)).toBe(true);
    expect(readFileSync(registry, 'utf8')).toMatch(/#~ # burrow: name=two /);
    const e = await server(['enable', 'two']);
    expect(e.code, e.stderr).toBe(0);
    // The client handshakes again on its own (its session was forgotten by the server).
    expect(await eventually(() => reach(c2, 'ping', ADDR.internet4), 30_000)).toBe(true);

    const r = await server(['remove-peer', 'three']);
    expect(r.code, r.stderr).toBe(0);
    expect(await reach(c3, 'ping', ADDR.internet4)).toBe(false);
    expect(await reach(c3, 'ping', ADDR.internet6)).toBe(false);
    expect((await peers()).map((p) => p.name)).not.toContain('three');
    const unknown = await server(['disable', 'three']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("no peer named 'three'");
  }, 90_000);

  it('an expiry that passes while the server runs disables the peer', async () => {
    const soon = new Date(Date.now() + 3_000).toISOString();
    const e = await server(['enable', 'two', '--expires', soon]);
    expect(e.code, e.stderr).toBe(0);
    expect(await reach(c2, 'ping', ADDR.internet4)).toBe(true);
    expect(await eventually(async () => (await peers()).find((p) => p.name === 'two')!.enabled === false, 10_000)).toBe(true);
    expect(await reach(c2, 'ping', ADDR.internet4)).toBe(false);
    expect(await reach(t.client, 'ping', ADDR.internet4)).toBe(true);
    const again = await server(['enable', 'two']);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`'two' expired on ${soon}`);
  }, 60_000);

  it('transfer totals survive a restart; a SIGKILLed server is cleaned up by server down; client to client once allowed', async () => {
    // Some traffic that the totals must hold.
    for (let i = 0; i < 3; i++) expect(await reach(t.client, 'tcp', ADDR.internet4, TCP_PORT)).toBe(true);
    const before = (await peers()).find((p) => p.name === 'one')!;
    expect(before.rxBytes).toBeGreaterThan(1000);
    const down = await server(['down']);
    expect(down.code, down.stderr).toBe(0);
    expect(await t.server.exec('nft', ['list', 'ruleset'])).toBe('');
    expect(await sysctls()).toEqual(['0', '0']);
    const saved = (await peers()).find((p) => p.name === 'one')!;
    expect(saved.rxBytes).toBeGreaterThanOrEqual(before.rxBytes);
    expect(readFileSync(registry, 'utf8')).toContain(`rx=${saved.rxBytes} tx=${saved.txBytes}`);

    // Up again, with client to client allowed: the totals go on from where they were.
    writeFileSync(registry, readFileSync(registry, 'utf8').replace('client-to-client=false', 'client-to-client=true'), { mode: 0o600 });
    const again = await server(['up']);
    expect(again.code, again.stderr).toBe(0);
    expect(await eventually(() => reach(t.client, 'ping', ADDR.internet4), 30_000)).toBe(true);
    const after = (await peers()).find((p) => p.name === 'one')!;
    expect(after.rxBytes).toBeGreaterThan(saved.rxBytes);
    expect(after.rxBytes).toBeLessThan(saved.rxBytes + 100_000);
    await server(['enable', 'two', '--expires', '2099-01-01']);
    expect(await eventually(() => reach(c2, 'ping', ADDR.internet4), 30_000)).toBe(true);
    expect(await reach(t.client, 'ping', await tunnelAddress('two', 4))).toBe(true);
    expect(await reach(c2, 'ping', await tunnelAddress('one', 6))).toBe(true);

    // SIGKILL: the journal stays, NAT stays; server down undoes it all.
    const pid = (JSON.parse(readFileSync(journalPath(sIf), 'utf8')) as { daemon: { pid: number } }).daemon.pid;
    process.kill(pid, 'SIGKILL');
    expect(await waitForExit(pid, 10_000)).toBe(true);
    expect(await t.server.exec('nft', ['list', 'tables'])).toContain(`burrow_server_${sIf.replace(/-/g, '_')}`);
    const recovered = await server(['down']);
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(await t.server.exec('nft', ['list', 'ruleset'])).toBe('');
    expect(await sysctls()).toEqual(['0', '0']);
    expect(existsSync(journalPath(sIf))).toBe(false);
    expect(existsSync(`/run/burrow/${sIf}.totals`)).toBe(false);
  }, 120_000);
});
