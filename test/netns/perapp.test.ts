// Per-app routing enforced for real (issue 12, "Show it"). The topology of
// test/support/topology.ts plus a "corporate" host behind the VPN server, reachable only
// through the tunnel: its own DNS server serves corp.test (with CNAME chains, AAAA, an
// IDN name and a name too big for UDP); the internet host runs the public DNS server,
// which is the client's system resolver and gives other answers for corp.test names.
//
//   client ── router ── server ── corp (10.20.0.80-.84, fd20::80; DNS for corp.test)
//                └──── internet (192.0.2.80; public DNS, www.public.test)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findCgroup2Mount } from '../../src/platform/linux/cgroup.js';
import { journalPath } from '../../src/runtime/journal.js';
import { burrow, CLI, cliBuilt, configDir, keys, up, writeConf } from '../support/burrow.js';
import { type Netns, netnsSuite, uniqueName, waitForExit } from '../support/netns.js';
import { requireHost } from '../support/privileges.js';
import { ADDR, buildTopology, startListener, type Topology, TUNNEL_PORT } from '../support/topology.js';

const SUPPORT = join(dirname(fileURLToPath(import.meta.url)), '..', 'support');
const TCP_PORT = 8080;
const CORP = { main: '10.20.0.80', chain: '10.20.0.81', idn: '10.20.0.82', shared: '10.20.0.83', chased: '10.20.0.84', v6: 'fd20::80' } as const;
const TUNNEL = { v4: '10.99.0.2', v6: 'fd99::2' } as const;
const BIG = Array.from({ length: 40 }, (_, i) => `10.20.1.${i + 1}`);

const CORP_ZONE = {
  'mail.corp.test': { A: [CORP.main], AAAA: [CORP.v6], ttl: 1 },
  'alias.corp.test': { CNAME: 'mid.corp.test' },
  'mid.corp.test': { CNAME: 'chain.corp.test' },
  'chain.corp.test': { A: [CORP.chain] },
  'chase.corp.test': { CNAME: 'far.corp.test', stop: true },
  'far.corp.test': { A: [CORP.chased] },
  'xn--bcher-kva.test': { A: [CORP.idn] },
  'shared.corp.test': { A: [CORP.shared] },
  'big.corp.test': { A: BIG },
};
const PUBLIC_ZONE = {
  'www.public.test': { A: [ADDR.internet4], AAAA: [ADDR.internet6] },
  // The public view of a corporate name: what a process outside the app gets.
  'mail.corp.test': { A: ['192.0.2.99'] },
};

