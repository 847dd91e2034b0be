// The policy layer (Config -> TunnelSettings) on every fixture, and the Linux layer's
// pure parts: the commands describeLinux lists, and applyLinux driven by a scripted
// stand-in for the system (no root, nothing is run) to check its choices, its rollback
// and its undo. test/netns/platform-linux.test.ts runs the same layer for real.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type Config, parseConfig } from '../../src/config/index.js';
import { applyLinux, describeLinux, type DnsMethod, type Exec, type ExecResult, LinuxPlatformError, runHooks } from '../../src/platform/linux/index.js';
import { DEFAULT_FWMARK, DEFAULT_MTU, type IpSettings, type TunnelSettings, tunnelSettings } from '../../src/policy/index.js';

function fixture(name: string): Config {
  return parseConfig(readFileSync(new URL(`../fixtures/configs/${name}.conf`, import.meta.url), 'utf8'), `${name}.conf`);
}

/** An IpSettings with its prefixes as text, for readable comparisons. */
function texts(ip: IpSettings): Record<keyof IpSettings, string[]> {
  return {
    addresses: ip.addresses.map((p) => p.text),
    includedRoutes: ip.includedRoutes.map((p) => p.text),
    excludedRoutes: ip.excludedRoutes.map((p) => p.text),
  };
}

const FILE_DNS: DnsMethod = { kind: 'file', path: '/etc/resolv.conf' };
const RESOLVCONF: DnsMethod = { kind: 'resolvconf', program: 'resolvconf', interfacePrefix: 'tun.' };

