// The daemon as one crash-safe session, tried as a person would: SIGKILL and `burrow
// down`, crash-and-recover cycles, SIGHUP with an edited file, signals during teardown,
// the inspector signal, a stale journal that names an unrelated process, routes that
// follow `wg set … allowed-ips`, the interface deleted under the daemon, SaveConfig of
// the running state, and wg-quick driving burrow-go against wireguard-go.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeKey } from '../../crypto/keys.js';
import { parseConfig } from '../../src/config/index.js';
import { journalPath, logPath, processStartTime } from '../../src/runtime/journal.js';
import { burrow, keys, type Keys, CLI, cliBuilt, configDir, tcpTransfer, up, writeConf } from '../support/burrow.js';
import { type Netns, netnsSuite, run, uniqueName, waitForExit } from '../support/netns.js';
import { requireHost } from '../support/privileges.js';
import { startWireguardGo } from '../support/wireguard-go.js';

const BURROW_GO = join(import.meta.dirname, '..', '..', 'bin', 'burrow-go.js');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function daemonPid(ifname: string): number {
  return (JSON.parse(readFileSync(journalPath(ifname), 'utf8')) as { daemon: { pid: number } }).daemon.pid;
}

function alive(pid: number): boolean {
  return processStartTime(pid) !== undefined && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
}

async function pingCount(ns: Netns, target: string, count = 3, interval = '0.2'): Promise<number> {
  const out = await ns.exec('ping', ['-n', '-c', String(count), '-i', interval, '-W', '2', target], { timeoutMs: 60_000 }).catch((e: Error) => e.message);
  return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
}

/** `burrow ARGS` in ns with its standard error in the output (burrow() keeps only stdout on success). */
function withStderr(ns: Netns, args: string[]): Promise<string> {
  return ns.exec('sh', ['-c', '"$0" "$@" 2>&1', process.execPath, CLI, ...args], { timeoutMs: 30_000 });
}

/** Everything `up` may change in a namespace, as text. Link-local IPv6 routes come and go with the kernel's autoconfiguration. */
async function systemState(ns: Netns): Promise<Record<string, string>> {
  const noLinkLocal = (text: string) => text.split('\n').filter((l) => !l.includes('fe80:')).join('\n');
  return {
    links: (await ns.exec('ip', ['-o', 'link'])).split('\n').map((l) => l.split(':')[1]?.trim()).join(' '),
    rules4: await ns.exec('ip', ['-4', 'rule']),
    rules6: await ns.exec('ip', ['-6', 'rule']),
    routes4: await ns.exec('ip', ['-4', 'route', 'show', 'table', 'all']),
    routes6: noLinkLocal(await ns.exec('ip', ['-6', 'route', 'show', 'table', 'all'])),
    resolvConf: await ns.exec('cat', ['/etc/resolv.conf']),
    srcValidMark: await ns.exec('sysctl', ['-n', 'net.ipv4.conf.all.src_valid_mark']),
  };
}

