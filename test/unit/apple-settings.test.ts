// TunnelSettings -> the JSON the Swift shim copies into NEPacketTunnelNetworkSettings,
// NEIPv4Settings, NEIPv6Settings and NEDNSSettings, for each fixture configuration.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { tunnelSettings } from '../../src/policy/index.js';
import { appleNetworkSettings, subnetMask } from '../../src/apple/network-settings.js';

const dir = 'test/fixtures/configs';
// Names resolved as the Mac would before the tunnel comes up (documentation addresses).
const resolved: Record<string, { host: string; port: number }[]> = {
  'full-tunnel.conf': [{ host: '203.0.113.10', port: 51820 }],
  'burrow-kill-switch.conf': [{ host: '2001:db8:77::1', port: 51820 }],
  'messy.conf': [{ host: '198.51.100.9', port: 51820 }],
  'server.conf': [{ host: '203.0.113.30', port: 51820 }],
};

function apple(file: string) {
  const config = parseConfig(readFileSync(`${dir}/${file}`, 'utf8'), file);
  const r = resolved[file];
  return appleNetworkSettings(tunnelSettings(config, r ? { resolvedEndpoints: r } : {}));
}

// The properties of Apple's classes, and nothing else (NetworkExtension reference).
const TOP = ['dnsSettings', 'ipv4Settings', 'ipv6Settings', 'mtu', 'tunnelRemoteAddress'];
const V4 = ['addresses', 'excludedRoutes', 'includedRoutes', 'subnetMasks'];
const V6 = ['addresses', 'excludedRoutes', 'includedRoutes', 'networkPrefixLengths'];
const DNS = ['matchDomains', 'searchDomains', 'servers'];

describe('the NEPacketTunnelNetworkSettings mapping', () => {
  it('subnetMask: every IPv4 prefix length', () => {
    expect([0, 1, 8, 20, 24, 31, 32].map(subnetMask)).toEqual(
      ['0.0.0.0', '128.0.0.0', '255.0.0.0', '255.255.240.0', '255.255.255.0', '255.255.255.254', '255.255.255.255']);
  });

  for (const file of ['burrow-kill-switch.conf', 'full-tunnel.conf', 'ipv6-endpoint.conf', 'messy.conf', 'preshared-key.conf', 'server.conf', 'split-tunnel.conf']) {
    it(`${file}: only Apple's keys, addresses and masks paired, routes in their family`, () => {
      const a = apple(file);
      expect(Object.keys(a).sort()).toEqual(TOP);
      if (a.ipv4Settings) {
        expect(Object.keys(a.ipv4Settings).sort()).toEqual(V4);
        expect(a.ipv4Settings.subnetMasks).toHaveLength(a.ipv4Settings.addresses.length);
        for (const r of [...a.ipv4Settings.includedRoutes, ...a.ipv4Settings.excludedRoutes]) {
          expect(r.destinationAddress).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
          expect(r.isDefault).toBe(r.destinationSubnetMask === '0.0.0.0');
        }
      }
      if (a.ipv6Settings) {
        expect(Object.keys(a.ipv6Settings).sort()).toEqual(V6);
        expect(a.ipv6Settings.networkPrefixLengths).toHaveLength(a.ipv6Settings.addresses.length);
        for (const r of [...a.ipv6Settings.includedRoutes, ...a.ipv6Settings.excludedRoutes]) expect(r.destinationAddress).toContain(':');
      }
      if (a.dnsSettings) expect(Object.keys(a.dnsSettings).sort()).toEqual(DNS);
      expect(JSON.parse(JSON.stringify(a))).toEqual(a); // plain JSON: what crosses into Swift
    });
  }

  it('full-tunnel.conf: both default routes, the endpoint excluded, the resolvers for every name', () => {
    expect(apple('full-tunnel.conf')).toEqual({
      tunnelRemoteAddress: '203.0.113.10',
      mtu: 1420,
      ipv4Settings: {
        addresses: ['10.64.0.2'], subnetMasks: ['255.255.255.255'],
        includedRoutes: [{ destinationAddress: '0.0.0.0', destinationSubnetMask: '0.0.0.0', isDefault: true }],
        excludedRoutes: [{ destinationAddress: '203.0.113.10', destinationSubnetMask: '255.255.255.255', isDefault: false }],
      },
      ipv6Settings: {
        addresses: ['fd64::2'], networkPrefixLengths: [128],
        includedRoutes: [{ destinationAddress: '::', destinationNetworkPrefixLength: 0, isDefault: true }],
        excludedRoutes: [],
      },
      dnsSettings: { servers: ['10.64.0.1', 'fd64::1'], searchDomains: ['corp.example.net'], matchDomains: [''] },
    });
  });

  it('ipv6-endpoint.conf: no IPv4 settings at all, an IPv6 endpoint excluded as a /128', () => {
    const a = apple('ipv6-endpoint.conf');
    expect(a.ipv4Settings).toBeNull();
    expect(a.tunnelRemoteAddress).toBe('2001:db8::1');
    expect(a.ipv6Settings).toEqual({
      addresses: ['2001:db8:100::5'], networkPrefixLengths: [64],
      includedRoutes: [{ destinationAddress: '2001:db8:100::', destinationNetworkPrefixLength: 48, isDefault: false }],
      excludedRoutes: [{ destinationAddress: '2001:db8::1', destinationNetworkPrefixLength: 128, isDefault: false }],
    });
  });

  it('preshared-key.conf: no DNS servers gives no NEDNSSettings; a /24 address keeps its host part', () => {
    const a = apple('preshared-key.conf');
    expect(a.dnsSettings).toBeNull();
    expect(a.ipv6Settings).toBeNull();
    expect(a.ipv4Settings!.addresses).toEqual(['10.8.0.3']);
    expect(a.ipv4Settings!.subnetMasks).toEqual(['255.255.255.0']);
    expect(a.ipv4Settings!.includedRoutes).toEqual([{ destinationAddress: '10.8.0.0', destinationSubnetMask: '255.255.255.0', isDefault: false }]);
  });

  it('burrow-kill-switch.conf: IncludeAllNetworks routes both families whole; an unresolved config uses 127.0.0.1', () => {
    const a = apple('burrow-kill-switch.conf');
    expect(a.ipv4Settings!.includedRoutes.filter((r) => r.isDefault)).toHaveLength(1);
    expect(a.ipv6Settings!.includedRoutes.filter((r) => r.isDefault)).toHaveLength(1);
    expect(a.ipv6Settings!.excludedRoutes).toEqual([{ destinationAddress: '2001:db8:77::1', destinationNetworkPrefixLength: 128, isDefault: false }]);
    const unresolved = appleNetworkSettings(tunnelSettings(parseConfig(readFileSync(`${dir}/burrow-kill-switch.conf`, 'utf8'), 'k')));
    expect(unresolved.tunnelRemoteAddress).toBe('127.0.0.1');
  });

  it('server.conf: its MTU, every peer route in file order', () => {
    const a = apple('server.conf');
    expect(a.mtu).toBe(1420);
    expect(a.ipv4Settings!.includedRoutes.map((r) => `${r.destinationAddress}/${r.destinationSubnetMask}`)).toEqual(
      ['10.99.0.2/255.255.255.255', '10.99.0.3/255.255.255.255', '10.99.0.4/255.255.255.255', '192.168.77.0/255.255.255.0']);
  });
});