describe('tunnelSettings', () => {
  it('full tunnel: /0 in both families, DNS, the default MTU and wg-quick\'s fwmark', () => {
    const s = tunnelSettings(fixture('full-tunnel'));
    expect(texts(s.ipv4)).toEqual({ addresses: ['10.64.0.2/32'], includedRoutes: ['0.0.0.0/0'], excludedRoutes: [] });
    expect(texts(s.ipv6)).toEqual({ addresses: ['fd64::2/128'], includedRoutes: ['::/0'], excludedRoutes: [] });
    expect(s.fullTunnel).toEqual({ v4: true, v6: true });
    expect(s.dns).toEqual({ servers: ['10.64.0.1', 'fd64::1'], searchDomains: ['corp.example.net'], matchDomains: [''] });
    expect(s.mtu).toBe(DEFAULT_MTU);
    expect(s.mtu).toBe(1420);
    expect(s.mtuSource).toBe('default');
    expect(s.table).toBe('auto');
    expect(s.fwmark).toBe(DEFAULT_FWMARK);
    expect(s.fwmark).toBe(51820);
    expect(s.fwmarkSource).toBe('auto');
    // The endpoint is a name: without resolvedEndpoints there is nothing to exclude yet.
    expect(s.endpoints).toEqual([]);
    expect(s.includeAllNetworks).toBe(false);
    expect(s.excludeLocalNetworks).toBe(false);
    expect(s.perApp).toEqual({ mail: [], calendar: [], contacts: [] });
  });

  it('resolved endpoints become host routes excluded from the tunnel, per family', () => {
    const s = tunnelSettings(fixture('full-tunnel'), {
      resolvedEndpoints: [
        { host: '203.0.113.9', port: 51820 },
        { host: '2001:DB8:0:0::9', port: 51820 },
        { host: '203.0.113.9', port: 51820 },
      ],
    });
    expect(texts(s.ipv4).excludedRoutes).toEqual(['203.0.113.9/32']);
    expect(texts(s.ipv6).excludedRoutes).toEqual(['2001:db8::9/128']);
    expect(s.endpoints).toEqual([
      { family: 4, host: '203.0.113.9', port: 51820 },
      { family: 6, host: '2001:db8::9', port: 51820 },
    ]);
  });

  it('refuses a resolved endpoint that is not an address', () => {
    expect(() => tunnelSettings(fixture('full-tunnel'), { resolvedEndpoints: [{ host: 'vpn.example.net', port: 51820 }] })).toThrow(RangeError);
    expect(() => tunnelSettings(fixture('full-tunnel'), { resolvedEndpoints: [{ host: '192.0.2.1', port: 0 }] })).toThrow(RangeError);
  });

  it('split tunnel: the AllowedIPs as routes, the configured MTU, no mark', () => {
    const s = tunnelSettings(fixture('split-tunnel'));
    expect(texts(s.ipv4)).toEqual({
      addresses: ['172.16.9.14/24'],
      includedRoutes: ['172.16.9.0/24', '10.20.0.0/16', '192.168.50.0/24'],
      // Endpoint = 198.51.100.7 is an address: used without resolvedEndpoints.
      excludedRoutes: ['198.51.100.7/32'],
    });
    expect(texts(s.ipv6)).toEqual({ addresses: [], includedRoutes: [], excludedRoutes: [] });
    expect(s.fullTunnel).toEqual({ v4: false, v6: false });
    expect(s.mtu).toBe(1380);
    expect(s.mtuSource).toBe('config');
    expect(s.fwmark).toBeUndefined();
    expect(s.fwmarkSource).toBeUndefined();
    expect(s.dns).toEqual({ servers: [], searchDomains: [], matchDomains: [] });
  });

  it('server: every peer\'s AllowedIPs, the configured FwMark and Table', () => {
    const s = tunnelSettings(fixture('server'));
    expect(texts(s.ipv4).includedRoutes).toEqual(['10.99.0.2/32', '10.99.0.3/32', '10.99.0.4/32', '192.168.77.0/24']);
    expect(texts(s.ipv6).includedRoutes).toEqual(['fd99::2/128', 'fd99::3/128']);
    expect(texts(s.ipv4).addresses).toEqual(['10.99.0.1/24']);
    expect(texts(s.ipv6).addresses).toEqual(['fd99::1/64']);
    expect(s.table).toBe(1234);
    expect(s.fwmark).toBe(0xca6c);
    expect(s.fwmarkSource).toBe('config');
  });

  it('Table = off and host bits cleared in AllowedIPs (messy.conf)', () => {
    const s = tunnelSettings(fixture('messy'));
    expect(s.table).toBe('off');
    expect(texts(s.ipv4)).toEqual({ addresses: ['10.0.0.7/24'], includedRoutes: ['10.0.0.0/24'], excludedRoutes: [] });
    expect(texts(s.ipv6)).toEqual({ addresses: ['2001:db8::7/64'], includedRoutes: ['2001:db8::/64'], excludedRoutes: [] });
    expect(s.dns).toEqual({ servers: ['1.1.1.1', '2606:4700:4700::1111'], searchDomains: ['home.example.net'], matchDomains: [''] });
    // Table = off routes nothing, so no full tunnel needs a bypass mark.
    expect(s.fwmark).toBeUndefined();
  });

  it('an IPv6-only peer: IPv6 routes and the IPv6 endpoint excluded', () => {
    const s = tunnelSettings(fixture('ipv6-endpoint'));
    expect(texts(s.ipv6)).toEqual({ addresses: ['2001:db8:100::5/64'], includedRoutes: ['2001:db8:100::/48'], excludedRoutes: ['2001:db8::1/128'] });
    expect(texts(s.ipv4)).toEqual({ addresses: [], includedRoutes: [], excludedRoutes: [] });
    expect(s.dns.servers).toEqual(['2001:db8:100::53']);
  });

  it('carries the kill switch and the per-app domains', () => {
    const s = tunnelSettings(fixture('burrow-kill-switch'));
    expect(s.includeAllNetworks).toBe(true);
    expect(s.excludeLocalNetworks).toBe(true);
    expect(s.perApp).toEqual({
      mail: ['example.com', 'mail.example.org'],
      calendar: ['calendar.example.com'],
      contacts: ['contacts.example.com', 'dir.example.org'],
    });
    expect(s.fullTunnel).toEqual({ v4: true, v6: true });
  });

  it('drops duplicate addresses, routes and DNS entries, keeping the first', () => {
    const base = fixture('server');
    const first = base.peers[0]!;
    const config: Config = {
      interface: { ...base.interface, addresses: [...base.interface.addresses, ...base.interface.addresses], dns: { servers: ['192.0.2.53', '192.0.2.53'], search: ['a.example', 'a.example'] } },
      peers: [...base.peers, { ...first, allowedIPs: [...first.allowedIPs] }],
    };
    const s = tunnelSettings(config);
    expect(texts(s.ipv4).addresses).toEqual(['10.99.0.1/24']);
    expect(texts(s.ipv4).includedRoutes).toEqual(['10.99.0.2/32', '10.99.0.3/32', '10.99.0.4/32', '192.168.77.0/24']);
    expect(s.dns).toEqual({ servers: ['192.0.2.53'], searchDomains: ['a.example'], matchDomains: [''] });
  });

  it('FwMark = off (0) is no mark; a full tunnel in a numbered table needs none', () => {
    const base = fixture('full-tunnel');
    expect(tunnelSettings({ ...base, interface: { ...base.interface, fwMark: 0 } }).fwmark).toBe(51820);
    const numbered = tunnelSettings({ ...base, interface: { ...base.interface, table: 200 } });
    expect(numbered.fwmark).toBeUndefined();
    expect(numbered.fullTunnel).toEqual({ v4: true, v6: true });
    const marked = tunnelSettings({ ...base, interface: { ...base.interface, fwMark: 0x1234 } });
    expect([marked.fwmark, marked.fwmarkSource]).toEqual([0x1234, 'config']);
  });

  it('on every fixture: the included routes are exactly the AllowedIPs, split by family', () => {
    for (const name of ['full-tunnel', 'split-tunnel', 'server', 'messy', 'ipv6-endpoint', 'burrow-kill-switch', 'preshared-key']) {
      const config = fixture(name);
      const s = tunnelSettings(config);
      const all = config.peers.flatMap((p) => p.allowedIPs.map((a) => a.text)).sort();
      expect([...s.ipv4.includedRoutes, ...s.ipv6.includedRoutes].map((p) => p.text).sort()).toEqual(all);
      expect(s.ipv4.includedRoutes.every((p) => p.family === 4) && s.ipv6.includedRoutes.every((p) => p.family === 6)).toBe(true);
      expect(s.fullTunnel.v4).toBe(all.includes('0.0.0.0/0'));
      expect(s.fullTunnel.v6).toBe(all.includes('::/0'));
    }
  });
});