describe.skipIf(requireHost(['ip', 'ping', 'wg', 'wg-quick', 'wireguard-go', 'ss']))('the daemon as a crash-safe session', () => {
  const scope = netnsSuite();
  cliBuilt();

  /** A server in a (Burrow), a full-tunnel client config with DNS for b, reached through b's default route. */
  async function fullTunnel(prefix: string) {
    const pair = await scope.pair({ prefix });
    const dir = configDir(scope);
    const [s, c] = [keys(), keys()];
    const sIf = uniqueName('ks');
    const cIf = uniqueName('kc');
    await pair.a.exec('ip', ['addr', 'add', '203.0.113.1/32', 'dev', 'veth-a']);
    await pair.b.exec('ip', ['route', 'add', 'default', 'via', pair.aAddr4]);
    await pair.b.exec('ip', ['-6', 'route', 'add', 'default', 'via', pair.aAddr6]);
    await up(scope, pair.a, writeConf(dir, sIf, [
      '[Interface]', `PrivateKey = ${s.priv}`, 'Address = 192.0.2.1/24, 2001:db8:c0de::1/64', 'ListenPort = 51820', '',
      '[Peer]', `PublicKey = ${c.pub}`, 'AllowedIPs = 192.0.2.2/32, 2001:db8:c0de::2/128',
    ]), sIf);
    const conf = writeConf(dir, cIf, [
      '[Interface]', `PrivateKey = ${c.priv}`, 'Address = 192.0.2.2/24, 2001:db8:c0de::2/64', 'DNS = 192.0.2.53, tunnel.example', '',
      '[Peer]', `PublicKey = ${s.pub}`, 'Endpoint = 203.0.113.1:51820', 'AllowedIPs = 0.0.0.0/0, ::/0',
    ]);
    return { pair, dir, cIf, conf };
  }

  it('SIGKILL, then down: rules, routes of every table, resolv.conf and links are exactly as before up; up after a crash recovers first', async () => {
    const { pair, cIf, conf } = await fullTunnel('kill');
    const b = pair.b;
    const before = await systemState(b);
    await up(scope, b, conf, cIf);
    expect(await pingCount(b, '192.0.2.1')).toBe(3);
    const during = await systemState(b);
    expect(during.rules4).not.toBe(before.rules4);
    expect(during.resolvConf).toContain('nameserver 192.0.2.53');

    const pid = daemonPid(cIf);
    process.kill(pid, 'SIGKILL');
    await until('the daemon to die', () => !alive(pid));
    // A dead daemon leaves its rules and DNS: that is what the journal is for.
    const crashed = await systemState(b);
    expect(crashed.rules4).toBe(during.rules4);
    expect(crashed.resolvConf).toBe(during.resolvConf);

    const down = await burrow(b, ['down', cIf]);
    expect(down.code).toBe(0);
    expect(down.stdout).toMatch(new RegExp(`^${cIf} was not running \\(its daemon, pid ${pid}, stopped without cleaning up; last heard from at \\d\\d:\\d\\d:\\d\\d\\); removed its (.+, )?routes, rules, DNS`));
    expect(await systemState(b)).toEqual(before);
    expect(existsSync(journalPath(cIf))).toBe(false);
    expect((await burrow(b, ['down', cIf])).stderr).toContain('is not up');

    // Crash, then up again: it finishes the dead daemon's work, then comes up; ten times.
    for (let cycle = 0; cycle < 10; cycle++) {
      const output = await withStderr(b, ['up', conf]);
      expect(output).toContain(`${cIf} is up`);
      if (cycle > 0) expect(output).toContain(`${cIf} was not running`);
      expect(await b.exec('cat', ['/etc/resolv.conf'])).toContain('nameserver 192.0.2.53');
      const p = daemonPid(cIf);
      process.kill(p, 'SIGKILL');
      await until('the daemon to die', () => !alive(p));
    }
    const r = await burrow(b, ['up', conf]);
    expect(r.code, r.stderr).toBe(0);
    expect(await pingCount(b, '192.0.2.1')).toBe(3);
    const again = await systemState(b);
    // No extra table or rule after ten crashes: the same two rules per family as the first time.
    expect(again.rules4).toBe(during.rules4);
    expect(again.rules6).toBe(during.rules6);
    expect((await burrow(b, ['down', cIf])).code).toBe(0);
    expect(await systemState(b)).toEqual(before);
  }, 180_000);

  it('SIGHUP applies the edited file: one peer added, one removed, routes follow, and a ping to a third peer loses nothing', async () => {
    const pair = await scope.pair({ prefix: 'hup' });
    const dir = configDir(scope);
    const [srv, third, gone, added] = [keys(), keys(), keys(), keys()];
    const sIf = uniqueName('hs');
    const tIf = uniqueName('ht');
    const serverLines = (peers: [Keys, string][]) => [
      '[Interface]', `PrivateKey = ${srv.priv}`, 'Address = 192.0.2.1/24', 'ListenPort = 51820',
      ...peers.flatMap(([k, ips]) => ['', '[Peer]', `PublicKey = ${k.pub}`, `AllowedIPs = ${ips}`]),
    ];
    const conf = writeConf(dir, sIf, serverLines([[third, '192.0.2.3/32'], [gone, '10.66.0.0/24']]));
    await up(scope, pair.a, conf, sIf);
    await up(scope, pair.b, writeConf(dir, tIf, [
      '[Interface]', `PrivateKey = ${third.priv}`, 'Address = 192.0.2.3/24', '',
      '[Peer]', `PublicKey = ${srv.pub}`, `Endpoint = ${pair.aAddr4}:51820`, 'AllowedIPs = 192.0.2.1/32',
    ]), tIf);
    // The third peer handshakes first: the server learns its endpoint from it.
    expect(await pingCount(pair.b, '192.0.2.1')).toBe(3);
    expect(await pingCount(pair.a, '192.0.2.3')).toBe(3);
    expect(await pair.a.exec('ip', ['route', 'show', 'dev', sIf])).toContain('10.66.0.0/24');
    const handshakeBefore = (await run('wg', ['show', sIf, 'latest-handshakes'])).trim();

    const pinging = pingCount(pair.a, '192.0.2.3', 40, '0.05');
    await sleep(700);
    writeConf(dir, sIf, serverLines([[third, '192.0.2.3/32'], [added, '10.77.0.0/24']]));
    process.kill(daemonPid(sIf), 'SIGHUP');
    expect(await pinging).toBe(40);

    await until('the routes to follow', async () => (await pair.a.exec('ip', ['route', 'show', 'dev', sIf])).includes('10.77.0.0/24'));
    const routes = await pair.a.exec('ip', ['route', 'show', 'dev', sIf]);
    expect(routes).not.toContain('10.66.0.0/24');
    const peers = (await run('wg', ['show', sIf, 'peers'])).trim().split('\n').sort();
    expect(peers).toEqual([third.pub, added.pub].sort());
    // The third peer's session went on: no new handshake was needed.
    expect((await run('wg', ['show', sIf, 'latest-handshakes'])).split('\n').find((l) => l.startsWith(third.pub))).toBe(
      handshakeBefore.split('\n').find((l) => l.startsWith(third.pub)),
    );
    expect(readFileSync(logPath(sIf), 'utf8')).toMatch(/SIGHUP: reloaded .*removed peer .*added peer/);
  }, 60_000);

  it('a second SIGTERM during a slow PostDown does not cut the teardown short; SIGUSR1 opens no inspector; no core dumps', async () => {
    const ns = await scope.create('sig');
    const dir = configDir(scope);
    const ifname = uniqueName('sg');
    const marker = join(dir, 'postdown-finished');
    const conf = writeConf(dir, ifname, [
      '[Interface]', `PrivateKey = ${keys().priv}`, 'Address = 192.0.2.9/24, 2001:db8:c0de::9/64',
      `PostDown = sleep 1.5; echo done > ${marker}`,
    ]);
    const r = await burrow(ns, ['up', conf]);
    expect(r.code, r.stderr).toBe(0);
    const pid = daemonPid(ifname);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toMatch(new RegExp(`^burrow-daemon ${ifname}`));
    expect(readFileSync(`/proc/${pid}/limits`, 'utf8')).toMatch(/Max core file size\s+0\s+0/);

    process.kill(pid, 'SIGUSR1');
    process.kill(pid, 'SIGUSR2');
    await sleep(500);
    expect(alive(pid)).toBe(true);
    expect(await ns.exec('ss', ['-Hltn'])).not.toContain(':9229');
    expect(await run('wg', ['show', ifname, 'public-key'])).not.toBe('');

    process.kill(pid, 'SIGTERM');
    await sleep(400);
    process.kill(pid, 'SIGTERM');
    process.kill(pid, 'SIGINT');
    expect(await waitForExit(pid, 15_000)).toBe(true);
    expect(readFileSync(marker, 'utf8')).toBe('done\n');
    expect(await ns.exec('ip', ['-o', 'link'])).not.toContain(ifname);
    expect(existsSync(journalPath(ifname))).toBe(false);
    expect(readFileSync(logPath(ifname), 'utf8')).toMatch(/SIGTERM ignored: already bringing .* down/);
    rmSync(logPath(ifname), { force: true });
  }, 60_000);

  it('a stale journal that names an unrelated process: down leaves that process alone and replays the journal', async () => {
    const ns = await scope.create('stale');
    const ifname = uniqueName('st');
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    scope.defer(() => void sleeper.kill('SIGKILL'));
    const pid = sleeper.pid!;
    await ns.exec('ip', ['rule', 'add', 'table', '4242', 'priority', '4242']);
    const journal = {
      format: 'burrow-journal/1',
      ifname,
      // The unrelated process's real pid and start time: only the daemon's title tells it apart.
      daemon: { pid, startTime: processStartTime(pid) },
      startedAt: Date.now(),
      hooks: { preDown: [], postDown: [] },
      entries: [{ what: 'ip -4 rule del table 4242 priority 4242', undo: { kind: 'command', argv: ['ip', '-4', 'rule', 'del', 'table', '4242', 'priority', '4242'] }, keep: false }],
    };
    writeFileSync(journalPath(ifname), JSON.stringify(journal), { mode: 0o600 });
    scope.defer(() => rmSync(journalPath(ifname), { force: true }));
    const down = await burrow(ns, ['down', ifname]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain(`${ifname} was not running`);
    expect(down.stdout).toContain('removed its rules');
    expect(alive(pid)).toBe(true);
    expect(await ns.exec('ip', ['rule'])).not.toContain('4242');
    expect(existsSync(journalPath(ifname))).toBe(false);

    // A journal this version does not understand is refused, and nothing is run.
    writeFileSync(journalPath(ifname), JSON.stringify({ ...journal, entries: [{ what: 'x', undo: { kind: 'command', argv: ['rm', '-rf', '/tmp/x'] }, keep: false }] }), { mode: 0o600 });
    const refused = await burrow(ns, ['down', ifname]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('entry 1 is not an undo this version understands');
    expect(alive(pid)).toBe(true);
  }, 30_000);

  it('routes follow wg set: a prefix added gets its route, a removed one loses it, in both families', async () => {
    const ns = await scope.create('rts');
    const dir = configDir(scope);
    const ifname = uniqueName('rt');
    const peer = keys();
    await up(scope, ns, writeConf(dir, ifname, [
      '[Interface]', `PrivateKey = ${keys().priv}`, 'Address = 192.0.2.9/24, 2001:db8:c0de::9/64', '',
      '[Peer]', `PublicKey = ${peer.pub}`, 'AllowedIPs = 10.1.0.0/24',
    ]), ifname);
    const routes = () => ns.exec('ip', ['route', 'show', 'dev', ifname]).then(async (v4) => v4 + (await ns.exec('ip', ['-6', 'route', 'show', 'dev', ifname])));
    expect(await routes()).toContain('10.1.0.0/24');
    await run('wg', ['set', ifname, 'peer', peer.pub, 'allowed-ips', '10.1.0.0/24,10.9.8.0/24,2001:db8:99::/48']);
    await until('the added routes', async () => (await routes()).includes('10.9.8.0/24') && (await routes()).includes('2001:db8:99::/48'));
    await run('wg', ['set', ifname, 'peer', peer.pub, 'allowed-ips', '10.9.8.0/24']);
    await until('the removed routes to go', async () => !(await routes()).includes('10.1.0.0/24') && !(await routes()).includes('2001:db8:99::/48'));
    expect(await routes()).toContain('10.9.8.0/24');
    await run('wg', ['set', ifname, 'peer', peer.pub, 'remove']);
    await until('the last route to go', async () => !(await routes()).includes('10.9.8.0/24'));
    // The journal holds no undo for a route that is gone.
    expect(readFileSync(journalPath(ifname), 'utf8')).not.toContain('10.9.8.0/24');
  }, 30_000);

  it('deleting the interface stops the daemon, which cleans up as down does', async () => {
    const ns = await scope.create('del');
    const dir = configDir(scope);
    const ifname = uniqueName('dl');
    const conf = writeConf(dir, ifname, [
      '[Interface]', `PrivateKey = ${keys().priv}`, 'Address = 192.0.2.9/24', 'DNS = 192.0.2.53', '', '[Peer]', `PublicKey = ${keys().pub}`, 'AllowedIPs = 0.0.0.0/0',
    ]);
    const before = await systemState(ns);
    const r = await burrow(ns, ['up', conf]);
    expect(r.code, r.stderr).toBe(0);
    const pid = daemonPid(ifname);
    await ns.exec('ip', ['link', 'del', ifname]);
    expect(await waitForExit(pid, 10_000)).toBe(true);
    expect(await systemState(ns)).toEqual(before);
    expect(existsSync(`/var/run/wireguard/${ifname}.sock`)).toBe(false);
    rmSync(logPath(ifname), { force: true });
  }, 30_000);

  it('SaveConfig writes the running state (a key set with wg set) and does not follow a symlink planted at the temporary name', async () => {
    const ns = await scope.create('save');
    const dir = configDir(scope);
    const ifname = uniqueName('sv');
    const [old, fresh, peer] = [keys(), keys(), keys()];
    const conf = writeConf(dir, ifname, [
      '[Interface]', `PrivateKey = ${old.priv}`, 'Address = 192.0.2.9/24', 'ListenPort = 51998', 'SaveConfig = true', 'PostUp = true %i',
    ]);
    await up(scope, ns, conf, ifname);
    const keyFile = join(dir, 'new.key');
    writeFileSync(keyFile, `${fresh.priv}\n`, { mode: 0o600 });
    await run('wg', ['set', ifname, 'private-key', keyFile, 'peer', peer.pub, 'allowed-ips', '192.0.2.77/32']);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched\n');
    symlinkSync(victim, `${conf}.tmp`);
    expect((await burrow(ns, ['down', ifname])).code).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe('untouched\n');
    expect(existsSync(`${conf}.tmp`)).toBe(false);
    const saved = parseConfig(readFileSync(conf, 'utf8'), conf);
    expect(encodeKey(saved.interface.privateKey)).toBe(fresh.priv);
    expect(saved.interface.listenPort).toBe(51998);
    expect(saved.interface.postUp).toEqual(['true %i']);
    expect(saved.peers.map((p) => encodeKey(p.publicKey))).toEqual([peer.pub]);
  }, 30_000);

  it('warns, as wg-quick does, when the configuration file is world accessible', async () => {
    const ns = await scope.create('perm');
    const dir = configDir(scope);
    const ifname = uniqueName('pm');
    const conf = writeConf(dir, ifname, ['[Interface]', `PrivateKey = ${keys().priv}`, 'Address = 192.0.2.9/24']);
    await run('chmod', ['0644', conf]);
    scope.defer(async () => {
      await burrow(ns, ['down', ifname]);
      rmSync(logPath(ifname), { force: true });
    });
    const output = await withStderr(ns, ['up', conf]);
    expect(output).toContain(`${ifname} is up`);
    expect(output).toContain(`Warning: \`${conf}' is world accessible (mode 0644)`);
  }, 30_000);

  it('wg-quick drives burrow-go (WG_QUICK_USERSPACE_IMPLEMENTATION) against wireguard-go: ping, a checksummed transfer, and down leaves nothing', async () => {
    const pair = await scope.pair({ prefix: 'wgq' });
    const dir = configDir(scope);
    const [gk, bk] = [keys(), keys()];
    const gIf = uniqueName('wg');
    const bIf = uniqueName('bg');
    await startWireguardGo(pair.a, {
      ifname: gIf, privateKey: gk.priv, listenPort: 51820, addresses: ['192.0.2.1/24', '2001:db8:c0de::1/64'],
      peers: [{ publicKey: bk.pub, allowedIPs: ['192.0.2.2/32', '2001:db8:c0de::2/128'] }],
    }).then((g) => scope.defer(() => g.stop()));
    const conf = writeConf(dir, bIf, [
      '[Interface]', `PrivateKey = ${bk.priv}`, 'Address = 192.0.2.2/24, 2001:db8:c0de::2/64', '',
      '[Peer]', `PublicKey = ${gk.pub}`, `Endpoint = ${pair.aAddr4}:51820`, 'AllowedIPs = 192.0.2.1/32, 2001:db8:c0de::1/128',
    ]);
    const before = await systemState(pair.b);
    const wgQuick = (verb: string) =>
      pair.b.exec('wg-quick', [verb, conf], { env: { WG_QUICK_USERSPACE_IMPLEMENTATION: BURROW_GO }, timeoutMs: 30_000 });
    const upOut = await wgQuick('up').catch((e: Error) => e.message);
    scope.defer(async () => void (await wgQuick('down').catch(() => undefined)));
    expect(existsSync(journalPath(bIf)), upOut).toBe(true);
    expect(await pingCount(pair.b, '192.0.2.1')).toBe(3);
    expect(await pingCount(pair.b, '2001:db8:c0de::1')).toBe(3);
    const t = await tcpTransfer(pair.a, pair.b, '192.0.2.1', 20 * 1024 * 1024);
    expect(t.receivedSha256).toBe(t.sentSha256);
    const pid = daemonPid(bIf);
    await wgQuick('down');
    expect(await waitForExit(pid, 10_000)).toBe(true);
    expect(await systemState(pair.b)).toEqual(before);
    expect(existsSync(`/var/run/wireguard/${bIf}.sock`)).toBe(false);
    expect(existsSync(journalPath(bIf))).toBe(false);
    rmSync(logPath(bIf), { force: true });
  }, 60_000);
});
