// The kill switch as a policy: which traffic may leave the machine by which way while a
// tunnel with IncludeAllNetworks is configured, whether the tunnel is up or not. Pure:
// TunnelSettings in, a KillSwitchPolicy out, and `decide` answers for one flow. The
// Linux platform renders the same policy as one nftables table (platform/linux/
// killswitch.ts); the Apple side hands the two flags to the OS, which enforces them.
//
// Allowed out, whatever the tunnel's state:
//   - loopback;
//   - anything through the tunnel interface, but DNS only to the tunnel's DNS servers
//     (any resolver through the tunnel when the configuration names none);
//   - the tunnel's own UDP to its current endpoints (carried by the socket's fwmark);
//   - DHCPv4 (68 -> 67) and DHCPv6 (546 -> 547), to keep the lease of the physical link;
//   - ICMPv6 router and neighbour discovery and MLD reports, to keep the link itself;
//   - with ExcludeLocalNetworks: the local networks (LOCAL_NETWORKS and the subnets
//     attached to the machine's other interfaces), except DNS: a resolver on the LAN is
//     never asked, even then.
// Dropped: everything else, IPv4 and IPv6, leaving or forwarded. A tunnel without an
// IPv6 address blocks IPv6 entirely but for link upkeep, so nothing leaks by IPv6.
// Inbound: packets for the tunnel's own addresses that arrive on another interface.
//
// Routing: with IncludeAllNetworks every destination is routed into the tunnel
// (settings.ts adds 0.0.0.0/0 and ::/0 whatever AllowedIPs says). A packet that no
// peer's AllowedIPs covers is dropped by the engine and counted as `no-peer`; it is
// never sent directly.

import { type IpFamily, type IpPrefix, parsePrefix } from '../config/index.js';
import type { TunnelEndpoint, TunnelSettings } from './settings.js';

/**
 * The networks ExcludeLocalNetworks lets through directly, besides the attached subnets.
 * Apple documents excludeLocalNetworks as excluding "local networks" (the LAN: printers,
 * file servers) from a tunnel that includes all networks; these are the ranges such
 * devices use: RFC 1918 private IPv4, RFC 3927 link-local IPv4, RFC 4291 link-local
 * IPv6, RFC 4193 unique local IPv6, and multicast and limited broadcast of both families
 * (RFC 5771, RFC 4291 section 2.7).
 */
export const LOCAL_NETWORKS: Readonly<Record<'v4' | 'v6', readonly string[]>> = Object.freeze({
  v4: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '224.0.0.0/4', '255.255.255.255/32'],
  v6: ['fe80::/10', 'fc00::/7', 'ff00::/8'],
});

/** Ports on which a packet is taken to be DNS (RFC 1035, and DNS over TLS, RFC 7858). */
export const DNS_PORTS: readonly number[] = [53, 853];

/** ICMPv6 types that keep the link: router solicitation/advertisement, neighbour solicitation/advertisement, MLDv2 reports. */
export const LINK_ICMPV6_TYPES: readonly number[] = [133, 134, 135, 136, 143];

export interface KillSwitchPolicy {
  /** ExcludeLocalNetworks. */
  readonly allowLocalNetworks: boolean;
  readonly localNetworks: readonly IpPrefix[];
  /** The tunnel's DNS servers; empty: any resolver, but only through the tunnel. */
  readonly dnsServers: readonly string[];
  /** The tunnel's own addresses, refused when they arrive on another interface. */
  readonly tunnelAddresses: readonly IpPrefix[];
  /** No IPv6 address in the tunnel: IPv6 is blocked but for link upkeep. */
  readonly blockIPv6: boolean;
  /** The endpoints the tunnel's UDP may reach at start; the platform follows changes. */
  readonly endpoints: readonly TunnelEndpoint[];
}

/** The kill switch for `settings`, or undefined when IncludeAllNetworks is off. */
export function killSwitchPolicy(settings: TunnelSettings): KillSwitchPolicy | undefined {
  if (!settings.includeAllNetworks) return undefined;
  return {
    allowLocalNetworks: settings.excludeLocalNetworks,
    localNetworks: [...LOCAL_NETWORKS.v4, ...LOCAL_NETWORKS.v6].map((p) => parsePrefix(p)),
    dnsServers: settings.dns.servers,
    tunnelAddresses: [...settings.ipv4.addresses, ...settings.ipv6.addresses],
    blockIPv6: settings.ipv6.addresses.length === 0,
    endpoints: settings.endpoints,
  };
}

