// The kill switch's policy, checked by meaning: for each fixture configuration, which
// flows (source socket, destination, port, interface) may leave and which are dropped.
// The nftables table that enforces it is checked for real in test/netns/killswitch.test.ts.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type Config, parseConfig, parseIpAddress, parsePrefix } from '../../src/config/index.js';
import { renderKillSwitch } from '../../src/platform/linux/killswitch.js';
import { planLinux } from '../../src/platform/linux/plan.js';
import { decide, type Flow, killSwitchPolicy, tunnelSettings } from '../../src/policy/index.js';
import { killSwitchStatus } from '../../src/cli/show.js';

function config(lines: string[]): Config {
  return parseConfig(`${lines.join('\n')}\n`, 'test.conf');
}

const KEY = 'OBfsiRTxDZZAY2yDdPNZkv5mjHk2PgD4fs0ozU0a438=';
const PEER = 'uh40w+eCysa2QKYK8ig1NQF3lG4RbxtQmtugCjzzUwU=';

function killSwitch(opts: { excludeLocal?: boolean; v6?: boolean; dns?: string; allowedIPs?: string }) {
  const c = config([
    '[Interface]', `PrivateKey = ${KEY}`, `Address = 10.70.0.9/32${opts.v6 === false ? '' : ', fd70::9/128'}`, ...(opts.dns ? [`DNS = ${opts.dns}`] : []),
    'IncludeAllNetworks = true', ...(opts.excludeLocal ? ['ExcludeLocalNetworks = true'] : []),
    '[Peer]', `PublicKey = ${PEER}`, `AllowedIPs = ${opts.allowedIPs ?? '10.70.0.0/24'}`, 'Endpoint = 203.0.113.2:51820',
  ]);
  const settings = tunnelSettings(c);
  return { settings, policy: killSwitchPolicy(settings)! };
}

type Case = [string, Omit<Flow, 'destination' | 'family'> & { to: string }, boolean];

function flow(c: Case[1]): Flow {
  const { to, ...rest } = c;
  const address = parseIpAddress(to);
  return { ...rest, family: address.family, destination: address.bytes };
}

const ATTACHED = [parsePrefix('198.51.100.0/24', { mask: true })];

