// Config -> TunnelSettings: what the operating system must be told for one tunnel,
// computed without touching it. The shape mirrors Apple's NEPacketTunnelNetworkSettings
// (NEIPv4Settings / NEIPv6Settings with addresses, includedRoutes and excludedRoutes;
// NEDNSSettings with servers, searchDomains and matchDomains; the MTU) plus the flags of
// the tunnel's configuration (includeAllNetworks, excludeLocalNetworks), so that the
// macOS bridge can hand it over almost field for field and platform/linux/ can apply it
// the way wg-quick does.
//
// What is decided here, and where it comes from:
//   addresses       Address, host bits kept, split by family, duplicates dropped.
//   includedRoutes  every peer's AllowedIPs, split by family, duplicates dropped, in file
//                   order; a /0 stays in the list (it is the family's default route) and
//                   also sets fullTunnel for that family. IncludeAllNetworks adds the /0 of
//                   both families: everything is routed into the tunnel (killswitch.ts).
//   excludedRoutes  a host route (/32 or /128) for each resolved endpoint: the tunnel's own
//                   UDP must never enter the tunnel. On Linux the fwmark bypass below does
//                   this for a full tunnel; the list is also what a kill switch must let out.
//   dns             DNS = entries; matchDomains is [""] (every name, NEDNSSettings'
//                   convention for "this is the default resolver") when there are servers.
//   mtu             MTU if given, else 1420: wg-quick's rule is "the MTU of the route to
//                   the endpoint (or of the default route, or 1500) minus 80", and 1420 is
//                   what it gives on an ordinary 1500-byte link. A platform that can see its
//                   routes may lower an unconfigured MTU by that rule (mtuSource says which),
//                   never raise it: the runtime sizes its packet buffers from this value.
//   fwmark          the mark for the tunnel's UDP socket: FwMark when set; otherwise, when a
//                   full tunnel is routed with Table = auto, wg-quick's default 51820 (the
//                   platform takes the first free table from there and uses the same number).

import { DEFAULT_MTU } from '../../tunnel/constants.js';
import { type AppRule, appRules } from './perapp.js';
import { type Config, type Endpoint, formatIpAddress, type IpFamily, type IpPrefix, makePrefix, parseIpAddress, type RoutingTable } from '../config/index.js';

/** WireGuard's per-packet overhead that wg-quick subtracts: IPv6 40 + UDP 8 + data header 32. */
export const TUNNEL_OVERHEAD_BYTES = 80;
/** The MTU wg-quick arrives at on a 1500-byte link: 1500 - 80 (defined once, by the engine). */
export { DEFAULT_MTU };
/** wg-quick's first candidate for the full-tunnel table and fwmark (0xca6c). */
export const DEFAULT_FWMARK = 51820;

/** NEIPv4Settings / NEIPv6Settings. */
export interface IpSettings {
  /** The interface's own addresses, host bits kept ("10.64.0.2/32"). */
  readonly addresses: IpPrefix[];
  /** Destinations routed into the tunnel; a /0 is the default route. */
  readonly includedRoutes: IpPrefix[];
  /** Destinations that must not go through the tunnel even when an included route covers them. */
  readonly excludedRoutes: IpPrefix[];
}

/** NEDNSSettings. */
export interface TunnelDnsSettings {
  /** Resolver addresses, canonical text; empty: leave the system's resolver alone. */
  readonly servers: string[];
  readonly searchDomains: string[];
  /**
   * Names whose queries go to `servers`: [""] matches every name (the servers become the
   * system's resolver, as with wg-quick), [] when there are no servers.
   */
  readonly matchDomains: string[];
}

/** Burrow's per-app routing: lower-case DNS names, matched as suffixes on label boundaries. */
export interface PerAppDomains {
  readonly mail: string[];
  readonly calendar: string[];
  readonly contacts: string[];
}

/**
 * A peer's endpoint (the one Endpoint type) resolved by the caller before the tunnel
 * comes up: the host is canonical address text, never a name, and its family is given.
 */
export type TunnelEndpoint = Endpoint & { readonly family: IpFamily };

export interface TunnelSettings {
  readonly ipv4: IpSettings;
  readonly ipv6: IpSettings;
  readonly dns: TunnelDnsSettings;
  /** The tunnel interface's MTU. */
  readonly mtu: number;
  /** 'config': MTU was set; 'default': DEFAULT_MTU, which a platform may lower (never raise). */
  readonly mtuSource: 'config' | 'default';
  /** Per family: some peer's AllowedIPs holds the /0, so all of that family's traffic is the tunnel's. */
  readonly fullTunnel: { readonly v4: boolean; readonly v6: boolean };
  /** Table = from the config: 'off' (no routes), 'auto' (wg-quick's choice) or a table number. */
  readonly table: RoutingTable;
  /**
   * The mark for the tunnel's UDP socket (SO_MARK), which is also the number of the table a
   * full tunnel's default routes go into; undefined when no mark is needed (no FwMark, and
   * no full tunnel routed by Table = auto).
   */
  readonly fwmark: number | undefined;
  /**
   * 'config': FwMark from the file, used as is. 'auto': no FwMark was set and a full tunnel
   * needs one; fwmark is wg-quick's first candidate, and a platform that can see its tables
   * takes the first free one from there (applyLinux returns the one it chose).
   */
  readonly fwmarkSource: 'config' | 'auto' | undefined;
  /** The resolved peer endpoints the settings were computed for. */
  readonly endpoints: TunnelEndpoint[];
  /** Kill switch: every packet through the tunnel, none in the clear while it is down. */
  readonly includeAllNetworks: boolean;
  /** With includeAllNetworks: the local networks may still be reached directly. */
  readonly excludeLocalNetworks: boolean;
  readonly perApp: PerAppDomains;
  /**
   * Per-app routing on Linux (perapp.ts): the apps with domains, built-ins first; absent
   * when there are none.
   */
  readonly apps?: AppRule[];
}