/** One packet leaving the machine (or forwarded by it), as the policy sees it. */
export interface Flow {
  readonly family: IpFamily;
  /** 'tunnel', 'loopback', or another (physical) interface. */
  readonly via: 'tunnel' | 'loopback' | 'other';
  readonly protocol: 'udp' | 'tcp' | 'icmp' | 'icmpv6';
  readonly destination: Uint8Array;
  readonly sourcePort?: number;
  readonly destinationPort?: number;
  readonly icmpType?: number;
  /** Sent by the tunnel's own socket (it carries the fwmark). */
  readonly fromTunnelSocket?: boolean;
}

export type Verdict = { readonly allow: true; readonly why: string } | { readonly allow: false; readonly why: string };

export interface DecideContext {
  /** Subnets attached to the machine's other interfaces (ExcludeLocalNetworks lets them through). */
  readonly attachedSubnets?: readonly IpPrefix[];
  /** The endpoints now (they move with roaming and `wg set`); default: the policy's. */
  readonly endpoints?: readonly TunnelEndpoint[];
}

function contains(prefix: IpPrefix, family: IpFamily, address: Uint8Array): boolean {
  if (prefix.family !== family) return false;
  for (let bit = 0; bit < prefix.prefixLength; bit++) {
    const mask = 0x80 >>> bit % 8;
    if ((prefix.address[bit >>> 3]! & mask) !== (address[bit >>> 3]! & mask)) return false;
  }
  return true;
}

function sameAddress(text: string, family: IpFamily, address: Uint8Array): boolean {
  const p = parsePrefix(text.includes('/') ? text : `${text}/${family === 4 ? 32 : 128}`);
  return p.family === family && contains(p, family, address);
}

/** What the kill switch does with `flow`, and why: the meaning the nftables table must have. */
export function decide(policy: KillSwitchPolicy, flow: Flow, context: DecideContext = {}): Verdict {
  const allow = (why: string): Verdict => ({ allow: true, why });
  const drop = (why: string): Verdict => ({ allow: false, why });
  const port = flow.destinationPort;
  const isDns = (flow.protocol === 'udp' || flow.protocol === 'tcp') && port !== undefined && DNS_PORTS.includes(port);
  if (flow.via === 'loopback') return allow('loopback');
  const endpoints = context.endpoints ?? policy.endpoints;
  if (flow.fromTunnelSocket && flow.protocol === 'udp' && endpoints.some((e) => e.port === port && sameAddress(e.host, flow.family, flow.destination))) {
    return allow('the tunnel to its endpoint');
  }
  if (flow.protocol === 'udp' && flow.family === 4 && flow.sourcePort === 68 && port === 67) return allow('DHCPv4');
  if (flow.protocol === 'udp' && flow.family === 6 && flow.sourcePort === 546 && port === 547) return allow('DHCPv6');
  if (flow.protocol === 'icmpv6' && flow.icmpType !== undefined && LINK_ICMPV6_TYPES.includes(flow.icmpType)) return allow('link upkeep (ICMPv6)');
  if (flow.family === 6 && policy.blockIPv6) return drop('IPv6, and the tunnel has no IPv6 address');
  if (isDns) {
    if (flow.via !== 'tunnel') return drop('DNS outside the tunnel');
    if (policy.dnsServers.length === 0 || policy.dnsServers.some((s) => sameAddress(s, flow.family, flow.destination))) return allow('DNS to the tunnel\'s resolver');
    return drop('DNS to a resolver that is not the tunnel\'s');
  }
  if (flow.via === 'tunnel') return allow('through the tunnel');
  if (policy.allowLocalNetworks) {
    const local = [...policy.localNetworks, ...(context.attachedSubnets ?? [])];
    if (local.some((p) => contains(p, flow.family, flow.destination))) return allow('a local network (ExcludeLocalNetworks)');
  }
  return drop('outside the tunnel');
}