describe('the kill switch policy', () => {
  it('is off without IncludeAllNetworks', () => {
    const s = tunnelSettings(config(['[Interface]', `PrivateKey = ${KEY}`, '[Peer]', `PublicKey = ${PEER}`, 'AllowedIPs = 10.0.0.0/8']));
    expect(killSwitchPolicy(s)).toBeUndefined();
  });

  it('routes everything into the tunnel, whatever AllowedIPs says', () => {
    const { settings } = killSwitch({ allowedIPs: '10.70.0.0/24' });
    expect(settings.ipv4.includedRoutes.map((p) => p.text)).toEqual(['10.70.0.0/24', '0.0.0.0/0']);
    expect(settings.ipv6.includedRoutes.map((p) => p.text)).toEqual(['::/0']);
    expect(settings.fullTunnel).toEqual({ v4: true, v6: true });
    expect(settings.fwmarkSource).toBe('auto');
  });

  const common: Case[] = [
    ['loopback', { via: 'loopback', protocol: 'tcp', to: '127.0.0.1', destinationPort: 631 }, true],
    ['the tunnel socket to its endpoint', { via: 'other', protocol: 'udp', to: '203.0.113.2', destinationPort: 51820, fromTunnelSocket: true }, true],
    ['another program to the endpoint', { via: 'other', protocol: 'udp', to: '203.0.113.2', destinationPort: 51820 }, false],
    ['the tunnel socket elsewhere', { via: 'other', protocol: 'udp', to: '203.0.113.9', destinationPort: 51820, fromTunnelSocket: true }, false],
    ['the tunnel socket to the endpoint, another port', { via: 'other', protocol: 'udp', to: '203.0.113.2', destinationPort: 51821, fromTunnelSocket: true }, false],
    ['DHCPv4', { via: 'other', protocol: 'udp', to: '255.255.255.255', sourcePort: 68, destinationPort: 67 }, true],
    ['DHCPv6', { via: 'other', protocol: 'udp', to: 'ff02::1:2', sourcePort: 546, destinationPort: 547 }, true],
    ['neighbour solicitation', { via: 'other', protocol: 'icmpv6', to: 'ff02::1:ff00:1', icmpType: 135 }, true],
    ['an ICMPv6 echo outside', { via: 'other', protocol: 'icmpv6', to: '2001:db8::1', icmpType: 128 }, false],
    ['TCP into the tunnel', { via: 'tunnel', protocol: 'tcp', to: '192.0.2.80', destinationPort: 443 }, true],
    ['TCP in the clear', { via: 'other', protocol: 'tcp', to: '192.0.2.80', destinationPort: 443 }, false],
    ['IPv6 in the clear', { via: 'other', protocol: 'tcp', to: '2001:db8::80', destinationPort: 443 }, false],
    ['DNS to the LAN router in the clear', { via: 'other', protocol: 'udp', to: '192.168.1.1', destinationPort: 53 }, false],
    ['DNS over TLS in the clear', { via: 'other', protocol: 'tcp', to: '1.1.1.1', destinationPort: 853 }, false],
  ];

  it('without ExcludeLocalNetworks: only the tunnel, its endpoint and link upkeep', () => {
    const { policy } = killSwitch({ dns: '10.70.0.1' });
    const cases: Case[] = [
      ...common,
      ['the LAN printer', { via: 'other', protocol: 'tcp', to: '192.168.1.20', destinationPort: 631 }, false],
      ['an attached subnet', { via: 'other', protocol: 'icmp', to: '198.51.100.7' }, false],
      ['DNS to the tunnel\'s resolver through the tunnel', { via: 'tunnel', protocol: 'udp', to: '10.70.0.1', destinationPort: 53 }, true],
      ['DNS to another resolver through the tunnel', { via: 'tunnel', protocol: 'udp', to: '9.9.9.9', destinationPort: 53 }, false],
      ['DNS to the tunnel\'s resolver in the clear', { via: 'other', protocol: 'tcp', to: '10.70.0.1', destinationPort: 53 }, false],
    ];
    for (const [what, f, allowed] of cases) expect(decide(policy, flow(f), { attachedSubnets: ATTACHED }).allow, what).toBe(allowed);
  });

  it('with ExcludeLocalNetworks: the local networks too, but never their DNS', () => {
    const { policy } = killSwitch({ excludeLocal: true, dns: '10.70.0.1' });
    const cases: Case[] = [
      ...common,
      ['the LAN printer (RFC 1918)', { via: 'other', protocol: 'tcp', to: '192.168.1.20', destinationPort: 631 }, true],
      ['an attached subnet that is not private', { via: 'other', protocol: 'icmp', to: '198.51.100.7' }, true],
      ['a link-local address', { via: 'other', protocol: 'udp', to: '169.254.1.1', destinationPort: 5000 }, true],
      ['IPv6 link-local', { via: 'other', protocol: 'tcp', to: 'fe80::1', destinationPort: 22 }, true],
      ['IPv6 unique local', { via: 'other', protocol: 'tcp', to: 'fd00::5', destinationPort: 445 }, true],
      ['multicast (mDNS)', { via: 'other', protocol: 'udp', to: '224.0.0.251', destinationPort: 5353 }, true],
      ['a public address', { via: 'other', protocol: 'tcp', to: '192.0.2.80', destinationPort: 80 }, false],
      ['DNS to the LAN resolver', { via: 'other', protocol: 'udp', to: '192.168.1.1', destinationPort: 53 }, false],
      ['DNS to the tunnel\'s resolver, which is in 10/8, in the clear', { via: 'other', protocol: 'udp', to: '10.70.0.1', destinationPort: 53 }, false],
    ];
    for (const [what, f, allowed] of cases) expect(decide(policy, flow(f), { attachedSubnets: ATTACHED }).allow, what).toBe(allowed);
  });

  it('a tunnel without IPv6 blocks IPv6 entirely but for link upkeep', () => {
    const { policy } = killSwitch({ v6: false });
    expect(policy.blockIPv6).toBe(true);
    expect(decide(policy, flow({ via: 'tunnel', protocol: 'tcp', to: '2001:db8::80', destinationPort: 443 })).allow).toBe(false);
    expect(decide(policy, flow({ via: 'other', protocol: 'icmpv6', to: 'ff02::2', icmpType: 133 })).allow).toBe(true);
    expect(decide(policy, flow({ via: 'tunnel', protocol: 'tcp', to: '192.0.2.80', destinationPort: 443 })).allow).toBe(true);
  });

  it('without DNS servers, DNS may go to any resolver, but only through the tunnel', () => {
    const { policy } = killSwitch({});
    expect(decide(policy, flow({ via: 'tunnel', protocol: 'udp', to: '9.9.9.9', destinationPort: 53 })).allow).toBe(true);
    expect(decide(policy, flow({ via: 'other', protocol: 'udp', to: '9.9.9.9', destinationPort: 53 })).allow).toBe(false);
  });

  it('follows the endpoints it is given: a roamed endpoint is allowed, the old one not', () => {
    const { policy } = killSwitch({});
    const moved = [{ family: 4 as const, host: '203.0.113.3', port: 51820 }];
    const to = (host: string) => flow({ via: 'other', protocol: 'udp', to: host, destinationPort: 51820, fromTunnelSocket: true });
    expect(decide(policy, to('203.0.113.3'), { endpoints: moved }).allow).toBe(true);
    expect(decide(policy, to('203.0.113.2'), { endpoints: moved }).allow).toBe(false);
  });

  it('the table says the same: the rules it renders for each case', () => {
    const { settings, policy } = killSwitch({ excludeLocal: true, dns: '10.70.0.1', v6: false });
    const text = renderKillSwitch(policy, { ifname: 'wg0', fwmark: 51820, attachedSubnets: ATTACHED });
    const output = text.slice(text.indexOf('chain output'), text.indexOf('chain forward'));
    // Order matters: loopback and the endpoint first, IPv6 blocked before anything accepts it, DNS before the tunnel and the LAN.
    const order = ['oifname "lo" accept', 'meta mark 51820 ip daddr . udp dport @endpoints4 accept', 'meta nfproto ipv6 counter drop', 'jump dns', 'oifname "wg0" accept', 'ip daddr @local4 accept', '    counter drop\n'];
    const at = order.map((rule) => output.indexOf(rule));
    expect(at.every((i) => i >= 0)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(text).toContain('elements = { 203.0.113.2 . 51820 }');
    expect(text).toContain('198.51.100.0/24');
    expect(text).toMatch(/^table inet burrow\ndelete table inet burrow\n/);
    // planLinux puts it before anything else, kept when the daemon dies.
    const steps = planLinux(settings, 'wg0', { bypassTable: 51820, mtu: 1420, dns: { kind: 'file', path: '/etc/resolv.conf' } });
    expect(steps[0]).toMatchObject({ kind: 'nft', keep: true, undo: ['nft', 'delete', 'table', 'inet', 'burrow'] });
  });

  it('burrow show: blocking when no session can carry traffic', () => {
    const now = 1_000_000;
    const peer = (lastHandshake: number) => ({ publicKey: PEER, hasPresharedKey: false, endpoint: undefined, allowedIPs: [], lastHandshake, rxBytes: 0, txBytes: 0, persistentKeepalive: 0 });
    const iface = (hs: number) => ({ name: 'wg0', publicKey: undefined, listenPort: 0, fwmark: 0, peers: [peer(hs)] });
    expect(killSwitchStatus(iface(0), now)).toEqual({ on: true, blocking: true, reason: 'no handshake yet' });
    expect(killSwitchStatus(iface(now - 30), now)).toEqual({ on: true, blocking: false });
    expect(killSwitchStatus(iface(now - 225), now)).toEqual({ on: true, blocking: true, reason: 'no handshake for 225 s' });
  });
});