export interface TunnelSettingsOptions {
  /**
   * The peers' endpoints as addresses (a name in Endpoint resolved by the caller). When
   * omitted, the endpoints that are written as addresses in the config are used and
   * names are left out.
   */
  readonly resolvedEndpoints?: readonly Endpoint[];
}

function hostPrefix(family: IpFamily, bytes: Uint8Array): IpPrefix {
  return makePrefix(family, bytes, family === 4 ? 32 : 128);
}

/** Keeps the first of each prefix (by canonical text), in order. */
function unique(prefixes: Iterable<IpPrefix>): IpPrefix[] {
  const seen = new Set<string>();
  const out: IpPrefix[] = [];
  for (const prefix of prefixes) {
    if (seen.has(prefix.text)) continue;
    seen.add(prefix.text);
    out.push(prefix);
  }
  return out;
}

function endpointsOf(config: Config, resolved: TunnelSettingsOptions['resolvedEndpoints']): TunnelEndpoint[] {
  const out: TunnelEndpoint[] = [];
  const seen = new Set<string>();
  const add = (host: string, port: number, strict: boolean): void => {
    let address;
    try {
      address = parseIpAddress(host);
    } catch (error) {
      if (!strict) return; // a name, resolved later by the runtime
      throw new RangeError(`resolvedEndpoints: ${JSON.stringify(host)} is not an IP address (${(error as Error).message})`);
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`resolvedEndpoints: port ${String(port)} of ${host} is not 1..65535`);
    }
    const canonical = formatIpAddress(address);
    const key = `${canonical} ${port}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ family: address.family, host: canonical, port });
  };
  if (resolved !== undefined) {
    if (!Array.isArray(resolved)) throw new TypeError('resolvedEndpoints: expected an array');
    for (const endpoint of resolved) add(endpoint.host, endpoint.port, true);
  } else {
    for (const peer of config.peers) if (peer.endpoint !== undefined) add(peer.endpoint.host, peer.endpoint.port, false);
  }
  return out;
}

function ipSettings(family: IpFamily, config: Config, endpoints: readonly TunnelEndpoint[]): IpSettings {
  const ofFamily = (p: IpPrefix): boolean => p.family === family;
  // IncludeAllNetworks: every destination goes into the tunnel, whatever AllowedIPs says.
  const all = config.interface.includeAllNetworks ? [makePrefix(family, new Uint8Array(family === 4 ? 4 : 16), 0)] : [];
  return {
    addresses: unique(config.interface.addresses.filter(ofFamily)),
    includedRoutes: unique([...config.peers.flatMap((peer) => peer.allowedIPs.filter(ofFamily)), ...all]),
    excludedRoutes: unique(endpoints.filter((e) => e.family === family).map((e) => hostPrefix(family, parseIpAddress(e.host).bytes))),
  };
}

/** What the operating system must be told for `config`'s tunnel. Pure. */
export function tunnelSettings(config: Config, opts: TunnelSettingsOptions = {}): TunnelSettings {
  const iface = config.interface;
  const endpoints = endpointsOf(config, opts.resolvedEndpoints);
  const ipv4 = ipSettings(4, config, endpoints);
  const ipv6 = ipSettings(6, config, endpoints);
  const fullTunnel = {
    v4: ipv4.includedRoutes.some((p) => p.prefixLength === 0),
    v6: ipv6.includedRoutes.some((p) => p.prefixLength === 0),
  };
  const table: RoutingTable = iface.table ?? 'auto';
  const apps = appRules(config);
  const configuredMark = iface.fwMark !== undefined && iface.fwMark !== 0 ? iface.fwMark : undefined;
  let fwmark: number | undefined;
  let fwmarkSource: TunnelSettings['fwmarkSource'];
  if (configuredMark !== undefined) {
    fwmark = configuredMark;
    fwmarkSource = 'config';
  } else if (table === 'auto' && (fullTunnel.v4 || fullTunnel.v6) && (apps.length === 0 || iface.includeAllNetworks)) {
    // (Per-app routing puts even a /0 in a table of its own, reached by the apps' mark
    // only: the tunnel's socket needs no mark to bypass it.)
    fwmark = DEFAULT_FWMARK;
    fwmarkSource = 'auto';
  }

  const servers = [...new Set(iface.dns.servers)];
  return {
    ipv4,
    ipv6,
    dns: {
      servers,
      searchDomains: [...new Set(iface.dns.search)],
      matchDomains: servers.length > 0 ? [''] : [],
    },
    mtu: iface.mtu ?? DEFAULT_MTU,
    mtuSource: iface.mtu === undefined ? 'default' : 'config',
    fullTunnel,
    table,
    fwmark,
    fwmarkSource,
    endpoints,
    includeAllNetworks: iface.includeAllNetworks,
    excludeLocalNetworks: iface.excludeLocalNetworks,
    perApp: {
      mail: [...iface.mailDomains],
      calendar: [...iface.calendarDomains],
      contacts: [...iface.contactsDomains],
    },
    ...(apps.length === 0 ? {} : { apps }),
  };
}