describe('describeLinux', () => {
  it('systemd-resolved: the servers, the ~. routing domain and default-route on the link; one revert undoes all three', async () => {
    const resolved: DnsMethod = { kind: 'resolved', program: 'resolvectl' };
    const lines = describeLinux(tunnelSettings(fixture('full-tunnel')), 'wg0', { dns: resolved });
    expect(lines).toContain('resolvectl dns wg0 10.64.0.1 fd64::1');
    expect(lines).toContain('resolvectl domain wg0 \'~.\' corp.example.net');
    expect(lines).toContain('resolvectl default-route wg0 yes');
    const sys = fakeSystem();
    const applied = await applyLinux(tunnelSettings(fixture('full-tunnel')), { ifname: 'wg0', exec: sys.exec, dns: resolved });
    const before = sys.changes().length;
    await applied.undo();
    expect(sys.changes().slice(before).filter((c) => c.startsWith('resolvectl'))).toEqual(['resolvectl revert wg0']);
  });

  it('split tunnel: addresses, MTU, routes longest first, none the connected route already covers', () => {
    expect(describeLinux(tunnelSettings(fixture('split-tunnel')), 'wg0', { dns: FILE_DNS })).toEqual([
      'ip -4 address add 172.16.9.14/24 dev wg0',
      'ip link set mtu 1380 up dev wg0',
      // 172.16.9.0/24 is the connected route of 172.16.9.14/24: the kernel adds it.
      'ip -4 route add 192.168.50.0/24 dev wg0',
      'ip -4 route add 10.20.0.0/16 dev wg0',
    ]);
  });

  it('full tunnel: resolvconf, then the fwmark bypass for each family', () => {
    expect(describeLinux(tunnelSettings(fixture('full-tunnel')), 'wg0', { dns: RESOLVCONF })).toEqual([
      'ip -4 address add 10.64.0.2/32 dev wg0',
      'ip -6 address add fd64::2/128 dev wg0',
      'ip link set mtu 1420 up dev wg0',
      'resolvconf -a tun.wg0 -m 0 -x  # stdin: nameserver 10.64.0.1, nameserver fd64::1, search corp.example.net',
      'ip -4 rule add not fwmark 51820 table 51820',
      'ip -4 rule add table main suppress_prefixlength 0',
      'ip -4 route add 0.0.0.0/0 dev wg0 table 51820',
      'sysctl -q -w net.ipv4.conf.all.src_valid_mark=1',
      'ip -6 rule add not fwmark 51820 table 51820',
      'ip -6 rule add table main suppress_prefixlength 0',
      'ip -6 route add ::/0 dev wg0 table 51820',
    ]);
  });

  it('without resolvconf, /etc/resolv.conf is rewritten', () => {
    const lines = describeLinux(tunnelSettings(fixture('full-tunnel')), 'wg0', { dns: FILE_DNS });
    expect(lines[3]).toMatch(/^tee \/etc\/resolv\.conf {2}# stdin: nameserver 10\.64\.0\.1, nameserver fd64::1, search corp\.example\.net/);
  });

  it('FwMark set: the bypass uses it as the table', () => {
    const base = fixture('full-tunnel');
    const s = tunnelSettings({ ...base, interface: { ...base.interface, fwMark: 0x1234 } });
    expect(describeLinux(s, 'wg0', { dns: FILE_DNS })).toContain('ip -4 rule add not fwmark 4660 table 4660');
  });

  it('Table = N: every route, /0 included, into table N and no rules', () => {
    expect(describeLinux(tunnelSettings(fixture('server')), 'wg0', { dns: FILE_DNS })).toEqual([
      'ip -4 address add 10.99.0.1/24 dev wg0',
      'ip -6 address add fd99::1/64 dev wg0',
      'ip link set mtu 1420 up dev wg0',
      // Longest prefix first, as wg-quick; ties in file order.
      'ip -4 route add 10.99.0.2/32 dev wg0 table 1234',
      'ip -4 route add 10.99.0.3/32 dev wg0 table 1234',
      'ip -4 route add 10.99.0.4/32 dev wg0 table 1234',
      'ip -4 route add 192.168.77.0/24 dev wg0 table 1234',
      'ip -6 route add fd99::2/128 dev wg0 table 1234',
      'ip -6 route add fd99::3/128 dev wg0 table 1234',
    ]);
    const base = fixture('full-tunnel');
    const lines = describeLinux(tunnelSettings({ ...base, interface: { ...base.interface, table: 200 } }), 'wg0', { dns: FILE_DNS });
    expect(lines).toContain('ip -4 route add 0.0.0.0/0 dev wg0 table 200');
    expect(lines).toContain('ip -6 route add ::/0 dev wg0 table 200');
    expect(lines.some((l) => l.includes(' rule '))).toBe(false);
  });

  it('Table = off: addresses, MTU and DNS, no routes', () => {
    const lines = describeLinux(tunnelSettings(fixture('messy')), 'wg0', { dns: FILE_DNS });
    expect(lines.slice(0, 3)).toEqual(['ip -4 address add 10.0.0.7/24 dev wg0', 'ip -6 address add 2001:db8::7/64 dev wg0', 'ip link set mtu 1420 up dev wg0']);
    expect(lines.some((l) => l.includes(' route '))).toBe(false);
  });

  it('refuses an interface name Linux or a shell would misread', () => {
    const s = tunnelSettings(fixture('split-tunnel'));
    for (const bad of ['', '-wg0', 'wg 0', 'wg0;reboot', 'a'.repeat(16), 'wg/0']) {
      expect(() => describeLinux(s, bad, { dns: FILE_DNS })).toThrow(LinuxPlatformError);
    }
  });
});

// ---------------------------------------------------------------------------------
// applyLinux against a scripted system

interface FakeSystem {
  exec: Exec;
  /** Every command run, rendered with spaces, read-only queries included. */
  ran: string[];
  /** Only the commands that change something. */
  changes(): string[];
}

/**
 * A stand-in for the system: `answer` gets each command and returns its result, or
 * undefined for the default (success with empty output; `ip -j … show` gives "[]"; no
 * nftables table exists).
 */
function fakeSystem(answer: (cmd: string, input: string | undefined) => Partial<ExecResult> | undefined = () => undefined): FakeSystem {
  const ran: string[] = [];
  const exec: Exec = async (file, args, options) => {
    const cmd = [file, ...args].join(' ');
    ran.push(cmd);
    const given = answer(cmd, options?.input);
    if (given !== undefined) return { exitCode: 0, stdout: '', stderr: '', ...given };
    if (cmd.startsWith('ip -j link show dev')) return { exitCode: 0, stdout: '[{"ifname":"wg0","mtu":1500,"flags":["POINTOPOINT","NOARP"]}]', stderr: '' };
    if (cmd.startsWith('ip -j')) return { exitCode: 0, stdout: '[]', stderr: '' };
    if (cmd.startsWith('sysctl -n')) return { exitCode: 0, stdout: '0\n', stderr: '' };
    // No nftables table of ours yet, as on a fresh system.
    if (cmd.startsWith('nft list table')) return { exitCode: 1, stdout: '', stderr: 'Error: No such file or directory\n' };
    return { exitCode: 0, stdout: '', stderr: '' };
  };
  const isQuery = (c: string): boolean => c.startsWith('ip -j') || c.startsWith('sysctl -n') || c.startsWith('cat ') || c.startsWith('nft list');
  return { exec, ran, changes: () => ran.filter((c) => !isQuery(c)) };
}

describe('applyLinux (scripted system)', () => {
  const fullTunnel = (): TunnelSettings => tunnelSettings(fixture('full-tunnel'));

  it('runs what describeLinux lists and undoes it newest first', async () => {
    const sys = fakeSystem();
    const applied = await applyLinux(fullTunnel(), { ifname: 'wg0', exec: sys.exec, dns: RESOLVCONF });
    expect(applied.commands).toEqual(describeLinux(fullTunnel(), 'wg0', { dns: RESOLVCONF }));
    expect(applied.fwmark).toBe(51820);
    expect(applied.bypassTable).toBe(51820);
    const before = sys.changes().length;
    await applied.undo();
    expect(sys.changes().slice(before)).toEqual([
      'ip -6 route del ::/0 dev wg0 table 51820',
      'ip -6 rule del table main suppress_prefixlength 0',
      'ip -6 rule del not fwmark 51820 table 51820',
      'sysctl -q -w net.ipv4.conf.all.src_valid_mark=0',
      'ip -4 route del 0.0.0.0/0 dev wg0 table 51820',
      'ip -4 rule del table main suppress_prefixlength 0',
      'ip -4 rule del not fwmark 51820 table 51820',
      'resolvconf -d tun.wg0 -f',
      'ip link set dev wg0 mtu 1500 down',
      'ip -6 address del fd64::2/128 dev wg0',
      'ip -4 address del 10.64.0.2/32 dev wg0',
    ]);
    // Idempotent: a second undo has nothing left to do.
    const after = sys.ran.length;
    await applied.undo();
    expect(sys.ran.length).toBe(after);
  });

  it('feeds resolvconf the resolver lines on stdin', async () => {
    let fed: string | undefined;
    const sys = fakeSystem((cmd, input) => {
      if (cmd.startsWith('resolvconf -a')) fed = input;
      return undefined;
    });
    await applyLinux(fullTunnel(), { ifname: 'wg0', exec: sys.exec, dns: RESOLVCONF });
    expect(fed).toBe('nameserver 10.64.0.1\nnameserver fd64::1\nsearch corp.example.net\n');
  });

  it('takes the first table from 51820 with no route and no rule in it', async () => {
    const sys = fakeSystem((cmd) => {
      if (cmd === 'ip -j -4 route show table 51820') return { stdout: '[{"dst":"default","dev":"other0"}]' };
      if (cmd === 'ip -j -6 rule show') return { stdout: '[{"priority":100,"not":null,"fwmark":"0xca6d","table":"51821"}]' };
      if (/^ip -j -[46] route show table /.test(cmd)) return { exitCode: 2, stderr: 'Error: ipv4: FIB table does not exist.\nDump terminated\n' };
      return undefined;
    });
    const applied = await applyLinux(fullTunnel(), { ifname: 'wg0', exec: sys.exec, dns: FILE_DNS });
    expect(applied.bypassTable).toBe(51822);
    expect(applied.fwmark).toBe(51822);
    expect(applied.commands).toContain('ip -4 rule add not fwmark 51822 table 51822');
  });

  it('lowers an unconfigured MTU to the route to the endpoint less 80, never raises it', async () => {
    const settings = tunnelSettings(fixture('full-tunnel'), { resolvedEndpoints: [{ host: '203.0.113.9', port: 51820 }] });
    const route = (mtu: number) =>
      fakeSystem((cmd) => (cmd === 'ip -j -4 route get 203.0.113.9' ? { stdout: `[{"dst":"203.0.113.9","dev":"eth0","metrics":[{"mtu":${mtu}}]}]` } : undefined));
    expect((await applyLinux(settings, { ifname: 'wg0', exec: route(1400).exec, dns: FILE_DNS })).mtu).toBe(1320);
    expect((await applyLinux(settings, { ifname: 'wg0', exec: route(9000).exec, dns: FILE_DNS })).mtu).toBe(1420);
    // No route to the endpoint and no default route: 1500 - 80.
    expect((await applyLinux(settings, { ifname: 'wg0', exec: fakeSystem().exec, dns: FILE_DNS })).mtu).toBe(1420);
  });

  it('skips a route that a route on the interface already covers, and does not undo it', async () => {
    const sys = fakeSystem((cmd) => (cmd === 'ip -j -4 route show dev wg0 match 10.20.0.0/16' ? { stdout: '[{"dst":"10.0.0.0/8"}]' } : undefined));
    const applied = await applyLinux(tunnelSettings(fixture('split-tunnel')), { ifname: 'wg0', exec: sys.exec, dns: FILE_DNS });
    expect(applied.commands).toEqual(['ip -4 address add 172.16.9.14/24 dev wg0', 'ip link set mtu 1380 up dev wg0', 'ip -4 route add 192.168.50.0/24 dev wg0']);
    await applied.undo();
    expect(sys.changes().filter((c) => c.includes('10.20.0.0'))).toEqual([]);
  });

  it('a failing step rolls back what was applied and names the command and its stderr', async () => {
    const sys = fakeSystem((cmd) => (cmd.startsWith('ip -6 rule add not fwmark') ? { exitCode: 2, stderr: 'RTNETLINK answers: Operation not permitted\n' } : undefined));
    const error = await applyLinux(fullTunnel(), { ifname: 'wg0', exec: sys.exec, dns: RESOLVCONF }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LinuxPlatformError);
    const e = error as LinuxPlatformError;
    expect(e.code).toBe('ERR_PLATFORM_COMMAND');
    expect(e.message).toContain('ip -6 rule add not fwmark 51820 table 51820 failed (exit 2): RTNETLINK answers: Operation not permitted');
    expect(e.message).toContain('rolled back the 8 changes already made');
    expect(e.failure?.stderr).toContain('Operation not permitted');
    const changes = sys.changes();
    const failedAt = changes.indexOf('ip -6 rule add not fwmark 51820 table 51820');
    expect(changes.slice(failedAt + 1)).toEqual([
      'sysctl -q -w net.ipv4.conf.all.src_valid_mark=0',
      'ip -4 route del 0.0.0.0/0 dev wg0 table 51820',
      'ip -4 rule del table main suppress_prefixlength 0',
      'ip -4 rule del not fwmark 51820 table 51820',
      'resolvconf -d tun.wg0 -f',
      'ip link set dev wg0 mtu 1500 down',
      'ip -6 address del fd64::2/128 dev wg0',
      'ip -4 address del 10.64.0.2/32 dev wg0',
    ]);
  });

  it('undo succeeds when the interface is gone, but still removes the rules', async () => {
    let gone = false;
    const sys = fakeSystem((cmd) => (gone && cmd.includes('dev wg0') ? { exitCode: 1, stderr: 'Cannot find device "wg0"\n' } : undefined));
    const applied = await applyLinux(fullTunnel(), { ifname: 'wg0', exec: sys.exec, dns: FILE_DNS });
    gone = true;
    await applied.undo();
    expect(sys.changes()).toContain('ip -4 rule del not fwmark 51820 table 51820');
    expect(sys.changes()).toContain('ip -6 rule del table main suppress_prefixlength 0');
  });

  it('a failed undo reports it and retries only what failed', async () => {
    let failRule = true;
    const sys = fakeSystem((cmd) =>
      failRule && cmd === 'ip -4 rule del not fwmark 51820 table 51820' ? { exitCode: 2, stderr: 'RTNETLINK answers: Operation not permitted\n' } : undefined,
    );
    const applied = await applyLinux(fullTunnel(), { ifname: 'wg0', exec: sys.exec, dns: RESOLVCONF });
    const error = await applied.undo().catch((e: unknown) => e);
    expect((error as LinuxPlatformError).code).toBe('ERR_PLATFORM_UNDO');
    expect((error as Error).message).toContain('ip -4 rule del not fwmark 51820 table 51820');
    failRule = false;
    const before = sys.changes().length;
    await applied.undo();
    expect(sys.changes().slice(before)).toEqual(['ip -4 rule del not fwmark 51820 table 51820']);
  });

  it('leaves src_valid_mark on while another tunnel\'s fwmark rule remains', async () => {
    const sys = fakeSystem((cmd) =>
      cmd === 'ip -j -4 rule show' ? { stdout: '[{"priority":32765,"not":null,"fwmark":"0x1234","table":"4660"}]' } : undefined,
    );
    const applied = await applyLinux(fullTunnel(), { ifname: 'wg0', exec: sys.exec, dns: FILE_DNS });
    await applied.undo();
    expect(sys.changes()).not.toContain('sysctl -q -w net.ipv4.conf.all.src_valid_mark=0');
  });

  it('refuses per-app domains with IncludeAllNetworks on Linux; the kill switch alone is enforced, and loaded first', async () => {
    const sys = fakeSystem();
    const settings = tunnelSettings(fixture('burrow-kill-switch'));
    const error = await applyLinux(settings, { ifname: 'wg0', exec: sys.exec, dns: FILE_DNS }).catch((e: unknown) => e);
    expect((error as LinuxPlatformError).code).toBe('ERR_PLATFORM_ARG');
    expect((error as Error).message).toMatch(/^per-app domains and IncludeAllNetworks = true cannot be combined/);
    expect(sys.ran).toEqual([]);
    const { apps: _apps, ...killSwitchOnly } = settings;
    const applied = await applyLinux(killSwitchOnly, { ifname: 'wg0', exec: sys.exec, dns: FILE_DNS });
    expect(applied.commands[0]).toMatch(/^nft -f -  # stdin: table inet burrow \{/);
    expect(sys.changes()[0]).toBe('nft -f -');
  });

  it('fails before changing anything when the interface does not exist', async () => {
    const sys = fakeSystem((cmd) => (cmd.startsWith('ip -j link show') ? { exitCode: 1, stderr: 'Device "wg0" does not exist.\n' } : undefined));
    await expect(applyLinux(fullTunnel(), { ifname: 'wg0', exec: sys.exec, dns: FILE_DNS })).rejects.toThrow(/does not exist/);
    expect(sys.changes()).toEqual([]);
  });
});

describe('runHooks (scripted system)', () => {
  it('replaces every %i and runs each hook with bash -c, in order', async () => {
    const sys = fakeSystem((cmd) => (cmd.startsWith('bash -c') ? { stdout: 'ok\n' } : undefined));
    const runs = await runHooks(['echo %i up', 'logger -t wg "%i %i"'], 'wg0', { exec: sys.exec });
    expect(sys.ran).toEqual(['bash -c echo wg0 up', 'bash -c logger -t wg "wg0 wg0"']);
    expect(runs.map((r) => r.command)).toEqual(['echo wg0 up', 'logger -t wg "wg0 wg0"']);
  });

  it('stops at the first failing hook, with its output', async () => {
    const sys = fakeSystem((cmd) => (cmd.includes('false') ? { exitCode: 3, stderr: 'nope\n' } : undefined));
    const error = await runHooks(['true', 'false %i', 'echo never'], 'wg0', { exec: sys.exec }).catch((e: unknown) => e);
    expect((error as LinuxPlatformError).code).toBe('ERR_PLATFORM_HOOK');
    expect((error as Error).message).toContain("bash -c 'false wg0' failed (exit 3): nope");
    expect(sys.ran).toEqual(['bash -c true', 'bash -c false wg0']);
  });
});
