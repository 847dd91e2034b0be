// The Linux platform layer for real. Every test gets a network namespace of its own and
// runs applyLinux there through an Exec that prefixes `ip netns exec NS`, so every
// command (ip, sysctl, cat/tee of resolv.conf, the hooks) acts on that namespace. The
// netns harness creates /etc/netns/NS/resolv.conf first, so /etc/resolv.conf inside is
// the namespace's file, never the host's; the last test checks that the host's routes,
// rules and resolver are as they were.
//
// The stand-in for the runtime's TUN is a persistent TUN device (`ip tuntap add mode tun`):
// the same kind of link (POINTOPOINT, NOARP, no carrier until a process attaches), and it
// needs no module beyond tun (this host has no `dummy`). The "uplink" is a veth pair
// inside the namespace, both ends in it, carrying the namespace's default route.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { applyLinux, createExec, type DnsMethod, type Exec, LinuxPlatformError, runHooks } from '../../src/platform/linux/index.js';
import { type TunnelSettings, tunnelSettings, type TunnelSettingsOptions } from '../../src/policy/index.js';
import { type Netns, netnsSuite, run, uniqueName } from '../support/netns.js';
import { requireHost } from '../support/privileges.js';

const FILE_DNS: DnsMethod = { kind: 'file', path: '/etc/resolv.conf' };
const ENDPOINT = '203.0.113.9';

async function settingsOf(fixture: string, opts: TunnelSettingsOptions = {}): Promise<TunnelSettings> {
  const text = await readFile(new URL(`../fixtures/configs/${fixture}.conf`, import.meta.url), 'utf8');
  return tunnelSettings(parseConfig(text, `${fixture}.conf`), opts);
}

type Json = Record<string, unknown>;

interface Snapshot {
  routes4: Json[];
  routes6: Json[];
  rules4: Json[];
  rules6: Json[];
  addresses: Json[];
  srcValidMark: string;
  resolvConf: string;
}

async function ipJson(ns: Netns, args: string[]): Promise<Json[]> {
  const out = await ns.exec('ip', ['-j', ...args]);
  return out.trim() === '' ? [] : (JSON.parse(out) as Json[]);
}

async function snapshot(ns: Netns): Promise<Snapshot> {
  return {
    routes4: await ipJson(ns, ['-4', 'route', 'show', 'table', 'all']),
    routes6: await ipJson(ns, ['-6', 'route', 'show', 'table', 'all']),
    rules4: await ipJson(ns, ['-4', 'rule', 'show']),
    rules6: await ipJson(ns, ['-6', 'rule', 'show']),
    // Without `qdisc`: bringing a link up for the first time attaches the default queueing
    // discipline, and the kernel leaves it there after the link goes down again.
    addresses: (await ipJson(ns, ['addr'])).map(({ qdisc: _, ...link }) => link),
    srcValidMark: (await ns.exec('sysctl', ['-n', 'net.ipv4.conf.all.src_valid_mark'])).trim(),
    resolvConf: await ns.exec('cat', ['/etc/resolv.conf']),
  };
}

/** Entries of `after` that are not in `before`, compared as JSON. */
function added(before: Json[], after: Json[]): Json[] {
  const old = new Set(before.map((x) => JSON.stringify(x)));
  return after.filter((x) => !old.has(JSON.stringify(x)));
}

/** "TABLE DST" of each route through `dev`, sorted; main's routes have no table field. */
function routesVia(routes: Json[], dev: string): string[] {
  return routes
    .filter((r) => r.dev === dev && r.table !== 'local' && r.type !== 'multicast')
    .map((r) => `${typeof r.table === 'string' ? r.table : 'main'} ${String(r.dst)}`)
    .sort();
}

function addressesOf(snap: Snapshot, dev: string): string[] {
  const link = snap.addresses.find((l) => l.ifname === dev);
  const info = (link?.addr_info ?? []) as Json[];
  return info.filter((a) => a.scope !== 'link').map((a) => `${String(a.local)}/${String(a.prefixlen)}`);
}

async function link(ns: Netns, dev: string): Promise<{ mtu: number; up: boolean }> {
  const [l] = await ipJson(ns, ['link', 'show', 'dev', dev]);
  return { mtu: l?.mtu as number, up: (l?.flags as string[]).includes('UP') };
}

