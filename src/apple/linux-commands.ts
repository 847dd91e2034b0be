// What native/jsc-host does on Linux with the NEPacketTunnelNetworkSettings JSON the core
// computed (`apple` in Burrow.start's answer), as the Mac's system does with it for the
// extension: the C host applies the very object the Swift shim hands to
// setTunnelNetworkSettings, so its tests say as much as they can about the shim's.
//
//   addresses, mtu          ip address add A/LEN dev IF; ip link set dev IF mtu M up
//   excludedRoutes          pinned to the path they have now, before the tunnel's routes
//                           exist: `ip -j route get DEST` gives the gateway and device, and
//                           DEST/LEN is added there in the main table (left alone when a
//                           route for exactly DEST/LEN is already there). These are the
//                           endpoints: the tunnel's own UDP keeps its path outside.
//   includedRoutes          ip route replace P dev IF. A default route (isDefault) is added
//                           as its two halves (0.0.0.0/1 and 128.0.0.0/1; ::/1 and 8000::/1),
//                           more specific than any default route and less than any other,
//                           so the system's own default route is never touched and the
//                           attached subnets stay direct, as on a Mac.
//   dnsSettings             the resolv.conf the host writes (`resolvConf`): the servers and
//                           search domains. matchDomains is [""] whenever there are servers
//                           (src/policy/settings.ts): they are the resolver for every name,
//                           which is what resolv.conf says.
//
// Each step carries its undo when what it made outlives the tunnel interface: the
// addresses and routes on IF vanish with it when the host closes the TUN; the pinned
// excluded routes do not, and are deleted. The host restores resolv.conf itself.

import { type NEPacketTunnelNetworkSettingsJson, subnetMask } from './network-settings.js';

type Serialized = { apple: NEPacketTunnelNetworkSettingsJson };

/** `ip ARGS` run by the host: its standard output, or null when it failed. */
export type IpQuery = (args: string[]) => string | null;

/** Arguments to `ip`, and the `ip` arguments that take the change back (null: it goes with the interface). */
export interface HostStep {
  readonly argv: string[];
  readonly undo: string[] | null;
}

export interface HostPlan {
  readonly steps: HostStep[];
  /** The whole resolv.conf to write, or null to leave DNS alone. */
  readonly resolvConf: string | null;
}

/** 24 for "255.255.255.0"; throws on a mask that is not a prefix's. */
export function maskLength(mask: string): number {
  for (let n = 0; n <= 32; n++) if (subnetMask(n) === mask) return n;
  throw new Error(`subnet mask ${mask} is not a prefix's`);
}

const HALVES: Record<4 | 6, string[]> = { 4: ['0.0.0.0/1', '128.0.0.0/1'], 6: ['::/1', '8000::/1'] };

/** The route `ip -j route get` reports for `address` now, as `via GW dev DEV` arguments. */
function currentPath(query: IpQuery, family: 4 | 6, address: string, prefix: string): string[] {
  const out = query([`-${family}`, '-j', 'route', 'get', address]);
  const route = out === null ? undefined : (JSON.parse(out) as { gateway?: string; dev?: string }[])[0];
  if (route?.dev === undefined) throw new Error(`excluded route ${prefix}: there is no route to ${address} outside the tunnel to keep it on`);
  return [...(route.gateway === undefined ? [] : ['via', route.gateway]), 'dev', route.dev];
}

function excluded(query: IpQuery, family: 4 | 6, address: string, prefix: string): HostStep[] {
  const existing = query([`-${family}`, '-j', 'route', 'show', 'table', 'main', 'exact', prefix]);
  if (existing !== null && existing.trim() !== '' && (JSON.parse(existing) as unknown[]).length > 0) return [];
  const path = currentPath(query, family, address, prefix);
  return [{ argv: [`-${family}`, 'route', 'add', prefix, ...path], undo: [`-${family}`, 'route', 'del', prefix, ...path] }];
}

function included(family: 4 | 6, prefix: string, isDefault: boolean, ifname: string): HostStep[] {
  return (isDefault ? HALVES[family] : [prefix]).map((p) => ({ argv: [`-${family}`, 'route', 'replace', p, 'dev', ifname], undo: null }));
}

function resolvConf(a: NEPacketTunnelNetworkSettingsJson, ifname: string): string | null {
  const dns = a.dnsSettings;
  if (dns === null || dns.servers.length === 0) return null;
  return [
    `# Written by burrow-jsc-host for ${ifname}; the previous content is put back when it stops.`,
    ...dns.servers.map((s) => `nameserver ${s}`),
    ...(dns.searchDomains.length === 0 ? [] : [`search ${dns.searchDomains.join(' ')}`]),
    '',
  ].join('\n');
}

export function linuxCommands(started: string | Serialized, ifname: string, query: IpQuery): HostPlan {
  const a = (typeof started === 'string' ? JSON.parse(started) as Serialized : started).apple;
  const v4 = a.ipv4Settings;
  const v6 = a.ipv6Settings;
  const steps: HostStep[] = [];
  v4?.addresses.forEach((addr, i) => steps.push({ argv: ['-4', 'address', 'add', `${addr}/${maskLength(v4.subnetMasks[i]!)}`, 'dev', ifname], undo: null }));
  v6?.addresses.forEach((addr, i) => steps.push({ argv: ['-6', 'address', 'add', `${addr}/${v6.networkPrefixLengths[i]!}`, 'dev', ifname], undo: null }));
  steps.push({ argv: ['link', 'set', 'dev', ifname, 'mtu', String(a.mtu), 'up'], undo: null });
  // Every query before the first route changes: the paths are the ones outside the tunnel.
  for (const r of v4?.excludedRoutes ?? []) steps.push(...excluded(query, 4, r.destinationAddress, `${r.destinationAddress}/${maskLength(r.destinationSubnetMask)}`));
  for (const r of v6?.excludedRoutes ?? []) steps.push(...excluded(query, 6, r.destinationAddress, `${r.destinationAddress}/${r.destinationNetworkPrefixLength}`));
  for (const r of v4?.includedRoutes ?? []) steps.push(...included(4, `${r.destinationAddress}/${maskLength(r.destinationSubnetMask)}`, r.isDefault, ifname));
  for (const r of v6?.includedRoutes ?? []) steps.push(...included(6, `${r.destinationAddress}/${r.destinationNetworkPrefixLength}`, r.isDefault, ifname));
  return { steps, resolvConf: resolvConf(a, ifname) };
}
