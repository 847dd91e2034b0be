// TunnelSettings -> the JSON a PacketTunnelProvider turns into NEPacketTunnelNetworkSettings,
// one key per property of Apple's classes, so that the Swift shim (native/apple/) copies
// fields and decides nothing:
//   NEPacketTunnelNetworkSettings(tunnelRemoteAddress:)  tunnelRemoteAddress, mtu, ipv4Settings,
//                                                       ipv6Settings, dnsSettings
//   NEIPv4Settings(addresses:subnetMasks:)              addresses, subnetMasks, includedRoutes,
//                                                       excludedRoutes (NEIPv4Route
//                                                       destinationAddress/destinationSubnetMask)
//   NEIPv6Settings(addresses:networkPrefixLengths:)     addresses, networkPrefixLengths, includedRoutes,
//                                                       excludedRoutes (NEIPv6Route
//                                                       destinationAddress/destinationNetworkPrefixLength)
//   NEDNSSettings(servers:)                             servers, searchDomains, matchDomains
// A /0 becomes the family's default route (NEIPv4Route.default() / NEIPv6Route.default()),
// flagged as isDefault. A family without addresses gets no settings object (null), as
// Apple's API wants. includeAllNetworks and excludeLocalNetworks are not network settings:
// they belong to the NETunnelProviderProtocol that the app saves (manager.ts / the profile).

import { formatIpAddress, type IpPrefix } from '../config/index.js';
import type { TunnelSettings } from '../policy/index.js';

export interface NEIPv4Route { destinationAddress: string; destinationSubnetMask: string; isDefault: boolean }
export interface NEIPv6Route { destinationAddress: string; destinationNetworkPrefixLength: number; isDefault: boolean }
export interface NEIPv4SettingsJson { addresses: string[]; subnetMasks: string[]; includedRoutes: NEIPv4Route[]; excludedRoutes: NEIPv4Route[] }
export interface NEIPv6SettingsJson {
  addresses: string[]; networkPrefixLengths: number[]; includedRoutes: NEIPv6Route[]; excludedRoutes: NEIPv6Route[];
}
export interface NEDNSSettingsJson { servers: string[]; searchDomains: string[]; matchDomains: string[] }
export interface NEPacketTunnelNetworkSettingsJson {
  tunnelRemoteAddress: string;
  mtu: number;
  ipv4Settings: NEIPv4SettingsJson | null;
  ipv6Settings: NEIPv6SettingsJson | null;
  dnsSettings: NEDNSSettingsJson | null;
}

/** "255.255.240.0" for a /20. */
export function subnetMask(cidr: number): string {
  const bits = cidr === 0 ? 0 : (0xffffffff << (32 - cidr)) >>> 0;
  return [24, 16, 8, 0].map((s) => (bits >>> s) & 255).join('.');
}

const addr = (p: IpPrefix): string => formatIpAddress({ family: p.family, bytes: p.address });

const v4Route = (p: IpPrefix): NEIPv4Route => ({ destinationAddress: addr(p), destinationSubnetMask: subnetMask(p.prefixLength), isDefault: p.prefixLength === 0 });
const v6Route = (p: IpPrefix): NEIPv6Route => ({ destinationAddress: addr(p), destinationNetworkPrefixLength: p.prefixLength, isDefault: p.prefixLength === 0 });

export function appleNetworkSettings(s: TunnelSettings): NEPacketTunnelNetworkSettingsJson {
  const v4 = s.ipv4;
  const v6 = s.ipv6;
  const dns = s.dns.servers.length > 0
    ? { servers: [...s.dns.servers], searchDomains: [...s.dns.searchDomains], matchDomains: [...s.dns.matchDomains] }
    : null;
  return {
    // The address the system shows as the server's; the first resolved endpoint, or
    // 127.0.0.1 as WireGuard's own app does when a configuration has none.
    tunnelRemoteAddress: s.endpoints[0]?.host ?? '127.0.0.1',
    mtu: s.mtu,
    ipv4Settings: v4.addresses.length === 0 ? null : {
      addresses: v4.addresses.map(addr),
      subnetMasks: v4.addresses.map((p) => subnetMask(p.prefixLength)),
      includedRoutes: v4.includedRoutes.map(v4Route),
      excludedRoutes: v4.excludedRoutes.map(v4Route),
    },
    ipv6Settings: v6.addresses.length === 0 ? null : {
      addresses: v6.addresses.map(addr),
      networkPrefixLengths: v6.addresses.map((p) => p.prefixLength),
      includedRoutes: v6.includedRoutes.map(v6Route),
      excludedRoutes: v6.excludedRoutes.map(v6Route),
    },
    dnsSettings: dns,
  };
}
