// A server's forwarding and NAT on Linux, as plan steps that applyLinux journals like
// its own (each undo recorded before its change):
//
//   1. sysctl net.ipv4.ip_forward=1             when the tunnel has an IPv4 subnet
//   2. sysctl net.ipv6.conf.all.forwarding=1    when it has an IPv6 subnet
//      (undo: the value read before; a host that already forwarded is left alone)
//   3. nft -f -  table inet burrow_server_IFACE (undo: nft delete table inet …)
//        forward      iifname IFACE oifname IFACE drop, unless client-to-client is on
//        postrouting  the tunnel's subnets, out of the uplink: masquerade (IPv4, IPv6)
//
// The table is Burrow's own and replaced atomically (declared, deleted and written in
// one `nft -f` transaction), so a table left by a daemon that died is never doubled.
// Its forward chain only drops: a host whose own firewall drops forwarded traffic
// (policy drop elsewhere) must accept the tunnel's traffic there too, since in nftables
// a drop in any base chain is final.

import type { IpPrefix } from '../../config/index.js';
import { checkIfname, type LinuxStep } from './plan.js';

export interface ForwardingSettings {
  /** The tunnel interface. */
  readonly ifname: string;
  /** The interface whose addresses the tunnel's traffic leaves with (masquerade). */
  readonly uplink: string;
  /** The tunnel's subnets: what is masqueraded, per family. */
  readonly subnets: readonly IpPrefix[];
  /** Peers may reach each other through the server. Default false. */
  readonly clientToClient: boolean;
}

export const IPV4_FORWARD = 'net.ipv4.ip_forward';
export const IPV6_FORWARD = 'net.ipv6.conf.all.forwarding';

/** The server's nftables table for `ifname`: nft names take letters, digits and "_". */
export function forwardingTable(ifname: string): string {
  return `burrow_server_${ifname.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/** The `nft -f` file of the server's table; replaces any table of the same name atomically. */
export function renderForwarding(s: ForwardingSettings): string {
  checkIfname(s.ifname);
  checkIfname(s.uplink);
  const table = forwardingTable(s.ifname);
  const q = (name: string) => `"${name}"`;
  const v4 = s.subnets.filter((p) => p.family === 4).map((p) => p.text);
  const v6 = s.subnets.filter((p) => p.family === 6).map((p) => p.text);
  const set = (list: string[]) => (list.length === 1 ? list[0]! : `{ ${list.join(', ')} }`);
  const lines = [
    `table inet ${table}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    `  comment "Burrow's server NAT for ${s.ifname}: removed by burrow server down"`,
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    ...(s.clientToClient ? [] : [`    iifname ${q(s.ifname)} oifname ${q(s.ifname)} counter drop comment "client to client is off"`]),
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...(v4.length > 0 ? [`    oifname ${q(s.uplink)} ip saddr ${set(v4)} masquerade`] : []),
    ...(v6.length > 0 ? [`    oifname ${q(s.uplink)} ip6 saddr ${set(v6)} masquerade`] : []),
    '  }',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/** The steps, in order: forwarding per family the tunnel has, then the table. Pure. */
export function forwardingSteps(s: ForwardingSettings): LinuxStep[] {
  const steps: LinuxStep[] = [];
  if (s.subnets.some((p) => p.family === 4)) steps.push({ kind: 'sysctl', key: IPV4_FORWARD, value: '1' });
  if (s.subnets.some((p) => p.family === 6)) steps.push({ kind: 'sysctl', key: IPV6_FORWARD, value: '1' });
  steps.push({ kind: 'nft', input: renderForwarding(s), undo: ['nft', 'delete', 'table', 'inet', forwardingTable(s.ifname)], keep: false });
  return steps;
}
