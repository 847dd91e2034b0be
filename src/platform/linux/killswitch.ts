// The kill switch on Linux: the KillSwitchPolicy (policy/killswitch.ts) as one nftables
// table, `inet burrow`, loaded with `nft -f` in one transaction. The same file first
// declares and deletes the table, so a table left by a daemon that died is replaced
// atomically: there is no instant without one. Its undo (`nft delete table inet burrow`)
// is journalled as "kept when the daemon dies": a crash leaves it, and traffic stays
// blocked until `burrow down`.
//
// The rules, in order (see policy/killswitch.ts for why):
//   output   loopback; the tunnel's UDP (its fwmark) to @endpoints4/6; DHCPv4, DHCPv6;
//            ICMPv6 link upkeep; IPv6 dropped when the tunnel has none; DNS (53, 853)
//            to the `dns` chain; anything into the tunnel; with ExcludeLocalNetworks
//            @local4/6; then drop (policy drop, with a counter)
//   dns      only through the tunnel, and to @dns4/6 when the tunnel names resolvers
//   forward  as output, without the host's own exceptions
//   input    the tunnel's addresses, arriving on any interface but the tunnel or lo: drop
// The endpoint sets follow the engine (endpointUpdate): roaming and `wg set … endpoint`.

import type { IpFamily, IpPrefix } from '../../config/index.js';
import { DNS_PORTS, type KillSwitchPolicy, LINK_ICMPV6_TYPES } from '../../policy/killswitch.js';
import type { TunnelEndpoint } from '../../policy/settings.js';
import { LinuxPlatformError } from './errors.js';
import type { Exec } from './exec.js';

export const KILL_SWITCH_TABLE = 'burrow';
export const KILL_SWITCH_UNDO = ['nft', 'delete', 'table', 'inet', KILL_SWITCH_TABLE] as const;

export interface KillSwitchValues {
  readonly ifname: string;
  /** The tunnel socket's SO_MARK; undefined: the endpoint rule matches without it. */
  readonly fwmark: number | undefined;
  /** Subnets of the machine's other interfaces (ExcludeLocalNetworks lets them through). */
  readonly attachedSubnets: readonly IpPrefix[];
}

const q = (name: string): string => `"${name}"`;

function elements(items: readonly string[]): string {
  return items.length === 0 ? '' : ` elements = { ${items.join(', ')} };`;
}

function endpointElements(endpoints: readonly TunnelEndpoint[], family: IpFamily): string[] {
  return [...new Set(endpoints.filter((e) => e.family === family).map((e) => `${e.host} . ${e.port}`))];
}

function prefixes(list: readonly IpPrefix[], family: IpFamily): string[] {
  return [...new Set(list.filter((p) => p.family === family).map((p) => p.text))];
}

/** The whole table, as an `nft -f` file that replaces any table of the same name atomically. */
export function renderKillSwitch(policy: KillSwitchPolicy, values: KillSwitchValues): string {
  const { ifname } = values;
  const local = policy.allowLocalNetworks ? [...policy.localNetworks, ...values.attachedSubnets] : [];
  const hosts = (family: IpFamily) => policy.tunnelAddresses.filter((a) => a.family === family).map((a) => a.text.split('/')[0]!);
  const dns = (family: IpFamily) => policy.dnsServers.filter((s) => s.includes(':') === (family === 6));
  const mark = values.fwmark === undefined ? '' : `meta mark ${values.fwmark} `;
  const dnsPorts = `{ ${DNS_PORTS.join(', ')} }`;
  const commonOut = [
    ...(policy.blockIPv6 ? ['meta nfproto ipv6 counter drop comment "the tunnel has no IPv6 address"'] : []),
    `meta l4proto { tcp, udp } th dport ${dnsPorts} jump dns`,
    `oifname ${q(ifname)} accept`,
    ...(local.length > 0 ? ['ip daddr @local4 accept', 'ip6 daddr @local6 accept'] : []),
    'counter drop',
  ];
  const lines = [
    `table inet ${KILL_SWITCH_TABLE}`,
    `delete table inet ${KILL_SWITCH_TABLE}`,
    `table inet ${KILL_SWITCH_TABLE} {`,
    `  comment "Burrow's kill switch for ${ifname}: removed by burrow down ${ifname}"`,
    `  set endpoints4 { type ipv4_addr . inet_service;${elements(endpointElements(policy.endpoints, 4))} }`,
    `  set endpoints6 { type ipv6_addr . inet_service;${elements(endpointElements(policy.endpoints, 6))} }`,
    `  set dns4 { type ipv4_addr;${elements(dns(4))} }`,
    `  set dns6 { type ipv6_addr;${elements(dns(6))} }`,
    `  set local4 { type ipv4_addr; flags interval; auto-merge;${elements(prefixes(local, 4))} }`,
    `  set local6 { type ipv6_addr; flags interval; auto-merge;${elements(prefixes(local, 6))} }`,
    `  set tunnel4 { type ipv4_addr;${elements(hosts(4))} }`,
    `  set tunnel6 { type ipv6_addr;${elements(hosts(6))} }`,
    '  chain dns {',
    `    oifname != ${q(ifname)} counter drop`,
    ...(policy.dnsServers.length === 0 ? ['    accept'] : ['    ip daddr @dns4 accept', '    ip6 daddr @dns6 accept', '    counter drop']),
    '  }',
    '  chain output {',
    '    type filter hook output priority filter; policy drop;',
    '    oifname "lo" accept',
    `    ${mark}ip daddr . udp dport @endpoints4 accept`,
    `    ${mark}ip6 daddr . udp dport @endpoints6 accept`,
    '    meta nfproto ipv4 udp sport 68 udp dport 67 accept',
    '    meta nfproto ipv6 udp sport 546 udp dport 547 accept',
    `    icmpv6 type { ${LINK_ICMPV6_TYPES.join(', ')} } accept`,
    ...commonOut.map((l) => `    ${l}`),
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy drop;',
    ...commonOut.map((l) => `    ${l}`),
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    `    iifname { "lo", ${q(ifname)} } accept`,
    '    ip daddr @tunnel4 counter drop',
    '    ip6 daddr @tunnel6 counter drop',
    '  }',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/** An `nft -f` file that sets the endpoint sets to `endpoints`, in one transaction. */
export function endpointUpdate(endpoints: readonly TunnelEndpoint[]): string {
  const lines: string[] = [];
  for (const family of [4, 6] as const) {
    const set = `inet ${KILL_SWITCH_TABLE} endpoints${family}`;
    lines.push(`flush set ${set}`);
    const items = endpointElements(endpoints, family);
    if (items.length > 0) lines.push(`add element ${set} { ${items.join(', ')} }`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Refuses to replace Burrow's table when another tunnel owns it: loading ours would lift
 * that tunnel's kill switch (or its per-app routing). The table's comment names its
 * tunnel; a table of this tunnel (left by its daemon that died) may be replaced.
 */
export async function checkTableOwner(exec: Exec, ifname: string): Promise<void> {
  const r = await exec('nft', ['list', 'table', 'inet', KILL_SWITCH_TABLE]);
  if (r.exitCode !== 0) return; // no such table
  const comment = /comment "([^"]*)"/.exec(r.stdout)?.[1];
  if (comment !== undefined && comment.endsWith(`burrow down ${ifname}`)) return;
  throw new LinuxPlatformError(
    'ERR_PLATFORM_COMMAND',
    `the nftables table inet ${KILL_SWITCH_TABLE} belongs to another tunnel (${comment ?? 'no comment'}): one tunnel with the kill switch or per-app routing runs at a time`,
  );
}