/** A namespace with a TUN stand-in and a veth "uplink" (198.51.100.2/24, default route, MTU 1400). */
async function host(scope: ReturnType<typeof netnsSuite>): Promise<{ ns: Netns; exec: Exec; tun: string }> {
  const ns = await scope.create('bpl');
  const tun = uniqueName('bt');
  await ns.exec('ip', ['tuntap', 'add', 'dev', tun, 'mode', 'tun']);
  await ns.exec('ip', ['link', 'add', 'up0', 'mtu', '1400', 'type', 'veth', 'peer', 'name', 'up1']);
  await ns.exec('ip', ['address', 'add', '198.51.100.2/24', 'dev', 'up0']);
  await ns.exec('ip', ['link', 'set', 'up1', 'up']);
  await ns.exec('ip', ['link', 'set', 'up0', 'up']);
  await ns.exec('ip', ['route', 'add', 'default', 'via', '198.51.100.1', 'dev', 'up0']);
  // The kernel finishes some of this later (IPv6 duplicate address detection, lo's ::1
  // route): wait until two snapshots agree, so "before" is not taken half way.
  let last = JSON.stringify(await snapshot(ns));
  for (let i = 0; i < 30; i++) {
    await new Promise((r) => setTimeout(r, 150));
    const now = JSON.stringify(await snapshot(ns));
    if (now === last && !now.includes('"tentative"')) break;
    last = now;
  }
  return { ns, exec: createExec(['ip', 'netns', 'exec', ns.name]), tun };
}

