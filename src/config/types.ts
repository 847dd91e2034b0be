// The typed form of a wg-quick configuration file, with Burrow's own keys.
// parseConfig produces it, formatConfig writes it back; policy/ consumes it.
//
// Values are normalised on parsing, so that two files that mean the same thing give
// equal Configs: IP text is canonical (RFC 5952 for IPv6), AllowedIPs have their host
// bits cleared (as `wg show` prints them), domains and endpoint names are lower case.

export type { IpAddress, IpFamily, IpPrefix } from './ip.js';
import type { Endpoint } from '../../tunnel/endpoint.js';
import type { IpPrefix } from './ip.js';

/**
 * The engine's endpoint type. In a Config the host is an IPv4 address, an IPv6 address
 * (canonical, without brackets) or a DNS name kept as a name: it is resolved when the
 * tunnel comes up, not when the file is read.
 */
export type { Endpoint };

export interface DnsSettings {
  /** Resolver addresses, canonical text ("1.1.1.1", "2606:4700:4700::1111"). */
  readonly servers: string[];
  /** Search domains: the DNS entries that are not IP addresses, as wg-quick sorts them. */
  readonly search: string[];
}

export type RoutingTable = 'off' | 'auto' | number;

export interface InterfaceConfig {
  readonly privateKey: Uint8Array;
  /** The interface's own addresses, IPv4 and IPv6, host bits kept ("10.0.0.2/24"). */
  readonly addresses: IpPrefix[];
  /** 0..65535; 0 or absent lets the system pick. */
  readonly listenPort?: number;
  readonly dns: DnsSettings;
  /** 576..65535, or 1280..65535 when the interface has an IPv6 address. */
  readonly mtu?: number;
  /** 'off': no routes; 'auto' or absent: wg-quick's choice; a number: that table (1..2^32-1). */
  readonly table?: RoutingTable;
  /** 0..2^32-1; 0 (written "off" in a file) means no mark. */
  readonly fwMark?: number;
  readonly saveConfig: boolean;
  /** Shell commands, in file order; each key may appear several times. */
  readonly preUp: string[];
  readonly postUp: string[];
  readonly preDown: string[];
  readonly postDown: string[];
  /** Burrow: every packet goes through the tunnel; dropped while it is down (kill switch). */
  readonly includeAllNetworks: boolean;
  /** Burrow: with includeAllNetworks, local networks may still be reached directly. */
  readonly excludeLocalNetworks: boolean;
  /** Burrow: per-app routing, lower-case DNS names matched as suffixes on label boundaries. */
  readonly mailDomains: string[];
  readonly calendarDomains: string[];
  readonly contactsDomains: string[];
}

export interface PeerConfig {
  readonly publicKey: Uint8Array;
  readonly presharedKey?: Uint8Array;
  /** Host bits cleared, as WireGuard's allowed-IPs table keeps them. */
  readonly allowedIPs: IpPrefix[];
  readonly endpoint?: Endpoint;
  /** Seconds, 1..65535; 0 (written "off" in a file) means off. */
  readonly persistentKeepalive?: number;
}

/**
 * Burrow: an [App] section, per-app routing on Linux. Its processes are those in one of
 * `cgroups`, those run by one of `uids`, and those started with `burrow exec --app NAME`.
 * The built-in apps mail, calendar and contacts take their domains from MailDomains,
 * CalendarDomains and ContactsDomains too.
 */
export interface AppConfig {
  /** Lower case: letters, digits and "_", starting with a letter; at most 24 characters. */
  readonly name: string;
  /** ASCII (punycode), lower case, no trailing dot; matched as suffixes on label boundaries. */
  readonly domains: string[];
  /** cgroup v2 paths relative to the cgroup2 root, without leading or trailing "/". */
  readonly cgroups: string[];
  readonly uids: number[];
}

export interface Config {
  readonly interface: InterfaceConfig;
  readonly peers: PeerConfig[];
  /** [App] sections, in file order; absent when the file has none. */
  readonly apps?: AppConfig[];
}