async function startDns(ns: Netns, zone: object): Promise<() => string[]> {
  const child = ns.spawn(process.execPath, [join(SUPPORT, 'dns-zone-server.mjs'), JSON.stringify(zone)]);
  const deadline = Date.now() + 10_000;
  while (!ns.outputOf(child).includes('listening')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the DNS server in ${ns.name} did not start: ${ns.outputOf(child)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return () => ns.outputOf(child).split('\n').filter((l) => l.startsWith('query '));
}

/**
 * The client tunnel of the running test. cgroups are not per network namespace: a tunnel
 * another test left up also has burrow/ITS-IFACE/mail, so `burrow exec` is told which.
 */
let clientIf = '';

/** `node SCRIPT ARGS` in the client, in `app` (burrow exec) or outside any app. */
async function node(t: Topology, app: string | undefined, script: string, args: string[]): Promise<{ code: number; out: string }> {
  const argv = [process.execPath, join(SUPPORT, script), ...args];
  const full = app === undefined ? argv : [process.execPath, CLI, 'exec', '--app', app, '--interface', clientIf, '--', ...argv];
  try {
    return { code: 0, out: await t.client.exec(app === undefined ? full[0]! : 'env', app === undefined ? full.slice(1) : full, { timeoutMs: 20_000 }) };
  } catch (e) {
    const err = e as { exitCode?: number; stdout?: string; stderr?: string };
    return { code: err.exitCode ?? -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

interface Reply {
  rcode: string;
  tc: boolean;
  answers: { name: string; type: string; data: unknown; ttl: number }[];
}

async function query(t: Topology, app: string | undefined, name: string, type: string, transport: 'udp' | 'tcp' = 'udp'): Promise<Reply> {
  const r = await node(t, app, 'dns-query.mjs', [name, type, transport, ADDR.internet4]);
  if (r.code !== 0) throw new Error(`query ${name} ${type} (${app ?? 'no app'}) failed: ${r.out}`);
  return JSON.parse(r.out) as Reply;
}

async function setElements(ns: Netns, app: string, family: 4 | 6): Promise<string[]> {
  const out = JSON.parse(await ns.exec('nft', ['-j', 'list', 'set', 'inet', 'burrow', `app_${app}_v${family}`])) as {
    nftables: { set?: { elem?: ({ elem: { val: string } } | string)[] } }[];
  };
  const elems = out.nftables.find((x) => x.set !== undefined)?.set?.elem ?? [];
  return elems.map((e) => (typeof e === 'string' ? e : e.elem.val));
}

/** What up and down may touch on the client: exactly this must come back after down. */
async function clientState(ns: Netns): Promise<Record<string, string>> {
  return {
    ruleset: await ns.exec('nft', ['list', 'ruleset']),
    rules4: await ns.exec('ip', ['-4', 'rule']),
    rules6: await ns.exec('ip', ['-6', 'rule']),
    routes4: await ns.exec('ip', ['-4', 'route', 'show', 'table', 'all']),
    resolvConf: await ns.exec('cat', ['/etc/resolv.conf']),
    srcValidMark: await ns.exec('sysctl', ['-n', 'net.ipv4.conf.all.src_valid_mark']),
    // The resolver's sockets: none before up, none after down.
    listening: await ns.exec('ss', ['-Hlntu']),
  };
}

const cgroupRoot = (): string => {
  const root = findCgroup2Mount();
  if (root === undefined) throw new Error('this test reads the cgroup2 hierarchy, and no cgroup2 mount is visible');
  return root;
};

describe.skipIf(requireHost(['ip', 'nft', 'unshare', 'setpriv', 'ss']))('per-app routing in namespaces', () => {
  const scope = netnsSuite();
  cliBuilt();

  async function world() {
    const t = await buildTopology(scope);
    const corp = await scope.create('tp');
    await t.server.exec('ip', ['link', 'add', 'sc', 'type', 'veth', 'peer', 'name', 'up0', 'netns', corp.name]);
    await t.server.exec('ip', ['address', 'add', '10.20.0.1/24', 'dev', 'sc']);
    await t.server.exec('ip', ['address', 'add', 'fd20::1/64', 'dev', 'sc', 'nodad']);
    await t.server.exec('ip', ['link', 'set', 'sc', 'up']);
    for (const a of [CORP.main, CORP.chain, CORP.idn, CORP.shared, CORP.chased]) await corp.exec('ip', ['address', 'add', `${a}/24`, 'dev', 'up0']);
    await corp.exec('ip', ['address', 'add', `${CORP.v6}/64`, 'dev', 'up0', 'nodad']);
    await corp.exec('ip', ['link', 'set', 'up0', 'up']);
    await corp.exec('ip', ['route', 'add', 'default', 'via', '10.20.0.1']);
    await corp.exec('ip', ['-6', 'route', 'add', 'default', 'via', 'fd20::1']);
    // The client's system resolver is the public DNS server.
    writeFileSync(`${t.client.etcDir}/resolv.conf`, `nameserver ${ADDR.internet4}\n`);

    const corpDns = await startDns(corp, CORP_ZONE);
    const publicDns = await startDns(t.internet, PUBLIC_ZONE);
    const corpHost = await startListener(corp, { tcp: [TCP_PORT], udp: [] });
    const publicHost = await startListener(t.internet, { tcp: [TCP_PORT], udp: [] });

    const dir = configDir(scope);
    const [s, c] = [keys(), keys()];
    const sIf = uniqueName('ps');
    const cIf = uniqueName('pc');
    clientIf = cIf;
    await up(scope, t.server, writeConf(dir, sIf, [
      '[Interface]', `PrivateKey = ${s.priv}`, 'Address = 10.99.0.1/24, fd99::1/64', `ListenPort = ${TUNNEL_PORT}`, '',
      '[Peer]', `PublicKey = ${c.pub}`, `AllowedIPs = ${TUNNEL.v4}/32, ${TUNNEL.v6}/128`,
    ]), sIf);
    const conf = writeConf(dir, cIf, [
      '[Interface]', `PrivateKey = ${c.priv}`, `Address = ${TUNNEL.v4}/24, ${TUNNEL.v6}/64`, `DNS = ${CORP.main}`,
      'MailDomains = corp.test',
      'CalendarDomains = Shared.Corp.Test.',
      'ContactsDomains = bücher.test',
      '',
      '[Peer]', `PublicKey = ${s.pub}`, `Endpoint = ${ADDR.server4}:${TUNNEL_PORT}`, 'AllowedIPs = 0.0.0.0/0, ::/0', 'PersistentKeepalive = 1',
    ]);
    return { t, corp, conf, cIf, corpDns, publicDns, corpHost, publicHost };
  }

  it('routes the app\'s names through the tunnel and everything else directly; CNAMEs, AAAA, IDN, two apps, TCP; TTL expiry; down leaves nothing', async () => {
    const { t, conf, cIf, corpDns, publicDns, corpHost, publicHost } = await world();
    const before = await clientState(t.client);
    await up(scope, t.client, conf, cIf);

    // The resolver listens on the loopback, one port per app, UDP and TCP, IPv4 and IPv6.
    expect((await t.client.exec('ss', ['-Hlntu'])).split('\n').filter((l) => /127\.0\.0\.1:\d+|\[::1\]:\d+/.test(l))).toHaveLength(3 * 4);

    // The mail app reaches mail.corp.test through the tunnel: the corporate host sees the tunnel's address.
    const viaTunnel = await node(t, 'mail', 'connect.mjs', ['mail.corp.test', String(TCP_PORT), '4']);
    expect(viaTunnel.out).toContain(`connected ${CORP.main}`);
    expect(viaTunnel.code).toBe(0);
    expect(corpHost.seen()).toContain(`tcp ${TCP_PORT} ${TUNNEL.v4}`);
    const viaTunnel6 = await node(t, 'mail', 'connect.mjs', ['mail.corp.test', String(TCP_PORT), '6']);
    expect(viaTunnel6.out).toContain(`connected ${CORP.v6}`);
    expect(corpHost.seen()).toContain(`tcp ${TCP_PORT} ${TUNNEL.v6}`);
    // … and www.public.test directly: the public host sees the client's outside address.
    const direct = await node(t, 'mail', 'connect.mjs', ['www.public.test', String(TCP_PORT), '4']);
    expect(direct.code, direct.out).toBe(0);
    expect(publicHost.seen()).toEqual([`tcp ${TCP_PORT} ${ADDR.clientUp4}`]);
    expect(await setElements(t.client, 'mail', 4)).toEqual([CORP.main]);
    expect(await setElements(t.client, 'mail', 6)).toEqual([CORP.v6]);

    // A CNAME chain within the answer, and one the resolver follows itself: the addresses at the end are routed.
    const alias = await query(t, 'mail', 'alias.corp.test', 'A');
    expect(alias.answers.map((a) => `${a.type} ${String(a.data)}`)).toEqual(['CNAME mid.corp.test', 'CNAME chain.corp.test', `A ${CORP.chain}`]);
    const chased = await query(t, 'mail', 'chase.corp.test', 'A');
    expect(chased.answers.map((a) => `${a.type} ${String(a.data)}`)).toEqual(['CNAME far.corp.test', `A ${CORP.chased}`]);
    expect((await setElements(t.client, 'mail', 4)).sort()).toEqual([CORP.main, CORP.chain, CORP.chased].sort());

    // An IDN domain (ContactsDomains = bücher.test) matches its punycode, in any case, with a trailing dot.
    const idn = await query(t, 'contacts', 'XN--BCHER-KVA.test.', 'A');
    expect(idn.answers.map((a) => String(a.data))).toEqual([CORP.idn]);
    expect(await setElements(t.client, 'contacts', 4)).toEqual([CORP.idn]);
    // Not one of mail's domains: asked from mail, it goes to the public resolver, which has no such name.
    expect((await query(t, 'mail', 'xn--bcher-kva.test', 'A')).rcode).toBe('NXDOMAIN');

    // A name in two apps' lists: each app's set holds what that app resolved.
    await query(t, 'calendar', 'shared.corp.test', 'A');
    expect(await setElements(t.client, 'calendar', 4)).toEqual([CORP.shared]);
    expect(await setElements(t.client, 'mail', 4)).not.toContain(CORP.shared);
    await query(t, 'mail', 'shared.corp.test', 'A');
    expect(await setElements(t.client, 'mail', 4)).toContain(CORP.shared);

    // Too big for UDP: truncated; over TCP, whole; the resolver asked the corporate DNS over TCP too.
    const small = await query(t, 'mail', 'big.corp.test', 'A', 'udp');
    expect(small.tc).toBe(true);
    expect(small.answers).toEqual([]);
    const whole = await query(t, 'mail', 'big.corp.test', 'A', 'tcp');
    expect(whole.tc).toBe(false);
    expect(whole.answers.map((a) => String(a.data)).sort()).toEqual([...BIG].sort());
    expect(await setElements(t.client, 'mail', 4)).toEqual(expect.arrayContaining(BIG));
    expect(corpDns().some((l) => l.startsWith('query big.corp.test A tcp '))).toBe(true);
    // The TTLs the app is told are never longer than the set keeps an address.
    expect(whole.answers.every((a) => a.ttl <= 3600)).toBe(true);

    // Every corporate name went to the corporate DNS through the tunnel, none to the public resolver.
    expect(corpDns().every((l) => l.endsWith(` ${TUNNEL.v4}`))).toBe(true);
    expect(publicDns().filter((l) => l.includes('corp.test'))).toEqual([]);

    // burrow show: each app's domains and its live set entries (mail.corp.test asked again
    // first: its entry, kept 30 s, may have expired on a slow machine).
    await query(t, 'mail', 'mail.corp.test', 'A');
    const shown = JSON.parse((await burrow(t.client, ['show', cIf, '--json'])).stdout) as { perApp: { name: string; domains: string[]; entries: { v4: number; v6: number } }[] };
    expect(shown.perApp.map((a) => [a.name, a.domains])).toEqual([['mail', ['corp.test']], ['calendar', ['shared.corp.test']], ['contacts', ['xn--bcher-kva.test']]]);
    expect(shown.perApp[0]!.entries).toEqual({ v4: 4 + BIG.length, v6: 1 });
    expect((await burrow(t.client, ['show', cIf])).stdout).toContain('app calendar: shared.corp.test; 1 live address (1 IPv4, 0 IPv6)');

    // A process outside the app: www.public.test directly; mail.corp.test is the public answer, and the corporate host is out of reach.
    const outside = await node(t, undefined, 'connect.mjs', ['www.public.test', String(TCP_PORT), '4']);
    expect(outside.code, outside.out).toBe(0);
    expect(publicHost.seen().filter((l) => l === `tcp ${TCP_PORT} ${ADDR.clientUp4}`)).toHaveLength(2);
    expect((await query(t, undefined, 'mail.corp.test', 'A')).answers.map((a) => String(a.data))).toEqual(['192.0.2.99']);
    expect((await node(t, undefined, 'connect.mjs', [CORP.main, String(TCP_PORT), '4'])).code).not.toBe(0);

    // After the TTL the set entry is gone (mail.corp.test has TTL 1, kept 30 s), but a connection opened before stays up.
    const long = t.client.spawn('env', [process.execPath, CLI, 'exec', '--app', 'mail', '--interface', cIf, '--', process.execPath, join(SUPPORT, 'connect.mjs'), 'mail.corp.test', String(TCP_PORT), '4', '75']);
    const echoes = (): number => Number(/echo (\d+)\n(?![\s\S]*echo)/.exec(t.client.outputOf(long))?.[1] ?? 0);
    const deadline = Date.now() + 70_000;
    while ((await setElements(t.client, 'mail', 4)).includes(CORP.main) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1000));
    expect(await setElements(t.client, 'mail', 4)).not.toContain(CORP.main);
    expect(t.client.outputOf(long)).toContain(`connected ${CORP.main}`);
    const atExpiry = echoes();
    await new Promise((r) => setTimeout(r, 2500));
    expect(echoes()).toBeGreaterThan(atExpiry);
    // A new connection to that address, without asking the name again, no longer goes through the tunnel.
    expect((await node(t, 'mail', 'connect.mjs', [CORP.main, String(TCP_PORT), '4'])).code).not.toBe(0);
    long.kill('SIGTERM');

    // down removes the cgroups, the sets and rules (the table), the policy rules and the resolver.
    const down = await burrow(t.client, ['down', cIf]);
    expect(down.code, down.stderr).toBe(0);
    expect(await clientState(t.client)).toEqual(before);
    expect(existsSync(join(cgroupRoot(), 'burrow', cIf))).toBe(false);
  }, 240_000);

  it('burrow exec: the command runs as the sudo user, in the app\'s cgroup; without root it says what it needs; SIGKILL then down leaves nothing', async () => {
    const { t, conf, cIf } = await world();
    const before = await clientState(t.client);
    await up(scope, t.client, conf, cIf);

    const asUser = await t.client.exec('env', ['SUDO_UID=65534', 'SUDO_GID=65534', process.execPath, CLI, 'exec', '--app', 'mail', '--interface', cIf, '--', 'sh', '-c', 'id -u; id -g; cat /proc/self/cgroup']);
    expect(asUser.split('\n').slice(0, 2)).toEqual(['65534', '65534']);
    expect(asUser).toContain(`0::/burrow/${cIf}/mail`);

    const notRoot = await t.client.exec('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'exec', '--app', 'mail', '--', 'true']).then(
      () => ({ code: 0, stderr: '' }),
      (e: { exitCode?: number; stderr?: string }) => ({ code: e.exitCode, stderr: e.stderr ?? '' }),
    );
    expect(notRoot.code).toBe(1);
    expect(notRoot.stderr).toContain('burrow exec needs root');
    const unknown = await burrow(t.client, ['exec', '--app', 'games', '--', 'true']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('routes the app games');

    // A process in the app outlives its tunnel's daemon, which is SIGKILLed.
    const sleeper = t.client.spawn('env', [process.execPath, CLI, 'exec', '--app', 'mail', '--interface', cIf, '--', 'sleep', '60']);
    const cgroupProcs = join(cgroupRoot(), 'burrow', cIf, 'mail', 'cgroup.procs');
    const deadline = Date.now() + 10_000;
    while ((!existsSync(cgroupProcs) || readFileSync(cgroupProcs, 'utf8').trim() === '') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(readFileSync(cgroupProcs, 'utf8').trim()).not.toBe('');
    const pid = (JSON.parse(readFileSync(journalPath(cIf), 'utf8')) as { daemon: { pid: number } }).daemon.pid;
    process.kill(pid, 'SIGKILL');
    expect(await waitForExit(pid, 10_000)).toBe(true);
    expect(await t.client.exec('nft', ['list', 'tables'])).toContain('table inet burrow');

    const down = await burrow(t.client, ['down', cIf]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain('cgroups');
    expect(await clientState(t.client)).toEqual(before);
    expect(existsSync(join(cgroupRoot(), 'burrow', cIf))).toBe(false);
    expect(existsSync(journalPath(cIf))).toBe(false);
    // The app's process goes on, outside any app.
    expect(sleeper.exitCode).toBeNull();
    sleeper.kill('SIGTERM');
  }, 180_000);
});