describe.skipIf(requireHost(['ip', 'sysctl', 'bash']))('Linux platform layer in a network namespace', () => {
  const scope = netnsSuite();
  let hostBefore: { rules: string; routes: string; resolvConf: string; srcValidMark: string };

  const hostState = async (): Promise<typeof hostBefore> => ({
    rules: (await run('ip', ['-j', '-4', 'rule', 'show'])) + (await run('ip', ['-j', '-6', 'rule', 'show'])),
    routes: (await run('ip', ['-j', '-4', 'route', 'show', 'table', 'all'])) + (await run('ip', ['-j', '-6', 'route', 'show', 'table', 'all'])),
    resolvConf: await readFile('/etc/resolv.conf', 'utf8'),
    srcValidMark: await readFile('/proc/sys/net/ipv4/conf/all/src_valid_mark', 'utf8'),
  });

  beforeAll(async () => {
    hostBefore = await hostState();
  });

  it('split tunnel: addresses, MTU and the AllowedIPs routes in main; undo restores every dump', async () => {
    const { ns, exec, tun } = await host(scope);
    const before = await snapshot(ns);
    const applied = await applyLinux(await settingsOf('split-tunnel'), { ifname: tun, exec, dns: FILE_DNS });
    const after = await snapshot(ns);

    expect(addressesOf(after, tun)).toEqual(['172.16.9.14/24']);
    expect(await link(ns, tun)).toEqual({ mtu: 1380, up: true });
    // 172.16.9.0/24 is the kernel's connected route; the other two are ours.
    expect(routesVia(after.routes4, tun)).toEqual(['main 10.20.0.0/16', 'main 172.16.9.0/24', 'main 192.168.50.0/24']);
    expect(added(before.routes4, after.routes4).filter((r) => r.protocol !== 'kernel').map((r) => r.dst).sort()).toEqual(['10.20.0.0/16', '192.168.50.0/24']);
    expect(routesVia(after.routes6, tun)).toEqual([]);
    expect(after.rules4).toEqual(before.rules4);
    expect(after.rules6).toEqual(before.rules6);
    expect(after.resolvConf).toBe(before.resolvConf);
    expect(applied.fwmark).toBeUndefined();
    expect(applied.mtu).toBe(1380);

    await applied.undo();
    expect(await snapshot(ns)).toEqual(before);
    expect(await link(ns, tun)).toEqual({ mtu: 1500, up: false });
    await applied.undo();
    expect(await snapshot(ns)).toEqual(before);
  });

  it('full tunnel: table 51820, the fwmark rules, src_valid_mark and DNS; undo restores every dump', async () => {
    const { ns, exec, tun } = await host(scope);
    const before = await snapshot(ns);
    const settings = await settingsOf('full-tunnel', { resolvedEndpoints: [{ host: ENDPOINT, port: 51820 }] });
    const applied = await applyLinux(settings, { ifname: tun, exec, dns: FILE_DNS });
    const after = await snapshot(ns);

    expect(applied.fwmark).toBe(51820);
    expect(applied.bypassTable).toBe(51820);
    // No MTU in the file: the route to the endpoint (up0, MTU 1400) less 80.
    expect(applied.mtu).toBe(1320);
    expect(await link(ns, tun)).toEqual({ mtu: 1320, up: true });
    expect(addressesOf(after, tun).sort()).toEqual(['10.64.0.2/32', 'fd64::2/128']);

    expect(routesVia(after.routes4, tun)).toEqual(['51820 default']);
    expect(routesVia(after.routes6, tun).filter((r) => !r.includes(' fe80::'))).toEqual(['51820 default', 'main fd64::2']);
    for (const [b, a] of [
      [before.rules4, after.rules4],
      [before.rules6, after.rules6],
    ] as const) {
      expect(added(b, a).map(({ priority: _, ...rule }) => rule)).toEqual([
        { src: 'all', table: 'main', suppress_prefixlen: 0 },
        { not: null, src: 'all', fwmark: '0xca6c', table: '51820' },
      ]);
      expect(a.length).toBe(b.length + 2);
    }
    expect(after.srcValidMark).toBe('1');
    expect(after.resolvConf).toContain('nameserver 10.64.0.1\nnameserver fd64::1\nsearch corp.example.net\n');

    // The bypass works: unmarked traffic to the endpoint goes into the tunnel, the
    // runtime's marked UDP goes out of the uplink.
    const [plain] = await ipJson(ns, ['route', 'get', ENDPOINT]);
    const [marked] = await ipJson(ns, ['route', 'get', ENDPOINT, 'mark', '51820']);
    expect(plain?.dev).toBe(tun);
    expect(marked?.dev).toBe('up0');
    // The LAN stays reachable directly: main's routes other than its default come first.
    const [lan] = await ipJson(ns, ['route', 'get', '198.51.100.77']);
    expect(lan?.dev).toBe('up0');

    await applied.undo();
    expect(await snapshot(ns)).toEqual(before);
    expect(before.srcValidMark).toBe('0');
    expect((await readFile('/etc/resolv.conf', 'utf8'))).toBe(hostBefore.resolvConf);
  });

  it('takes the next table when 51820 is in use', async () => {
    const { ns, exec, tun } = await host(scope);
    await ns.exec('ip', ['route', 'add', '192.0.2.0/24', 'dev', 'up0', 'table', '51820']);
    const before = await snapshot(ns);
    const applied = await applyLinux(await settingsOf('full-tunnel'), { ifname: tun, exec, dns: FILE_DNS });
    expect(applied.fwmark).toBe(51821);
    const rules = await ipJson(ns, ['-4', 'rule', 'show']);
    expect(rules.some((r) => r.fwmark === '0xca6d' && r.table === '51821')).toBe(true);
    await applied.undo();
    expect(await snapshot(ns)).toEqual(before);
  });

  it('IPv6 split tunnel with its DNS', async () => {
    const { ns, exec, tun } = await host(scope);
    const before = await snapshot(ns);
    const applied = await applyLinux(await settingsOf('ipv6-endpoint'), { ifname: tun, exec, dns: FILE_DNS });
    const after = await snapshot(ns);
    expect(addressesOf(after, tun)).toEqual(['2001:db8:100::5/64']);
    expect(routesVia(after.routes6, tun).filter((r) => !r.includes(' fe80::'))).toEqual(['main 2001:db8:100::/48', 'main 2001:db8:100::/64']);
    expect(after.resolvConf).toMatch(/^# Written by Burrow for .*\nnameserver 2001:db8:100::53\n$/);
    expect(after.rules6).toEqual(before.rules6);
    await applied.undo();
    expect(await snapshot(ns)).toEqual(before);
  });

  it('a conflicting address fails the apply, names the command, and rolls back', async () => {
    const { ns, exec, tun } = await host(scope);
    // The second address the full tunnel adds is already there.
    await ns.exec('ip', ['-6', 'address', 'add', 'fd64::2/128', 'dev', tun]);
    const before = await snapshot(ns);
    const error = await applyLinux(await settingsOf('full-tunnel'), { ifname: tun, exec, dns: FILE_DNS }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LinuxPlatformError);
    const e = error as LinuxPlatformError;
    expect(e.code).toBe('ERR_PLATFORM_COMMAND');
    expect(e.message).toContain(`ip -6 address add fd64::2/128 dev ${tun} failed (exit 2): Error: ipv6: address already assigned.`);
    expect(e.message).toContain('rolled back the 1 change already made');
    expect(e.rollbackErrors).toEqual([]);
    // The IPv4 address is gone again; the address that was there before stays.
    expect(await snapshot(ns)).toEqual(before);
  });

  it('a conflicting route fails late and rolls back addresses, MTU, link state and DNS', async () => {
    const { ns, exec, tun } = await host(scope);
    const settings = tunnelSettings(
      parseConfig(
        [
          '[Interface]',
          'PrivateKey = aIjVJ0w9K8imgcaWMAqRpDkpdU8r+LgD8XwdPMMU91U=',
          'Address = 192.0.2.2/24, 2001:db8:c0de::2/64',
          'DNS = 192.0.2.53',
          '[Peer]',
          'PublicKey = Fz20FmFXpIyofG+mliHsPhIsWNqjEjGuIvD3QNDN4Ek=',
          'AllowedIPs = 192.0.2.0/24, 203.0.113.0/24, 10.20.0.0/16',
        ].join('\n'),
        'conflict.conf',
      ),
    );
    // Someone else's route to exactly 10.20.0.0/16: adding ours fails with "File exists".
    await ns.exec('ip', ['route', 'add', '10.20.0.0/16', 'dev', 'up0']);
    const before = await snapshot(ns);
    const error = await applyLinux(settings, { ifname: tun, exec, dns: FILE_DNS }).catch((e: unknown) => e);
    expect((error as LinuxPlatformError).code).toBe('ERR_PLATFORM_COMMAND');
    expect((error as Error).message).toContain(`ip -4 route add 10.20.0.0/16 dev ${tun} failed`);
    expect((error as Error).message).toContain('File exists');
    expect((error as Error).message).toContain('rolled back the 5 changes already made');
    expect(await snapshot(ns)).toEqual(before);
    expect(await link(ns, tun)).toEqual({ mtu: 1500, up: false });
  });

  it('undo succeeds after the interface is gone, and still removes the policy rules', async () => {
    const { ns, exec, tun } = await host(scope);
    const before = await snapshot(ns);
    const applied = await applyLinux(await settingsOf('full-tunnel'), { ifname: tun, exec, dns: FILE_DNS });
    await ns.exec('ip', ['tuntap', 'del', 'dev', tun, 'mode', 'tun']);
    await applied.undo();
    const after = await snapshot(ns);
    expect(after.rules4).toEqual(before.rules4);
    expect(after.rules6).toEqual(before.rules6);
    expect(after.resolvConf).toBe(before.resolvConf);
    expect(after.srcValidMark).toBe(before.srcValidMark);
    // Everything else is as before, less the interface's own kernel routes and addresses.
    expect(after.routes4).toEqual(before.routes4.filter((r) => r.dev !== tun));
    expect(after.routes6).toEqual(before.routes6.filter((r) => r.dev !== tun));
  });

  it('resolvconf, when present: fed the resolver lines, and -d on undo', async () => {
    const { ns, exec, tun } = await host(scope);
    const dir = await mkdtemp(join(tmpdir(), 'burrow-resolvconf-'));
    try {
      const logFile = join(dir, 'log');
      const program = join(dir, 'resolvconf');
      await writeFile(program, `#!/bin/bash\n{ echo "ARGS $*"; if [[ $1 == -a ]]; then cat; fi; } >> '${logFile}'\n`, { mode: 0o755 });
      const before = await snapshot(ns);
      const applied = await applyLinux(await settingsOf('full-tunnel'), {
        ifname: tun,
        exec,
        dns: { kind: 'resolvconf', program, interfacePrefix: 'tun.' },
      });
      expect(await readFile(logFile, 'utf8')).toBe(`ARGS -a tun.${tun} -m 0 -x\nnameserver 10.64.0.1\nnameserver fd64::1\nsearch corp.example.net\n`);
      await applied.undo();
      expect((await readFile(logFile, 'utf8')).endsWith(`ARGS -d tun.${tun} -f\n`)).toBe(true);
      expect(await snapshot(ns)).toEqual(before);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('hooks run in the namespace with %i replaced; a failing hook fails with its output', async () => {
    const { ns, exec, tun } = await host(scope);
    const runs = await runHooks(['ip -o link show dev %i', 'ip link set dev %i alias "burrow %i"'], tun, { exec });
    expect(runs[0]?.command).toBe(`ip -o link show dev ${tun}`);
    expect(runs[0]?.stdout).toContain(`${tun}:`);
    const [l] = await ipJson(ns, ['link', 'show', 'dev', tun]);
    expect(l?.ifalias).toBe(`burrow ${tun}`);
    const error = await runHooks(['echo "%i is failing" >&2; exit 3'], tun, { exec }).catch((e: unknown) => e);
    expect((error as LinuxPlatformError).code).toBe('ERR_PLATFORM_HOOK');
    expect((error as Error).message).toContain(`failed (exit 3): ${tun} is failing`);
  });

  it("never touched the host's routes, rules, sysctl or resolver", async () => {
    expect(await hostState()).toEqual(hostBefore);
  });
});
